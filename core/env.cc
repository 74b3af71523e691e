#include "core/env.h"

#include <stdexcept>

#include <torch/torch.h>

namespace gfn {

bool KernelSpec::has_pieces() const {
  for (const auto& c : components)
    if (c.kind == ComponentKind::kPiece) return true;
  return false;
}

Actions same_index_action(const Actions& action, torch::Tensor* log_jacobian) {
  if (log_jacobian != nullptr)
    *log_jacobian = torch::zeros({action.component.size(0)}, action.component.options().dtype(torch::kFloat32));
  return action;
}

int64_t Env::num_states() const {
  throw std::logic_error("env '" + name() + "' does not enumerate its states");
}

States Env::enumerate_states(const torch::Device&) const {
  throw std::logic_error("env '" + name() + "' does not enumerate its states");
}

torch::Tensor Env::state_index(const States&) const {
  throw std::logic_error("env '" + name() + "' does not enumerate its states");
}

torch::Tensor Env::intermediate_log_reward(const States&) const {
  throw std::logic_error("env '" + name() + "' defines no intermediate reward");
}

}  // namespace gfn

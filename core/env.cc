#include "core/env.h"

#include <stdexcept>

namespace gfn {

bool KernelSpec::has_pieces() const {
  for (const auto& c : components)
    if (c.kind == ComponentKind::kPiece) return true;
  return false;
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

#include "core/env.h"

#include <limits>
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

ParentMoves parent_moves(const Env& env, const States& states) {
  const auto& spec = env.action_spec();
  const int64_t n = states.batch_size();
  ParentMoves out;
  out.available = env.backward_mask(states).logical_and(states.is_initial.logical_not().unsqueeze(1));
  auto coords = torch::zeros({n, spec.coord_dim}, torch::TensorOptions().dtype(torch::kFloat32).device(
                                                       states.is_sink.device()));
  std::vector<torch::Tensor> components;
  for (int64_t c = 0; c < spec.backward.size(); ++c) {
    Actions back{torch::full({n}, c, out.available.options().dtype(torch::kInt64)), coords};
    auto ok = out.available.select(1, c);
    // unavailable moves may leave the state space: keep the row itself there
    auto parent = States::where(ok, env.backward_step(states, back).next, states);
    auto f = env.forward_action(states, parent, back).component;
    out.parents.push_back(parent);
    components.push_back(torch::where(ok, f, torch::zeros_like(f)));
  }
  out.component = torch::stack(components, 1);
  return out;
}

torch::Tensor max_entropy_backward_log_probs(const Env& env, const States& states) {
  auto moves = parent_moves(env, states);
  std::vector<torch::Tensor> cols;
  for (const auto& parent : moves.parents) cols.push_back(env.log_path_count(parent).to(torch::kFloat64));
  auto log_pb = torch::stack(cols, 1) - env.log_path_count(states).to(torch::kFloat64).unsqueeze(1);
  return log_pb.masked_fill(moves.available.logical_not(), -std::numeric_limits<double>::infinity());
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

torch::Tensor Env::log_path_count(const States&) const {
  throw std::logic_error("env '" + name() + "' does not count its paths");
}

torch::Tensor Env::intermediate_log_reward(const States&) const {
  throw std::logic_error("env '" + name() + "' defines no intermediate reward");
}

}  // namespace gfn

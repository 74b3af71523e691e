#include "core/env.h"

#include <limits>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/params.h"

namespace gfn {

bool KernelSpec::has_pieces() const {
  for (const auto& c : components)
    if (c.kind == ComponentKind::kPiece) return true;
  return false;
}

namespace {

const char* domain_name(Domain d) {
  switch (d) {
    case Domain::kNone: return "none";
    case Domain::kUnitCube: return "the unit cube";
    case Domain::kInterval: return "the unit interval";
    case Domain::kReal: return "R^k";
    case Domain::kCircle: return "the circle";
  }
  return "?";
}

// The first problem with one kernel's components, "" when there is none.
std::string kernel_problem(const KernelSpec& kernel, const char* which, int64_t coord_dim) {
  if (kernel.components.empty()) return fmt::format("the {} kernel has no components", which);
  std::set<std::string> names;
  for (const auto& c : kernel.components) {
    const std::string what = fmt::format("{} {} '{}'", which, c.kind == ComponentKind::kAtom ? "atom" : "piece", c.name);
    if (c.name.empty()) return fmt::format("a {} component has no name", which);
    if (!names.insert(c.name).second) return fmt::format("{}: the name is used twice", what);
    if (c.kind == ComponentKind::kAtom) {
      if (c.dim != 0 || c.domain != Domain::kNone)
        return fmt::format("{}: an atom has dimension 0 and no domain (got dimension {} on {})", what, c.dim,
                           domain_name(c.domain));
      continue;
    }
    if (c.domain == Domain::kNone) return fmt::format("{}: a piece needs a chart domain", what);
    if (c.dim < 1) return fmt::format("{}: dimension {}, expected >= 1", what, c.dim);
    if (c.dim > coord_dim)
      return fmt::format("{}: dimension {} exceeds the action spec's coord_dim = {}", what, c.dim, coord_dim);
  }
  return "";
}

}  // namespace

void validate_action_spec(const ActionSpec& spec, const std::string& env_name) {
  std::string problem;
  if (spec.coord_dim < 0) problem = fmt::format("coord_dim = {}, expected >= 0", spec.coord_dim);
  if (problem.empty()) problem = kernel_problem(spec.forward, "forward", spec.coord_dim);
  if (problem.empty() && !spec.backward.components.empty())
    problem = kernel_problem(spec.backward, "backward", spec.coord_dim);
  const auto& f = spec.forward;
  if (problem.empty() && (f.exit < -1 || f.exit >= f.size() ||
                          (f.exit >= 0 && f.components[f.exit].kind != ComponentKind::kAtom)))
    problem = fmt::format("forward exit = {}: expected -1 or the index of a forward atom", f.exit);
  if (problem.empty() && spec.backward.exit != -1)
    problem = fmt::format("backward exit = {}: a backward kernel has no exit (expected -1)", spec.backward.exit);
  if (!problem.empty()) throw ConfigError(fmt::format("env '{}': action spec: {}", env_name, problem));
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

torch::Tensor Env::mode_index(const States& terminal) const {
  return torch::full({terminal.batch_size()}, -1, terminal.discrete.options().dtype(torch::kInt64));
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

torch::Tensor Env::log_reward_given(const States&, const std::vector<std::string>&, const torch::Tensor&) const {
  throw std::logic_error("env '" + name() + "' has no reward parameters");
}

torch::Tensor Env::condition_features(const States&) const {
  throw std::logic_error("env '" + name() + "' is not conditional");
}

torch::Tensor Env::fixed_backward_outputs(const States&) const {
  throw std::logic_error("env '" + name() + "' has no fixed backward kernel");
}

torch::Tensor Env::log_reward_gradient(const States& states) const {
  c10::AutoGradMode grad(true);
  auto x = states.continuous.detach().to(torch::kFloat64).requires_grad_(true);
  States s{states.discrete, x, states.is_initial, states.is_sink};
  auto lr = log_reward(s).to(torch::kFloat64).sum();
  if (!lr.requires_grad()) return torch::zeros_like(x).detach();  // log R does not depend on x
  auto g = torch::autograd::grad({lr}, {x}, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                 /*allow_unused=*/true)[0];
  return g.defined() ? g.detach() : torch::zeros_like(x).detach();
}

torch::Tensor Env::in_support(const States& states) const {
  return torch::ones({states.batch_size()}, states.is_sink.options());
}

States Env::exact_samples(int64_t, torch::Generator&, const torch::Device&) const {
  throw std::logic_error("env '" + name() + "' has no exact samples");
}

}  // namespace gfn

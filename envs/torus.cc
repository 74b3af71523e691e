#include "envs/torus.h"

#include <cmath>

#include <torch/torch.h>

#include "measures/densities.h"

namespace gfn {

const OptionTable<TorusOptions>& TorusOptions::keys() {
  using O = TorusOptions;
  static const auto table =
      OptionTable<O>("TorusOptions")
          .add("dim", &O::dim, "dimension k of the torus (angles per state; each move is a circle piece of dim k)",
               in(1, 4))
          .add("steps", &O::steps, "number n of moves of every trajectory", in(1, 32))
          .add("separation", &O::separation,
               "distance between the two modes in every angle (at -separation/2 and +separation/2)",
               above(0).below(2 * M_PI))
          .add("concentration", &O::concentration, "von Mises concentration of each mode", above(0).at_most(500))
          .add("weight", &O::weight, "weight of the mode at (-separation/2, ...)", above(0).below(1))
          .add("log_scale", &O::log_scale, "log of the total mass of the reward (the exact log Z)", finite());
  return table;
}

TorusEnv::TorusEnv(const TorusOptions& options) : options_(options) {
  options_.validate();
  const int64_t k = options_.dim;
  spec_.forward.components = {{"move", ComponentKind::kPiece, k, Domain::kCircle},
                              {"exit", ComponentKind::kAtom, 0, Domain::kNone}};
  spec_.forward.exit = kExit;
  spec_.backward.components = {{"move_back", ComponentKind::kPiece, k, Domain::kCircle},
                               {"to_s0", ComponentKind::kAtom, 0, Domain::kNone}};
  spec_.coord_dim = k;
}

States TorusEnv::initial_states(int64_t batch, const torch::Device& device) const {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return {torch::zeros({batch, 1}, i64), torch::zeros({batch, options_.dim}, i64.dtype(torch::kFloat64)),
          torch::ones({batch}, b), torch::zeros({batch}, b)};
}

torch::Tensor TorusEnv::features(const States& states) const {
  const int64_t n = options_.steps;
  const auto& t = states.discrete;  // [B, 1]
  // t never leaves [0, n] on valid rows; the clamp keeps the scatter in bounds on any row
  auto onehot = torch::zeros({t.size(0), n + 1}, t.options().dtype(torch::kFloat32)).scatter_(1, t.clamp(0, n), 1.0);
  auto theta = states.continuous.to(torch::kFloat32);
  return torch::cat({onehot, theta.cos(), theta.sin()}, 1);
}

torch::Tensor TorusEnv::forward_mask(const States& states) const {
  const auto& t = states.discrete;  // [B, 1]
  return torch::cat({t.lt(options_.steps), t.eq(options_.steps)}, 1);
}

torch::Tensor TorusEnv::backward_mask(const States& states) const {
  const auto& t = states.discrete;  // [B, 1]
  return torch::cat({t.ge(2), t.eq(1)}, 1);
}

namespace {

torch::Tensor zero_log_jacobian(const States& states) {
  return torch::zeros({states.batch_size()}, states.continuous.options().dtype(torch::kFloat32));
}

}  // namespace

StepResult TorusEnv::step(const States& states, const Actions& actions) const {
  const auto& t = states.discrete;        // [B, 1]
  const auto& theta = states.continuous;  // [B, k]
  auto move = actions.component.eq(kMove).unsqueeze(1);  // [B, 1]
  // where(), not a product: the coordinates of exit or padding rows may hold anything
  auto next = torch::where(move, wrap_angle(theta + actions.coords.to(theta.scalar_type())), theta);
  auto t_next = t + move.to(t.scalar_type());
  return {States{t_next, next, t_next.select(1, 0).eq(0), states.is_sink}, zero_log_jacobian(states)};
}

StepResult TorusEnv::backward_step(const States& states, const Actions& actions) const {
  const auto& t = states.discrete;        // [B, 1]
  const auto& theta = states.continuous;  // [B, k]
  auto back = actions.component.eq(kMoveBack).unsqueeze(1);  // [B, 1]
  auto to_s0 = actions.component.eq(kToS0).unsqueeze(1);     // [B, 1]
  auto prev = torch::where(back, wrap_angle(theta - actions.coords.to(theta.scalar_type())), theta);
  auto t_prev = torch::where(to_s0, torch::zeros_like(t), t - back.to(t.scalar_type()));
  prev = torch::where(to_s0, torch::zeros_like(prev), prev);
  return {States{t_prev, prev, t_prev.select(1, 0).eq(0), torch::zeros_like(states.is_sink)},
          zero_log_jacobian(states)};
}

Actions TorusEnv::backward_action(const States& parent, const States& child, const Actions& /*forward*/,
                                  torch::Tensor* log_jacobian) const {
  auto back = child.discrete.select(1, 0).ge(2);          // [B]: move_back, else to_s0
  auto component = back.logical_not().to(torch::kInt64);  // kMoveBack = 0, kToS0 = 1
  auto coords = torch::where(back.unsqueeze(1), wrap_angle(child.continuous - parent.continuous), 0.0);
  if (log_jacobian != nullptr) *log_jacobian = zero_log_jacobian(child);
  return {component, coords};
}

Actions TorusEnv::forward_action(const States& child, const States& parent, const Actions& /*backward*/,
                                 torch::Tensor* log_jacobian) const {
  if (log_jacobian != nullptr) *log_jacobian = zero_log_jacobian(child);
  return {torch::full({child.batch_size()}, kMove, child.discrete.options().dtype(torch::kInt64)),
          wrap_angle(child.continuous - parent.continuous)};
}

torch::Tensor TorusEnv::log_reward(const States& states) const {
  const double a = 0.5 * options_.separation, kappa = options_.concentration, w = options_.weight;
  auto theta = states.continuous.to(torch::kFloat64);  // [B, k]
  // log VM(x; mu, kappa) = kappa (cos(x - mu) - 1) - log(2 pi i0e(kappa)), summed over the angles
  const double log_norm = std::log(2 * M_PI) + std::log(std::cyl_bessel_i(0.0, kappa)) - kappa;
  const double k = static_cast<double>(options_.dim);
  auto minus = std::log(w) + kappa * ((theta + a).cos() - 1).sum(1);
  auto plus = std::log1p(-w) + kappa * ((theta - a).cos() - 1).sum(1);
  return (torch::logaddexp(minus, plus) - k * log_norm + options_.log_scale).to(torch::kFloat32);
}

std::optional<TerminalGrid> TorusEnv::terminal_grid(int64_t points, const torch::Device& device) const {
  const int64_t k = options_.dim;
  if (k > 2 || points < 1) return std::nullopt;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  const double width = 2 * M_PI / static_cast<double>(points);
  auto c = (torch::arange(points, f64) + 0.5) * width - M_PI;  // cell centres
  auto theta = k == 1 ? c.unsqueeze(1) : torch::stack({c.repeat_interleave(points), c.repeat({points})}, 1);
  const int64_t n = theta.size(0);
  auto b = f64.dtype(torch::kBool);
  States s{torch::full({n, 1}, options_.steps, f64.dtype(torch::kInt64)), theta, torch::zeros({n}, b),
           torch::zeros({n}, b)};
  return TerminalGrid{s, torch::full({n}, static_cast<double>(k) * std::log(width), f64)};
}

}  // namespace gfn

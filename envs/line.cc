#include "envs/line.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <torch/torch.h>

namespace gfn {

const OptionTable<LineOptions>& LineOptions::keys() {
  using O = LineOptions;
  static const auto table =
      OptionTable<O>("LineOptions")
          .add("steps", &O::steps, "number n of moves of every trajectory", in(1, 100))
          .add("separation", &O::separation, "distance between the two modes (at -separation/2 and +separation/2)",
               above(0))
          .add("sigma", &O::sigma, "standard deviation of each mode", above(0))
          .add("weight", &O::weight, "weight of the left mode", above(0).below(1))
          .add("log_scale", &O::log_scale, "log of the total mass of the reward (the exact log Z)", finite());
  return table;
}

LineEnv::LineEnv(const LineOptions& options) : options_(options) {
  options_.validate();
  spec_.forward.components = {{"move", ComponentKind::kPiece, 1, Domain::kReal},
                              {"exit", ComponentKind::kAtom, 0, Domain::kNone}};
  spec_.forward.exit = kExit;
  spec_.backward.components = {{"move_back", ComponentKind::kPiece, 1, Domain::kReal},
                               {"to_s0", ComponentKind::kAtom, 0, Domain::kNone}};
  spec_.coord_dim = 1;
}

States LineEnv::initial_states(int64_t batch, const torch::Device& device) const {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return {torch::zeros({batch, 1}, i64), torch::zeros({batch, 1}, f64), torch::ones({batch}, b),
          torch::zeros({batch}, b)};
}

torch::Tensor LineEnv::features(const States& states) const {
  const int64_t n = options_.steps;
  const auto& t = states.discrete;  // [B, 1]
  // t never leaves [0, n] on valid rows; the clamp keeps the scatter in bounds on any row
  auto onehot = torch::zeros({t.size(0), n + 1}, t.options().dtype(torch::kFloat32))
                    .scatter_(1, t.clamp(0, n), 1.0);
  auto x = states.continuous.to(torch::kFloat32) / options_.separation;  // [B, 1]
  return torch::cat({onehot, x}, 1);
}

torch::Tensor LineEnv::forward_mask(const States& states) const {
  const auto& t = states.discrete;  // [B, 1]
  return torch::cat({t.lt(options_.steps), t.eq(options_.steps)}, 1);
}

torch::Tensor LineEnv::backward_mask(const States& states) const {
  const auto& t = states.discrete;  // [B, 1]
  return torch::cat({t.ge(2), t.eq(1)}, 1);
}

StepResult LineEnv::step(const States& states, const Actions& actions) const {
  const auto& t = states.discrete;    // [B, 1]
  const auto& x = states.continuous;  // [B, 1]
  auto move = actions.component.eq(kMove).unsqueeze(1);  // [B, 1]
  // where(), not a product: the coordinates of exit or padding rows may hold anything
  auto u = torch::where(move, actions.coords.narrow(1, 0, 1).to(x.scalar_type()), 0.0);
  auto t_next = t + move.to(t.scalar_type());
  auto x_next = x + u;
  return {States{t_next, x_next, t_next.select(1, 0).eq(0), states.is_sink},
          torch::zeros({t.size(0)}, x.options().dtype(torch::kFloat32))};
}

StepResult LineEnv::backward_step(const States& states, const Actions& actions) const {
  const auto& t = states.discrete;    // [B, 1]
  const auto& x = states.continuous;  // [B, 1]
  auto back = actions.component.eq(kMoveBack).unsqueeze(1);  // [B, 1]
  auto to_s0 = actions.component.eq(kToS0).unsqueeze(1);     // [B, 1]
  auto u = torch::where(back, actions.coords.narrow(1, 0, 1).to(x.scalar_type()), 0.0);
  auto t_prev = torch::where(to_s0, torch::zeros_like(t), t - back.to(t.scalar_type()));
  auto x_prev = torch::where(to_s0, torch::zeros_like(x), x - u);
  return {States{t_prev, x_prev, t_prev.select(1, 0).eq(0), torch::zeros_like(states.is_sink)},
          torch::zeros({t.size(0)}, x.options().dtype(torch::kFloat32))};
}

Actions LineEnv::backward_action(const States& parent, const States& child, const Actions& forward,
                                 torch::Tensor* log_jacobian) const {
  auto back = child.discrete.select(1, 0).ge(2);  // [B]: move_back, else to_s0
  auto component = back.logical_not().to(torch::kInt64);  // kMoveBack = 0, kToS0 = 1
  auto coords = torch::where(back.unsqueeze(1), child.continuous - parent.continuous, 0.0);  // [B, 1]
  if (log_jacobian != nullptr)
    *log_jacobian = torch::zeros({child.batch_size()}, child.continuous.options().dtype(torch::kFloat32));
  return {component, coords};
}

Actions LineEnv::forward_action(const States& child, const States& parent, const Actions& backward,
                                torch::Tensor* log_jacobian) const {
  const int64_t b = child.batch_size();
  auto device = child.continuous.device();
  if (log_jacobian != nullptr) *log_jacobian = torch::zeros({b}, child.continuous.options().dtype(torch::kFloat32));
  return {torch::full({b}, kMove, torch::TensorOptions().dtype(torch::kInt64).device(device)),
          child.continuous - parent.continuous};
}

std::optional<TerminalGrid> LineEnv::terminal_grid(int64_t points, const torch::Device& device) const {
  const double reach = 0.5 * options_.separation + 6.0 * options_.sigma;
  const double width = 2.0 * reach / static_cast<double>(points);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  auto x = (torch::arange(points, f64) + 0.5) * width - reach;  // cell centres
  States s{torch::full({points, 1}, options_.steps, f64.dtype(torch::kInt64)), x.unsqueeze(1),
           torch::zeros({points}, f64.dtype(torch::kBool)), torch::zeros({points}, f64.dtype(torch::kBool))};
  return TerminalGrid{s, torch::full({points}, std::log(width), f64)};
}

torch::Tensor LineEnv::log_reward(const States& states) const {
  const double m = 0.5 * options_.separation, s = options_.sigma, w = options_.weight;
  auto x = states.continuous.select(1, 0).to(torch::kFloat64);  // [B]
  auto zl = (x + m) / s;
  auto zr = (x - m) / s;
  auto left = std::log(w) - 0.5 * zl * zl;
  auto right = std::log1p(-w) - 0.5 * zr * zr;
  const double norm = options_.log_scale - std::log(s) - 0.5 * std::log(2.0 * M_PI);
  return (torch::logaddexp(left, right) + norm).to(torch::kFloat32);
}

}  // namespace gfn

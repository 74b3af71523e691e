#include "envs/labelled_box.h"

#include <cmath>

#include <fmt/format.h>
#include <torch/torch.h>

namespace gfn {

const OptionTable<LabelledBoxOptions>& LabelledBoxOptions::keys() {
  using O = LabelledBoxOptions;
  static const auto table =
      OptionTable<O>("LabelledBoxOptions")
          .nest(&O::box, BoxOptions::keys())
          .add("labels", &O::labels, "number K of labels chosen before the box moves", in(1, 64))
          .add("label_ratio", &O::label_ratio, "reward ratio rho: R(k, x) = rho^k R_box(x)", above(0).below(INFINITY));
  return table;
}

LabelledBoxEnv::LabelledBoxEnv(const LabelledBoxOptions& options) : options_(options), geometry_(options.box) {
  options_.validate();
  spec_.forward.components = geometry_.forward_components();
  for (int64_t k = 0; k < options_.labels; ++k)
    spec_.forward.components.push_back({fmt::format("label_{}", k), ComponentKind::kAtom, 0, Domain::kNone, true});
  spec_.forward.exit = kExit;
  spec_.backward.components = geometry_.backward_components("to_origin");
  spec_.backward.components.push_back({"unlabel", ComponentKind::kAtom, 0, Domain::kNone, false});
  spec_.coord_dim = geometry_.dim();
}

torch::Tensor LabelledBoxEnv::at_origin(const States& states) {
  return states.discrete.select(1, 0).ge(0).logical_and(states.discrete.select(1, 1).eq(0));
}

States LabelledBoxEnv::initial_states(int64_t batch, const torch::Device& device) const {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  auto discrete = torch::cat({torch::full({batch, 1}, -1, i64), torch::zeros({batch, 1}, i64)}, 1);
  return {discrete, torch::zeros({batch, geometry_.dim()}, f64), torch::ones({batch}, b), torch::zeros({batch}, b)};
}

torch::Tensor LabelledBoxEnv::features(const States& states) const {
  const auto& label = states.discrete.narrow(1, 0, 1);  // [B, 1]
  auto f32 = states.continuous.options().dtype(torch::kFloat32);
  // label + 1 indexes a one-hot of K + 1 columns whose first (s0) is dropped
  auto onehot = torch::zeros({label.size(0), options_.labels + 1}, f32)
                    .scatter_(1, (label + 1).clamp(0, options_.labels), 1.0)
                    .narrow(1, 1, options_.labels);
  return torch::cat({geometry_.features(states.continuous), onehot, states.is_initial.unsqueeze(1).to(f32),
                     at_origin(states).unsqueeze(1).to(f32)},
                    1);
}

torch::Tensor LabelledBoxEnv::forward_mask(const States& states) const {
  auto s0 = states.is_initial.unsqueeze(1);
  auto box = geometry_.forward_mask(states.continuous, at_origin(states)).logical_and(s0.logical_not());
  return torch::cat({box, s0.expand({s0.size(0), options_.labels})}, 1);
}

torch::Tensor LabelledBoxEnv::backward_mask(const States& states) const {
  auto origin = at_origin(states);
  auto moved = states.discrete.narrow(1, 1, 1).eq(1);  // [B, 1]
  auto box = geometry_.backward_mask(states.continuous).logical_and(moved);
  return torch::cat({box, origin.unsqueeze(1)}, 1);
}

StepResult LabelledBoxEnv::step(const States& states, const Actions& actions) const {
  const auto& c = actions.component;
  auto [x, log_j] = geometry_.step(states.continuous, c, actions.coords);
  auto moved = c.eq(kFirst).logical_or(c.eq(kMove));
  auto labelled = c.ge(kLabel0);
  auto label = torch::where(labelled, c - kLabel0, states.discrete.select(1, 0));
  auto phase = torch::where(moved, torch::ones_like(c), states.discrete.select(1, 1));
  // a label leaves the origin where it is (zeros)
  auto next = torch::where(labelled.unsqueeze(1), 0.0, x);
  auto initial = states.is_initial.logical_and(moved.logical_or(labelled).logical_not());
  return {States{torch::stack({label, phase}, 1), next, initial, states.is_sink}, log_j};
}

StepResult LabelledBoxEnv::backward_step(const States& states, const Actions& actions) const {
  const auto& c = actions.component;
  auto [x, log_j] = geometry_.backward_step(states.continuous, c, actions.coords);
  auto unlabel = c.eq(kUnlabel);
  auto label = torch::where(unlabel, torch::full_like(c, -1), states.discrete.select(1, 0));
  auto phase = torch::where(c.eq(kBack), torch::ones_like(c),
                            torch::where(c.eq(kToOrigin).logical_or(unlabel), torch::zeros_like(c),
                                         states.discrete.select(1, 1)));
  auto prev = torch::where(unlabel.unsqueeze(1), 0.0, x);
  auto initial = unlabel.logical_or(states.is_initial.logical_and(c.ne(kBack)).logical_and(c.ne(kToOrigin)));
  return {States{torch::stack({label, phase}, 1), prev, initial, torch::zeros_like(states.is_sink)}, log_j};
}

Actions LabelledBoxEnv::backward_action(const States& parent, const States& child, const Actions& forward,
                                        torch::Tensor* log_jacobian) const {
  auto from_s0 = parent.is_initial;
  torch::Tensor box_j;
  auto box = geometry_.backward_action(parent.continuous, at_origin(parent), child.continuous, forward, &box_j);
  if (log_jacobian != nullptr) *log_jacobian = torch::where(from_s0, 0.0f, box_j);
  return {torch::where(from_s0, torch::full_like(box.component, kUnlabel), box.component),
          torch::where(from_s0.unsqueeze(1), 0.0, box.coords)};
}

Actions LabelledBoxEnv::forward_action(const States& child, const States& parent, const Actions& backward,
                                       torch::Tensor* log_jacobian) const {
  auto from_s0 = parent.is_initial;
  torch::Tensor box_j;
  auto box = geometry_.forward_action(child.continuous, parent.continuous, at_origin(parent), backward, &box_j);
  auto label = kLabel0 + child.discrete.select(1, 0).clamp(0, options_.labels - 1);
  if (log_jacobian != nullptr) *log_jacobian = torch::where(from_s0, 0.0f, box_j);
  return {torch::where(from_s0, label, box.component), torch::where(from_s0.unsqueeze(1), 0.0, box.coords)};
}

std::optional<TerminalGrid> LabelledBoxEnv::terminal_grid(int64_t points, const torch::Device& device) const {
  const int64_t d = geometry_.dim(), k = options_.labels;
  if (d > 2 || points < 1) return std::nullopt;
  auto cells = geometry_.grid(points, device);  // [M, d]
  const int64_t m = cells.size(0);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto label = torch::arange(k, i64).repeat_interleave(m);  // label-major
  auto discrete = torch::stack({label, torch::ones_like(label)}, 1);
  auto b = i64.dtype(torch::kBool);
  States s{discrete, cells.repeat({k, 1}), torch::zeros({k * m}, b), torch::zeros({k * m}, b)};
  const double log_volume = -static_cast<double>(d) * std::log(static_cast<double>(points));
  return TerminalGrid{s, torch::full({k * m}, log_volume, i64.dtype(torch::kFloat64))};
}

torch::Tensor LabelledBoxEnv::log_reward(const States& states) const {
  auto k = states.discrete.select(1, 0).clamp_min(0).to(torch::kFloat64);
  return (k * std::log(options_.label_ratio) + geometry_.log_reward(states.continuous).to(torch::kFloat64))
      .to(torch::kFloat32);
}

std::optional<double> LabelledBoxEnv::log_partition() const {
  // log sum_k rho^k by a log-sum-exp over k log rho
  const double lr = std::log(options_.label_ratio);
  const double top = lr >= 0 ? (options_.labels - 1) * lr : 0.0;
  double sum = 0.0;
  for (int64_t k = 0; k < options_.labels; ++k) sum += std::exp(k * lr - top);
  return top + std::log(sum) + geometry_.log_partition();
}

}  // namespace gfn

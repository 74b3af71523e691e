#include "ring_env.h"

#include <cmath>
#include <limits>
#include <string>

#include <torch/torch.h>

namespace example {

using gfn::Actions;
using gfn::States;
using gfn::StepResult;

const gfn::OptionTable<RingOptions>& RingOptions::keys() {
  using O = RingOptions;
  using gfn::above, gfn::in;
  static const auto table =
      gfn::OptionTable<O>("RingOptions")
          .add("steps", &O::steps, "most moves: the enter move plus at most steps - 1 rotations", in(1, 64))
          .add("inner_radius", &O::inner_radius, "inner radius of the annulus", above(0))
          .add("outer_radius", &O::outer_radius, "outer radius of the annulus (> inner_radius)", above(0))
          .add("modes", &O::modes, "number of angular modes of the reward", in(1, 64))
          .add("concentration", &O::concentration, "angular concentration of the reward", in(0, 100))
          .add("width", &O::width, "radial standard deviation of the reward", above(0))
          .rule([](const O& o) {
            return o.outer_radius > o.inner_radius
                       ? std::string()
                       : "RingOptions: key 'outer_radius' = " + gfn::to_toml(o.outer_radius) +
                             ": expected a float > inner_radius = " + gfn::to_toml(o.inner_radius);
          });
  return table;
}

RingEnv::RingEnv(const RingOptions& options) : options_(options) {
  options_.validate();
  using gfn::ComponentKind, gfn::Domain;
  spec_.forward.components = {{"enter", ComponentKind::kPiece, 2, Domain::kUnitCube, /*initial_only=*/true},
                              {"rotate", ComponentKind::kPiece, 1, Domain::kCircle},
                              {"exit", ComponentKind::kAtom, 0, Domain::kNone}};
  spec_.forward.exit = kExit;
  spec_.backward.components = {{"rotate_back", ComponentKind::kPiece, 1, Domain::kCircle},
                               {"to_s0", ComponentKind::kAtom, 0, Domain::kNone}};
  spec_.coord_dim = 2;
  // log Z in closed form (see the header)
  const double m = 0.5 * (options_.inner_radius + options_.outer_radius);
  const double h = 0.5 * (options_.outer_radius - options_.inner_radius);
  const double s = options_.width;
  const double log_angular = std::log(2 * M_PI) + std::log(std::cyl_bessel_i(0.0, options_.concentration));
  const double log_radial = std::log(m * s * std::sqrt(2 * M_PI) * std::erf(h / (s * std::sqrt(2.0))));
  log_z_ = std::log(static_cast<double>(options_.steps)) + log_angular + log_radial;
}

namespace {

// |p| of each row: [B, 2] -> [B, 1].
torch::Tensor radius_of(const torch::Tensor& p) { return p.norm(2, /*dim=*/1, /*keepdim=*/true); }

// The rotation of each row of p ([B, 2]) by the angles a ([B, 1]).
torch::Tensor rotate(const torch::Tensor& p, const torch::Tensor& a) {
  auto c = a.cos(), s = a.sin();
  auto x = p.narrow(1, 0, 1), y = p.narrow(1, 1, 1);
  return torch::cat({c * x - s * y, s * x + c * y}, 1);
}

// log J of a rotation at radius r ([B, 1]) -> [B] float32; guarded at the origin (rows where no
// rotation happens).
torch::Tensor log_arc_jacobian(const torch::Tensor& r) { return r.clamp_min(1e-30).log().squeeze(1).to(torch::kFloat32); }

}  // namespace

States RingEnv::initial_states(int64_t batch, const torch::Device& device) const {
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return {torch::zeros({batch, 1}, torch::TensorOptions().dtype(torch::kInt64).device(device)),
          torch::zeros({batch, 2}, torch::TensorOptions().dtype(torch::kFloat64).device(device)),
          torch::ones({batch}, b), torch::zeros({batch}, b)};
}

torch::Tensor RingEnv::features(const States& states) const {
  const int64_t n = options_.steps;
  const auto& t = states.discrete;  // [B, 1]
  auto onehot = torch::zeros({t.size(0), n + 1}, t.options().dtype(torch::kFloat32)).scatter_(1, t.clamp(0, n), 1.0);
  return torch::cat({onehot, states.continuous.to(torch::kFloat32) / options_.outer_radius}, 1);
}

torch::Tensor RingEnv::forward_mask(const States& states) const {
  const auto& t = states.discrete;  // [B, 1]
  return torch::cat({t.eq(0), t.ge(1).logical_and(t.lt(options_.steps)), t.ge(1)}, 1);
}

torch::Tensor RingEnv::backward_mask(const States& states) const {
  const auto& t = states.discrete;  // [B, 1]
  return torch::cat({t.ge(2), t.eq(1)}, 1);
}

StepResult RingEnv::step(const States& states, const Actions& actions) const {
  const auto& t = states.discrete;    // [B, 1]
  const auto& p = states.continuous;  // [B, 2]
  auto u = actions.coords.to(p.scalar_type());             // [B, 2]
  auto enter = actions.component.eq(kEnter).unsqueeze(1);   // [B, 1]
  auto turn = actions.component.eq(kRotate).unsqueeze(1);   // [B, 1]
  const double r_in = options_.inner_radius, width = options_.outer_radius - options_.inner_radius;

  // enter: the polar chart of the annulus, J = 2 pi (r_out - r_in) r
  auto r = r_in + width * u.narrow(1, 0, 1);
  auto th = M_PI * (2 * u.narrow(1, 1, 1) - 1);
  auto entered = torch::cat({r * th.cos(), r * th.sin()}, 1);
  auto log_j_enter = (std::log(2 * M_PI * width) + r.clamp_min(r_in).log()).squeeze(1).to(torch::kFloat32);
  // rotate: by the angle u0, J = |p|
  auto turned = rotate(p, u.narrow(1, 0, 1));
  auto log_j_turn = log_arc_jacobian(radius_of(p));

  // where(), not a product: the coordinates of exit or padding rows may hold anything
  auto next = torch::where(enter, entered, torch::where(turn, turned, p));
  auto t_next = t + enter.logical_or(turn).to(t.scalar_type());
  auto log_j = torch::where(enter.squeeze(1), log_j_enter, torch::where(turn.squeeze(1), log_j_turn, 0.0));
  return {States{t_next, next, t_next.select(1, 0).eq(0), states.is_sink}, log_j};
}

StepResult RingEnv::backward_step(const States& states, const Actions& actions) const {
  const auto& t = states.discrete;    // [B, 1]
  const auto& p = states.continuous;  // [B, 2]
  auto back = actions.component.eq(kRotateBack).unsqueeze(1);  // [B, 1]
  auto to_s0 = actions.component.eq(kToS0).unsqueeze(1);       // [B, 1]
  auto turned = rotate(p, -actions.coords.narrow(1, 0, 1).to(p.scalar_type()));
  auto prev = torch::where(to_s0, torch::zeros_like(p), torch::where(back, turned, p));
  auto t_prev = torch::where(to_s0, torch::zeros_like(t), t - back.to(t.scalar_type()));
  auto log_j = torch::where(back.squeeze(1), log_arc_jacobian(radius_of(p)), 0.0);
  return {States{t_prev, prev, t_prev.select(1, 0).eq(0), torch::zeros_like(states.is_sink)}, log_j};
}

Actions RingEnv::backward_action(const States& parent, const States& child, const Actions& forward,
                                 torch::Tensor* log_jacobian) const {
  auto back = child.discrete.ge(2);  // [B, 1]: rotate_back, else to_s0
  auto component = back.logical_not().squeeze(1).to(torch::kInt64);  // kRotateBack = 0, kToS0 = 1
  // the same angle: read from the forward action rather than recovered from the points (the
  // points cannot hold what a density at the edge of its domain depends on)
  auto u = torch::where(back, forward.coords.narrow(1, 0, 1).to(torch::kFloat64), 0.0);  // [B, 1]
  if (log_jacobian != nullptr)
    *log_jacobian = torch::where(back.squeeze(1), log_arc_jacobian(radius_of(child.continuous)), 0.0);
  return {component, torch::cat({u, torch::zeros_like(u)}, 1)};
}

Actions RingEnv::forward_action(const States& child, const States& parent, const Actions& backward,
                                torch::Tensor* log_jacobian) const {
  const auto& c = child.continuous;                // [B, 2]
  auto enter = parent.discrete.eq(0);              // [B, 1]: the parent is s0
  const double r_in = options_.inner_radius, width = options_.outer_radius - options_.inner_radius;
  // enter: the inverse polar chart (atan2 lies in [-pi, pi], so u1 in [0, 1])
  auto r = radius_of(c);
  auto u_enter = torch::cat({((r - r_in) / width).clamp(0, 1),
                             (torch::atan2(c.narrow(1, 1, 1), c.narrow(1, 0, 1)) / M_PI + 1) / 2},
                            1);
  // rotate: the backward action's angle
  auto a = backward.coords.narrow(1, 0, 1).to(torch::kFloat64);
  auto u_turn = torch::cat({a, torch::zeros_like(a)}, 1);
  if (log_jacobian != nullptr) {
    auto log_j_enter = (std::log(2 * M_PI * width) + r.clamp_min(r_in).log()).squeeze(1).to(torch::kFloat32);
    *log_jacobian = torch::where(enter.squeeze(1), log_j_enter, log_arc_jacobian(r));
  }
  auto component = enter.squeeze(1).logical_not().to(torch::kInt64);  // kEnter = 0, kRotate = 1
  return {component, torch::where(enter, u_enter, u_turn)};
}

torch::Tensor RingEnv::log_reward(const States& states) const {
  const auto p = states.continuous.to(torch::kFloat64);  // [B, 2]
  const double m = 0.5 * (options_.inner_radius + options_.outer_radius), s = options_.width;
  auto r = radius_of(p).squeeze(1);
  auto th = torch::atan2(p.select(1, 1), p.select(1, 0));
  auto z = (r - m) / s;
  return (options_.concentration * (static_cast<double>(options_.modes) * th).cos() - 0.5 * z * z)
      .to(torch::kFloat32);
}

}  // namespace example

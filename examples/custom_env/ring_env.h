// Ring: a 2-D environment on an annulus, written outside the gfn source tree against the
// installed package (README, "Writing an environment").
//
// A state is (t, p): a step counter t in {0, ..., n} (discrete, [B, 1] int64) and a point p in the
// plane (continuous, [B, 2] float32); s0 = (0, origin). With polar coordinates p = r (cos th, sin th)
// and the annulus A = {r_in <= r <= r_out}:
//   forward  0 "enter"   piece on [0,1]^2, only at s0: the polar chart of A
//                          r = r_in + u0 (r_out - r_in),  th = pi (2 u1 - 1),
//                          J = |det D phi| = 2 pi (r_out - r_in) r
//            1 "rotate"  piece on the circle: p' = rotation of p by the angle u about the origin,
//                          J = r (arc length on the circle of radius r); iff 1 <= t < n
//            2 "exit"    atom; iff t >= 1
//   backward 0 "rotate_back" piece on the circle: p = rotation of p' by -u, J = r; iff t >= 2
//            1 "to_s0"       atom: the only parent of a state with t = 1; iff t == 1
// So a trajectory enters the annulus, makes up to n - 1 rotations, and exits.
//
// Reference measures and why they are consistent (nu (x) kappa = (nu (x) kappa_b)^T: see core/env.h):
// nu is the atom at s0 plus the area measure dA = r dr dth on each layer t >= 1.
// - s0 -> layer 1: kappa(s0, .) = dA on layer 1 (the chart's image, with the Jacobian above) and
//   kappa_b(s', .) = the atom at s0; both sides are (atom at s0) x dA.
// - layer t -> t + 1: kappa(s, .) = arc length on the circle of radius |p|, and kappa_b the same
//   circle backward. In polar coordinates nu (x) kappa = (r dr dth) (r dth') on {r' = r}, which is
//   symmetric in (th, th') because a rotation keeps the radius: its transpose is the same
//   measure. (A radial move measured by plain length would break this: r dr dth dr' is not
//   symmetric in r and r'.)
// The Jacobians are the volume factors of these measures; leave out the r of the rotation and
// the checker fails "jacobian", "normalisation" and "partition" (log Z_IS off by ~80 SE).
//
// Reward, with m = (r_in + r_out) / 2, h = (r_out - r_in) / 2, k modes and concentration beta:
//     log R(t, p) = beta cos(k th) - (r - m)^2 / (2 sigma^2)      (the same on every layer t >= 1)
// and, integrating over th (2 pi I0(beta) for integer k) and r (weight r, symmetric about m),
//     Z = n * 2 pi I0(beta) * m sigma sqrt(2 pi) erf(h / (sigma sqrt 2)),
// the factor n because a terminal state x = (t, p) may stop on any of the layers t = 1..n.
#pragma once

#include <vector>

#include "core/env.h"
#include "core/options.h"

namespace example {

// The options own their config keys (core/options.h): one table declares each key, its member,
// rule and documentation; validate(), from_params(), `custom_env keys` and the config file's
// validation all come from it.
struct RingOptions : gfn::KeyedOptions<RingOptions> {
  int64_t steps = 3;           // n: the enter move plus at most n - 1 rotations, in [1, 64]
  double inner_radius = 1.0;   // r_in, > 0
  double outer_radius = 2.0;   // r_out, > inner_radius
  int64_t modes = 4;           // k, number of angular modes of the reward, in [1, 64]
  double concentration = 2.0;  // beta, angular concentration of the reward, in [0, 100]
  double width = 0.25;         // sigma, radial standard deviation of the reward, > 0

  // The config keys (under [env]).
  static const gfn::OptionTable<RingOptions>& keys();
};

class RingEnv final : public gfn::Env {
 public:
  static constexpr int64_t kEnter = 0, kRotate = 1, kExit = 2;  // forward
  static constexpr int64_t kRotateBack = 0, kToS0 = 1;          // backward

  explicit RingEnv(const RingOptions& options);

  std::string name() const override { return "ring"; }
  const gfn::ActionSpec& action_spec() const override { return spec_; }
  int64_t max_length() const override { return options_.steps; }
  int64_t discrete_dim() const override { return 1; }
  int64_t continuous_dim() const override { return 2; }
  int64_t feature_dim() const override { return options_.steps + 3; }

  gfn::States initial_states(int64_t batch, const torch::Device& device) const override;
  // [B, n + 3] float32: one-hot of t in columns 0..n, then p / r_out.
  torch::Tensor features(const gfn::States& states) const override;
  // [B, 3]: enter iff t == 0, rotate iff 1 <= t < n, exit iff t >= 1.
  torch::Tensor forward_mask(const gfn::States& states) const override;
  // [B, 2]: rotate_back iff t >= 2, to_s0 iff t == 1; nothing at s0.
  torch::Tensor backward_mask(const gfn::States& states) const override;
  // enter or rotate; any other component (the exit, padding) leaves the row unchanged, log J = 0.
  gfn::StepResult step(const gfn::States& states, const gfn::Actions& actions) const override;
  // rotate_back by -u, or to_s0.
  gfn::StepResult backward_step(const gfn::States& states, const gfn::Actions& actions) const override;
  // rotate_back with u = angle from parent to child where child t >= 2, else to_s0 (u = 0).
  gfn::Actions backward_action(const gfn::States& parent, const gfn::States& child, const gfn::Actions& forward,
                               torch::Tensor* log_jacobian = nullptr) const override;
  // enter with the inverse polar chart where the parent is s0, else rotate.
  gfn::Actions forward_action(const gfn::States& child, const gfn::States& parent, const gfn::Actions& backward,
                              torch::Tensor* log_jacobian = nullptr) const override;
  // log R: [B] float32 (depends on p only).
  torch::Tensor log_reward(const gfn::States& states) const override;

  std::optional<double> log_partition() const override { return log_z_; }

 private:
  RingOptions options_;
  gfn::ActionSpec spec_;
  double log_z_;
};

}  // namespace example

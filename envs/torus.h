// Torus: a two-mode target on the k-torus [-pi, pi)^k reached by a fixed number of rotations, each
// one a circle piece of dimension k (a torus step). It is the env for circle pieces what Line is
// for pieces on R: small, with an exact log Z and a grid for k <= 2, and two modes, which a single
// von Mises cannot cover from one state (policy.mixture_components >= 2 can).
//
// A state is (t, theta): the step counter t in {0, ..., n} (discrete, [B, 1] int64) and the angles
// theta in [-pi, pi)^k (continuous, [B, k] float64); s0 = (0, 0). Every trajectory makes exactly n
// moves and then exits:
//   forward  0 "move"      piece on the circle^k: theta' = wrap(theta + u), t' = t + 1, log J = 0;
//                          iff t < n
//            1 "exit"      atom; iff t == n
//   backward 0 "move_back" piece on the circle^k: (t, theta') -> (t - 1, wrap(theta' - u)),
//                          log J = 0; iff t >= 2
//            1 "to_s0"     atom: (1, theta') -> s0 (the only parent of a first-layer state); iff t == 1
// wrap() maps an angle into [-pi, pi) (measures/densities.h). Each state has one available
// component in each direction, so only the rotations are learned.
//
// Reference measures: nu = atom at s0 + Lebesgue (Haar) measure on the torus of each layer
// t >= 1; kappa(s, .) is Lebesgue on layer t + 1, kappa_b(s', .) Lebesgue on layer t - 1 (t >= 2)
// or the atom at s0 (t = 1). A rotation of the torus preserves its Lebesgue measure, so
// nu (x) kappa and (nu (x) kappa_b)^T are both Lebesgue on pairs of consecutive layers (the atom at
// s0 paired with Lebesgue on layer 1): consistent, with unit Jacobians.
//
// Reward, two products of von Mises bumps at mu- = (-a, ..., -a) and mu+ = (a, ..., a), a =
// separation / 2, of concentration kappa each, with weight w on mu-:
//     R(theta) = exp(log_scale) [w prod_d VM(theta_d; -a, kappa) + (1 - w) prod_d VM(theta_d; a, kappa)],
// VM the von Mises density exp(kappa cos(x - mu)) / (2 pi I0(kappa)): R integrates to
// exp(log_scale) over the torus, so log Z = log_scale exactly. log R is computed in float64 as
// kappa (cos - 1) - log(2 pi i0e(kappa)) per angle (finite for every kappa in range).
#pragma once

#include <cmath>

#include "core/env.h"
#include "core/options.h"

namespace gfn {

struct TorusOptions : KeyedOptions<TorusOptions> {
  int64_t dim = 2;             // k, the torus dimension, in [1, 4]
  int64_t steps = 2;           // n, the number of moves of every trajectory, in [1, 32]
  double separation = M_PI;    // distance 2a between the modes in every angle, in (0, 2 pi)
  double concentration = 4.0;  // von Mises concentration of each mode, in (0, 500]
  double weight = 0.5;         // weight w of the mode at (-a, ..., -a), in (0, 1)
  double log_scale = 0.0;      // log of the total mass of R, i.e. the exact log Z; finite

  // The config keys (under [env]); validate() and from_params() come from KeyedOptions.
  static const OptionTable<TorusOptions>& keys();
};

class TorusEnv final : public Env {
 public:
  // Component indices of the two kernels.
  static constexpr int64_t kMove = 0, kExit = 1;      // forward
  static constexpr int64_t kMoveBack = 0, kToS0 = 1;  // backward

  explicit TorusEnv(const TorusOptions& options);

  std::string name() const override { return "torus"; }
  const ActionSpec& action_spec() const override { return spec_; }
  int64_t max_length() const override { return options_.steps; }
  int64_t discrete_dim() const override { return 1; }
  int64_t continuous_dim() const override { return options_.dim; }
  // one-hot of t over n + 1 values, then cos theta and sin theta
  int64_t feature_dim() const override { return options_.steps + 1 + 2 * options_.dim; }

  States initial_states(int64_t batch, const torch::Device& device) const override;
  // [B, n + 1 + 2k] float32: one-hot of t (clamped to [0, n]), cos theta (k), sin theta (k).
  torch::Tensor features(const States& states) const override;
  // [B, 2]: move iff t < n, exit iff t == n.
  torch::Tensor forward_mask(const States& states) const override;
  // [B, 2]: move_back iff t >= 2, to_s0 iff t == 1; nothing at s0.
  torch::Tensor backward_mask(const States& states) const override;
  // move: (t + 1, wrap(theta + u)); any other component leaves the row unchanged.
  StepResult step(const States& states, const Actions& actions) const override;
  // move_back: (t - 1, wrap(theta - u)); to_s0: s0.
  StepResult backward_step(const States& states, const Actions& actions) const override;
  // move_back with u = wrap(child - parent) where child t >= 2, else to_s0; log J = 0.
  Actions backward_action(const States& parent, const States& child, const Actions& forward,
                          torch::Tensor* log_jacobian = nullptr) const override;
  // move with u = wrap(child - parent) (s0 sits at theta = 0); log J = 0.
  Actions forward_action(const States& child, const States& parent, const Actions& backward,
                         torch::Tensor* log_jacobian = nullptr) const override;
  // log R(theta): [B] float32.
  torch::Tensor log_reward(const States& states) const override;

  std::optional<double> log_partition() const override { return options_.log_scale; }
  // `points` cells per angle over the whole torus at t = n (k <= 2; nullopt otherwise), the
  // first angle outer.
  std::optional<TerminalGrid> terminal_grid(int64_t points, const torch::Device& device) const override;

  const TorusOptions& options() const { return options_; }

 private:
  TorusOptions options_;
  ActionSpec spec_;
};

}  // namespace gfn

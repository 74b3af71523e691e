// Line: a 1-D Gaussian-mixture target on R reached by a fixed number of Gaussian-policy increments
// (the "Line" environment of continuous GFlowNet papers; Lahlou et al., ICML 2023).
//
// A state is (t, x): the step counter t in {0, ..., n} (discrete, [B, 1] int64) and the position
// x in R (continuous, [B, 1] float32); s0 = (0, 0). Every trajectory makes exactly n moves and
// then exits:
//   forward  0 "move"      piece on R (dim 1): x' = x + u, t' = t + 1, log J = 0; iff t < n
//            1 "exit"      atom; iff t == n
//   backward 0 "move_back" piece on R (dim 1): (t, x') -> (t - 1, x' - u), log J = 0; iff t >= 2
//            1 "to_s0"     atom: (1, x') -> s0 (the only parent of a first-layer state); iff t == 1
// Each state has exactly one available component in each direction, so the component choices are
// forced (log-probability exactly 0) and only the increments are learned.
//
// Reference measures: nu = atom at s0 + Lebesgue on each layer t >= 1; kappa(s, .) is Lebesgue on
// layer t + 1, kappa_b(s', .) Lebesgue on layer t - 1 (t >= 2) or the atom at s0 (t = 1). They are
// consistent (nu (x) kappa = (nu (x) kappa_b)^T) with unit Jacobians.
//
// Reward, with m = separation / 2 and w the weight of the left mode:
//     R(x) = exp(log_scale) * [w N(x; -m, sigma^2) + (1 - w) N(x; +m, sigma^2)],
// a density w.r.t. Lebesgue that integrates to exp(log_scale), so log Z = log_scale exactly.
// log R is computed by a log-sum-exp in float64 (finite far in the tails) and returned as float32.
#pragma once

#include <vector>

#include "core/env.h"
#include "core/options.h"

namespace gfn {

struct LineOptions : KeyedOptions<LineOptions> {
  int64_t steps = 5;        // n, the number of moves of every trajectory, in [1, 100]
  double separation = 4.0;  // distance between the two modes (at -separation/2 and +separation/2), > 0
  double sigma = 0.5;       // standard deviation of each mode, > 0
  double weight = 0.5;      // weight w of the left mode, in (0, 1)
  double log_scale = 0.0;   // log of the total mass of R, i.e. the exact log Z; finite

  // The config keys (under [env]); validate() and from_params() come from KeyedOptions.
  static const OptionTable<LineOptions>& keys();
};

class LineEnv final : public Env {
 public:
  // Component indices of the two kernels.
  static constexpr int64_t kMove = 0, kExit = 1;      // forward
  static constexpr int64_t kMoveBack = 0, kToS0 = 1;  // backward

  explicit LineEnv(const LineOptions& options);

  std::string name() const override { return "line"; }
  const ActionSpec& action_spec() const override { return spec_; }
  int64_t max_length() const override { return options_.steps; }
  int64_t discrete_dim() const override { return 1; }
  int64_t continuous_dim() const override { return 1; }
  // one-hot of t over n + 1 values, then x / separation
  int64_t feature_dim() const override { return options_.steps + 2; }

  States initial_states(int64_t batch, const torch::Device& device) const override;
  // [B, n + 2] float32: one-hot of t (clamped to [0, n]) in columns 0..n, x / separation in column n + 1.
  torch::Tensor features(const States& states) const override;
  // [B, 2]: move iff t < n, exit iff t == n.
  torch::Tensor forward_mask(const States& states) const override;
  // [B, 2]: move_back iff t >= 2, to_s0 iff t == 1; nothing at s0.
  torch::Tensor backward_mask(const States& states) const override;
  // move: (t + 1, x + u); any other component (the exit, padding) leaves the row unchanged.
  StepResult step(const States& states, const Actions& actions) const override;
  // move_back: (t - 1, x - u); to_s0: s0 = (0, 0).
  StepResult backward_step(const States& states, const Actions& actions) const override;
  // move_back with u = child.x - parent.x where child t >= 2, else to_s0 with u = 0; log J = 0.
  Actions backward_action(const States& parent, const States& child, const Actions& forward,
                          torch::Tensor* log_jacobian = nullptr) const override;
  // move with u = child.x - parent.x (s0 sits at x = 0); log J = 0.
  Actions forward_action(const States& child, const States& parent, const Actions& backward,
                         torch::Tensor* log_jacobian = nullptr) const override;
  // log R(x): [B] float32 (depends on x only).
  torch::Tensor log_reward(const States& states) const override;

  std::optional<double> log_partition() const override { return options_.log_scale; }
  // `points` cells on [-m - 6 sigma, m + 6 sigma] (both modes to 6 sd) at t = n.
  std::optional<TerminalGrid> terminal_grid(int64_t points, const torch::Device& device) const override;

  const LineOptions& options() const { return options_; }

 private:
  LineOptions options_;
  ActionSpec spec_;
};

}  // namespace gfn

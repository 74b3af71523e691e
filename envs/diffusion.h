// Diffusion samplers: a GFlowNet on R^d whose trajectories are Euler–Maruyama discretisations of a
// controlled diffusion (Zhang & Chen 2022; Lahlou et al. 2023; Sendera et al. 2024), trained to
// sample an unnormalised density R (a DiffusionTarget, envs/diffusion_targets.h).
//
// A state is (t, x): the step k in {0, ..., T} (discrete, [B, 1] int64; t = k dt, dt = 1 / T) and
// x in R^d (continuous, [B, d] float64); s0 = (0, 0). Every trajectory makes exactly T moves and
// then exits:
//   forward  0 "step"     piece on R^d: x' = x + s_F u with s_F = sigma sqrt(dt), k' = k + 1; iff k < T.
//                         log J = d log s_F. The policy's Gaussian on u with location
//                         f(t, x) sqrt(dt) / sigma and scale 1 is the step x' = x + f dt +
//                         sigma sqrt(dt) eps of a drift f: policy.architecture = "time" reads its
//                         location as that drift (Env::time_indexing), and a zero output is the
//                         reference process, Brownian motion with variance sigma^2 t.
//            1 "exit"     atom; iff k == T.
//   backward 0 "bridge"   piece on R^d: the parent x_p = x (k - 1) / k + s_B(k) u with
//                         s_B(k)^2 = sigma^2 dt (k - 1) / k, k_p = k - 1; iff k >= 2. log J = d log s_B(k).
//            1 "to_s0"    atom: (1, x) -> s0 (the only parent of a first-layer state); iff k == 1.
// The fixed P_B (policy.backward = "fixed", Env::has_fixed_backward) is N(0, I) on the bridge's
// chart: p_B(x_{t-dt} | x_t) = N(x_t (t - dt) / t, sigma^2 dt (t - dt) / t), the Brownian bridge
// of the reference process, so that under the reference process P_F(tau) / P_B(tau | x) =
// N(x; 0, sigma^2) for every path into x. A learned P_B ("learned") starts at the same bridge:
// its Gaussian reads [loc | log-scale] on the same chart, zero for the bridge.
//
// Reference measures: nu = the atom at s0 + Lebesgue measure on R^d at each layer k >= 1;
// kappa(s, .) is Lebesgue on layer k + 1 (the chart is an affine bijection of R^d, with constant
// volume factor s_F^d), kappa_b(s', .) Lebesgue on layer k - 1 for k >= 2 (an affine bijection with
// factor s_B(k)^d), or the atom at s0 for k = 1. nu (x) kappa and (nu (x) kappa_b)^T are then both
// Lebesgue on pairs of consecutive layers (the atom at s0 paired with Lebesgue on layer 1):
// consistent, and the densities above are w.r.t. them.
//
// Forward-looking credits (objective.credit = "fl", FL-SubTB): the intermediate log-reward of the
// paper's code, log R~(t, x) = (1 - t) log N(x; 0, sigma^2 t) + t log R(x) for t > 0 (equal to
// log R at t = 1).
#pragma once

#include <memory>
#include <string>

#include "core/env.h"
#include "core/options.h"
#include "envs/diffusion_targets.h"

namespace gfn {

struct DiffusionOptions : KeyedOptions<DiffusionOptions> {
  std::string target = "25gmm";  // the built-in target (envs/diffusion_targets.h)
  int64_t dim = 0;               // d (0: the target's default; funnel 10, manywell 32)
  int64_t steps = 100;           // T, the number of moves
  double sigma2 = 1.0;           // sigma^2, the variance of the reference process at t = 1

  // The config keys (under [env]).
  static const OptionTable<DiffusionOptions>& keys();
};

class DiffusionEnv final : public Env {
 public:
  static constexpr int64_t kStep = 0, kExit = 1;     // forward
  static constexpr int64_t kBridge = 0, kToS0 = 1;   // backward

  // The built-in target named by options.target.
  explicit DiffusionEnv(const DiffusionOptions& options);
  // A target of one's own (options.target and options.dim are then ignored: examples/).
  DiffusionEnv(const DiffusionOptions& options, std::shared_ptr<const DiffusionTarget> target);

  std::string name() const override { return "diffusion"; }
  const ActionSpec& action_spec() const override { return spec_; }
  int64_t max_length() const override { return options_.steps; }
  int64_t discrete_dim() const override { return 1; }
  int64_t continuous_dim() const override { return dim_; }
  int64_t feature_dim() const override { return 1 + dim_; }

  States initial_states(int64_t batch, const torch::Device& device) const override;
  // [B, 1 + d] float32: t = k / T, then x.
  torch::Tensor features(const States& states) const override;
  torch::Tensor forward_mask(const States& states) const override;   // [B, 2]
  torch::Tensor backward_mask(const States& states) const override;  // [B, 2]
  StepResult step(const States& states, const Actions& actions) const override;
  StepResult backward_step(const States& states, const Actions& actions) const override;
  Actions backward_action(const States& parent, const States& child, const Actions& forward,
                          torch::Tensor* log_jacobian = nullptr) const override;
  Actions forward_action(const States& child, const States& parent, const Actions& backward,
                         torch::Tensor* log_jacobian = nullptr) const override;
  // log R(x): [B] float32.
  torch::Tensor log_reward(const States& states) const override;

  bool has_intermediate_reward() const override { return true; }
  torch::Tensor intermediate_log_reward(const States& states) const override;  // [B] float32
  bool has_fixed_backward() const override { return true; }
  // zeros [B, 2 + 2d]: logits 0 (the mask decides), the bridge's N(0, I) on its chart
  torch::Tensor fixed_backward_outputs(const States& states) const override;
  bool has_log_reward_gradient() const override { return true; }
  torch::Tensor log_reward_gradient(const States& states) const override;  // [B, d] float64
  bool has_exact_samples() const override { return target_->has_samples(); }
  States exact_samples(int64_t n, torch::Generator& generator, const torch::Device& device) const override;
  std::optional<TimeIndexing> time_indexing() const override;

  std::optional<double> log_partition() const override { return target_->log_partition(); }
  // d <= 2: `points` cells per coordinate over [-a, a]^d, a = the target's extent, at k = T.
  std::optional<TerminalGrid> terminal_grid(int64_t points, const torch::Device& device) const override;

  const DiffusionOptions& options() const { return options_; }
  const DiffusionTarget& target() const { return *target_; }

 private:
  // s_B(k) of each row's step k ([B, 1] float64; 1 where k < 2, whose rows have no bridge)
  torch::Tensor bridge_scale(const torch::Tensor& k) const;

  DiffusionOptions options_;
  std::shared_ptr<const DiffusionTarget> target_;
  int64_t dim_;
  double dt_, step_scale_;  // dt = 1 / T, s_F = sigma sqrt(dt)
  ActionSpec spec_;
};

}  // namespace gfn

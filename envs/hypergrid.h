// Hypergrid (Malkin et al., NeurIPS 2022; shared/REFERENCES.md).
//
// States {0, ..., H-1}^n with s0 = 0. Forward components: "+d" (increment coordinate d, masked
// at H-1) for d < n, then "exit" (allowed from every state). Backward components: "-d"
// (decrement coordinate d, masked at 0). With a = |x/(H-1) - 1/2| per coordinate,
//     R(x) = R0 + R1 * prod_d 1[0.25 < a_d] + R2 * prod_d 1[0.3 < a_d < 0.4].
// The reward factorises, so Z = R0 H^n + R1 (sum_i 1[0.25 < a_i])^n + R2 (sum_i 1[0.3 < a_i < 0.4])^n.
// States are enumerated in lexicographic order (index = sum_d x_d H^(n-1-d)), which is
// topological: every move increases the index.
#pragma once

#include <vector>

#include "core/env.h"
#include "core/options.h"

namespace gfn {

struct HypergridOptions : KeyedOptions<HypergridOptions> {
  int64_t ndim = 2;     // n, number of coordinates, in [1, 32]
  int64_t height = 8;   // H, side length, >= 2
  double r0 = 0.1;      // base reward, > 0
  double r1 = 0.5;      // reward of the outer region, >= 0
  double r2 = 2.0;      // reward of the thin ring inside it, >= 0

  // The config keys (under [env]); validate() and from_params() come from KeyedOptions.
  static const OptionTable<HypergridOptions>& keys();
};

class HypergridEnv final : public Env {
 public:
  explicit HypergridEnv(const HypergridOptions& options);

  std::string name() const override { return "hypergrid"; }
  const ActionSpec& action_spec() const override { return spec_; }
  int64_t max_length() const override { return options_.ndim * (options_.height - 1); }
  int64_t discrete_dim() const override { return options_.ndim; }
  int64_t continuous_dim() const override { return 0; }
  int64_t feature_dim() const override { return options_.ndim * options_.height; }

  States initial_states(int64_t batch, const torch::Device& device) const override;
  // One-hot per coordinate: [B, n*H].
  torch::Tensor features(const States& states) const override;
  torch::Tensor forward_mask(const States& states) const override;
  torch::Tensor backward_mask(const States& states) const override;
  StepResult step(const States& states, const Actions& actions) const override;
  StepResult backward_step(const States& states, const Actions& actions) const override;
  Actions backward_action(const States& parent, const States& child, const Actions& forward,
                          torch::Tensor* log_jacobian = nullptr) const override;
  // the coordinate that came down is the one that goes up
  Actions forward_action(const States& child, const States& parent, const Actions& backward,
                         torch::Tensor* log_jacobian = nullptr) const override;
  torch::Tensor log_reward(const States& states) const override;
  // R0, R1 and R2 may be set per trajectory by a conditional GFlowNet (condition.parameters).
  std::vector<std::string> reward_parameters() const override { return {"r0", "r1", "r2"}; }
  torch::Tensor log_reward_given(const States& states, const std::vector<std::string>& names,
                                 const torch::Tensor& values) const override;
  // Every state may exit, so R itself is the intermediate reward of forward-looking credits.
  bool every_state_terminal() const override { return true; }
  bool has_intermediate_reward() const override { return true; }
  torch::Tensor intermediate_log_reward(const States& states) const override { return log_reward(states); }
  // N(x) = (sum_i x_i)! / prod_i x_i! monotone lattice paths from the origin.
  bool has_path_counts() const override { return true; }
  torch::Tensor log_path_count(const States& states) const override;

  bool enumerable() const override { return enumerable_; }
  int64_t num_states() const override;
  States enumerate_states(const torch::Device& device) const override;
  torch::Tensor state_index(const States& states) const override;
  std::optional<double> log_partition() const override;

  const HypergridOptions& options() const { return options_; }
  // R(x) for one coordinate vector (host reference used by tests).
  double reward(const std::vector<int64_t>& x) const;

 private:
  HypergridOptions options_;
  ActionSpec spec_;
  bool enumerable_ = false;
  DeviceConstant offsets_;  // [n] int64 on CPU: d * H, the one-hot offset of coordinate d
  DeviceConstant dims_;     // [n] int64 on CPU: 0, ..., n-1
  DeviceConstant place_;    // [n] int64 on CPU: H^(n-1-d), coordinate d's weight in a state index
};

}  // namespace gfn

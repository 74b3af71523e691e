// Set generation (Pan et al., ICML 2023; Jang et al., ICLR 2024; shared/REFERENCES.md).
//
// A universe U of n elements with fixed energies E(a), drawn uniform in [0, 1) from
// `energy_seed` (the papers' energy distribution is not stated; this choice is ours). A state is
// a subset, held as n bits; s0 is the empty set. Forward components: "+a" (add element a, while
// a is absent and the set has fewer than k elements), then "exit" (allowed exactly when the set
// has k elements, and then the only move). Backward components: "-a" (remove a present element;
// the uniform P_B removes any of them). Every trajectory has k moves, so T = k + 1.
//     R(x) = exp(-sum_{a in x} E(a)),   Z = e_k(w),  w_a = exp(-E(a)),
// the elementary symmetric polynomial of degree k, computed by dynamic programming in log space,
// as is the exact probability that a sample of R/Z contains a:
//     P(a in x) = w_a e_{k-1}(w without a) / e_k(w).
// The intermediate reward of forward-looking credits is the partial energy, log R~(s) =
// -sum_{a in s} E(a): each move is credited with -E(a) and the exit with 0.
// Universes of at most 16 elements enumerate their reachable subsets (at most k elements) in
// increasing order of the bits read as a binary number, element 0 the most significant: adding
// an element raises it, a topological order. Small instances get exact TV through the tables.
#pragma once

#include <vector>

#include "core/env.h"
#include "core/options.h"

namespace gfn {

struct SetsOptions : KeyedOptions<SetsOptions> {
  int64_t universe = 30;    // n = |U|, in [1, 1024]
  int64_t size = 20;        // k = |S|, in [1, n]
  int64_t energy_seed = 0;  // seed of the element energies

  // The config keys (under [env]); validate() and from_params() come from KeyedOptions.
  static const OptionTable<SetsOptions>& keys();
};

class SetsEnv final : public Env {
 public:
  explicit SetsEnv(const SetsOptions& options);

  std::string name() const override { return "sets"; }
  const ActionSpec& action_spec() const override { return spec_; }
  int64_t max_length() const override { return options_.size; }
  int64_t discrete_dim() const override { return options_.universe; }
  int64_t continuous_dim() const override { return 0; }
  // The membership bits as floats: [B, n].
  int64_t feature_dim() const override { return options_.universe; }

  States initial_states(int64_t batch, const torch::Device& device) const override;
  torch::Tensor features(const States& states) const override;
  torch::Tensor forward_mask(const States& states) const override;
  torch::Tensor backward_mask(const States& states) const override;
  StepResult step(const States& states, const Actions& actions) const override;
  StepResult backward_step(const States& states, const Actions& actions) const override;
  // the element added is the one removed
  Actions backward_action(const States& parent, const States& child, const Actions& forward,
                          torch::Tensor* log_jacobian = nullptr) const override;
  Actions forward_action(const States& child, const States& parent, const Actions& backward,
                         torch::Tensor* log_jacobian = nullptr) const override;
  // -sum of the members' energies (of any subset; R proper on the sets of k elements)
  torch::Tensor log_reward(const States& states) const override;
  bool has_intermediate_reward() const override { return true; }
  torch::Tensor intermediate_log_reward(const States& states) const override { return log_reward(states); }
  // N(s) = |s|!: any order of adding the elements (the max-entropy P_B is the uniform one).
  bool has_path_counts() const override { return true; }
  torch::Tensor log_path_count(const States& states) const override;

  // inclusion_error: mean over the elements of |frequency in the samples - P(a in x)|;
  // inclusion_max_error: the largest such difference
  bool has_sample_metrics() const override { return true; }
  std::vector<std::pair<std::string, double>> sample_metrics(const States& terminal) const override;

  bool enumerable() const override { return options_.universe <= kMaxEnumerableUniverse; }
  int64_t num_states() const override;
  States enumerate_states(const torch::Device& device) const override;
  torch::Tensor state_index(const States& states) const override;
  std::optional<double> log_partition() const override { return log_z_; }

  const SetsOptions& options() const { return options_; }
  // E(a), float64 on the CPU: [n].
  const torch::Tensor& energies() const { return energies_; }
  // P(a in x) under R/Z for every element (float64, host).
  const std::vector<double>& inclusion_probabilities() const { return inclusion_; }

  static constexpr int64_t kMaxEnumerableUniverse = 16;

 private:
  SetsOptions options_;
  ActionSpec spec_;
  torch::Tensor energies_;     // [n] float64, CPU
  DeviceConstant energies_f32_;  // [n] float32, CPU (what log_reward sums)
  double log_z_ = 0;
  std::vector<double> inclusion_;
  DeviceConstant elements_;  // [n] int64: 0..n-1 (CPU), to match action components
  DeviceConstant place_;  // [n] int64: 2^(n-1-a), each element's bit (enumerable only)
  torch::Tensor masks_;  // [S] int64: the reachable subsets' bits, ascending (enumerable only)
  DeviceConstant rank_;   // [2^n] int64: index of each bit pattern among them, -1 if unreachable
};

}  // namespace gfn

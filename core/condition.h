// Conditional GFlowNets (DESIGN.md 9c): one model for a family of rewards R(x; c), the
// condition c a vector drawn per trajectory. c is the reward exponent beta (log R(x; c) =
// beta log R(x), any env) and/or reward parameters the env declares (Env::reward_parameters:
// the hypergrid's R0, R1, R2).
//
// ConditionedEnv wraps the configured env. Its states carry c in P extra continuous columns
// after the env's own, set once at s0 (draw_initial_states: uniform or log-uniform over
// [low, high] per component) and copied unchanged by every forward and backward step, so
// everything that reads states sees it: the policy's features are the env's with c appended
// (scaled into [-1, 1]); a flow head and P_B's own network read the same features; replay
// buffers keep c with their states; logged trajectories hold it. For a fixed c the wrapper is
// the env with reward R(.; c) and its kernels unchanged, so each condition is an ordinary
// GFlowNet over the same DAG, and the measure-theoretic argument of core/env.h holds per c (the
// condition columns are a parameter, not a coordinate: no step moves them, no Jacobian sees
// them). log Z(c) is learned as log Z + g(c), g a small MLP of c (LogZNet, core/estimator.h).
//
// `at(c)` is the same env at one fixed condition (every initial state at c): what evaluation at
// the conditions of condition.eval and `gfn sample --condition` use. It enumerates its states
// (exact TV and log Z(c)) when the wrapped env does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/env.h"
#include "core/options.h"

namespace gfn {

enum class ConditionDistribution { kUniform, kLogUniform };
template <>
const EnumNames<ConditionDistribution>& enum_names<ConditionDistribution>();  // "uniform", "log_uniform"

// The condition.* keys. Lists are strings: components separated by commas, conditions (in
// condition.eval) by semicolons.
struct ConditionOptions : KeyedOptions<ConditionOptions> {
  std::string parameters;  // "beta" and/or the env's reward parameters, e.g. "beta" or "r0, beta" ("": unconditional)
  std::string low;         // one lower bound per parameter
  std::string high;        // one upper bound per parameter
  ConditionDistribution distribution = ConditionDistribution::kUniform;
  std::string eval;        // conditions evaluated at every evaluation, e.g. "0.5; 1; 2"
  int64_t hidden = 64;     // log Z(c): width of each hidden layer
  int64_t layers = 2;      // log Z(c): hidden layers

  static const OptionTable<ConditionOptions>& keys();
  bool enabled() const { return !parameters.empty(); }
};

// The parsed condition of a config, checked against the env.
struct ConditionSpec {
  std::vector<std::string> names;            // P parameters
  std::vector<double> low, high;             // [P] each, low <= high (log-uniform: low > 0)
  ConditionDistribution distribution = ConditionDistribution::kUniform;
  std::vector<std::vector<double>> eval;     // conditions evaluated, each [P], inside [low, high]

  int64_t size() const { return static_cast<int64_t>(names.size()); }
  // One condition from its text ("0.5" or "0.5, 2"), checked to lie in [low, high]; ConfigError
  // naming `what` (the key or the argument) otherwise.
  std::vector<double> parse(const std::string& text, const std::string& what) const;
};

// The spec of `options` for `env`; ConfigError naming the condition.* key, the value and what
// was expected (an unknown parameter lists those `env` has; a bound per parameter; beta > 0).
ConditionSpec parse_condition(const ConditionOptions& options, const Env& env);

class ConditionedEnv final : public Env {
 public:
  ConditionedEnv(std::shared_ptr<const Env> base, ConditionSpec spec);

  // The same env at the fixed condition `c` (checked by the caller, ConditionSpec::parse).
  std::unique_ptr<ConditionedEnv> at(const std::vector<double>& c) const;
  const ConditionSpec& spec() const { return spec_; }
  const Env& base() const { return *base_; }
  // The fixed condition of a view made by at(), else none.
  const std::optional<std::vector<double>>& fixed() const { return fixed_; }
  // The condition columns of `states`, [B, P] float64.
  torch::Tensor condition(const States& states) const;

  std::string name() const override { return base_->name(); }
  const ActionSpec& action_spec() const override { return base_->action_spec(); }
  int64_t max_length() const override { return base_->max_length(); }
  int64_t discrete_dim() const override { return base_->discrete_dim(); }
  int64_t continuous_dim() const override { return base_->continuous_dim() + spec_.size(); }
  int64_t feature_dim() const override { return base_->feature_dim() + spec_.size(); }

  // s0 at the fixed condition, or (the training env) at the middle of each range; rollouts draw it.
  States initial_states(int64_t batch, const torch::Device& device) const override;
  States draw_initial_states(int64_t batch, torch::Generator& generator, const torch::Device& device) const override;
  int64_t condition_dim() const override { return spec_.size(); }
  torch::Tensor condition_features(const States& states) const override;

  torch::Tensor features(const States& states) const override;
  torch::Tensor forward_mask(const States& states) const override { return base_->forward_mask(strip(states)); }
  torch::Tensor backward_mask(const States& states) const override { return base_->backward_mask(strip(states)); }
  StepResult step(const States& states, const Actions& actions) const override;
  StepResult backward_step(const States& states, const Actions& actions) const override;
  Actions backward_action(const States& parent, const States& child, const Actions& forward,
                          torch::Tensor* log_jacobian = nullptr) const override {
    return base_->backward_action(strip(parent), strip(child), forward, log_jacobian);
  }
  Actions forward_action(const States& child, const States& parent, const Actions& backward,
                         torch::Tensor* log_jacobian = nullptr) const override {
    return base_->forward_action(strip(child), strip(parent), backward, log_jacobian);
  }
  torch::Tensor log_reward(const States& states) const override;

  bool every_state_terminal() const override { return base_->every_state_terminal(); }
  bool has_path_counts() const override { return base_->has_path_counts(); }
  torch::Tensor log_path_count(const States& states) const override { return base_->log_path_count(strip(states)); }
  int64_t num_modes() const override { return base_->num_modes(); }
  torch::Tensor mode_index(const States& terminal) const override { return base_->mode_index(strip(terminal)); }
  bool has_fixed_backward() const override { return base_->has_fixed_backward(); }
  torch::Tensor fixed_backward_outputs(const States& states) const override {
    return base_->fixed_backward_outputs(strip(states));
  }
  torch::Tensor in_support(const States& states) const override { return base_->in_support(strip(states)); }

  // Exact evaluation: a view at a fixed condition of an enumerable env.
  bool enumerable() const override { return fixed_.has_value() && base_->enumerable(); }
  int64_t num_states() const override { return base_->num_states(); }
  States enumerate_states(const torch::Device& device) const override;
  torch::Tensor state_index(const States& states) const override { return base_->state_index(strip(states)); }
  std::optional<double> log_partition() const override { return log_partition_; }

 private:
  States strip(const States& states) const;                                   // the env's own columns
  States with_condition(const States& states, const torch::Tensor& c) const;  // c [B, P] float64 appended

  std::shared_ptr<const Env> base_;
  ConditionSpec spec_;
  int64_t beta_ = -1;                    // the index of "beta" in the parameters, or -1
  std::vector<std::string> env_names_;   // the env's own reward parameters among them
  std::vector<int64_t> env_columns_;     // and their indices
  std::optional<std::vector<double>> fixed_;
  std::optional<double> log_partition_;  // a fixed view of an enumerable env: log Z(c) by enumeration
  torch::Tensor low_, high_;             // [P] float64 CPU: the ranges
  torch::Tensor centre_, half_;          // [P] float64 CPU: the features' centre and half-width (of log c when log-uniform)
};

}  // namespace gfn

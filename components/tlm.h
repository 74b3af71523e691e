// Trajectory likelihood maximisation (TLM; Gritsaev et al., ICLR 2025): the backward policy P_B
// is a network psi of its own, trained to maximise the likelihood of P_F's trajectories,
//     L(psi) = -mean_b sum_t log p_B(s_t | s_{t+1}; psi),
// one Adam step on each iteration's batch before the policy's step (its own learning rate,
// multiplied by `decay` after every step), and the GFlowNet loss and the evaluation score P_B
// through an EMA target psi-bar <- (1 - kappa) psi-bar + kappa psi of it. psi is a policy network
// of the policy's shape whose learned backward head (on its own trunk) is P_B; the head's output
// layer starts at zero, so P_B starts uniform.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/component.h"
#include "core/estimator.h"
#include "core/optim.h"
#include "core/options.h"

namespace gfn {

struct TlmOptions : KeyedOptions<TlmOptions> {
  double lr = 1e-3;      // Adam learning rate of psi, > 0
  double decay = 0.999;  // its learning rate is multiplied by this after every step, in (0, 1]
  double ema = 0.25;     // kappa of the target update, in (0, 1]

  // The config keys (train.lr_backward, train.backward_decay, train.tlm_ema).
  static const OptionTable<TlmOptions>& keys();
};

class TlmComponent final : public TrainingComponent {
 public:
  // psi and psi-bar for `setup.env`, drawn from the init generator (psi, then psi-bar, which is
  // then set to psi); psi-bar becomes Estimators::backward. ConfigError on an env with Beta
  // backward pieces below policy.backward_min_concentration = 1 (their likelihood is unbounded).
  TlmComponent(const ComponentSetup& setup, const TlmOptions& options);
  // Created when policy.backward = "tlm".
  static bool wanted(const ComponentSetup& setup) { return setup.estimator.backward == BackwardPolicy::kTlm; }

  std::string name() const override { return "tlm"; }
  std::vector<FusedAdam*> optimizers() override { return {adam_.get()}; }
  // One likelihood step of psi on the batch, then the target update.
  void before_scoring(const TrainingBatch& batch, const TrainingContext& context) override;
  // The decay of psi's learning rate.
  void after_step(const TrainingBatch& batch, const TrainingContext& context) override;
  // backward_loss: L(psi) before the step.
  std::vector<std::string> metric_names() const override { return {"backward_loss"}; }
  std::vector<torch::Tensor> metric_values() const override { return {loss_}; }
  void write_model(torch::serialize::OutputArchive& archive) const override;
  void read_model(torch::serialize::InputArchive& archive, const std::string& source) override;
  void write_state(torch::serialize::OutputArchive& archive) const override;
  void read_state(torch::serialize::InputArchive& archive, const std::string& source) override;

  PolicyNetImpl& online() { return *online_; }
  PolicyNetImpl& target() { return *target_; }
  // psi's trained parameters: its trunk and backward head (its forward head is unused).
  std::vector<torch::Tensor> parameters() const;
  // psi-bar <- (1 - kappa) psi-bar + kappa psi.
  void update_target(double kappa);
  FusedAdam& optimizer() { return *adam_; }

 private:
  TlmOptions options_;
  PolicyNet online_{nullptr}, target_{nullptr};
  std::unique_ptr<FusedAdam> adam_;
  torch::Tensor loss_;  // [] the last step's
};

}  // namespace gfn

// Learned energy decompositions (LED; Jang et al., ICLR 2024). A potential network
// phi(s -> s') scores every step of a trajectory; it is regressed so that its sum over a
// trajectory matches log R(x) under dropout of the steps, and its values, shifted so that they
// sum to log R(x) exactly, become the per-step credits of the forward-looking residuals
// (losses/credit.h).
//
// The step s_t -> s_{t+1} is presented to the network as [f(s_t), f(s_{t+1}), 0] and the exit
// x -> sf as [f(x), 0, 1], f the env's features; so phi covers every valid step, the exit
// included, and n below is a trajectory's number of valid steps (LossInputs::length).
#pragma once

#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "core/component.h"
#include "core/env.h"
#include "core/estimator.h"
#include "core/optim.h"
#include "core/options.h"
#include "core/types.h"

namespace gfn {

class PotentialNetImpl : public torch::nn::Module {
 public:
  // An MLP of `layers` hidden layers of width `hidden` on 2 * feature_dim + 1 inputs, then one
  // output whose layer starts at zero (phi = 0: the first credits spread log R evenly).
  PotentialNetImpl(int64_t feature_dim, int64_t hidden, int64_t layers, Activation activation, torch::Dtype dtype,
                   torch::Generator& generator);
  // phi of each step, [T, B] (0 on padding), carrying the graph of the network's parameters;
  // compact execution evaluates the valid steps only.
  torch::Tensor values(const Env& env, const Trajectories& traj, Execution execution = Execution::kAuto);
  // phi on explicit inputs: from [N, F], to [N, F] (ignored where exit), exit [N] bool -> [N]
  torch::Tensor forward(const torch::Tensor& from, const torch::Tensor& to, const torch::Tensor& exit);

 private:
  Activation activation_;
  std::vector<torch::Tensor> weights_, biases_;  // hidden layers, [in, out] and [out]
  torch::Tensor out_weight_, out_bias_;           // [hidden, 1], [1]
};
TORCH_MODULE(PotentialNet);

// The dropout regression of the potential, [] float: z_t ~ Bernoulli(1 - drop_rate) over each
// trajectory's valid steps, one of them kept when the draw drops them all (uniformly among them),
// and the mean over the batch of ((n / sum z) sum_t z_t phi_t - log R(x))^2. No host sync.
torch::Tensor potential_regression_loss(const torch::Tensor& phi, const torch::Tensor& log_reward,
                                        const torch::Tensor& mask, const torch::Tensor& length, double drop_rate,
                                        torch::Generator& generator);

// The redistributed credits, [T, B], detached: phi_t + (log R(x) - sum_s phi_s) / n on the valid
// steps, 0 on padding; each trajectory's credits sum to log R(x) (up to rounding).
torch::Tensor redistributed_credits(const torch::Tensor& phi, const torch::Tensor& log_reward,
                                    const torch::Tensor& mask, const torch::Tensor& length);

struct LedOptions : KeyedOptions<LedOptions> {
  double drop_rate = -1.0;  // probability of dropping each step, in [0, 1); -1: 0.1 when trajectories
                            // have < 10 steps, else 0.2 (the paper's)
  int64_t hidden = 64;      // width of the potential's hidden layers, >= 1
  int64_t layers = 2;       // its hidden layers, >= 1
  int64_t steps = 1;        // potential updates per policy update, >= 1
  double lr = 1e-3;         // its Adam learning rate, > 0

  // The config keys (objective.led_dropout, objective.led_hidden, objective.led_layers,
  // train.led_steps, train.lr_potential).
  static const OptionTable<LedOptions>& keys();
};

// LED as a component: the potential (the policy's activation and dtype, drawn from the init
// generator), its own Adam, and each iteration, after scoring, `steps` regression steps on the
// batch whose credits, from the potential before its last step, become LossInputs::local_credit.
class LedComponent final : public TrainingComponent {
 public:
  LedComponent(const ComponentSetup& setup, const LedOptions& options);
  // Created when objective.credit = "led".
  static bool wanted(const ComponentSetup& setup);

  std::string name() const override { return "led"; }
  std::vector<FusedAdam*> optimizers() override { return {adam_.get()}; }
  bool adds_local_credit() const override { return true; }
  void add_loss_inputs(const TrainingBatch& batch, LossInputs& inputs, const TrainingContext& context) override;
  // potential_loss: the dropout regression before the last update.
  std::vector<std::string> metric_names() const override { return {"potential_loss"}; }
  std::vector<torch::Tensor> metric_values() const override { return {loss_}; }
  void write_model(torch::serialize::OutputArchive& archive) const override;
  void read_model(torch::serialize::InputArchive& archive, const std::string& source) override;
  void write_state(torch::serialize::OutputArchive& archive) const override;
  void read_state(torch::serialize::InputArchive& archive, const std::string& source) override;

  PotentialNetImpl& potential() { return *potential_; }
  double drop_rate() const { return drop_rate_; }
  FusedAdam& optimizer() { return *adam_; }

 private:
  LedOptions options_;
  double drop_rate_ = 0.0;  // resolved from options_.drop_rate
  std::shared_ptr<PotentialNetImpl> potential_;
  std::unique_ptr<FusedAdam> adam_;
  torch::Tensor loss_;  // [] the last regression's
};

}  // namespace gfn

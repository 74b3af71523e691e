#include "components/tlm.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/scoring.h"
#include "core/tabular.h"

namespace gfn {

const OptionTable<TlmOptions>& TlmOptions::keys() {
  using O = TlmOptions;
  static const auto table =
      OptionTable<O>()
          .add("train.lr_backward", &O::lr, "Adam learning rate of the TLM backward network", above(0).at_most(10))
          .add("train.backward_decay", &O::decay, "the TLM learning rate is multiplied by this after every step",
               above(0).at_most(1))
          .add("train.tlm_ema", &O::ema, "kappa of the TLM target update psi-bar <- (1 - kappa) psi-bar + kappa psi",
               above(0).at_most(1));
  return table;
}

TlmComponent::TlmComponent(const ComponentSetup& setup, const TlmOptions& options) : options_(options) {
  options_.validate();
  const Env& env = setup.env;
  EstimatorOptions b = setup.estimator;
  b.backward = BackwardPolicy::kLearned;
  online_ = PolicyNet(env.action_spec(), env.feature_dim(), b, setup.init_generator, policy_context(env));
  target_ = PolicyNet(env.action_spec(), env.feature_dim(), b, setup.init_generator, policy_context(env));
  {
    // psi starts uniform (zero output layer); psi-bar starts at psi and is never trained
    torch::NoGradGuard no_grad;
    auto target = target_->named_parameters();
    for (auto& p : online_->named_parameters()) {
      if (p.key() == "backward_weight" || p.key() == "backward_bias") p.value().zero_();
      target[p.key()].copy_(p.value()).set_requires_grad(false);
    }
  }
  online_->to(setup.device);
  target_->to(setup.device);
  adam_ = std::make_unique<FusedAdam>(std::vector<AdamGroup>{{parameters(), options_.lr, "TLM's backward policy"}});
  setup.estimators.backward = target_;
}

std::vector<torch::Tensor> TlmComponent::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& p : online_->named_parameters())
    if (p.key().rfind("forward_", 0) != 0) out.push_back(p.value());  // its forward head is unused
  return out;
}

void TlmComponent::update_target(double kappa) {
  torch::NoGradGuard no_grad;
  // both nets are built by the same constructor: their parameters come in the same order
  auto online = online_->parameters();
  auto target = target_->parameters();
  for (size_t i = 0; i < target.size(); ++i) target[i].lerp_(online[i], kappa);
}

void TlmComponent::before_scoring(const TrainingBatch& batch, const TrainingContext& context) {
  // log p_B under psi, [T, B], 0 on the exit steps and padding
  const auto log_pb = context.table != nullptr
                          ? score_tabular_backward(*context.table, *online_, batch.trajectories, batch.path)
                          : score_backward(context.env, *online_, batch.trajectories, context.execution);
  auto loss = -log_pb.sum(0).mean();
  adam_->zero_grad();
  loss.backward();
  adam_->step();
  update_target(options_.ema);
  loss_ = loss.detach();
}

void TlmComponent::after_step(const TrainingBatch& /*batch*/, const TrainingContext& /*context*/) {
  adam_->groups().front().lr *= options_.decay;
}

void TlmComponent::write_model(torch::serialize::OutputArchive& archive) const {
  write_module(archive, "tlm.online.", *online_);
  write_module(archive, "tlm.target.", *target_);
}

void TlmComponent::read_model(torch::serialize::InputArchive& archive, const std::string& source) {
  read_module(archive, source, "tlm.online.", *online_);
  read_module(archive, source, "tlm.target.", *target_);
}

void TlmComponent::write_state(torch::serialize::OutputArchive& archive) const { adam_->save(archive, "tlm.adam."); }

void TlmComponent::read_state(torch::serialize::InputArchive& archive, const std::string& source) {
  adam_->load(archive, "tlm.adam.", source);
}

}  // namespace gfn

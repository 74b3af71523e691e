#include "components/led.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/trainer.h"

namespace gfn {

PotentialNetImpl::PotentialNetImpl(int64_t feature_dim, int64_t hidden, int64_t layers, Activation activation,
                                   torch::Dtype dtype, torch::Generator& generator)
    : activation_(activation) {
  int64_t in = 2 * feature_dim + 1;
  std::tie(weights_, biases_) = make_mlp(*this, "layer", in, hidden, layers, dtype, generator);
  in = hidden;
  auto opts = torch::TensorOptions().dtype(dtype);
  out_weight_ = register_parameter("out_weight", torch::zeros({in, 1}, opts));
  out_bias_ = register_parameter("out_bias", torch::zeros({1}, opts));
}

torch::Tensor PotentialNetImpl::forward(const torch::Tensor& from, const torch::Tensor& to,
                                        const torch::Tensor& exit) {
  auto dtype = out_weight_.scalar_type();
  auto x = torch::cat({from.to(dtype), to.to(dtype).masked_fill(exit.unsqueeze(1), 0.0),
                       exit.to(dtype).unsqueeze(1)},
                      1);
  return torch::addmm(out_bias_, mlp_forward(x, weights_, biases_, activation_), out_weight_).squeeze(1);
}

torch::Tensor PotentialNetImpl::values(const Env& env, const Trajectories& traj, Execution execution) {
  const int64_t T = traj.num_steps(), B = traj.batch_size();
  const int64_t dd = traj.states_discrete.size(2), dc = traj.states_continuous.size(2);
  // the steps (t, b), flattened time-major, and their states s_t and s_{t+1}: the valid ones
  // (compact), or all (fixed shapes: padding is a real state there; its value is masked out)
  States all{traj.states_discrete.reshape({(T + 1) * B, dd}), traj.states_continuous.reshape({(T + 1) * B, dc}),
             traj.is_initial.reshape({-1}), traj.is_sink.reshape({-1})};
  RowSelection rows(traj.mask.reshape({-1}), resolve_execution(execution, traj.mask.device()));
  auto t = torch::arange(T, traj.length.options()).unsqueeze(1);
  auto exit = rows.take(t.eq(traj.length.unsqueeze(0) - 1).reshape({-1}));
  auto phi = forward(env.features(rows.take(all.narrow(0, T * B))), env.features(rows.take(all.narrow(B, T * B))), exit);
  return rows.put(phi, torch::zeros({T * B}, phi.options())).view({T, B});
}

torch::Tensor potential_regression_loss(const torch::Tensor& phi, const torch::Tensor& log_reward,
                                        const torch::Tensor& mask, const torch::Tensor& length, double drop_rate,
                                        torch::Generator& generator) {
  auto u = torch::rand(phi.sizes(), generator, torch::TensorOptions().dtype(torch::kFloat32).device(phi.device()));
  // the step with the largest draw is kept whatever the rate: uniform among the valid steps
  auto first = u.masked_fill(mask.logical_not(), -1.0).argmax(0, /*keepdim=*/true);  // [1, B]
  auto keep = u.ge(drop_rate).logical_and(mask);
  keep.scatter_(0, first, true);
  auto z = keep.to(phi.scalar_type());
  auto n = length.to(phi.scalar_type());
  auto estimate = n / z.sum(0) * (z * phi).sum(0);
  return (estimate - log_reward.to(phi.scalar_type())).square().mean();
}

torch::Tensor redistributed_credits(const torch::Tensor& phi, const torch::Tensor& log_reward,
                                    const torch::Tensor& mask, const torch::Tensor& length) {
  torch::NoGradGuard no_grad;
  auto p = phi.detach().masked_fill(mask.logical_not(), 0.0);
  auto shift = (log_reward.to(p.scalar_type()) - p.sum(0)) / length.to(p.scalar_type());
  return (p + shift.unsqueeze(0)).masked_fill(mask.logical_not(), 0.0);
}

const OptionTable<LedOptions>& LedOptions::keys() {
  using O = LedOptions;
  static const auto table =
      OptionTable<O>()
          .add("objective.led_dropout", &O::drop_rate,
               "LED: probability of dropping each step from the potential's regression (-1: 0.1 when trajectories "
               "have < 10 steps, else 0.2)",
               at_least(0).below(1).or_value(-1))
          .add("objective.led_hidden", &O::hidden, "LED: width of the potential network's hidden layers",
               in(1, 1 << 16))
          .add("objective.led_layers", &O::layers, "LED: hidden layers of the potential network", in(1, 64))
          .add("train.led_steps", &O::steps, "LED: potential updates per policy update", in(1, 1 << 20))
          .add("train.lr_potential", &O::lr, "LED: Adam learning rate of the potential network", above(0).at_most(10));
  return table;
}

bool LedComponent::wanted(const ComponentSetup& setup) { return setup.trainer.score.credit == Credit::kLearned; }

LedComponent::LedComponent(const ComponentSetup& setup, const LedOptions& options) : options_(options) {
  options_.validate();
  potential_ = std::make_shared<PotentialNetImpl>(setup.env.feature_dim(), options_.hidden, options_.layers,
                                                  setup.estimator.activation, setup.estimator.dtype,
                                                  setup.init_generator);
  potential_->to(setup.device);
  adam_ = std::make_unique<FusedAdam>(std::vector<AdamGroup>{{potential_->parameters(), options_.lr, "LED's potential"}});
  drop_rate_ = options_.drop_rate >= 0.0 ? options_.drop_rate : setup.env.max_length() + 1 < 10 ? 0.1 : 0.2;
}

void LedComponent::add_loss_inputs(const TrainingBatch& batch, LossInputs& inputs, const TrainingContext& context) {
  auto log_reward = inputs.log_reward.detach();
  torch::Tensor loss;
  for (int64_t k = 0; k < options_.steps; ++k) {
    auto phi = potential_->values(context.env, batch.trajectories, context.execution);
    if (k + 1 == options_.steps)
      inputs.local_credit = redistributed_credits(phi, log_reward, inputs.mask, inputs.length);
    loss = potential_regression_loss(phi, log_reward, inputs.mask, inputs.length, drop_rate_, context.generator);
    adam_->zero_grad();
    loss.backward();
    adam_->step();
  }
  loss_ = loss.detach();
}

void LedComponent::write_model(torch::serialize::OutputArchive& archive) const {
  write_module(archive, "led.", *potential_);
}

void LedComponent::read_model(torch::serialize::InputArchive& archive, const std::string& source) {
  read_module(archive, source, "led.", *potential_);
}

void LedComponent::write_state(torch::serialize::OutputArchive& archive) const { adam_->save(archive, "led.adam."); }

void LedComponent::read_state(torch::serialize::InputArchive& archive, const std::string& source) {
  adam_->load(archive, "led.adam.", source);
}

}  // namespace gfn

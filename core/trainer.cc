#include "core/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "core/cuda_graph.h"
#include "core/potential.h"

namespace gfn {

void TrainerOptions::validate() const {
  if (batch_size < 1) throw ConfigError(fmt::format("train.batch_size = {}: expected an integer >= 1", batch_size));
  if (!(lr > 0.0) || !std::isfinite(lr)) throw ConfigError(fmt::format("train.lr = {}: expected a float > 0", lr));
  if (!(lr_logz > 0.0) || !std::isfinite(lr_logz))
    throw ConfigError(fmt::format("train.lr_logz = {}: expected a float > 0", lr_logz));
  if (!(lr_flow > 0.0) || !std::isfinite(lr_flow))
    throw ConfigError(fmt::format("train.lr_flow = {}: expected a float > 0", lr_flow));
  if (lr_decay_every < 0)
    throw ConfigError(fmt::format("train.lr_decay_every = {}: expected an integer >= 0", lr_decay_every));
  if (!(lr_backward > 0.0) || !std::isfinite(lr_backward))
    throw ConfigError(fmt::format("train.lr_backward = {}: expected a float > 0", lr_backward));
  if (!(backward_decay > 0.0 && backward_decay <= 1.0))
    throw ConfigError(fmt::format("train.backward_decay = {}: expected a float in (0, 1]", backward_decay));
  if (!(tlm_ema > 0.0 && tlm_ema <= 1.0))
    throw ConfigError(fmt::format("train.tlm_ema = {}: expected a float in (0, 1]", tlm_ema));
  if (!(led_drop_rate == -1.0 || (led_drop_rate >= 0.0 && led_drop_rate < 1.0)))
    throw ConfigError(fmt::format("objective.led_dropout = {}: expected a float in [0, 1), or -1 for the paper's "
                                  "rule",
                                  led_drop_rate));
  if (led_steps < 1) throw ConfigError(fmt::format("train.led_steps = {}: expected an integer >= 1", led_steps));
  if (!(lr_potential > 0.0) || !std::isfinite(lr_potential))
    throw ConfigError(fmt::format("train.lr_potential = {}: expected a float > 0", lr_potential));
  if (led && score.local_credit)
    throw ConfigError("objective.credit: forward-looking (fl) and learned (led) credits exclude each other");
  if (!(lr_decay > 0.0 && lr_decay <= 1.0))
    throw ConfigError(fmt::format("train.lr_decay = {}: expected a float in (0, 1]", lr_decay));
  sampler.validate();
}

torch::Generator make_generator(uint64_t seed, const torch::Device& device) {
  if (device.is_cpu()) return at::make_generator<at::CPUGeneratorImpl>(seed);
  // other devices: a clone of the device's default generator, reseeded
  auto gen = at::globalContext().defaultGenerator(device).clone();
  gen.set_current_seed(seed);
  return gen;
}

Trainer::Trainer(const Env& env, Estimators& estimators, Objective& objective, const TrainerOptions& options,
                 uint64_t seed, const torch::Device& device)
    : env_(env),
      estimators_(estimators),
      objective_(objective),
      options_(options),
      device_(device),
      generator_(make_generator(seed, device)) {
  options_.validate();
  // what the objective reads, and whether this env can provide it
  const std::string kind = fmt::format("objective.kind = \"{}\"", objective_.name());
  const auto& spec = env_.action_spec();
  options_.score.edge_flows = objective_.uses_edge_flows();
  options_.score.state_rewards = objective_.uses_state_rewards();
  if (options_.score.edge_flows && (spec.forward.has_pieces() || spec.backward.has_pieces()))
    throw ConfigError(fmt::format("{} matches edge flows over each state's parents, which env '{}' cannot enumerate "
                                  "(its kernels have continuous pieces): use a discrete env or another objective",
                                  kind, env_.name()));
  if (options_.score.state_rewards && (!env_.every_state_terminal() || spec.forward.exit < 0))
    throw ConfigError(fmt::format("{} needs an env where every state may exit, which env '{}' is not: use db or "
                                  "subtb",
                                  kind, env_.name()));
  if ((options_.score.local_credit || options_.led) && !objective_.accepts_local_credit())
    throw ConfigError(fmt::format("objective.credit = \"{}\": {} takes no local credits (tb, db and subtb do)",
                                  options_.led ? "led" : "fl", kind));
  if (options_.score.local_credit) {
    if (!env_.has_intermediate_reward())
      throw ConfigError(fmt::format("objective.credit = \"fl\": env '{}' defines no intermediate reward for "
                                    "forward-looking credits",
                                    env_.name()));
  }
  // one parameter group per learning rate
  std::vector<AdamGroup> groups{{estimators_.policy_parameters(), options_.lr}};
  if (objective_.uses_log_z()) groups.push_back({{estimators_.log_z}, options_.lr_logz});
  auto flow = estimators_.flow_parameters();
  if (objective_.uses_flow() && flow.empty())
    throw ConfigError(fmt::format("objective.kind = \"{}\" reads log F(s): the estimators need a flow head",
                                  objective_.name()));
  if (!flow.empty()) groups.push_back({flow, options_.lr_flow});
  optimizer_ = std::make_unique<FusedAdam>(std::move(groups));
  if (estimators_.tlm())
    backward_optimizer_ = std::make_unique<FusedAdam>(std::vector<AdamGroup>{{estimators_.tlm_parameters(), options_.lr_backward}});

  if (options_.led) {
    if (!estimators_.potential)
      throw ConfigError("objective.credit = \"led\": the estimators need a potential network");
    potential_optimizer_ = std::make_unique<FusedAdam>(
        std::vector<AdamGroup>{{estimators_.potential_parameters(), options_.lr_potential}});
    led_drop_rate_ = options_.led_drop_rate >= 0.0 ? options_.led_drop_rate : env_.max_length() + 1 < 10 ? 0.1 : 0.2;
  }

  // state tables: for exact bookkeeping always, for training when worthwhile or asked for
  if (has_state_table(env_)) table_.emplace(env_, device_);
  switch (options_.tabular) {
    case TabularMode::kAuto: tabular_ = table_.has_value() && tabular_worthwhile(env_, options_.batch_size); break;
    case TabularMode::kOn:
      if (!table_.has_value())
        throw ConfigError(fmt::format("train.tabular = \"on\": env '{}' does not enumerate a small enough state space",
                                      env_.name()));
      tabular_ = true;
      break;
    case TabularMode::kOff: tabular_ = false; break;
  }
  if (options_.cuda_graph) {
    graph_ = std::make_unique<CudaGraphStep>(device_, kGraphWarmup);  // ConfigError off CUDA
    generator_ = graph_generator(seed, device_);
    for (auto* o : {optimizer_.get(), backward_optimizer_.get(), potential_optimizer_.get()})
      if (o != nullptr) o->set_device_state(true);
  }
}

Trainer::~Trainer() = default;

double Trainer::current_lr() const {
  return optimizer_->groups().front().lr;
}

torch::Tensor Trainer::tlm_step(const Trajectories& traj, const torch::Tensor& path) {
  torch::Tensor log_pb;  // [T, B] under psi, 0 on the exit steps and padding
  if (tabular_) {
    auto pass = evaluate_table(*table_, *estimators_.backward_online);
    log_pb = score_tabular(*table_, pass, traj, path, estimators_.log_z, ScoreOptions{}).log_pb;
  } else {
    Estimators psi(estimators_.backward_online, estimators_.log_z);
    log_pb = score_trajectories(env_, psi, traj, ScoreOptions{}).log_pb;
  }
  auto loss = -log_pb.sum(0).mean();
  backward_optimizer_->zero_grad();
  loss.backward();
  backward_optimizer_->step();
  estimators_.update_backward_target(options_.tlm_ema);
  return loss.detach();
}

torch::Tensor Trainer::led_step(const Trajectories& traj, LossInputs& inputs) {
  auto log_reward = inputs.log_reward.detach();
  torch::Tensor loss;
  for (int64_t k = 0; k < options_.led_steps; ++k) {
    auto phi = estimators_.potential->values(env_, traj);
    if (k + 1 == options_.led_steps) inputs.local_credit = redistributed_credits(phi, log_reward, inputs.mask, inputs.length);
    loss = potential_regression_loss(phi, log_reward, inputs.mask, inputs.length, led_drop_rate_, generator_);
    potential_optimizer_->zero_grad();
    loss.backward();
    potential_optimizer_->step();
  }
  return loss.detach();
}

void Trainer::save_state(torch::serialize::OutputArchive& archive) const {
  archive.write("trainer.iteration", torch::tensor(iteration_), /*is_buffer=*/true);
  archive.write("trainer.generator", generator_.get_state(), true);
  optimizer_->save(archive, "trainer.adam.");
  if (backward_optimizer_) backward_optimizer_->save(archive, "trainer.tlm_adam.");
  if (potential_optimizer_) potential_optimizer_->save(archive, "trainer.led_adam.");
}

void Trainer::load_state(torch::serialize::InputArchive& archive, const std::string& source) {
  // a fresh tensor per entry: try_read into a defined one resizes it in place
  auto read = [&](const std::string& key) {
    torch::Tensor t;
    if (!archive.try_read(key, t, /*is_buffer=*/true)) throw std::runtime_error("no entry '" + key + "'");
    return t;
  };
  try {
    const int64_t iteration = read("trainer.iteration").item<int64_t>();
    generator_.set_state(read("trainer.generator"));
    optimizer_->load(archive, "trainer.adam.");
    if (backward_optimizer_) backward_optimizer_->load(archive, "trainer.tlm_adam.");
    if (potential_optimizer_) potential_optimizer_->load(archive, "trainer.led_adam.");
    iteration_ = iteration;
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{}: {} (not a checkpoint of this config)", source, first_line(e)));
  }
}

namespace {

// sum of squares in float64; on the CPU in one pass over the memory (a float64 copy of a
// 256 x 256 gradient is a fresh 512 KiB allocation, page faults included, at every logged row)
double squared_norm(const torch::Tensor& t) {
  if (t.is_cpu() && t.is_contiguous() && (t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kFloat64)) {
    double s = 0.0;
    const int64_t n = t.numel();
    if (t.scalar_type() == torch::kFloat32) {
      const float* p = t.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i) s += static_cast<double>(p[i]) * static_cast<double>(p[i]);
    } else {
      const double* p = t.data_ptr<double>();
      for (int64_t i = 0; i < n; ++i) s += p[i] * p[i];
    }
    return s;
  }
  return t.to(torch::kFloat64).square().sum().item<double>();
}

}  // namespace

IterationResult Trainer::iterate(bool host_grad_norm, bool device_grad_norm) {
  IterationResult out;
  LossInputs inputs;
  const int64_t B = options_.batch_size;
  if (tabular_) {
    // the policy on every state, once: sampling reads it detached, the loss with its graph
    auto pass = evaluate_table(*table_, *estimators_.policy);
    torch::Tensor probs;
    {
      torch::NoGradGuard no_grad;
      probs = behaviour_probs(pass.logits.detach(), table_->forward_mask, options_.sampler);
    }
    torch::Tensor path;
    out.trajectories = rollout_tabular(env_, *table_, probs, B, generator_, &path);
    if (estimators_.tlm()) {
      out.backward_loss = tlm_step(out.trajectories, path);
      torch::NoGradGuard no_grad;
      pass.log_pb = evaluate_table(*table_, *estimators_.backward_target).log_pb;
    }
    inputs = score_tabular(*table_, pass, out.trajectories, path, estimators_.log_z, options_.score);
    out.terminal_index = path[path.size(0) - 1];
  } else {
    SamplerOptions sampler = options_.sampler;
    sampler.record_log_pf = !sampler.on_policy();  // on-policy, the scores below are the same numbers
    out.trajectories = rollout(env_, *estimators_.policy, B, sampler, generator_, device_);
    if (estimators_.tlm()) out.backward_loss = tlm_step(out.trajectories, torch::Tensor());
    inputs = score_trajectories(env_, estimators_, out.trajectories, options_.score);
    if (!sampler.record_log_pf) out.trajectories.log_pf_sampled = inputs.log_pf.detach();
    if (table_) out.terminal_index = env_.state_index(out.trajectories.terminal_states());
  }

  if (options_.led) out.potential_loss = led_step(out.trajectories, inputs);

  // loss, gradients, one optimiser step
  auto loss = objective_.loss(inputs);
  optimizer_->zero_grad();
  loss.backward();
  if (host_grad_norm) {
    double sq = 0.0;
    for (const auto& group : optimizer_->groups())
      for (const auto& p : group.params)
        if (p.grad().defined()) sq += squared_norm(p.grad());
    out.grad_norm = std::sqrt(sq);
  }
  if (device_grad_norm) {
    torch::NoGradGuard no_grad;
    out.grad_sq = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
    for (const auto& group : optimizer_->groups())
      for (const auto& p : group.params)
        if (p.grad().defined()) out.grad_sq.add_(p.grad().to(torch::kFloat64).square().sum());
  }
  optimizer_->step();
  if (!objective_.uses_log_z()) {
    auto estimate = objective_.log_z_estimate(inputs);
    if (estimate.defined()) {
      torch::NoGradGuard no_grad;
      estimators_.log_z.copy_(estimate);
    }
  }
  out.loss = loss.detach();
  out.log_pf = inputs.log_pf.detach();
  out.log_pb = inputs.log_pb.detach();
  return out;
}

void Trainer::finish_iteration() {
  objective_.after_step();
  ++iteration_;
  if (backward_optimizer_) backward_optimizer_->groups().front().lr *= options_.backward_decay;
  // step decay of every learning rate
  if (options_.lr_decay_every > 0 && iteration_ % options_.lr_decay_every == 0) {
    for (auto& group : optimizer_->groups()) group.lr *= options_.lr_decay;
  }
  if (graph_) {  // the captured optimisers read their learning rates from the device
    optimizer_->sync_learning_rates();
    if (backward_optimizer_) backward_optimizer_->sync_learning_rates();
  }
}

IterationResult Trainer::step(bool with_grad_norm) {
  if (!graph_) {
    IterationResult out = iterate(with_grad_norm, false);
    finish_iteration();
    return out;
  }
  graph_->run([&] { captured_ = iterate(false, true); });
  IterationResult out = captured_;
  if (with_grad_norm) out.grad_norm = std::sqrt(out.grad_sq.item<double>());
  finish_iteration();
  return out;
}

}  // namespace gfn

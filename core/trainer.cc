#include "core/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "core/cuda_graph.h"

namespace gfn {

template <>
const EnumNames<TabularMode>& enum_names<TabularMode>() {
  static const EnumNames<TabularMode> names{
      {TabularMode::kAuto, "auto"}, {TabularMode::kOn, "on"}, {TabularMode::kOff, "off"}};
  return names;
}

template <>
const EnumNames<NonFinitePolicy>& enum_names<NonFinitePolicy>() {
  static const EnumNames<NonFinitePolicy> names{{NonFinitePolicy::kStop, "stop"}, {NonFinitePolicy::kSkip, "skip"}};
  return names;
}

NonFiniteError::NonFiniteError(int64_t iteration, const std::string& what)
    : std::runtime_error(fmt::format("iteration {}: {}", iteration, what)), iteration_(iteration), what_(what) {}

const OptionTable<TrainerOptions>& TrainerOptions::keys() {
  using O = TrainerOptions;
  static const auto table =
      OptionTable<O>()
          .add("train.batch_size", &O::batch_size, "trajectories per iteration", in(1, 1 << 24))
          .add("train.lr", &O::lr, "Adam learning rate of the policy", above(0).at_most(10))
          .add("train.lr_logz", &O::lr_logz, "Adam learning rate of log Z", above(0).at_most(100))
          .add("train.lr_decay_every", &O::lr_decay_every,
               "every N iterations the learning rates of the policy, log Z and the flow head are multiplied by "
               "train.lr_decay (0: never)",
               at_least(0))
          .add("train.lr_decay", &O::lr_decay, "step decay factor of the learning rates", above(0).at_most(1))
          .add("train.on_nonfinite", &O::on_nonfinite,
               "a NaN or an infinity in a batch's log-rewards, loss or gradients: stop (the run ends at that "
               "iteration, exit 1, its last checkpoint and model.pt kept as they were) or skip (no update from that "
               "batch; counted in /train/nonfinite_skips)")
          .resumable()
          .nest(&O::sampler, SamplerOptions::keys())
          .add("train.tabular", &O::tabular,
               "evaluate the policy once per state per iteration (auto: when num_states <= batch * T)")
          .add("train.execution", &O::execution,
               "compact: evaluate only the rows still running (host syncs; the CPU's default); fixed: every row "
               "under masks, no host sync (what a GPU runs; the default elsewhere); auto: by device")
          .add("train.reuse_rollout", &O::reuse_rollout,
               "on-policy batches are scored with the policy outputs of their rollout (one autograd graph per step) "
               "instead of one batched pass: slower on the CPU (hypergrid 4-D 8.2 vs 5.4 ms/it), for large networks")
          .add("train.cuda_graph", &O::cuda_graph,
               "CUDA only: capture one whole iteration as a CUDA graph after 3 eager ones and replay it")
          .nest(&O::score, ScoreOptions::keys());
  return table;
}

torch::Generator make_generator(uint64_t seed, const torch::Device& device) {
  if (device.is_cpu()) return at::make_generator<at::CPUGeneratorImpl>(seed);
  // other devices: a clone of the device's default generator, reseeded
  auto gen = at::globalContext().defaultGenerator(device).clone();
  gen.set_current_seed(seed);
  return gen;
}

Trainer::Trainer(const Env& env, Estimators& estimators, Objective& objective, const TrainerOptions& options,
                 uint64_t seed, const torch::Device& device, std::vector<TrainingComponent*> components)
    : env_(env),
      estimators_(estimators),
      objective_(objective),
      options_(options),
      device_(device),
      execution_(resolve_execution(options.execution, device)),
      components_(std::move(components)),
      requirements_(objective.requirements()),
      generator_(make_generator(seed, device)) {
  options_.validate();
  check_requirements(requirements_);
  options_.score.edge_flows = requirements_.edge_flows;
  options_.score.state_rewards = requirements_.state_rewards;

  // one Adam over the parameters the GFlowNet loss trains, a group per learning rate
  std::vector<AdamGroup> groups{{estimators_.policy_parameters(), options_.lr, "the policy"}};
  if (requirements_.log_z) groups.push_back({{estimators_.log_z}, options_.lr_logz, "log Z"});
  // a conditional model's log Z(c) network: the scalar above carries its offset, the network's
  // weights learn at the policy's rate
  if (requirements_.log_z && estimators_.log_z_net)
    groups.push_back({estimators_.log_z_net->parameters(), options_.lr, "the log Z(c) network"});
  for (auto* c : components_)
    for (auto& g : c->loss_groups()) {
      if (g.name.empty()) g.name = "the " + c->name() + " component's parameters";
      groups.push_back(std::move(g));
    }
  optimizer_ = std::make_unique<FusedAdam>(std::move(groups));

  // state tables: for exact bookkeeping always, for training when worthwhile or asked for
  if (has_state_table(env_)) table_.emplace(env_, device_);
  switch (options_.tabular) {
    case TabularMode::kAuto:  // batches drawn backward from the target are scored generically
      tabular_ = table_.has_value() && tabular_worthwhile(env_, options_.batch_size) && !requirements_.target_batches;
      break;
    case TabularMode::kOn:
      if (!table_.has_value())
        throw ConfigError(fmt::format("train.tabular = \"on\": env '{}' does not enumerate a small enough state space",
                                      env_.name()));
      tabular_ = true;
      break;
    case TabularMode::kOff: tabular_ = false; break;
  }
  if (options_.cuda_graph) {
    if (options_.on_nonfinite == NonFinitePolicy::kSkip)
      throw ConfigError("train.on_nonfinite = \"skip\": with train.cuda_graph = true the captured iteration applies its "
                        "update without a host check; use \"stop\" (checked after each replay) or turn the graph off");
    graph_ = std::make_unique<CudaGraphStep>(device_, kGraphWarmup);  // ConfigError off CUDA
    generator_ = graph_generator(seed, device_);
    optimizer_->set_device_state(true);
    for (auto* c : components_)
      for (auto* o : c->optimizers()) o->set_device_state(true);
  }
}

Trainer::~Trainer() = default;

void Trainer::check_requirements(const Requirements& r) const {
  const std::string kind = fmt::format("objective.kind = \"{}\"", objective_.name());
  const auto& spec = env_.action_spec();
  if (options_.batch_size < r.min_batch_size)
    throw ConfigError(fmt::format("train.batch_size = {}: {} needs at least {} trajectories per batch",
                                  options_.batch_size, kind, r.min_batch_size));
  if (r.edge_flows && (spec.forward.has_pieces() || spec.backward.has_pieces()))
    throw ConfigError(fmt::format("{} matches edge flows over each state's parents, which env '{}' cannot enumerate "
                                  "(its kernels have continuous pieces): use a discrete env or another objective",
                                  kind, env_.name()));
  if (r.state_rewards && (!env_.every_state_terminal() || spec.forward.exit < 0))
    throw ConfigError(fmt::format("{} needs an env where every state may exit, which env '{}' is not: use db or "
                                  "subtb",
                                  kind, env_.name()));
  const Credit credit = options_.score.credit;
  if (credit != Credit::kNone && !r.local_credit)
    throw ConfigError(fmt::format("objective.credit = \"{}\": {} takes no local credits (tb, db and subtb do)",
                                  enum_name(credit), kind));
  if (credit == Credit::kForwardLooking && !env_.has_intermediate_reward())
    throw ConfigError(fmt::format("objective.credit = \"fl\": env '{}' defines no intermediate reward for "
                                  "forward-looking credits",
                                  env_.name()));
  const bool learned = std::any_of(components_.begin(), components_.end(),
                                   [](const TrainingComponent* c) { return c->adds_local_credit(); });
  if (credit == Credit::kLearned && !learned)
    throw ConfigError("objective.credit = \"led\": no component adds learned credits (LED's: components/led.h)");
  if (r.flow && !estimators_.flow)
    throw ConfigError(fmt::format("{} reads log F(s): the estimators need a flow head", kind));
  if (r.on_policy) {
    const std::string from = r.target_batches ? "the target (x ~ R/Z, then P_B)" : "P_F itself";
    const std::string hint = "(tb, db, subtb and vargrad train off-policy)";
    if (!options_.sampler.on_policy())
      throw ConfigError(fmt::format("train.epsilon = {}, train.temperature = {}: {} estimates its gradients from "
                                    "batches drawn from {}, which exploration would bias: set train.epsilon = 0 and "
                                    "train.temperature = 1 {}",
                                    options_.sampler.epsilon, options_.sampler.temperature, kind, from, hint));
    for (auto* c : components_) {
      SamplerOptions probe = options_.sampler;
      c->adjust_sampling(probe, 0);
      const bool replaces = c->name() != "target" && (c->replaces_rollout(0) || c->replaces_rollout(1));
      if (!probe.on_policy() || replaces)
        throw ConfigError(fmt::format("{} estimates its gradients from batches drawn from {}: the '{}' component "
                                      "changes them (turn off {}) {}",
                                      kind, from, c->name(), c->name() == "replay" ? "replay.capacity" : "explore.noise",
                                      hint));
    }
  }
  if (r.target_batches && options_.tabular == TabularMode::kOn)
    throw ConfigError(fmt::format("train.tabular = \"on\": {} trains on backward trajectories from target samples, "
                                  "which tabular training does not draw (set train.tabular = \"off\" or \"auto\")",
                                  kind));
}

double Trainer::current_lr() const { return optimizer_->groups().front().lr; }

std::vector<std::string> Trainer::metric_names() const {
  std::vector<std::string> out;
  for (const auto* c : components_)
    for (const auto& n : c->metric_names()) out.push_back(n);
  return out;
}

void Trainer::set_gradient_reducer(const FusedAdam::GradientReducer& reducer) {
  optimizer_->set_gradient_reducer(reducer);
  for (auto* c : components_)
    for (auto* o : c->optimizers()) o->set_gradient_reducer(reducer);
}

TrainingContext Trainer::context() {
  return TrainingContext{env_, estimators_, tabular_ ? &*table_ : nullptr, execution_, generator_, device_};
}

void Trainer::save_state(torch::serialize::OutputArchive& archive) const {
  archive.write("trainer.iteration", torch::tensor(iteration_), /*is_buffer=*/true);
  archive.write("trainer.generator", generator_.get_state(), true);
  archive.write("trainer.nonfinite_skips", torch::tensor(nonfinite_skips_), true);
  optimizer_->save(archive, "trainer.adam.");
  for (const auto* c : components_) c->write_state(archive);
}

void Trainer::load_state(torch::serialize::InputArchive& archive, const std::string& source) {
  // a fresh tensor per entry: try_read into a defined one resizes it in place
  auto read = [&](const std::string& key) {
    torch::Tensor t;
    if (!archive.try_read(key, t, /*is_buffer=*/true))
      throw ConfigError(fmt::format("{}: no entry '{}' (not a checkpoint of this config)", source, key));
    return t;
  };
  const int64_t iteration = read("trainer.iteration").item<int64_t>();
  generator_.set_state(read("trainer.generator"));
  optimizer_->load(archive, "trainer.adam.", source);
  for (auto* c : components_) c->read_state(archive, source);
  iteration_ = iteration;
  torch::Tensor skips;  // absent from checkpoints written before it was counted
  nonfinite_skips_ = archive.try_read("trainer.nonfinite_skips", skips, true) ? skips.item<int64_t>() : 0;
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

double Trainer::host_grad_sq() const {
  double sq = 0.0;
  for (const auto& group : optimizer_->groups())
    for (const auto& p : group.params)
      if (p.grad().defined()) sq += squared_norm(p.grad());
  return sq;
}

torch::Tensor Trainer::device_grad_sq() const {
  torch::NoGradGuard no_grad;
  auto sq = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
  for (const auto& group : optimizer_->groups())
    for (const auto& p : group.params)
      if (p.grad().defined()) sq.add_(p.grad().to(torch::kFloat64).square().sum());
  return sq;
}

TrainingBatch Trainer::sample(const SamplerOptions& sampler, TablePass& pass, PolicyPass& kept) {
  TrainingBatch batch;
  batch.iteration = iteration_;
  const int64_t B = options_.batch_size;
  for (auto* c : components_)
    if (c->replaces_rollout(iteration_)) return batch;  // its extend_batch supplies the trajectories
  if (tabular_) {
    // the policy on every state, once: sampling reads it detached, the loss with its graph
    pass = evaluate_table_forward(*table_, *estimators_.policy);
    torch::Tensor probs;
    {
      torch::NoGradGuard no_grad;
      probs = behaviour_probs(pass.logits.detach(), table_->forward_mask, sampler);
    }
    batch.trajectories = rollout_tabular(env_, *table_, probs, B, generator_, &batch.path);
  } else {
    batch.trajectories = rollout(env_, *estimators_.policy, B, sampler, generator_, device_, execution_,
                                 options_.reuse_rollout && sampler.on_policy() ? &kept : nullptr);
  }
  return batch;
}

LossInputs Trainer::score(TrainingBatch& batch, TablePass& pass, const PolicyPass& kept,
                          const SamplerOptions& sampler) {
  auto& traj = batch.trajectories;
  if (tabular_) {
    evaluate_table_backward(*table_, estimators_, pass);
    return score_tabular(*table_, pass, traj, batch.path, estimators_.log_z, options_.score);
  }
  LossInputs inputs = score_trajectories(env_, estimators_, traj, options_.score, execution_, &kept);
  // on-policy, the rollout left log_pf_sampled to these scores (the same numbers)
  if (!sampler.record_log_pf) traj.log_pf_sampled = inputs.log_pf.detach();
  return inputs;
}

IterationResult Trainer::iterate(bool host_grad_norm, bool device_grad_norm) {
  SamplerOptions sampler = options_.sampler;
  for (auto* c : components_) c->adjust_sampling(sampler, iteration_);
  sampler.record_log_pf = !sampler.on_policy();  // on-policy, the scores below are the same numbers
  TablePass pass;
  PolicyPass kept;
  TrainingBatch batch = sample(sampler, pass, kept);
  const TrainingContext ctx = context();
  const auto sampled = batch.trajectories.mask;
  for (auto* c : components_) c->extend_batch(batch, ctx);
  TORCH_CHECK(batch.trajectories.mask.defined(), "Trainer: a component replaced the rollout but supplied no batch");
  if (!batch.trajectories.mask.is_same(sampled)) kept = PolicyPass{};  // other data joined: rescore all
  for (auto* c : components_) c->before_scoring(batch, ctx);
  LossInputs inputs = score(batch, pass, kept, sampler);
  for (auto* c : components_) c->add_loss_inputs(batch, inputs, ctx);

  // loss, gradients, one optimiser step; nothing of a batch with a non-finite log-reward, loss
  // or gradient is applied (the checks read the host: not inside a CUDA graph's capture, whose
  // replays are checked by step())
  IterationResult out;
  auto loss = objective_.loss(inputs);
  optimizer_->zero_grad();
  if (!graph_) out.nonfinite = nonfinite_inputs(batch, inputs, loss);
  if (out.nonfinite.empty()) {
    loss.backward();
    if (host_grad_norm) out.grad_norm = std::sqrt(host_grad_sq());
    if (device_grad_norm) out.grad_sq = device_grad_sq();
    if (!optimizer_->step()) out.nonfinite = "the gradient of " + optimizer_->nonfinite_group() + " is not finite";
  }
  if (!requirements_.log_z && out.nonfinite.empty()) {
    auto estimate = objective_.log_z_estimate(inputs);
    if (estimate.defined()) {
      torch::NoGradGuard no_grad;
      estimators_.log_z.copy_(estimate);
    }
  }
  out.loss = loss.detach();
  out.log_pf = inputs.log_pf.detach();
  out.log_pb = inputs.log_pb.detach();
  if (table_)
    out.terminal_index = tabular_ ? batch.path[batch.path.size(0) - 1]
                                  : env_.state_index(batch.trajectories.terminal_states());
  out.trajectories = batch.trajectories;
  batch_ = std::move(batch);
  return out;
}

std::string Trainer::nonfinite_inputs(const TrainingBatch& batch, const LossInputs& inputs,
                                      const torch::Tensor& loss) const {
  const torch::Tensor bad = torch::isfinite(inputs.log_reward).logical_not().nonzero();
  if (bad.numel() > 0) {
    const int64_t i = bad[0][0].item<int64_t>();
    const auto& tr = batch.trajectories;
    // the state's coordinates as the log stores them (at most 16 of each kind)
    auto coords = [i](const torch::Tensor& t) {
      const auto row = t[i].to(torch::kCPU, torch::kFloat64).contiguous();
      const double* p = row.data_ptr<double>();
      return std::vector<double>(p, p + std::min<int64_t>(row.numel(), 16));
    };
    std::string state;
    if (tr.terminal_discrete.defined() && tr.terminal_discrete.size(1) > 0)
      state = fmt::format("discrete ({})", fmt::join(coords(tr.terminal_discrete), ", "));
    if (tr.terminal_continuous.defined() && tr.terminal_continuous.size(1) > 0)
      state += fmt::format("{}continuous ({:.6g})", state.empty() ? "" : ", ",
                           fmt::join(coords(tr.terminal_continuous), ", "));
    return fmt::format("the log-reward of state {} (trajectory {} of the batch) is {} (env {})",
                       state.empty() ? "s0" : state, i, inputs.log_reward[i].item<double>(), env_.name());
  }
  const double l = loss.item<double>();
  if (!std::isfinite(l)) return fmt::format("the loss is {}", l);
  return {};
}

void Trainer::finish_iteration(bool skipped) {
  const TrainingContext ctx = context();
  if (!skipped)
    for (auto* c : components_) c->after_step(batch_, ctx);
  ++iteration_;
  // step decay of the trainer's learning rates
  if (options_.lr_decay_every > 0 && iteration_ % options_.lr_decay_every == 0) {
    for (auto& group : optimizer_->groups()) group.lr *= options_.lr_decay;
  }
  if (graph_) {  // the captured optimisers read their learning rates from the device
    optimizer_->sync_learning_rates();
    for (auto* c : components_)
      for (auto* o : c->optimizers()) o->sync_learning_rates();
  }
}

IterationResult Trainer::step(bool with_grad_norm) {
  IterationResult out;
  if (!graph_) {
    out = iterate(with_grad_norm, false);
  } else {
    graph_->run([&] { captured_ = iterate(false, true); });
    out = captured_;
    // the replay applied its update unchecked: a non-finite one stops the run before anything
    // of it is saved (train.on_nonfinite = "skip" is refused with a graph)
    const double sq = out.grad_sq.item<double>(), l = out.loss.item<double>();
    if (!std::isfinite(l)) out.nonfinite = fmt::format("the loss is {}", l);
    else if (!std::isfinite(sq)) out.nonfinite = "the gradient is not finite";
    if (with_grad_norm) out.grad_norm = std::sqrt(sq);
  }
  const bool skipped = !out.nonfinite.empty();
  if (skipped && options_.on_nonfinite == NonFinitePolicy::kStop) throw NonFiniteError(iteration_ + 1, out.nonfinite);
  for (const auto* c : components_)
    for (const auto& v : c->metric_values()) out.metrics.push_back(v);
  finish_iteration(skipped);
  // the components' own optimisers (TLM's P_B, LED's potential) stepped in their hooks
  if (!skipped)
    for (auto* c : components_)
      for (auto* o : c->optimizers())
        if (o->last_step_skipped()) {
          out.nonfinite = "the gradient of " + o->nonfinite_group() + " is not finite";
          if (options_.on_nonfinite == NonFinitePolicy::kStop) throw NonFiniteError(iteration_, out.nonfinite);
        }
  if (!out.nonfinite.empty()) ++nonfinite_skips_;
  return out;
}

}  // namespace gfn

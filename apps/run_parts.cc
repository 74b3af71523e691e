#include "apps/run_parts.h"

#include <fmt/format.h>
#include <torch/torch.h>

namespace gfn {

namespace {

// The estimator options the [policy] keys say.
EstimatorOptions estimator_options(const Params& p) {
  EstimatorOptions o;
  o.hidden = p.get_int("policy.hidden");
  o.layers = p.get_int("policy.layers");
  const auto& act = p.get_string("policy.activation");
  o.activation = act == "elu" ? Activation::kElu : act == "leaky_relu" ? Activation::kLeakyRelu : Activation::kRelu;
  const auto& backward = p.get_string("policy.backward");
  o.backward = backward == "learned" ? BackwardPolicy::kLearned
               : backward == "tlm"   ? BackwardPolicy::kTlm
               : backward == "maxent" ? BackwardPolicy::kMaxEnt
                                     : BackwardPolicy::kUniform;
  o.init_log_z = p.get_float("policy.init_log_z");
  o.flow_trunk = p.get_string("policy.flow_trunk") == "separate" ? FlowTrunk::kSeparate : FlowTrunk::kShared;
  o.head.mixture_components = p.get_int("policy.mixture_components");
  o.head.initial_mixture_components = p.get_int("policy.s0_mixture_components");
  o.head.min_concentration = p.get_float("policy.min_concentration");
  o.head.max_concentration = p.get_float("policy.max_concentration");
  o.backward_min_concentration = p.get_float("policy.backward_min_concentration");
  if (p.get_string("policy.trunk_precision") == "bf16") o.trunk_dtype = torch::kBFloat16;
  o.head.validate();
  return o;
}

}  // namespace

Run build_run(const Params& p, const Registry& registry) {
  Run run;
  run.device_name = resolve_device(p.get_string("device"));
  run.device = torch::Device(run.device_name);
  run.env = registry.env(p.get_string("env.kind")).make(p.section("env"));
  run.objective = registry.objective(p.get_string("objective.kind")).make(p.section("objective"));
  run.estimator_options = estimator_options(p);
  run.estimator_options.flow = run.objective->uses_flow();
  run.estimator_options.potential = p.get_string("objective.credit") == "led";
  run.estimator_options.potential_hidden = p.get_int("objective.led_hidden");
  run.estimator_options.potential_layers = p.get_int("objective.led_layers");
  auto& t = run.trainer_options;
  t.batch_size = p.get_int("train.batch_size");
  if (t.batch_size < run.objective->min_batch_size())
    throw ConfigError(fmt::format("train.batch_size = {}: objective.kind = \"{}\" needs at least {} trajectories "
                                  "per batch",
                                  t.batch_size, run.objective->name(), run.objective->min_batch_size()));
  t.lr = p.get_float("train.lr");
  t.lr_logz = p.get_float("train.lr_logz");
  t.lr_flow = p.get_float("train.lr_flow");
  t.lr_backward = p.get_float("train.lr_backward");
  t.backward_decay = p.get_float("train.backward_decay");
  t.tlm_ema = p.get_float("train.tlm_ema");
  t.lr_decay_every = p.get_int("train.lr_decay_every");
  t.lr_decay = p.get_float("train.lr_decay");
  t.cuda_graph = p.get_bool("train.cuda_graph");
  t.sampler.epsilon = p.get_float("train.epsilon");
  t.sampler.temperature = p.get_float("train.temperature");
  t.score.log_reward_clip = p.get_float("objective.log_reward_clip");
  t.score.local_credit = p.get_string("objective.credit") == "fl";
  t.led = run.estimator_options.potential;
  t.led_drop_rate = p.get_float("objective.led_dropout");
  t.led_steps = p.get_int("train.led_steps");
  t.lr_potential = p.get_float("train.lr_potential");
  const auto& tab = p.get_string("train.tabular");
  t.tabular = tab == "on" ? TabularMode::kOn : tab == "off" ? TabularMode::kOff : TabularMode::kAuto;
  t.validate();
  // parameters come from their own stream of the seed, sampling from another
  auto init_gen = make_generator(static_cast<uint64_t>(p.get_int("seed")) * 2 + 1, torch::kCPU);
  run.estimators = std::make_unique<Estimators>(*run.env, run.estimator_options, init_gen, run.device);
  return run;
}

LogAttributes log_attributes(const RunConfig& config, const Run& run) {
  LogAttributes attrs;
  attrs.gfn_version = GFN_VERSION;
  attrs.created_utc = utc_now_iso8601();
  attrs.config_toml = config.resolved_toml;
  attrs.env = run.env->name();
  attrs.objective = run.objective->name();
  attrs.device = run.device_name;
  attrs.seed = config.params.get_int("seed");
  return attrs;
}

void append_tensor(Hdf5Log& log, const std::string& group, const std::string& name, torch::Tensor t) {
  t = t.to(torch::kCPU).contiguous();
  LogDType dtype;
  switch (t.scalar_type()) {
    case torch::kFloat64: dtype = LogDType::kFloat64; break;
    case torch::kFloat32: dtype = LogDType::kFloat32; break;
    case torch::kInt64: dtype = LogDType::kInt64; break;
    case torch::kBool: dtype = LogDType::kBool; break;
    default: t = t.to(torch::kFloat64); dtype = LogDType::kFloat64;
  }
  std::vector<int64_t> row_shape(t.sizes().begin() + 1, t.sizes().end());
  for (auto d : row_shape)
    if (d == 0) return;  // zero-width coordinates (e.g. no continuous part) are not stored
  log.append(group, name, dtype, row_shape, t.data_ptr(), t.size(0));
}

void append_samples(Hdf5Log& log, const Trajectories& tr) {
  append_tensor(log, "samples", "states_discrete", tr.terminal_discrete);
  append_tensor(log, "samples", "states_continuous", tr.terminal_continuous);
  append_tensor(log, "samples", "log_reward", tr.log_reward);
  append_tensor(log, "samples", "length", tr.length);
  append_tensor(log, "samples", "trajectory_log_pf", tr.log_pf_sampled.sum(0));
}

}  // namespace gfn

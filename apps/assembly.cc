#include "apps/assembly.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/condition.h"
#include "core/seeds.h"

namespace gfn {

const OptionTable<RunOptions>& RunOptions::keys() {
  using O = RunOptions;
  static const auto table =
      OptionTable<O>()
          .add("name", &O::name, "run name: the default output directory is runs/<name>")
          .add("seed", &O::seed, "seed of every random draw (initialisation, sampling, evaluation)", at_least(0))
          .add("device", &O::device, "\"cpu\", \"cuda\", \"cuda:N\" or \"auto\" (CUDA when available)")
          .add("train.iterations", &O::iterations, "number of training iterations", at_least(1))
          .resumable()
          .add("threads", &O::threads, "intra-op CPU threads (1 is fastest for small networks on 2 cores)",
               in(1, 1024))
          .resumable()
          .add("distributed.timeout", &O::distributed_timeout,
               "multi-process runs (WORLD_SIZE > 1): seconds to wait for the rendezvous and for every "
               "all-reduce (rank 0's evaluations must fit in it) before a rank gives up on its peers",
               in(1, 86400))
          .resumable();
  return table;
}

Run build_run(const Params& p, const Registry& registry) {
  Run run;
  run.options = RunOptions::keys().read(p);
  run.device_name = resolve_device(run.options.device);
  run.device = torch::Device(run.device_name);
  const KindOptions kinds = KindOptions::keys(registry).read(p);
  run.env = registry.make_env(kinds.env, p.section("env"));
  const ConditionOptions condition = ConditionOptions::keys().read(p);
  if (condition.enabled()) {  // a conditional GFlowNet: the env's states carry c (core/condition.h)
    ConditionSpec spec = parse_condition(condition, *run.env);
    run.env = std::make_unique<ConditionedEnv>(std::shared_ptr<const Env>(std::move(run.env)), std::move(spec));
  }
  run.objective = registry.objective(kinds.objective).make(p.section("objective"));
  run.estimator_options = EstimatorOptions::keys().read(p);
  run.trainer_options = TrainerOptions::keys().read(p);
  run.execution = resolve_execution(run.trainer_options.execution, run.device);
  // parameters come from their own stream of the seed: the policy's first, then each component's
  auto init = make_generator(stream_seed(run.options.seed, SeedStream::kInitialisation), torch::kCPU);
  run.estimators = std::make_unique<Estimators>(*run.env, run.estimator_options, init, run.device);
  const Requirements requirements = run.objective->requirements();
  if (condition.enabled()) {
    // log Z(c) is a network the loss trains; objectives that estimate log Z from a batch would
    // mix the batch's conditions
    if (!requirements.log_z)
      throw ConfigError(fmt::format("condition.parameters = \"{}\": a conditional GFlowNet learns log Z(c) as a "
                                    "network, which objective.kind = \"{}\" does not train (use tb, subtb with "
                                    "objective.s0 = \"log_z\", or an HVI objective with objective.baseline = "
                                    "\"log_z\")",
                                    condition.parameters, run.objective->name()));
    run.estimators->log_z_net = LogZNet(run.env->condition_dim(), condition.hidden, condition.layers,
                                        run.estimator_options.activation, run.estimator_options.dtype, init);
    run.estimators->log_z_net->to(run.device);
  }
  const ComponentSetup setup{*run.env,          *run.estimators, run.estimator_options, run.trainer_options,
                             requirements,      init,            run.device};
  run.components = make_components(registry, setup, p);
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
  attrs.seed = run.options.seed;
  return attrs;
}

}  // namespace gfn

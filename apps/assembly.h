// A run assembled from its validated config: the env, the objective, the estimators, the
// components the objective and the options call for (in registration order, each drawing its
// parameters from the initialisation stream after the policy), the trainer's options and the
// device. What `gfn train`, `gfn eval` and `gfn sample` build alike. Internal to the library: not
// installed.
#pragma once

#include <memory>
#include <string>

#include <torch/types.h>

#include "apps/evaluator.h"
#include "apps/registry.h"
#include "core/component.h"
#include "core/distributed.h"
#include "core/estimator.h"
#include "core/options.h"
#include "core/trainer.h"
#include "io/config.h"
#include "io/hdf5_log.h"

namespace gfn {

// The run's own keys.
struct RunOptions : KeyedOptions<RunOptions> {
  std::string name = "run";     // the default output directory is runs/<name>
  int64_t seed = 0;             // of every random stream (core/seeds.h)
  std::string device = "cpu";   // "cpu", "cuda", "cuda:N" or "auto"
  int64_t threads = 1;          // intra-op CPU threads
  int64_t iterations = 5000;    // train.iterations
  double distributed_timeout = 300;  // seconds: a multi-process run's rendezvous and collectives
  Transport distributed_transport = Transport::kAuto;  // how its gradients travel

  // The config keys (name, seed, device, threads, train.iterations; threads and
  // train.iterations may change on resume).
  static const OptionTable<RunOptions>& keys();
};

// The objects of a run, built from a validated config.
struct Run {
  RunOptions options;
  std::unique_ptr<Env> env;
  std::unique_ptr<Objective> objective;
  EstimatorOptions estimator_options;
  TrainerOptions trainer_options;
  std::unique_ptr<Estimators> estimators;
  Components components;
  torch::Device device{torch::kCPU};
  std::string device_name;
  Execution execution = Execution::kCompact;  // resolved for the device
};

// What a run's config commits it to allocate and compute, from the env's sizes and the keys
// alone (nothing allocated). build_run refuses a config past one of the limits, naming the keys
// that set the size, before it allocates anything: a 2^20-high hypergrid's one-hot input is
// 2^21 wide, and its first layer alone would take 2 GB before an iteration starts.
struct RunFootprint {
  // the policy network's parameters: trunk and heads (TLM's own P_B network, the flow and
  // log Z(c) networks come on top, each of at most the policy's size)
  double policy_parameters = 0;
  // floats of one batch's network input and trunk activations when every trajectory has the
  // env's maximal length: train.batch_size * (max_length + 1) rows of (input width + hidden units)
  double batch_floats = 0;
  // bytes of the exact state tables (enumerable envs small enough for them, one per evaluated
  // condition of a conditional run), 0 without
  double table_bytes = 0;
  // backward trajectories of one evaluation of the terminating density on the terminal grid:
  // eval.density_samples per cell of eval.grid^d cells (envs with a grid), 0 without
  double grid_trajectories = 0;

  static constexpr double kMaxPolicyParameters = 1e8;      // 400 MB of float32, 1.6 GB with Adam's state
  static constexpr double kMaxBatchFloats = 1073741824.0;  // 2^30 float32: 4 GiB
  static constexpr double kMaxTableBytes = 4294967296.0;   // 4 GiB
  static constexpr double kMaxGridTrajectories = 4194304;  // 2^22: ~10 minutes per evaluation on one CPU core
};

// The footprint of a run of `env` with these options (`conditions`: the number of conditions a
// conditional run evaluates exactly, else 0).
RunFootprint run_footprint(const Env& env, const EstimatorOptions& estimator, const TrainerOptions& trainer,
                           const EvalOptions& eval, int64_t conditions);

// The run a validated config describes, on its device. ConfigError for a config whose parts do
// not fit together (an objective the env cannot feed, a backward policy it cannot have, ...) or
// whose footprint passes a limit of RunFootprint (the message names the keys that size it).
Run build_run(const Params& params, const Registry& registry);
// The root attributes of a file written for the run `run` of `config` (a log, a sample file).
LogAttributes log_attributes(const RunConfig& config, const Run& run);

}  // namespace gfn

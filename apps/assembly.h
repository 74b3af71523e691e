// A run assembled from its validated config: the env, the objective, the estimators, the
// components the objective and the options call for (in registration order, each drawing its
// parameters from the initialisation stream after the policy), the trainer's options and the
// device. What `gfn train`, `gfn eval` and `gfn sample` build alike. Internal to the library: not
// installed.
#pragma once

#include <memory>
#include <string>

#include <torch/types.h>

#include "apps/registry.h"
#include "core/component.h"
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

// The run a validated config describes, on its device. ConfigError for a config whose parts do
// not fit together (an objective the env cannot feed, a backward policy it cannot have, ...).
Run build_run(const Params& params, const Registry& registry);
// The root attributes of a file written for the run `run` of `config` (a log, a sample file).
LogAttributes log_attributes(const RunConfig& config, const Run& run);

}  // namespace gfn

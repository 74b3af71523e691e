// Pieces shared by the commands on a run (apps/run.cc: train; apps/saved_run.cc: eval and
// sample): a run built from its config, and the log writers they have in common. Internal to the
// library: not installed.
#pragma once

#include <memory>
#include <string>

#include <torch/types.h>

#include "apps/run.h"
#include "core/estimator.h"
#include "core/trainer.h"
#include "io/hdf5_log.h"

namespace gfn {

// The objects of a run, built from a validated config.
struct Run {
  std::unique_ptr<Env> env;
  std::unique_ptr<Objective> objective;
  std::unique_ptr<Estimators> estimators;
  EstimatorOptions estimator_options;
  TrainerOptions trainer_options;
  torch::Device device{torch::kCPU};
  std::string device_name;
};

// The env, objective, estimators and trainer options of a validated config, on its device.
Run build_run(const Params& p, const Registry& registry);
// The root attributes of a file written for the run `run` of `config` (a log, a sample file).
LogAttributes log_attributes(const RunConfig& config, const Run& run);
// Appends a tensor (moved to host, contiguous) as rows of /<group>/<name>.
void append_tensor(Hdf5Log& log, const std::string& group, const std::string& name, torch::Tensor t);
// The terminal states of sampled trajectories, their log-rewards, lengths and log P_F(tau) as
// rows of /samples.
void append_samples(Hdf5Log& log, const Trajectories& tr);

}  // namespace gfn

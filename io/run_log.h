// What a training run writes to its log (io/hdf5_log.h): the /train rows, the stored
// trajectories, the terminal samples, and when the log is flushed.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/options.h"
#include "core/trainer.h"
#include "core/types.h"
#include "io/hdf5_log.h"

namespace gfn {

struct LogOptions : KeyedOptions<LogOptions> {
  int64_t every = 10;               // a /train row every N iterations
  double flush_seconds = 10.0;      // flush at a /train row when this many seconds passed since the last flush
  int64_t trajectories_every = 1000;  // store sampled trajectories every N iterations (0: never)
  int64_t trajectories_count = 16;    // how many of the batch's trajectories each time

  // The config keys (log.*; log.flush_seconds may change on resume).
  static const OptionTable<LogOptions>& keys();
};

// Appends a tensor (moved to the host, contiguous) as rows of /<group>/<name>; a zero-width row
// shape (no continuous coordinates, say) stores nothing.
void append_tensor(Hdf5Log& log, const std::string& group, const std::string& name, torch::Tensor t);
// The terminal states of sampled trajectories, their log-rewards, lengths and log P_F(tau) as
// rows of /samples.
void append_samples(Hdf5Log& log, const Trajectories& trajectories);

// One /train row's inputs beside the iteration's result.
struct TrainRowInputs {
  int64_t iteration = 0;
  int64_t trajectories = 0;  // seen so far
  double wall_s = 0;
  double log_z = 0;
  double lr = 0;             // the policy's current learning rate
  int64_t nonfinite_skips = 0;  // batches skipped so far for non-finite values (train.on_nonfinite)
};

// The /train rows and the stored trajectories of a run, and its flushes.
class TrainLog {
 public:
  // `component_metrics`: the trainer's components' metric names, columns after the common ones.
  TrainLog(Hdf5Log& log, const LogOptions& options, std::vector<std::string> component_metrics);
  // Declares the /train columns (before the first flush, so that they exist in SWMR mode).
  void declare();
  // Whether iteration `iteration` writes a row (every N, and the last).
  bool row_due(int64_t iteration, bool last) const;
  // The row of iteration inputs.iteration (the trainer's result `r` carries its grad norm).
  void write_row(const TrainRowInputs& inputs, const IterationResult& r);
  // The first log.trajectories_count trajectories of the batch, batch-major ([N, T, ...]), every
  // log.trajectories_every iterations.
  void write_trajectories(int64_t iteration, const IterationResult& r);
  // Flushes the log (also when nothing is due).
  void flush();
  // Flushes when a row was written and log.flush_seconds passed since the last flush.
  void flush_if_due(bool wrote_row);

 private:
  Hdf5Log& log_;
  LogOptions options_;
  std::vector<std::string> component_metrics_;
  std::chrono::steady_clock::time_point last_flush_;
};

}  // namespace gfn

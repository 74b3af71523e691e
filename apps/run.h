// The library entry point of a run: training from a validated config into a run directory
// (DIR/config.toml, DIR/model.pt, DIR/checkpoint.pt, DIR/log.h5), and the evaluation and the
// samples of a saved run. What the `gfn` commands call (apps/cli.h), and what an out-of-tree
// program calls with a registry holding its own kinds (apps/registry.h).
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/registry.h"
#include "core/distributed.h"
#include "core/evaluation.h"
#include "io/config.h"

namespace gfn {

// Where a run's progress goes.
enum class ProgressStyle { kNone, kLines, kBar };

struct TrainOptions {
  std::string out_dir;                       // run directory; created; must not hold a run already
  // Continue the run in out_dir from DIR/checkpoint.pt (config from resume_config): the log's
  // rows after the checkpoint are dropped and written again, so that the finished run equals
  // an uninterrupted one (on the CPU, bit for bit).
  bool resume = false;
  ProgressStyle progress = ProgressStyle::kLines;
  std::ostream* progress_stream = nullptr;   // where progress goes (std::cerr when null)
  // Polled after every iteration: a nonzero value (a signal number) ends the run there with a
  // flushed log and a checkpoint (RunSummary::stopped_by_signal).
  std::function<int()> stop_requested;
  // Called once the run is built and its directory locked, before its first write (on a rank > 0:
  // before its first iteration): from here on a signal stops the run after an iteration; before,
  // nothing was written and the command line may end the process at once (apps/cli.cc).
  std::function<void()> on_writing;
  // The command that resumes a run, in messages ("continue it with <program> train --resume DIR").
  std::string program = "gfn";
  // One rank of a multi-process run (core/distributed.h; the torchrun variables): rank 0 trains,
  // evaluates, logs and checkpoints as a single process would; the others train and write nothing.
  std::optional<DistributedOptions> distributed;
};

// What a finished run reports.
struct RunSummary {
  std::string out_dir;
  int64_t iterations = 0;
  int64_t trajectories = 0;
  double wall_s = 0;
  double final_loss = 0;
  double log_z = 0;
  std::optional<ExactMetrics> exact;  // enumerable environments
  std::optional<double> l1;           // the papers' L1 over the last eval.l1_window terminal states
  std::optional<ImportanceEstimate> importance;  // log Z_IS and ELBO of the final policy
  std::optional<GridMetrics> grid;               // terminating density vs R/Z on the env's grid
  std::optional<double> eubo, w2;                // EUBO and W2^2 against exact samples (diffusion)
  int stopped_by_signal = 0;   // nonzero: stop_requested's value; the run is resumable
  int64_t world_size = 1;      // processes of a data-parallel run
  int64_t rank = 0;            // this process's (a rank > 0 reports nothing)
  double allreduce_ms = 0;     // all-reduce time per iteration (world_size > 1)
  std::optional<double> allreduce_wait_ms;  // of it, waiting for the last rank (shared memory only)
  std::string transport;         // the all-reduce's ("shared memory", "Gloo (why)")
  int64_t resumed_from = 0;    // the checkpoint's iteration of a resumed run (0: a fresh one)

  // This process's training time per iteration it ran: its wall time less the evaluations, the
  // model saves and the checkpoints (eval_s), which `ms_per_iteration` includes.
  double train_ms_per_iteration = 0;
  double eval_s = 0;  // this process's time in evaluations, model saves and checkpoints

  double ms_per_iteration() const { return iterations ? 1e3 * wall_s / static_cast<double>(iterations) : 0; }
  // Multi-line human-readable summary.
  std::string report() const;
};

// Trains as `config` says, writing the run directory: config.toml, log.h5 (io/hdf5_log.h),
// model.pt at every evaluation, and checkpoint.pt (every checkpoint.seconds / checkpoint.every,
// on a stop and at the end: the estimators, every optimiser, the generators, the L1 window, the top-K
// states, the counters). Throws ConfigError for a bad config or an output directory that
// already holds a run (before anything is written), for a checkpoint that does not fit the
// config, LogError for a log that cannot be appended to, and other exceptions for failures
// while running.
RunSummary train(const RunConfig& config, const TrainOptions& options, const Registry& registry);

// The config of the run in `dir` (DIR/config.toml) for resuming it, with `sets` overrides of the
// keys a resumed run may change (train.iterations, threads, checkpoint.every,
// checkpoint.seconds, log.flush_seconds); ConfigError for any other key.
RunConfig resume_config(const std::string& dir, const std::vector<std::string>& sets, const Registry& registry);

// Exact metrics of the policy saved in run directory `dir` (DIR/config.toml and DIR/model.pt).
struct EvalResult {
  int64_t iteration = 0;
  std::string env;
  std::optional<ExactMetrics> exact;
  std::optional<ImportanceEstimate> importance;  // non-enumerable envs: log Z_IS, ELBO
  std::optional<double> log_z_exact;             // the env's exact log Z, where known
  std::optional<GridMetrics> grid;               // envs with a terminal grid (eval.grid > 0)
  // JSON object with every field.
  std::string json() const;
  std::string report() const;
};
// `eval_sets` ("eval.key=value") change the evaluation's own keys (eval.density_samples,
// eval.is_samples, ...) for this call only; any other key is a ConfigError, since the saved model
// was trained with the rest.
// A conditional run is evaluated at `condition` (its parameters comma-separated: "1.5"), which it
// needs; an unconditional one refuses a condition (ConfigError naming --condition).
EvalResult evaluate_run(const std::string& dir, const Registry& registry,
                        const std::vector<std::string>& eval_sets = {}, const std::string& condition = "");

// Terminal samples of the policy saved in run directory `dir`, written to `out` (an HDF5 file in
// the log format: the run's root attributes, /samples/{states_discrete, states_continuous,
// log_reward, length, trajectory_log_pf} and the terminating probability of each sample:
// log_terminating_prob, exact, on enumerable envs; log_terminating_density_is, importance-sampled
// through P_B with eval.density_samples backward trajectories per sample, on the others).
struct SampleResult {
  std::string out;
  int64_t count = 0;
  int64_t iteration = 0;       // of the model sampled
  double mean_log_reward = 0;
  double max_log_reward = 0;
  int stopped_by_signal = 0;   // the signal `stop_requested` returned: nothing was written
  std::string report() const;
};
// Throws ConfigError for a bad directory, model, count or an `out` that exists (never
// overwritten); `out` empty: DIR/samples.h5, or DIR/samples-2.h5, ... when taken. A conditional
// run samples at `condition` ("1.5"; its condition columns in states_continuous), or, when it is
// empty, at a condition drawn per sample from the trained distribution.
// The samples are written to `<out>.<pid>.partial` and linked to `out` once complete, so `out`
// exists only whole: a failure or a stop (`stop_requested`, asked between chunks of 4,096
// samples, returns a signal number or 0) removes the partial file, and one left by SIGKILL does
// not block the name.
SampleResult sample_run(const std::string& dir, int64_t count, const std::string& out, uint64_t seed,
                        const Registry& registry, const std::string& condition = "",
                        const std::function<int()>& stop_requested = {});

}  // namespace gfn

// `gfn analyse`: summaries, CSV tables and gnuplot PNGs of run logs (io/hdf5_log.h schema),
// read only through Hdf5LogReader. Light header: no LibTorch, no hdf5.h.
//
// Per run: iterations, trajectories, wall time, ms per iteration (last wall_s / last
// iteration), trajectories per second (last trajectories / last wall_s), the final loss and
// log Z (last /train row), and for each /eval column its final value (last row) and its best
// value by best_rule(). Runs whose config text is the same once its top-level `name` and `seed`
// lines are dropped form a group (the seeds of one config); a group of >= 2 runs gets the mean
// and sample standard deviation (n - 1) of its runs' final and best values.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace gfn {

struct AnalyseOptions {
  bool json = false;                // print one JSON object instead of the table
  std::string csv_dir;              // when set: write CSV tables there (created if missing)
  std::string plot_dir;             // when set: write PNG plots there through gnuplot (created if missing)
  std::string gnuplot = "gnuplot";  // the gnuplot program: a name looked up on PATH, or a path
  int64_t max_plot_points = 2000;   // points per curve in the plots (>= 2); longer curves are thinned
};

// How the best value of an /eval column is chosen.
enum class BestRule {
  kMin,           // errors and divergences: tv, jsd, kl, l1, *_error, grid_* (but grid_mass), *loss*
  kMax,           // scores: elbo, ess, top_k_*, *_reward
  kClosestToOne,  // grid_mass: the probability mass on the grid
  kNone,          // estimates (log_z, log_z_exact, log_z_is) and unknown columns: no best value
};

// The rule for the /eval column `metric` (see BestRule), and its name ("min", "max",
// "closest to 1", "none").
BestRule best_rule(const std::string& metric);
const char* best_rule_name(BestRule rule);

// The final and best value of one /eval column of a run.
struct LogMetricSummary {
  std::string name;
  BestRule rule = BestRule::kNone;
  double final_value = 0;       // value of the last row (NaN when that is NaN)
  double best = 0;              // best finite value by `rule`; NaN for kNone or no finite value
  int64_t best_iteration = -1;  // /eval/iteration of the best row; -1 when there is none
};

// The summary of one log.
struct LogRunSummary {
  std::string path;   // the log file read
  std::string label;  // the directory holding log.h5 (else the file's stem), made unique
  std::string name;   // the config's top-level `name` ("" when missing)
  std::string env, objective;
  int64_t seed = 0;
  int64_t train_rows = 0, eval_rows = 0;
  int64_t iterations = 0;                  // last /train/iteration (0 without rows)
  int64_t trajectories = 0;                // last /train/trajectories (0 without rows)
  double wall_s = 0;                       // last /train/wall_s (0 without rows)
  double ms_per_iteration = 0;             // 1000 wall_s / iterations (NaN when iterations = 0)
  double trajectories_per_s = 0;           // trajectories / wall_s (NaN when wall_s = 0)
  double final_loss = 0, final_log_z = 0;  // last /train row (NaN without rows)
  std::vector<LogMetricSummary> metrics;   // one per /eval column but iteration, trajectories, wall_s
};

// Mean and sample standard deviation over a group's runs (NaN as soon as a run's value is NaN;
// std over n - 1).
struct LogGroupStat {
  std::string name;  // "final_loss", "final_log_z", "ms_per_iteration", "trajectories_per_s", or an
                     // /eval column
  double mean = 0, std = 0;
};

// Runs of one config that differ only in `name` and `seed`.
struct LogGroupSummary {
  std::string label;                       // the config's name (made unique), else the first run's label
  std::vector<size_t> runs;                // indices into AnalyseReport::runs, in input order
  std::vector<LogGroupStat> final_values;  // final_loss, final_log_z, ms_per_iteration, trajectories_per_s, then
                                           // each /eval column every run of the group has
  std::vector<LogGroupStat> best_values;   // each such /eval column with a best rule
};

struct AnalyseReport {
  std::vector<LogRunSummary> runs;      // in the order of the paths
  std::vector<LogGroupSummary> groups;  // groups of >= 2 runs, in the order of their first run
};

// Reads the logs at `paths` (files, or run directories holding log.h5) and summarises them. A
// path that names a log given before (the same file by another spelling or link, or a run
// directory and its log.h5) is dropped, so that no run counts twice in a group.
// Throws LogError ("<file>: <problem>") for a missing, truncated, corrupted or non-gfn file and
// ConfigError for an empty `paths`.
AnalyseReport summarise_logs(const std::vector<std::string>& paths);

// Analyses the logs at `paths` and prints the summary table (or, with options.json, one JSON
// object) to `out`; writes the CSV tables and the plots (each PNG beside its gnuplot script
// .gp and data .dat) the options ask for. Every input file is read before anything is written.
// A repeated log is dropped as by summarise_logs, with a note ("B: the same log as A (...),
// counted once").
// Throws LogError ("<file>: <problem>") for a missing, truncated, corrupted or non-gfn file,
// ConfigError for bad options (an output directory that cannot be created, --plot without
// gnuplot), std::runtime_error when writing a file or running gnuplot fails.
void analyse(const std::vector<std::string>& paths, const AnalyseOptions& options, std::ostream& out);

}  // namespace gfn

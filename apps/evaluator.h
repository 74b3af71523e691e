// Evaluation during a run: the /eval columns of the env at hand (declared and written from one
// list of metric groups), the /grid group of 2-D envs, the L1 window and the top-K states it
// keeps from training, and what the last evaluation found. Internal to the library: not installed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/archive.h"
#include "core/condition.h"
#include "core/estimator.h"
#include "core/evaluation.h"
#include "core/options.h"
#include "core/tabular.h"
#include "core/trainer.h"
#include "io/hdf5_log.h"

namespace gfn {

class CheckpointReader;

struct EvalOptions : KeyedOptions<EvalOptions> {
  int64_t every = 500;              // evaluation, model save and log flush every N iterations (0: at the end only)
  int64_t l1_window = 200000;       // terminal states in the empirical distribution of the papers' L1
  int64_t is_samples = 4096;        // trajectories of the importance-sampled log Z (non-enumerable envs; 0: none)
  int64_t grid = 100;               // cells per dimension of the terminal grid (0: off)
  int64_t density_samples = 16;     // backward trajectories per grid cell
  int64_t top_k = 100;              // distinct best terminal states kept (envs without continuous coordinates; 0: off)
  int64_t env_samples = 4096;       // on-policy samples for the env's own metrics
  int64_t samples = 1000;           // terminal samples of the final policy written to /samples
  int64_t exact_samples = 2000;     // K exact target samples and K model samples for EUBO and W2^2 (envs with exact samples; 0: off)

  // The config keys (eval.*).
  static const OptionTable<EvalOptions>& keys();
};

// What the last evaluation found.
struct EvalSummary {
  std::optional<ExactMetrics> exact;             // enumerable envs
  std::optional<double> l1;                      // the papers' L1 over the last l1_window terminal states
  std::optional<ImportanceEstimate> importance;  // log Z_IS and ELBO
  std::optional<double> eubo, w2;                // EUBO and squared 2-Wasserstein distance (exact samples)
  std::optional<GridMetrics> grid;               // terminating density vs R/Z on the env's grid
  double tv = std::nan("");                      // exact TV (NaN where there is none)
};

class Evaluator {
 public:
  // `table`: the env's state tables (enumerable envs: exact metrics), else null. Evaluation
  // draws come from their own generator (the run's evaluation stream, `seed`).
  Evaluator(const Env& env, Estimators& estimators, const StateTable* table, const EvalOptions& options,
            uint64_t seed, const torch::Device& device, Execution execution);
  ~Evaluator();

  // Declares the /eval columns and writes /grid's fixed datasets (before the log's first flush).
  void declare(Hdf5Log& log);
  // Keeps what evaluations read from training: terminal states for the L1 and the top-K.
  void observe(const IterationResult& r);
  // Whether iteration `iteration` evaluates (every eval.every, and the last).
  bool due(int64_t iteration, bool last) const;
  // One /eval row (and a /grid row) for iteration `iteration`; returns its progress line.
  std::string evaluate(Hdf5Log& log, int64_t iteration, int64_t trajectories, double wall_s);
  const EvalSummary& last() const { return last_; }
  // The evaluation generator, the L1 window and the top-K states ("eval.*" entries).
  void write_state(torch::serialize::OutputArchive& archive);
  void read_state(CheckpointReader& checkpoint);

  struct Grid2d;
  // One evaluation in the making: the row's values and the progress text.
  struct Point;

 private:
  // A group of /eval columns and how one evaluation computes them (values in column order). A
  // group without columns is the env's own metrics, named by what Env::sample_metrics returns.
  struct Group {
    std::vector<std::string> columns;
    std::function<void(Point&)> compute;
  };
  void add_groups();
  void add_env_groups();
  void add_condition_groups();

  const Env& env_;
  Estimators& estimators_;
  const StateTable* table_;
  EvalOptions options_;
  torch::Device device_;
  Execution execution_;
  torch::Generator generator_;
  std::vector<Group> groups_;
  std::optional<TerminalGrid> grid_;      // continuous envs with a terminal grid
  std::unique_ptr<Grid2d> grid2d_;        // 2-D envs: the /grid group
  std::optional<EmpiricalL1> l1_;
  std::optional<TopK> top_;
  std::vector<double> target_;            // pi = R/Z on the table's states
  std::vector<SampleMatrixSpec> matrix_specs_;  // the env's sample matrices (/matrices)
  std::vector<uint8_t> modes_found_;      // envs with modes: which were reached in training
  std::optional<States> test_set_;        // envs with a test set
  // a conditional env (core/condition.h): the env at each of condition.eval's conditions, with
  // its state tables where it enumerates
  struct AtCondition;
  const ConditionedEnv* conditional_ = nullptr;
  std::vector<AtCondition> conditions_;
  EvalSummary last_;
};

}  // namespace gfn

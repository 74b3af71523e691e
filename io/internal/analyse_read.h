// `gfn analyse`, reading (io/analyse.h): a run's log read through the schema by Hdf5LogReader
// into the tables, samples and plot content the other parts use. Internal to the library: not
// installed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "io/analyse.h"

namespace gfn::analysis {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Whether a /train or /eval column is an axis (iteration, trajectories, wall_s), not a metric.
bool is_axis_column(const std::string& name);

// A table of 1-D columns (/train or /eval), all of `rows` rows (the shortest column: a log
// read while its writer extends it may briefly hold columns of different lengths).
struct Table {
  std::vector<std::string> names;            // iteration, trajectories, wall_s first, then sorted
  std::vector<std::vector<double>> columns;  // [column][row]
  size_t rows = 0;

  // The column `name`; null when missing.
  const std::vector<double>* find(const std::string& name) const;
  // The last row of `name`; NaN when the column is missing or the table empty.
  double last(const std::string& name) const;
  // The x axis of the curves: trajectories seen, else the iteration (null when neither).
  const std::vector<double>* x() const;
};

// A sample matrix of the log (/matrices/<name>, Env::sample_matrix_specs): its last evaluation
// beside the exact value where logged.
struct MatrixContent {
  std::string name;
  int64_t rows = 0, cols = 0;
  std::vector<double> last;    // [rows * cols] row-major, the last evaluation
  std::vector<double> exact;   // [rows * cols] /matrices/<name>_exact, or empty
  int64_t iteration = -1;      // /matrices/iteration of `last`; -1 when unknown
};

// What a log holds for the plots of its own (read only for --plot); each part empty when the
// log lacks it. Which plots these make is decided by content alone (analyse_plots.h).
struct PlotContent {
  std::vector<double> grid_x, grid_y;    // [nx], [ny] /grid/x, /grid/y cell centres
  std::vector<double> grid_log_reward;   // [nx * ny] /grid/log_reward, row-major
  std::vector<double> grid_terminating;  // [nx * ny] the last row of /grid/terminating
  int64_t grid_iteration = -1;           // /grid/iteration of that row; -1 when unknown
  std::vector<double> sample_states;     // [M * sample_dim] terminal samples, row-major
  int64_t sample_dim = 0;                // 1 or 2 (columns of sample_states); 0: no such samples
  bool samples_discrete = false;         // they are /samples/states_discrete (integer cells)
  std::vector<MatrixContent> matrices;   // /matrices
};

// Everything read from one log.
struct RunData {
  LogRunSummary summary;                  // path, label, name, env, objective, seed here; numbers by summarise_run
  std::string group_key;                  // the config without its top-level name and seed lines
  Table train, eval;                      // /train, /eval
  std::vector<double> sample_log_reward;  // [M] /samples/log_reward
  PlotContent plot_content;               // read only for plots
};

// Reads the logs at `paths` (files, or directories holding log.h5) and labels them (the
// directory holding log.h5, else the file's stem, with parents added until unique); the plot
// content only when `with_plots`. Throws ConfigError for an empty `paths` and LogError naming
// the file for every problem of a file.
std::vector<RunData> load_runs(const std::vector<std::string>& paths, bool with_plots);

}  // namespace gfn::analysis

// `gfn analyse --plot`, the plots (io/analyse.h): gnuplot scripts with their data, each drawn
// into a PNG beside them. Which plots a run gets depends on what its log holds, never on the
// env's name:
//   train.png       /train loss and log Z of every run (a group: mean line, mean ± std band)
//   eval.png        the /eval metrics any run has, one panel each
//   <label>_grid    /grid: R / Z (grid/log_reward) beside the last terminating distribution
//                   (grid/terminating); without one, a 2-D histogram of terminal samples with 2
//                   coordinates (/samples/states_continuous, else states_discrete, [M, 2])
//   <label>_samples a histogram of terminal samples with 1 coordinate ([M, 1])
//   <label>_<name>  /matrices/<name>: a sample matrix at the last evaluation beside
//                   /matrices/<name>_exact (Env::sample_matrix_specs; the edge marginals)
//   log_reward.png  /samples/log_reward of every run that has it
// Internal to the library: not installed.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "io/analyse.h"
#include "io/internal/analyse_read.h"

namespace gfn::analysis {

// Writes the data (.dat) and script (.gp) of every plot the runs call for into `dir` (read
// with their plot content) and draws each with `gnuplot` (an absolute path); returns the PNGs
// written. Curves keep at most `max_points` (>= 2) points. Runs left out of a plot add a line
// to `notes`. Throws std::runtime_error when a file cannot be written or gnuplot fails.
std::vector<std::string> write_plots(const std::filesystem::path& dir, const std::string& gnuplot,
                                     const std::vector<RunData>& runs, const AnalyseReport& report, size_t max_points,
                                     std::vector<std::string>& notes);

}  // namespace gfn::analysis

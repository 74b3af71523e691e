// `gfn analyse`, statistics (io/analyse.h): a run's summary numbers and best values, groups of
// seeds with their mean and std, and the histograms the plots draw. Internal to the library: not
// installed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/analyse.h"
#include "io/internal/analyse_read.h"

namespace gfn::analysis {

// Fills the numbers of run.summary (rows, iterations, rates, final loss and log Z, the final
// and best value of each /eval metric) from its tables.
void summarise_run(RunData& run);

// Mean and sample std (n - 1) of `values`: NaN propagates; std 0 for one value; mean NaN for
// none.
LogGroupStat stat(const std::string& name, const std::vector<double>& values);

// The report of summarised runs: their summaries, and the groups of >= 2 runs with equal group
// keys (the seeds of one config) with their statistics.
AnalyseReport report_of(const std::vector<RunData>& runs);

// Cells of equal width along one axis: cell i covers [origin + i width, origin + (i + 1) width).
struct Bins {
  double origin = 0;  // the left edge of cell 0
  double width = 1;   // > 0
  int64_t count = 1;  // >= 1

  // The cell of `v` (finite), values outside going to the edge cells.
  int64_t of(double v) const;
  // [count] the cells' centres.
  std::vector<double> centres() const;
};

// Bins over the finite values of `values` (only those at index offset, offset + stride, ...),
// the range widened to include 0 (and 1 unless `discrete`): integer cells of width 1 centred on
// the integers when `discrete` (at most 4096), else `cells` cells.
Bins span(const std::vector<double>& values, size_t stride, size_t offset, bool discrete, int64_t cells);

// [bins.count] the fraction of the finite values of `values` in each cell; their number in
// `finite` when given.
std::vector<double> histogram(const std::vector<double>& values, const Bins& bins, double* finite = nullptr);

// [bx.count * by.count] (row-major, x first) the fraction of the rows of `points` ([N, 2],
// row-major) with both coordinates finite in each cell.
std::vector<double> histogram_2d(const std::vector<double>& points, const Bins& bx, const Bins& by);

// exp(v - max v) normalised to sum 1, non-finite entries 0: R / Z from log R on a grid.
std::vector<double> normalised_exp(const std::vector<double>& log_values);

}  // namespace gfn::analysis

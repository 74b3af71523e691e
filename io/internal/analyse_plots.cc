#include "io/internal/analyse_plots.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "io/internal/analyse_gnuplot.h"
#include "io/internal/analyse_stats.h"
#include "io/internal/analyse_write.h"

namespace gfn::analysis {

namespace {

namespace fs = std::filesystem;

using Buffer = fmt::memory_buffer;

// the /eval columns drawn in eval.png, in this order (those present in some run)
const std::vector<std::pair<std::string, std::string>> kEvalPlotMetrics = {
    {"tv", "total variation distance"},
    {"jsd", "Jensen-Shannon divergence"},
    {"l1", "L1 (papers' scale)"},
    {"kl", "KL divergence"},
    {"log_z_error", "|log Z - log Z exact|"},
    {"log_z_is_error", "|log Z IS - log Z exact|"},
    {"elbo", "ELBO"},
    {"grid_jsd", "grid Jensen-Shannon divergence"},
    {"top_k_mean_reward", "mean reward of the top K"},
    {"inclusion_error", "inclusion error"},
};

// cells per axis of a histogram of continuous terminal samples (2-D: per side)
constexpr int64_t kSampleCells2d = 20;
constexpr int64_t kSampleBins1d = 50;
// bins of the log-reward histogram
constexpr int64_t kRewardBins = 50;

// gnuplot's single-quoted string ('' is a quote; line breaks become spaces)
std::string gp(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : (c == '\n' || c == '\r') ? std::string(" ") : std::string(1, c);
  return q + "'";
}

// The start of every script: the PNG terminal (pngcairo, else libgd's png) and the output.
std::string gp_header(const fs::path& png, int width, int height) {
  return fmt::format(
      "# written by `gfn analyse`; run again with: gnuplot {}\n"
      "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {{\n"
      "  set terminal pngcairo noenhanced size {},{} font ',10'\n"
      "}} else {{\n"
      "  set terminal png noenhanced size {},{}\n"
      "}}\n"
      "set output {}\n"
      "set grid\n",
      gp((png.parent_path() / (png.stem().string() + ".gp")).string()), width, height, width, height, gp(png.string()));
}

// Writes `stem`.dat and `stem`.gp into `dir`; returns the script's path.
fs::path write_plot_files(const fs::path& dir, const std::string& stem, const Buffer& data, const std::string& script) {
  write_file(dir / (stem + ".dat"), std::string_view(data.data(), data.size()));
  const fs::path script_path = dir / (stem + ".gp");
  write_file(script_path, script);
  return script_path;
}

// Row indices keeping at most `max_points` of `n` rows: evenly spaced, the last row included.
std::vector<size_t> thin(size_t n, size_t max_points) {
  std::vector<size_t> rows;
  if (n == 0) return rows;
  const size_t stride = n <= max_points ? 1 : (n - 1 + max_points - 2) / (max_points - 1);
  for (size_t r = 0; r < n; r += stride) rows.push_back(r);
  if (rows.back() != n - 1) rows.push_back(n - 1);
  return rows;
}

// ---------------------------------------------------------------------------------------------
// curves (train.png, eval.png)

// One curve of a plot: a run, or a group's mean with its mean ± std band, of each metric.
struct Curve {
  std::string title;
  bool band = false;                                        // a group: draw the band lo..hi
  std::vector<double> x;                                    // [rows] trajectories seen (else iterations)
  std::map<std::string, std::vector<double>> mean, lo, hi;  // metric -> [rows]
};

using TableOf = std::function<const Table&(const RunData&)>;

// The curve of the runs `members` (with rows) over their first `rows` rows, thinned.
Curve make_curve(const std::vector<RunData>& runs, const std::vector<size_t>& members, size_t rows,
                 const std::string& title, const TableOf& table_of, const std::vector<std::string>& metrics,
                 size_t max_points) {
  Curve c;
  c.title = members.size() > 1 ? fmt::format("{} (mean ± std of {} seeds)", title, members.size()) : title;
  c.band = members.size() > 1;
  const std::vector<size_t> kept = thin(rows, max_points);
  const std::vector<double>* x = table_of(runs[members[0]]).x();
  for (size_t r : kept) c.x.push_back(x != nullptr ? (*x)[r] : static_cast<double>(r));
  for (const std::string& metric : metrics) {
    std::vector<const std::vector<double>*> columns;
    for (size_t m : members)
      if (const std::vector<double>* col = table_of(runs[m]).find(metric)) columns.push_back(col);
    if (columns.empty()) continue;
    std::vector<double>&mean = c.mean[metric], &lo = c.lo[metric], &hi = c.hi[metric];
    std::vector<double> finite;
    for (size_t r : kept) {
      finite.clear();
      for (const std::vector<double>* col : columns)
        if (std::isfinite((*col)[r])) finite.push_back((*col)[r]);
      const LogGroupStat row = stat(metric, finite);  // mean NaN when none is finite
      mean.push_back(row.mean);
      lo.push_back(row.mean - row.std);
      hi.push_back(row.mean + row.std);
    }
  }
  return c;
}

// The curves of `metrics` in the tables picked by `table_of` (train or eval): one per run that
// is in no group, one per group (its runs aligned by row over their common rows; mean and std
// over the finite values of a row), each thinned to `max_points` rows. Runs without rows are
// skipped with a note.
std::vector<Curve> make_curves(const std::vector<RunData>& runs, const AnalyseReport& report, const TableOf& table_of,
                               const std::vector<std::string>& metrics, size_t max_points, const char* what,
                               std::vector<std::string>& notes) {
  std::vector<int> group_of(runs.size(), -1);
  for (size_t g = 0; g < report.groups.size(); ++g)
    for (size_t r : report.groups[g].runs) group_of[r] = static_cast<int>(g);
  std::vector<Curve> curves;
  std::vector<bool> done(report.groups.size(), false);
  for (size_t i = 0; i < runs.size(); ++i) {
    std::vector<size_t> members{i};
    std::string title = runs[i].summary.label;
    if (group_of[i] >= 0) {
      if (done[group_of[i]]) continue;
      done[group_of[i]] = true;
      const LogGroupSummary& g = report.groups[group_of[i]];
      members = g.runs;
      title = g.label;
    }
    // the runs with rows, aligned over their common rows
    members.erase(std::remove_if(members.begin(), members.end(), [&](size_t m) { return table_of(runs[m]).rows == 0; }),
                  members.end());
    size_t rows = members.empty() ? 0 : std::numeric_limits<size_t>::max();
    for (size_t m : members) rows = std::min(rows, table_of(runs[m]).rows);
    if (rows == 0) {
      notes.push_back(fmt::format("{}: no {} rows, left out of the {} plot", title, what, what));
      continue;
    }
    curves.push_back(make_curve(runs, members, rows, title, table_of, metrics, max_points));
  }
  return curves;
}

// A panel of a curve plot: `metric` of every curve that has it (and `dashed`, drawn dashed in
// the same colour, e.g. log_z_exact beside log_z).
struct Panel {
  std::string metric, title, ylabel, dashed;
};

// The data of a curve plot: one block per curve: x, then mean lo hi of each of `columns`.
Buffer curve_data(const std::vector<Curve>& curves, const std::vector<std::string>& columns) {
  Buffer b;
  for (size_t k = 0; k < curves.size(); ++k) {
    const Curve& c = curves[k];
    fmt::format_to(std::back_inserter(b), "{}# block {}: {}\n# x", k > 0 ? "\n\n" : "", k, c.title);
    for (const std::string& m : columns) fmt::format_to(std::back_inserter(b), " {0} {0}_lo {0}_hi", m);
    b.push_back('\n');
    for (size_t r = 0; r < c.x.size(); ++r) {
      append_number(b, c.x[r]);
      for (const std::string& m : columns)
        for (const auto* series : {&c.mean, &c.lo, &c.hi}) {
          b.push_back(' ');
          const auto it = series->find(m);
          append_number(b, it != series->end() ? it->second[r] : kNaN);
        }
      b.push_back('\n');
    }
  }
  return b;
}

// Whether curve c has a finite value of metric m.
bool has_finite(const Curve& c, const std::string& m) {
  const auto it = c.mean.find(m);
  return it != c.mean.end() &&
         std::any_of(it->second.begin(), it->second.end(), [](double v) { return std::isfinite(v); });
}

// The gnuplot commands of one panel reading `data` (the metric's mean in column col_of(m));
// nothing when no curve has a finite value. Log-scale y for a metric of best rule kMin whose
// values are all positive.
std::optional<std::string> panel_body(const Panel& p, const std::vector<Curve>& curves, const std::string& data,
                                      const std::function<int(const std::string&)>& col_of) {
  // errors and divergences span decades: a log scale when all are positive
  const bool any = std::any_of(curves.begin(), curves.end(), [&](const Curve& c) { return has_finite(c, p.metric); });
  if (!any) return std::nullopt;
  bool positive = true;
  for (const Curve& c : curves)
    for (const std::string& m : {p.metric, p.dashed})
      if (const auto it = c.mean.find(m); it != c.mean.end())
        for (double v : it->second) positive = positive && (!std::isfinite(v) || v > 0);
  const bool log_y = positive && best_rule(p.metric) == BestRule::kMin;

  std::vector<std::string> parts;
  for (size_t k = 0; k < curves.size(); ++k) {
    const Curve& c = curves[k];
    const int col = col_of(p.metric);
    const std::string style = c.x.size() <= 50 ? "linespoints pt 7 ps 0.5" : "lines";
    if (has_finite(c, p.metric)) {
      // on a log scale a band reaching 0 stops at a tenth of the mean
      if (c.band)
        parts.push_back(fmt::format(
            "{} index {} using 1:{}:{} with filledcurves fs transparent solid 0.2 noborder lc {} notitle", data, k,
            log_y ? fmt::format("(${0} > 0 ? ${0} : ${1} / 10)", col + 1, col) : std::to_string(col + 1), col + 2,
            k + 1));
      parts.push_back(
          fmt::format("{} index {} using 1:{} with {} lw 1.5 lc {} title {}", data, k, col, style, k + 1, gp(c.title)));
    }
    if (!p.dashed.empty() && has_finite(c, p.dashed))
      parts.push_back(fmt::format("{} index {} using 1:{} with lines dt 2 lw 1.5 lc {} title {}", data, k,
                                  col_of(p.dashed), k + 1, gp(c.title + ": " + p.dashed)));
  }
  return fmt::format("set title {}\nset ylabel {}\n{}plot {}\n", gp(p.title), gp(p.ylabel),
                     log_y ? "set logscale y\n" : "unset logscale y\n", fmt::join(parts, ", \\\n     "));
}

// Writes `stem`.dat and `stem`.gp: a grid of panels, one per entry of `panels` that has a finite
// value; returns the script's path, nothing when no panel has one.
std::optional<fs::path> write_curve_plot(const fs::path& dir, const std::string& stem, const std::string& title,
                                         const std::vector<Panel>& panels, const std::vector<Curve>& curves,
                                         const std::string& xlabel) {
  // the data: columns 1 (x), then 3 per metric
  std::vector<std::string> columns;
  for (const Panel& p : panels)
    for (const std::string& m : {p.metric, p.dashed})
      if (!m.empty()) columns.push_back(m);
  auto col_of = [&](const std::string& m) {
    return 2 + 3 * static_cast<int>(std::find(columns.begin(), columns.end(), m) - columns.begin());
  };
  std::vector<std::string> bodies;
  for (const Panel& p : panels)
    if (auto body = panel_body(p, curves, gp((dir / (stem + ".dat")).string()), col_of)) bodies.push_back(*body);
  if (bodies.empty()) return std::nullopt;

  // the script: a grid of panels
  const int n = static_cast<int>(bodies.size());
  const int cols = n <= 2 ? n : n <= 4 ? 2 : 3;
  const int rows = (n + cols - 1) / cols;
  std::string script = gp_header(dir / (stem + ".png"), 600 * cols, 420 * rows);
  script += fmt::format(
      "set xlabel {}\nset key top right font ',8' samplen 2\nset format y '%g'\n"
      "set multiplot layout {},{} title {}\n",
      gp(xlabel), rows, cols, gp(title));
  for (const std::string& body : bodies) script += body;
  script += "unset multiplot\n";
  return write_plot_files(dir, stem, curve_data(curves, columns), script);
}

// ---------------------------------------------------------------------------------------------
// a run's own plots (by content)

// A map on a 2-D grid of cells: values[i * y.size() + j] belongs to (x[i], y[j]).
struct Heatmap {
  std::string title;
  std::vector<double> x, y;    // [nx], [ny] cell centres
  std::vector<double> values;  // [nx * ny] probabilities
};

// The maps of a run's grid plot: R / Z from /grid beside the last terminating distribution,
// else beside a 2-D histogram of the terminal samples; either may be missing.
std::vector<Heatmap> grid_maps(const PlotContent& c) {
  std::vector<Heatmap> maps;
  if (!c.grid_log_reward.empty())
    maps.push_back({"reward R(x) / Z on the grid", c.grid_x, c.grid_y, normalised_exp(c.grid_log_reward)});
  if (!c.grid_terminating.empty()) {
    std::string title = "terminating distribution of the policy";
    if (c.grid_iteration >= 0) title += fmt::format(" at iteration {}", c.grid_iteration);
    maps.push_back({title, c.grid_x, c.grid_y, c.grid_terminating});
  } else if (c.sample_dim == 2) {
    const Bins bins = span(c.sample_states, 1, 0, c.samples_discrete, kSampleCells2d);  // one square grid
    maps.push_back({fmt::format("histogram of {} terminal samples", c.sample_states.size() / 2), bins.centres(),
                    bins.centres(), histogram_2d(c.sample_states, bins, bins)});
  }
  return maps;
}

// A sample matrix (/matrices/<name>) as heatmaps: its last evaluation beside the exact value,
// cell (i, j) at x = i, y = j.
std::vector<Heatmap> matrix_maps(const MatrixContent& m) {
  std::vector<double> rows(m.rows), cols(m.cols);
  std::iota(rows.begin(), rows.end(), 0.0);
  std::iota(cols.begin(), cols.end(), 0.0);
  std::string title = m.name + " of the samples";
  if (m.iteration >= 0) title += fmt::format(" at iteration {}", m.iteration);
  std::vector<Heatmap> maps{{title, rows, cols, m.last}};
  if (!m.exact.empty()) maps.push_back({m.name + ", exact", rows, cols, m.exact});
  return maps;
}

// Writes the heatmaps of one run side by side, on one colour scale.
fs::path write_grid_plot(const fs::path& dir, const std::string& stem, const std::string& label,
                         const std::vector<Heatmap>& maps, const std::string& xlabel = "x1",
                         const std::string& ylabel = "x2") {
  const fs::path dat = dir / (stem + ".dat");
  Buffer b;
  double top = 0;
  for (size_t k = 0; k < maps.size(); ++k) {
    const Heatmap& h = maps[k];
    fmt::format_to(std::back_inserter(b), "{}# block {}: {}\n# x y probability\n", k > 0 ? "\n\n" : "", k, h.title);
    for (size_t i = 0; i < h.x.size(); ++i) {
      for (size_t j = 0; j < h.y.size(); ++j) {
        const double v = h.values[i * h.y.size() + j];
        if (std::isfinite(v)) top = std::max(top, v);
        fmt::format_to(std::back_inserter(b), "{} {} ", h.x[i], h.y[j]);
        append_number(b, v);
        b.push_back('\n');
      }
      b.push_back('\n');
    }
  }
  const int n = static_cast<int>(maps.size());
  std::string script = gp_header(dir / (stem + ".png"), 560 * n, 520);
  script += fmt::format(
      "unset grid\nset size ratio -1\nset xlabel {}\nset ylabel {}\nset cblabel 'probability'\n"
      "unset colorbox\n"
      "set cbrange [0:{}]\nset autoscale fix\n"
      "set palette defined (0 '#440154', 1 '#3b528b', 2 '#21918c', 3 '#5ec962', 4 '#fde725')\n"
      "set multiplot layout 1,{} title {}\n",
      gp(xlabel), gp(ylabel), top > 0 ? top : 1.0, n, gp(label));
  // one colour scale for both: its bar beside the last panel
  for (size_t k = 0; k < maps.size(); ++k)
    script += fmt::format("set title {}\n{}plot {} index {} using 1:2:3 with image notitle\n", gp(maps[k].title),
                          k + 1 == maps.size() ? "set colorbox\n" : "", gp(dat.string()), k);
  script += "unset multiplot\n";
  return write_plot_files(dir, stem, b, script);
}

// Histograms over common bins, overlaid as translucent boxes.
struct HistogramPlot {
  std::string title, xlabel;  // of the plot
  std::string column;         // the name of the value column in the data
  Bins bins;
  struct Series {
    std::string title;
    int colour = 1;                 // gnuplot's line colour index
    std::vector<double> fractions;  // [bins.count]
  };
  std::vector<Series> series;
};

fs::path write_histogram_plot(const fs::path& dir, const std::string& stem, const HistogramPlot& h) {
  const fs::path dat = dir / (stem + ".dat");
  const std::vector<double> centres = h.bins.centres();
  Buffer b;
  std::vector<std::string> parts;
  for (size_t k = 0; k < h.series.size(); ++k) {
    const HistogramPlot::Series& s = h.series[k];
    fmt::format_to(std::back_inserter(b), "{}# block {}: {}\n# {} fraction\n", k > 0 ? "\n\n" : "", k, s.title,
                   h.column);
    for (size_t i = 0; i < centres.size(); ++i)
      fmt::format_to(std::back_inserter(b), "{} {}\n", centres[i], s.fractions[i]);
    parts.push_back(fmt::format("{} index {} using 1:2 with boxes fs transparent solid 0.35 noborder lc {} title {}",
                                gp(dat.string()), k, s.colour, gp(s.title)));
  }
  std::string script = gp_header(dir / (stem + ".png"), 900, 560);
  script += fmt::format(
      "set title {}\nset xlabel {}\n"
      "set ylabel 'fraction of samples'\nset boxwidth {}\nset key top left\nset yrange [0:*]\nplot {}\n",
      gp(h.title), gp(h.xlabel), h.bins.width, fmt::join(parts, ", \\\n     "));
  return write_plot_files(dir, stem, b, script);
}

// A histogram of terminal samples with one coordinate.
fs::path write_samples_plot(const fs::path& dir, const std::string& stem, const std::string& label,
                            const PlotContent& c) {
  HistogramPlot h;
  h.title = label;
  h.xlabel = "x1";
  h.column = "x1";
  h.bins = span(c.sample_states, 1, 0, c.samples_discrete, kSampleBins1d);
  double n = 0;
  std::vector<double> fractions = histogram(c.sample_states, h.bins, &n);
  h.series.push_back({fmt::format("histogram of {} terminal samples", n), 1, std::move(fractions)});
  return write_histogram_plot(dir, stem, h);
}

// Writes the plots each run's content calls for (see analyse_plots.h).
void write_run_plots(const fs::path& dir, const std::vector<RunData>& runs, std::vector<fs::path>& scripts) {
  const std::vector<std::string> stems = file_stems(runs);
  for (size_t i = 0; i < runs.size(); ++i) {
    const PlotContent& c = runs[i].plot_content;
    const std::vector<Heatmap> maps = grid_maps(c);
    if (!maps.empty()) scripts.push_back(write_grid_plot(dir, stems[i] + "_grid", runs[i].summary.label, maps));
    if (c.sample_dim == 1)
      scripts.push_back(write_samples_plot(dir, stems[i] + "_samples", runs[i].summary.label, c));
    for (const MatrixContent& m : c.matrices)
      scripts.push_back(write_grid_plot(dir, stems[i] + "_" + m.name, runs[i].summary.label, matrix_maps(m), "row i",
                                        "column j"));
  }
}

// Writes the histogram of /samples/log_reward of every run (common bins, fractions of each
// run's samples).
std::optional<fs::path> write_reward_histogram(const fs::path& dir, const std::vector<RunData>& runs,
                                               std::vector<std::string>& notes) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const RunData& r : runs)
    for (double v : r.sample_log_reward)
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
  if (!(lo <= hi)) {
    notes.push_back("no run has finite /samples/log_reward: no log_reward plot");
    return std::nullopt;
  }
  if (hi - lo < 1e-9) {
    lo -= 0.5;
    hi += 0.5;
  }
  HistogramPlot h;
  h.title = "log-rewards of the terminal samples of the final policy";
  h.xlabel = "log R(x)";
  h.column = "log_reward";
  h.bins = Bins{lo, (hi - lo) / kRewardBins, kRewardBins};
  for (size_t i = 0; i < runs.size(); ++i) {
    double n = 0;
    std::vector<double> fractions = histogram(runs[i].sample_log_reward, h.bins, &n);
    if (n == 0) {
      notes.push_back(
          fmt::format("{}: no /samples/log_reward, left out of the log_reward plot", runs[i].summary.label));
      continue;
    }
    h.series.push_back(
        {fmt::format("{} ({} samples)", runs[i].summary.label, n), static_cast<int>(i + 1), std::move(fractions)});
  }
  return write_histogram_plot(dir, "log_reward", h);
}

}  // namespace

std::vector<std::string> write_plots(const fs::path& dir, const std::string& gnuplot, const std::vector<RunData>& runs,
                                     const AnalyseReport& report, size_t max_points, std::vector<std::string>& notes) {
  std::vector<fs::path> scripts;
  const bool by_trajectories = std::all_of(runs.begin(), runs.end(), [](const RunData& r) {
    return r.train.find("trajectories") != nullptr || r.train.rows == 0;
  });
  const std::string xlabel = by_trajectories ? "trajectories seen" : "trajectories seen (else iterations)";

  // (a) training curves
  const std::vector<Curve> train = make_curves(
      runs, report, [](const RunData& r) -> const Table& { return r.train; }, {"loss", "log_z"}, max_points, "train",
      notes);
  if (auto s = write_curve_plot(dir, "train", "training",
                                {{"loss", "loss", "loss", ""}, {"log_z", "log Z", "log Z", ""}}, train, xlabel))
    scripts.push_back(*s);

  // (b) evaluation curves
  std::vector<Panel> panels;
  std::vector<std::string> metrics;
  auto any_has = [&](const std::string& m) {
    return std::any_of(runs.begin(), runs.end(), [&](const RunData& r) { return r.eval.find(m) != nullptr; });
  };
  for (const auto& [m, title] : kEvalPlotMetrics)
    if (any_has(m)) {
      panels.push_back({m, fmt::format("{}: {}", m, title), m, ""});
      metrics.push_back(m);
    }
  if (any_has("log_z_exact")) {
    panels.push_back({"log_z", "log Z (dashed: exact)", "log Z", "log_z_exact"});
    metrics.insert(metrics.end(), {"log_z", "log_z_exact"});
  }
  if (!panels.empty()) {
    const std::vector<Curve> eval = make_curves(
        runs, report, [](const RunData& r) -> const Table& { return r.eval; }, metrics, max_points, "eval", notes);
    if (auto s = write_curve_plot(dir, "eval", "evaluation", panels, eval, xlabel)) scripts.push_back(*s);
  }

  // (c) each run's own plots, (d) terminal log-rewards
  write_run_plots(dir, runs, scripts);
  if (auto s = write_reward_histogram(dir, runs, notes)) scripts.push_back(*s);

  run_gnuplot(gnuplot, scripts);
  std::vector<std::string> pngs;
  for (const fs::path& s : scripts) pngs.push_back((s.parent_path() / (s.stem().string() + ".png")).string());
  return pngs;
}

}  // namespace gfn::analysis

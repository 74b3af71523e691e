// `gfn analyse`: the entry points. The work is done by the parts in io/internal/: reading the
// logs (analyse_read), their statistics (analyse_stats), the table, JSON and CSV
// (analyse_write), the plots (analyse_plots) and gnuplot (analyse_gnuplot).
#include "io/analyse.h"

#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/params.h"
#include "io/internal/analyse_gnuplot.h"
#include "io/internal/analyse_plots.h"
#include "io/internal/analyse_read.h"
#include "io/internal/analyse_stats.h"
#include "io/internal/analyse_write.h"

namespace gfn {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

namespace fs = std::filesystem;

// The log file an input names: DIR/log.h5 for a directory, else the path itself.
fs::path log_file_of(const std::string& input) {
  std::error_code ec;
  return fs::is_directory(input, ec) ? fs::path(input) / "log.h5" : fs::path(input);
}

// The inputs without repeats: two inputs that name one log (the same file however spelled, a
// run directory and its log.h5, a link and its target) count once, as the first of them, so
// that a run is never averaged with itself as its own seed. One note per input dropped.
std::vector<std::string> distinct_logs(const std::vector<std::string>& paths, std::vector<std::string>* notes) {
  std::vector<std::string> kept;
  std::vector<fs::path> kept_files;  // canonical where it exists
  for (const std::string& p : paths) {
    std::error_code ec;
    fs::path file = fs::weakly_canonical(log_file_of(p), ec);
    if (ec) file = fs::absolute(log_file_of(p), ec).lexically_normal();
    size_t same = kept.size();
    for (size_t i = 0; i < kept.size() && same == kept.size(); ++i) {
      std::error_code eq;
      if (kept_files[i] == file || fs::equivalent(kept_files[i], file, eq)) same = i;  // hard links too
    }
    if (same == kept.size()) {
      kept.push_back(p);
      kept_files.push_back(file);
    } else if (notes != nullptr) {
      notes->push_back(fmt::format("{}: the same log as {} ({}), counted once", p, kept[same], file.string()));
    }
  }
  return kept;
}

// Reads and summarises every log.
std::vector<analysis::RunData> summarised_runs(const std::vector<std::string>& paths, bool with_plots) {
  std::vector<analysis::RunData> runs = analysis::load_runs(paths, with_plots);
  for (analysis::RunData& r : runs) analysis::summarise_run(r);
  return runs;
}

}  // namespace

BestRule best_rule(const std::string& m) {
  if (m == "grid_mass") return BestRule::kClosestToOne;
  if (m == "elbo" || m == "ess" || starts_with(m, "top_k") || ends_with(m, "reward")) return BestRule::kMax;
  if (m == "tv" || m == "jsd" || m == "kl" || m == "l1" || ends_with(m, "_error") || starts_with(m, "grid_") ||
      m.find("loss") != std::string::npos)
    return BestRule::kMin;
  return BestRule::kNone;
}

const char* best_rule_name(BestRule rule) {
  switch (rule) {
    case BestRule::kMin:
      return "min";
    case BestRule::kMax:
      return "max";
    case BestRule::kClosestToOne:
      return "closest to 1";
    case BestRule::kNone:
      return "none";
  }
  return "?";
}

AnalyseReport summarise_logs(const std::vector<std::string>& paths) {
  return analysis::report_of(summarised_runs(distinct_logs(paths, nullptr), false));
}

void analyse(const std::vector<std::string>& paths, const AnalyseOptions& options, std::ostream& out) {
  // options first, then every input, then the outputs
  if (options.max_plot_points < 2)
    throw ConfigError(
        fmt::format("gfn analyse: max_plot_points = {}: expected an integer >= 2", options.max_plot_points));
  std::optional<std::string> gnuplot;
  if (!options.plot_dir.empty()) {
    gnuplot = analysis::find_program(options.gnuplot);
    if (!gnuplot)
      throw ConfigError(fmt::format(
          "--plot {}: gnuplot not found (no executable '{}' on PATH); install the Debian package gnuplot-nox "
          "(apt-get install gnuplot-nox)",
          options.plot_dir, options.gnuplot));
  }
  std::vector<std::string> notes, files;
  const std::vector<analysis::RunData> runs = summarised_runs(distinct_logs(paths, &notes), !options.plot_dir.empty());
  const AnalyseReport report = analysis::report_of(runs);
  for (const analysis::RunData& r : runs)
    if (r.train.rows == 0) notes.push_back(fmt::format("{}: no /train rows yet (0 iterations)", r.summary.label));

  if (!options.csv_dir.empty()) {
    const std::vector<std::string> written =
        analysis::write_csv(analysis::make_dir(options.csv_dir, "--csv"), runs, report);
    files.insert(files.end(), written.begin(), written.end());
  }
  if (gnuplot) {
    const std::vector<std::string> written =
        analysis::write_plots(analysis::make_dir(options.plot_dir, "--plot"), *gnuplot, runs, report,
                              static_cast<size_t>(options.max_plot_points), notes);
    files.insert(files.end(), written.begin(), written.end());
  }

  if (options.json) {
    out << analysis::json_report(report, notes, files);
    return;
  }
  analysis::print_table(report, out);
  if (!notes.empty()) out << fmt::format("\nnotes:\n  {}\n", fmt::join(notes, "\n  "));
  if (!files.empty()) out << fmt::format("\nwrote {} files:\n  {}\n", files.size(), fmt::join(files, "\n  "));
}

}  // namespace gfn

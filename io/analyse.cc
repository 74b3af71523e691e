#include "io/analyse.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "core/params.h"
#include "io/hdf5_log.h"

extern char** environ;

namespace gfn {

namespace {

namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// /train and /eval columns that are axes rather than metrics
const std::vector<std::string> kAxisColumns = {"iteration", "trajectories", "wall_s"};

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

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "0.02671", "nan": a number for the table
std::string num(double v) { return fmt::format("{:.4g}", v); }

// ---------------------------------------------------------------------------------------------
// reading

// A table of 1-D columns (/train or /eval), all of `rows` rows (the shortest column: a log
// read while its writer extends it may briefly hold columns of different lengths).
struct Table {
  std::vector<std::string> names;            // iteration, trajectories, wall_s first, then sorted
  std::vector<std::vector<double>> columns;  // [column][row]
  size_t rows = 0;

  const std::vector<double>* find(const std::string& name) const {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return &columns[i];
    return nullptr;
  }
  // the last row of `name`; NaN when the column is missing or the table empty
  double last(const std::string& name) const {
    const std::vector<double>* c = find(name);
    return c != nullptr && rows > 0 ? (*c)[rows - 1] : kNaN;
  }
  // the x axis of the curves: trajectories seen, else the iteration
  const std::vector<double>* x() const {
    const std::vector<double>* c = find("trajectories");
    return c != nullptr ? c : find("iteration");
  }
};

// A map on a 2-D grid of cells: values[i * y.size() + j] belongs to (x[i], y[j]).
struct Heatmap {
  std::string title;
  std::vector<double> x, y;    // [nx], [ny] cell centres
  std::vector<double> values;  // [nx * ny] probabilities
};

// What the grid plot of a run shows: R/Z beside the terminating distribution (or a histogram
// of the samples); either may be missing.
struct GridPlot {
  std::optional<Heatmap> reward, distribution;
};

// Everything read from one log.
struct RunData {
  LogRunSummary summary;
  std::string group_key;  // the config without its top-level name and seed lines
  Table train, eval;
  std::vector<double> sample_log_reward;  // [N] /samples/log_reward
  GridPlot grid;                          // read only for plots
};

// The datasets of one open log, read with checks: sizes bounded by the file's size (a corrupted
// header cannot make us allocate terabytes) and element counts matching the shapes.
class LogFile {
 public:
  explicit LogFile(const std::string& path) : path_(path), log_(path) {
    std::error_code ec;
    size_ = fs::file_size(path, ec);
    if (ec) throw LogError(fmt::format("{}: cannot read its size: {}", path, ec.message()));
  }
  const Hdf5LogReader& log() const { return log_; }

  // The dims of `dataset`, checked to fit the file (every element stored takes >= 1 byte).
  std::vector<int64_t> shape(const std::string& dataset) const {
    std::vector<int64_t> dims = log_.shape(dataset);
    double elements = 1;
    for (int64_t d : dims) {
      if (d < 0) fail(fmt::format("{} has a negative dimension", dataset));
      elements *= static_cast<double>(d);
    }
    if (elements > static_cast<double>(size_))
      fail(fmt::format("{} claims {} elements, more than the file's {} bytes hold (corrupted)", dataset,
                       fmt::join(dims, " x "), size_));
    return dims;
  }
  // All elements of `dataset` as double (row-major); its dims into `dims_out` when given.
  std::vector<double> doubles(const std::string& dataset, std::vector<int64_t>* dims_out = nullptr) const {
    const std::vector<int64_t> dims = shape(dataset);  // its guard against corrupted sizes
    std::vector<double> values = log_.read_double(dataset);
    if (dims_out != nullptr) *dims_out = dims;
    return values;
  }
  // A table of 1-D columns: the datasets of `group`.
  Table table(const std::string& group) const {
    Table t;
    std::vector<std::string> names = log_.list(group);
    auto rank = [](const std::string& n) {
      return std::find(kAxisColumns.begin(), kAxisColumns.end(), n) - kAxisColumns.begin();
    };
    std::stable_sort(names.begin(), names.end(),
                     [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
    t.rows = std::numeric_limits<size_t>::max();
    for (const std::string& name : names) {
      std::vector<int64_t> dims;
      std::vector<double> column = doubles(group + "/" + name, &dims);
      if (dims.size() != 1)
        fail(fmt::format("{}/{} has {} dimensions, expected 1 (one value per row)", group, name, dims.size()));
      t.rows = std::min(t.rows, column.size());
      t.names.push_back(name);
      t.columns.push_back(std::move(column));
    }
    if (t.names.empty()) t.rows = 0;
    for (std::vector<double>& c : t.columns) c.resize(t.rows);
    return t;
  }

  [[noreturn]] void fail(const std::string& what) const { throw LogError(fmt::format("{}: {}", path_, what)); }

 private:
  std::string path_;
  Hdf5LogReader log_;
  uintmax_t size_ = 0;
};

// The config without its top-level `name = ...` and `seed = ...` lines (those before the
// first [section]): equal for the seeds of one config.
std::string group_key(const std::string& config) {
  std::istringstream in(config);
  std::string line, key;
  bool top = true;
  while (std::getline(in, line)) {
    const size_t start = line.find_first_not_of(" \t");
    if (start != std::string::npos && line[start] == '[') top = false;
    if (top && start != std::string::npos) {
      const size_t end = line.find_first_of(" \t=", start);
      const std::string word = line.substr(start, end == std::string::npos ? std::string::npos : end - start);
      const size_t eq = line.find_first_not_of(" \t", end == std::string::npos ? line.size() : end);
      if ((word == "name" || word == "seed") && eq != std::string::npos && line[eq] == '=') continue;
    }
    key += line;
    key += '\n';
  }
  return key;
}

// The parsed config; an empty table when the text is not TOML (an old or odd log).
toml::table parse_config(const std::string& text) {
  try {
    return toml::parse(text);
  } catch (const toml::parse_error&) {
    return {};
  }
}

// The 2-D histogram of the rows of `points` ([N, 2]) over cells of width `cell` starting at
// `origin` (cell i covers [origin + i cell, origin + (i + 1) cell)), as fractions of N.
Heatmap histogram(const std::vector<double>& points, int64_t n_cells, double origin, double cell, std::string title) {
  Heatmap h;
  h.title = std::move(title);
  for (int64_t i = 0; i < n_cells; ++i) h.x.push_back(origin + (static_cast<double>(i) + 0.5) * cell);
  h.y = h.x;
  h.values.assign(static_cast<size_t>(n_cells * n_cells), 0.0);
  const size_t n = points.size() / 2;
  size_t counted = 0;
  auto cell_of = [&](double v) {
    return std::clamp<int64_t>(static_cast<int64_t>(std::floor((v - origin) / cell)), 0, n_cells - 1);
  };
  for (size_t k = 0; k < n; ++k) {
    if (!std::isfinite(points[2 * k]) || !std::isfinite(points[2 * k + 1])) continue;
    h.values[static_cast<size_t>(cell_of(points[2 * k]) * n_cells + cell_of(points[2 * k + 1]))] += 1;
    ++counted;
  }
  for (double& v : h.values) v /= std::max<size_t>(counted, 1);
  return h;
}

// The grid plot of a run with exactly 2 coordinates: /grid when logged, else a histogram of
// /samples (hypergrid: the cells of states_discrete; box: 20 x 20 cells of states_continuous).
GridPlot read_grid(const LogFile& f, const std::string& env, const toml::table& config) {
  GridPlot g;
  const Hdf5LogReader& log = f.log();
  const bool has_axes = log.has("grid/x") && log.has("grid/y");
  std::vector<double> x, y;
  if (has_axes) {
    std::vector<int64_t> x_dims, y_dims;
    x = f.doubles("grid/x", &x_dims);
    y = f.doubles("grid/y", &y_dims);
    if (x_dims.size() != 1 || y_dims.size() != 1 || x.empty() || y.empty())
      f.fail("grid/x and grid/y must be non-empty 1-D datasets");
  }
  const std::vector<int64_t> cells = {static_cast<int64_t>(x.size()), static_cast<int64_t>(y.size())};

  // R / Z on the grid
  if (has_axes && log.has("grid/log_reward")) {
    std::vector<int64_t> dims;
    std::vector<double> log_reward = f.doubles("grid/log_reward", &dims);
    if (dims != cells)
      f.fail(fmt::format("grid/log_reward has shape [{}], expected [{}] (grid/x by grid/y)", fmt::join(dims, ", "),
                         fmt::join(cells, ", ")));
    double max = -std::numeric_limits<double>::infinity();
    for (double v : log_reward)
      if (std::isfinite(v)) max = std::max(max, v);
    double sum = 0;
    for (double& v : log_reward) sum += (v = std::isfinite(v) ? std::exp(v - max) : 0.0);
    for (double& v : log_reward) v = sum > 0 ? v / sum : 0.0;
    g.reward = Heatmap{"reward R(x) / Z on the grid", x, y, std::move(log_reward)};
  }

  // the terminating distribution of the last evaluation
  if (has_axes && log.has("grid/terminating")) {
    std::vector<int64_t> dims;
    std::vector<double> terminating = f.doubles("grid/terminating", &dims);
    if (dims.size() != 3 || dims[1] != cells[0] || dims[2] != cells[1])
      f.fail(fmt::format("grid/terminating has shape [{}], expected [E, {}]", fmt::join(dims, ", "),
                         fmt::join(cells, ", ")));
    if (dims[0] > 0) {
      const size_t per_row = static_cast<size_t>(cells[0] * cells[1]);
      std::vector<double> last(terminating.end() - static_cast<std::ptrdiff_t>(per_row), terminating.end());
      std::string title = "terminating distribution of the policy";
      if (log.has("grid/iteration")) {
        const std::vector<double> iteration = f.doubles("grid/iteration");
        if (iteration.size() == static_cast<size_t>(dims[0]))
          title += fmt::format(" at iteration {}", static_cast<int64_t>(iteration.back()));
      }
      g.distribution = Heatmap{title, x, y, std::move(last)};
      return g;
    }
  }

  // else the samples
  if (env == "hypergrid" && log.has("samples/states_discrete")) {
    std::vector<int64_t> dims;
    const std::vector<double> states = f.doubles("samples/states_discrete", &dims);
    if (dims.size() != 2 || dims[1] != 2 || dims[0] == 0) return g;
    const int64_t height = config["env"]["height"].value_or<int64_t>(
        1 + static_cast<int64_t>(*std::max_element(states.begin(), states.end())));
    g.distribution = histogram(states, std::clamp<int64_t>(height, 1, 4096), -0.5, 1.0,
                               fmt::format("histogram of {} terminal samples", dims[0]));
  } else if (env == "box" && log.has("samples/states_continuous")) {
    std::vector<int64_t> dims;
    const std::vector<double> states = f.doubles("samples/states_continuous", &dims);
    if (dims.size() != 2 || dims[1] != 2 || dims[0] == 0) return g;
    constexpr int64_t kBoxCells = 20;
    g.distribution =
        histogram(states, kBoxCells, 0.0, 1.0 / kBoxCells, fmt::format("histogram of {} terminal samples", dims[0]));
  }
  return g;
}

// The summary numbers of a run from its tables.
void summarise(RunData& run) {
  LogRunSummary& s = run.summary;
  const Table& train = run.train;
  s.train_rows = static_cast<int64_t>(train.rows);
  s.eval_rows = static_cast<int64_t>(run.eval.rows);
  auto last_int = [&](const char* name) {
    const double v = train.last(name);
    return std::isfinite(v) ? static_cast<int64_t>(v) : 0;
  };
  s.iterations = last_int("iteration");
  s.trajectories = last_int("trajectories");
  s.wall_s = train.rows > 0 ? train.last("wall_s") : 0.0;
  s.ms_per_iteration = s.iterations > 0 ? 1000.0 * s.wall_s / static_cast<double>(s.iterations) : kNaN;
  s.trajectories_per_s =
      s.wall_s > 0 && train.find("trajectories") != nullptr ? static_cast<double>(s.trajectories) / s.wall_s : kNaN;
  s.final_loss = train.last("loss");
  s.final_log_z = train.last("log_z");

  // final and best of every /eval metric
  const Table& eval = run.eval;
  const std::vector<double>* iteration = eval.find("iteration");
  for (size_t c = 0; c < eval.names.size(); ++c) {
    const std::string& name = eval.names[c];
    if (std::find(kAxisColumns.begin(), kAxisColumns.end(), name) != kAxisColumns.end()) continue;
    LogMetricSummary m;
    m.name = name;
    m.rule = best_rule(name);
    m.final_value = eval.last(name);
    m.best = kNaN;
    if (m.rule != BestRule::kNone) {
      auto score = [&](double v) {  // lower is better
        return m.rule == BestRule::kMin ? v : m.rule == BestRule::kMax ? -v : std::abs(v - 1.0);
      };
      for (size_t r = 0; r < eval.rows; ++r) {
        const double v = eval.columns[c][r];
        if (!std::isfinite(v) || (std::isfinite(m.best) && score(v) >= score(m.best))) continue;
        m.best = v;
        m.best_iteration = iteration != nullptr ? static_cast<int64_t>((*iteration)[r]) : -1;
      }
    }
    s.metrics.push_back(m);
  }
}

// Reads one log (a file, or a directory holding log.h5); the grid only when `with_grid`.
// Every problem is a LogError naming the file.
RunData load_run(const std::string& input, bool with_grid) {
  std::error_code ec;
  const std::string path = fs::is_directory(input, ec) ? (fs::path(input) / "log.h5").string() : input;
  try {
    const LogFile f(path);
    const Hdf5LogReader& log = f.log();
    RunData run;
    LogRunSummary& s = run.summary;
    s.path = path;
    s.env = log.attribute_string("env");
    s.objective = log.attribute_string("objective");
    s.seed = log.attribute_int("seed");
    const std::string config_text = log.attribute_string("config");
    run.group_key = group_key(config_text);
    const toml::table config = parse_config(config_text);
    s.name = config["name"].value_or<std::string>("");
    run.train = f.table("train");
    run.eval = f.table("eval");
    if (log.has("samples/log_reward")) run.sample_log_reward = f.doubles("samples/log_reward");
    if (with_grid) run.grid = read_grid(f, s.env, config);
    summarise(run);
    return run;
  } catch (const LogError&) {
    throw;
  } catch (const std::exception& e) {
    // allocation failures and the like, still naming the file
    throw LogError(fmt::format("{}: cannot read: {}", path, e.what()));
  }
}

// Labels: the directory holding log.h5 (or the file's stem for another file name), prefixed
// with parent directories until unique ("a/run", "b/run"); the same file twice: "run-2".
void assign_labels(std::vector<RunData>& runs) {
  std::vector<std::vector<std::string>> parts(runs.size());  // path components, innermost first
  for (size_t i = 0; i < runs.size(); ++i) {
    fs::path p = fs::absolute(runs[i].summary.path).lexically_normal();
    if (p.filename() == "log.h5")
      p = p.parent_path();
    else
      p = p.parent_path() / p.stem();
    for (; !p.empty() && p.has_relative_path(); p = p.parent_path()) parts[i].push_back(p.filename().string());
    if (parts[i].empty()) parts[i].push_back("run");
  }
  std::vector<size_t> depth(runs.size(), 1);
  auto label = [&](size_t i) {
    std::string l;
    for (size_t d = std::min(depth[i], parts[i].size()); d-- > 0;) l += (l.empty() ? "" : "/") + parts[i][d];
    return l;
  };
  for (bool changed = true; changed;) {
    changed = false;
    std::map<std::string, std::vector<size_t>> by_label;
    for (size_t i = 0; i < runs.size(); ++i) by_label[label(i)].push_back(i);
    // (the same file twice is numbered below, not lengthened)
    for (const auto& [l, members] : by_label)
      for (size_t i : members)
        if (depth[i] < parts[i].size() &&
            std::any_of(members.begin(), members.end(), [&](size_t j) { return parts[j] != parts[i]; })) {
          ++depth[i];
          changed = true;
        }
  }
  std::map<std::string, int> seen;
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string l = label(i);
    const int n = ++seen[l];
    runs[i].summary.label = n == 1 ? l : fmt::format("{}-{}", l, n);
  }
}

// Mean and sample std of `values` (NaN propagates; std 0 for one value; mean NaN for none).
LogGroupStat stat(const std::string& name, const std::vector<double>& values) {
  LogGroupStat g{name, 0, 0};
  for (double v : values) g.mean += v;
  g.mean /= static_cast<double>(values.size());
  for (double v : values) g.std += (v - g.mean) * (v - g.mean);
  g.std = values.size() > 1 ? std::sqrt(g.std / static_cast<double>(values.size() - 1)) : 0.0;
  return g;
}

// Groups of >= 2 runs with equal group keys, with their statistics.
std::vector<LogGroupSummary> find_groups(const std::vector<RunData>& runs) {
  std::vector<LogGroupSummary> groups;
  std::vector<bool> taken(runs.size(), false);
  std::map<std::string, int> names;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (taken[i]) continue;
    LogGroupSummary g;
    for (size_t j = i; j < runs.size(); ++j)
      if (!taken[j] && runs[j].group_key == runs[i].group_key) {
        taken[j] = true;
        g.runs.push_back(j);
      }
    if (g.runs.size() < 2) continue;
    const LogRunSummary& first = runs[i].summary;
    g.label = first.name.empty() ? first.label : first.name;
    if (const int n = ++names[g.label]; n > 1) g.label += fmt::format("-{}", n);

    // run-level numbers, then the /eval metrics every run has
    auto collect = [&](const std::function<double(const LogRunSummary&)>& get) {
      std::vector<double> v;
      for (size_t r : g.runs) v.push_back(get(runs[r].summary));
      return v;
    };
    g.final_values.push_back(stat("final_loss", collect([](const LogRunSummary& s) { return s.final_loss; })));
    g.final_values.push_back(stat("final_log_z", collect([](const LogRunSummary& s) { return s.final_log_z; })));
    g.final_values.push_back(
        stat("ms_per_iteration", collect([](const LogRunSummary& s) { return s.ms_per_iteration; })));
    g.final_values.push_back(
        stat("trajectories_per_s", collect([](const LogRunSummary& s) { return s.trajectories_per_s; })));
    for (const LogMetricSummary& m : first.metrics) {
      std::vector<double> finals, bests;
      for (size_t r : g.runs)
        for (const LogMetricSummary& other : runs[r].summary.metrics)
          if (other.name == m.name) {
            finals.push_back(other.final_value);
            bests.push_back(other.best);
          }
      if (finals.size() != g.runs.size()) continue;
      g.final_values.push_back(stat(m.name, finals));
      if (m.rule != BestRule::kNone) g.best_values.push_back(stat(m.name, bests));
    }
    groups.push_back(std::move(g));
  }
  return groups;
}

// Reads and summarises every log: labels, groups.
std::vector<RunData> load_runs(const std::vector<std::string>& paths, bool with_grid) {
  if (paths.empty()) throw ConfigError("gfn analyse: no log given (expected LOG.h5 or a run directory)");
  std::vector<RunData> runs;
  for (const std::string& p : paths) runs.push_back(load_run(p, with_grid));
  assign_labels(runs);
  return runs;
}

AnalyseReport report_of(const std::vector<RunData>& runs) {
  AnalyseReport report;
  for (const RunData& r : runs) report.runs.push_back(r.summary);
  report.groups = find_groups(runs);
  return report;
}

// ---------------------------------------------------------------------------------------------
// the table

void print_table(const AnalyseReport& report, std::ostream& out) {
  out << fmt::format("gfn analyse: {} run{}, {} group{} of seeds\n", report.runs.size(),
                     report.runs.size() == 1 ? "" : "s", report.groups.size(), report.groups.size() == 1 ? "" : "s");
  for (const LogRunSummary& s : report.runs) {
    out << fmt::format("\n{}  ({})\n", s.label, s.path);
    out << fmt::format("  {}, {}, seed {}: {} iterations, {} trajectories in {} s\n", s.env, s.objective, s.seed,
                       s.iterations, s.trajectories, num(s.wall_s));
    if (s.train_rows == 0) {
      out << "  no /train rows yet\n";
    } else {
      out << fmt::format("  {} ms/iteration, {} trajectories/s; final loss {}, log Z {}\n", num(s.ms_per_iteration),
                         num(s.trajectories_per_s), num(s.final_loss), num(s.final_log_z));
    }
    if (s.metrics.empty()) continue;
    out << fmt::format("  {:<20} {:>11} {:>11} {:>10}  {}\n", fmt::format("eval ({} rows)", s.eval_rows), "final",
                       "best", "best at", "best is");
    for (const LogMetricSummary& m : s.metrics) {
      if (m.rule == BestRule::kNone) {
        out << fmt::format("  {:<20} {:>11}\n", m.name, num(m.final_value));
        continue;
      }
      out << fmt::format("  {:<20} {:>11} {:>11} {:>10}  {}\n", m.name, num(m.final_value), num(m.best),
                         m.best_iteration >= 0 ? std::to_string(m.best_iteration) : "", best_rule_name(m.rule));
    }
  }
  for (const LogGroupSummary& g : report.groups) {
    std::vector<std::string> labels, seeds;
    for (size_t r : g.runs) {
      labels.push_back(report.runs[r].label);
      seeds.push_back(std::to_string(report.runs[r].seed));
    }
    out << fmt::format("\ngroup {}: {} runs ({}; seeds {})\n", g.label, g.runs.size(), fmt::join(labels, ", "),
                       fmt::join(seeds, ", "));
    out << fmt::format("  {:<20} {:>24} {:>24}\n", "mean ± std", "final", "best");
    for (const LogGroupStat& f : g.final_values) {
      std::string best;
      for (const LogGroupStat& b : g.best_values)
        if (b.name == f.name) best = num(b.mean) + " ± " + num(b.std);
      const std::string line = fmt::format("  {:<20} {:>24} {:>24}", f.name, num(f.mean) + " ± " + num(f.std), best);
      out << line.substr(0, line.find_last_not_of(' ') + 1) << "\n";
    }
  }
}

// The scalar fields of a run, in the order of its JSON object and of summary.csv's columns.
using FieldValue = std::variant<std::string, int64_t, double>;
std::vector<std::pair<const char*, FieldValue>> run_fields(const LogRunSummary& s) {
  return {{"label", s.label},
          {"path", s.path},
          {"name", s.name},
          {"env", s.env},
          {"objective", s.objective},
          {"seed", s.seed},
          {"train_rows", s.train_rows},
          {"eval_rows", s.eval_rows},
          {"iterations", s.iterations},
          {"trajectories", s.trajectories},
          {"wall_s", s.wall_s},
          {"ms_per_iteration", s.ms_per_iteration},
          {"trajectories_per_s", s.trajectories_per_s},
          {"final_loss", s.final_loss},
          {"final_log_z", s.final_log_z}};
}

// ---------------------------------------------------------------------------------------------
// JSON

// A JSON writer: objects and arrays with two-space indentation; non-finite numbers as null.
class Json {
 public:
  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }
  void key(const std::string& k) {
    element();
    text_ += quote(k) + ": ";
    after_key_ = true;
  }
  void value(double v) { scalar(std::isfinite(v) ? fmt::format("{}", v) : "null"); }
  void value(int64_t v) { scalar(std::to_string(v)); }
  void value(const std::string& v) { scalar(quote(v)); }
  template <class T>
  void field(const std::string& k, const T& v) {
    key(k);
    value(v);
  }
  const std::string& text() const { return text_; }

  static std::string quote(const std::string& s) {
    std::string q = "\"";
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') {
        q += '\\';
        q += static_cast<char>(c);
      } else if (c < 0x20) {
        q += fmt::format("\\u{:04x}", c);
      } else {
        q += static_cast<char>(c);
      }
    }
    return q + "\"";
  }

 private:
  // a comma and a new line before every element but the first of its container
  void element() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty()) {
      text_ += first_.back() ? "\n" : ",\n";
      first_.back() = false;
      text_.append(2 * first_.size(), ' ');
    }
  }
  void scalar(const std::string& v) {
    element();
    text_ += v;
  }
  void open(char c) {
    element();
    text_ += c;
    first_.push_back(true);
  }
  void close(char c) {
    const bool empty = first_.back();
    first_.pop_back();
    if (!empty) {
      text_ += '\n';
      text_.append(2 * first_.size(), ' ');
    }
    text_ += c;
  }

  std::string text_;
  std::vector<bool> first_;  // per open container: no element yet
  bool after_key_ = false;
};

void json_stats(Json& j, const std::string& k, const std::vector<LogGroupStat>& stats) {
  j.key(k);
  j.begin_object();
  for (const LogGroupStat& s : stats) {
    j.key(s.name);
    j.begin_object();
    j.field("mean", s.mean);
    j.field("std", s.std);
    j.end_object();
  }
  j.end_object();
}

std::string json_report(const AnalyseReport& report, const std::vector<std::string>& notes,
                        const std::vector<std::string>& files) {
  Json j;
  j.begin_object();
  j.key("runs");
  j.begin_array();
  for (const LogRunSummary& s : report.runs) {
    j.begin_object();
    for (const auto& [name, value] : run_fields(s)) {
      j.key(name);
      std::visit([&](const auto& v) { j.value(v); }, value);
    }
    j.key("metrics");
    j.begin_object();
    for (const LogMetricSummary& m : s.metrics) {
      j.key(m.name);
      j.begin_object();
      j.field("final", m.final_value);
      j.field("best", m.best);
      j.field("best_iteration", m.best_iteration);
      j.field("best_is", std::string(best_rule_name(m.rule)));
      j.end_object();
    }
    j.end_object();
    j.end_object();
  }
  j.end_array();
  j.key("groups");
  j.begin_array();
  for (const LogGroupSummary& g : report.groups) {
    j.begin_object();
    j.field("label", g.label);
    j.key("runs");
    j.begin_array();
    for (size_t r : g.runs) j.value(report.runs[r].label);
    j.end_array();
    j.key("seeds");
    j.begin_array();
    for (size_t r : g.runs) j.value(report.runs[r].seed);
    j.end_array();
    json_stats(j, "final", g.final_values);
    json_stats(j, "best", g.best_values);
    j.end_object();
  }
  j.end_array();
  for (const auto& [k, list] : {std::pair{"notes", &notes}, std::pair{"files", &files}}) {
    j.key(k);
    j.begin_array();
    for (const std::string& s : *list) j.value(s);
    j.end_array();
  }
  j.end_object();
  return j.text() + "\n";
}

// ---------------------------------------------------------------------------------------------
// output files

// Creates `dir` (and its parents) or throws ConfigError naming the option.
fs::path make_dir(const std::string& dir, const char* option) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw ConfigError(fmt::format("{} {}: cannot create the directory: {}", option, dir,
                                  ec ? ec.message() : "a file of that name exists"));
  return fs::absolute(dir).lexically_normal();
}

void write_file(const fs::path& path, std::string_view text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) throw std::runtime_error(fmt::format("{}: cannot write", path.string()));
}

// Labels as file names: [A-Za-z0-9._-] kept, everything else '_', no leading '.'; unique.
std::vector<std::string> file_stems(const std::vector<RunData>& runs) {
  std::vector<std::string> stems;
  std::set<std::string> used;
  for (const RunData& r : runs) {
    std::string s = r.summary.label;
    for (char& c : s)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
    if (s.empty() || s[0] == '.') s = "_" + s;
    std::string unique = s;
    for (int n = 2; used.count(unique) > 0; ++n) unique = fmt::format("{}_{}", s, n);
    used.insert(unique);
    stems.push_back(unique);
  }
  return stems;
}

using Buffer = fmt::memory_buffer;

// a CSV cell: numbers as the shortest exact text ("nan", "inf" for non-finite), strings quoted
// when they hold a comma, a quote or a line break
void csv_number(Buffer& b, double v) {
  if (std::isfinite(v))
    fmt::format_to(std::back_inserter(b), "{}", v);
  else
    fmt::format_to(std::back_inserter(b), "{}", std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}
void csv_text(Buffer& b, const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) {
    fmt::format_to(std::back_inserter(b), "{}", s);
    return;
  }
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  fmt::format_to(std::back_inserter(b), "{}\"", q);
}

void csv_cell(Buffer& b, const std::string& s) { csv_text(b, s); }
void csv_cell(Buffer& b, int64_t v) { fmt::format_to(std::back_inserter(b), "{}", v); }
void csv_cell(Buffer& b, double v) { csv_number(b, v); }

// Every column of a table, a header row first.
std::string csv_table(const Table& t) {
  Buffer b;
  for (size_t c = 0; c < t.names.size(); ++c) {
    if (c > 0) b.push_back(',');
    csv_text(b, t.names[c]);
  }
  b.push_back('\n');
  for (size_t r = 0; r < t.rows; ++r) {
    for (size_t c = 0; c < t.names.size(); ++c) {
      if (c > 0) b.push_back(',');
      csv_number(b, t.columns[c][r]);
    }
    b.push_back('\n');
  }
  return fmt::to_string(b);
}

// summary.csv: one row per run; for each /eval metric of any run <m>_final and, when it has a
// best rule, <m>_best (empty cells where a run lacks it).
std::string csv_summary(const AnalyseReport& report) {
  std::vector<std::pair<std::string, BestRule>> metrics;
  for (const LogRunSummary& s : report.runs)
    for (const LogMetricSummary& m : s.metrics)
      if (std::none_of(metrics.begin(), metrics.end(), [&](const auto& p) { return p.first == m.name; }))
        metrics.emplace_back(m.name, m.rule);
  Buffer b;
  const LogRunSummary none;
  for (const auto& [name, value] : run_fields(none))
    fmt::format_to(std::back_inserter(b), "{}{}", b.size() > 0 ? "," : "", name);
  for (const auto& [name, rule] : metrics) {
    b.push_back(',');
    csv_text(b, name + "_final");
    if (rule != BestRule::kNone) {
      b.push_back(',');
      csv_text(b, name + "_best");
    }
  }
  b.push_back('\n');
  for (const LogRunSummary& s : report.runs) {
    bool first = true;
    for (const auto& [name, value] : run_fields(s)) {
      if (!first) b.push_back(',');
      first = false;
      std::visit([&](const auto& v) { csv_cell(b, v); }, value);
    }
    for (const auto& [name, rule] : metrics) {
      const auto m = std::find_if(s.metrics.begin(), s.metrics.end(), [&](const auto& x) { return x.name == name; });
      b.push_back(',');
      if (m != s.metrics.end()) csv_number(b, m->final_value);
      if (rule == BestRule::kNone) continue;
      b.push_back(',');
      if (m != s.metrics.end()) csv_number(b, m->best);
    }
    b.push_back('\n');
  }
  return fmt::to_string(b);
}

// Writes summary.csv and <label>_train.csv, <label>_eval.csv per run; returns the paths.
std::vector<std::string> write_csv(const fs::path& dir, const std::vector<RunData>& runs, const AnalyseReport& report) {
  std::vector<std::string> files;
  auto put = [&](const fs::path& p, const std::string& text) {
    write_file(p, text);
    files.push_back(p.string());
  };
  put(dir / "summary.csv", csv_summary(report));
  const std::vector<std::string> stems = file_stems(runs);
  for (size_t i = 0; i < runs.size(); ++i) {
    put(dir / (stems[i] + "_train.csv"), csv_table(runs[i].train));
    put(dir / (stems[i] + "_eval.csv"), csv_table(runs[i].eval));
  }
  return files;
}

// ---------------------------------------------------------------------------------------------
// plots

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

// Row indices keeping at most `max_points` of `n` rows: evenly spaced, the last row included.
std::vector<size_t> thin(size_t n, size_t max_points) {
  std::vector<size_t> rows;
  if (n == 0) return rows;
  const size_t stride = n <= max_points ? 1 : (n - 1 + max_points - 2) / (max_points - 1);
  for (size_t r = 0; r < n; r += stride) rows.push_back(r);
  if (rows.back() != n - 1) rows.push_back(n - 1);
  return rows;
}

// One curve of a plot: a run, or a group's mean with its mean ± std band, of each metric.
struct Curve {
  std::string title;
  bool band = false;                                        // a group: draw the band lo..hi
  std::vector<double> x;                                    // [rows] trajectories seen (else iterations)
  std::map<std::string, std::vector<double>> mean, lo, hi;  // metric -> [rows]
};

// The curves of `metrics` in the tables picked by `table_of` (train or eval): one per run that
// is in no group, one per group (its runs aligned by row over their common rows; mean and std
// over the finite values of a row), each thinned to `max_points` rows. Runs without rows are
// skipped with a note.
std::vector<Curve> make_curves(const std::vector<RunData>& runs, const AnalyseReport& report,
                               const std::function<const Table&(const RunData&)>& table_of,
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
    curves.push_back(std::move(c));
  }
  return curves;
}

// A panel of a curve plot: `metric` of every curve that has it (and `dashed`, drawn dashed in
// the same colour, e.g. log_z_exact beside log_z).
struct Panel {
  std::string metric, title, ylabel, dashed;
};

// Writes `stem`.dat (one block per curve: x, then mean lo hi of each panel's metric and dashed
// metric) and `stem`.gp (one panel per entry of `panels`; log-scale y for a metric of best rule
// kMin whose values are all positive), and returns the script's path; nothing when no panel
// has a finite value.
std::optional<fs::path> write_curve_plot(const fs::path& dir, const std::string& stem, const std::string& title,
                                         const std::vector<Panel>& panels, const std::vector<Curve>& curves,
                                         const std::string& xlabel) {
  // the data: columns 1 (x), then 3 per metric
  std::vector<std::string> columns;
  for (const Panel& p : panels)
    for (const std::string& m : {p.metric, p.dashed})
      if (!m.empty()) columns.push_back(m);
  Buffer b;
  for (size_t k = 0; k < curves.size(); ++k) {
    const Curve& c = curves[k];
    fmt::format_to(std::back_inserter(b), "{}# block {}: {}\n# x", k > 0 ? "\n\n" : "", k, c.title);
    for (const std::string& m : columns) fmt::format_to(std::back_inserter(b), " {0} {0}_lo {0}_hi", m);
    b.push_back('\n');
    for (size_t r = 0; r < c.x.size(); ++r) {
      csv_number(b, c.x[r]);
      for (const std::string& m : columns)
        for (const auto* series : {&c.mean, &c.lo, &c.hi}) {
          b.push_back(' ');
          const auto it = series->find(m);
          csv_number(b, it != series->end() ? it->second[r] : kNaN);
        }
      b.push_back('\n');
    }
  }
  const fs::path dat = dir / (stem + ".dat"), png = dir / (stem + ".png");

  // the panels that have something to draw
  auto column_of = [&](const std::string& m) {
    return 2 + 3 * static_cast<int>(std::find(columns.begin(), columns.end(), m) - columns.begin());
  };
  // whether curve c has a finite value of metric m
  auto has = [](const Curve& c, const std::string& m) {
    const auto it = c.mean.find(m);
    return it != c.mean.end() &&
           std::any_of(it->second.begin(), it->second.end(), [](double v) { return std::isfinite(v); });
  };
  std::vector<std::string> bodies;
  for (const Panel& p : panels) {
    // errors and divergences span decades: a log scale when all are positive
    bool any = false, positive = true;
    for (const Curve& c : curves)
      for (const std::string& m : {p.metric, p.dashed}) {
        const auto it = c.mean.find(m);
        if (it == c.mean.end()) continue;
        for (double v : it->second)
          if (std::isfinite(v)) {
            any = any || m == p.metric;
            positive = positive && v > 0;
          }
      }
    if (!any) continue;
    const bool log_y = positive && best_rule(p.metric) == BestRule::kMin;

    std::vector<std::string> parts;
    const std::string data = gp(dat.string());
    for (size_t k = 0; k < curves.size(); ++k) {
      const Curve& c = curves[k];
      const int col = column_of(p.metric);
      const std::string style = c.x.size() <= 50 ? "linespoints pt 7 ps 0.5" : "lines";
      if (has(c, p.metric)) {
        // on a log scale a band reaching 0 stops at a tenth of the mean
        if (c.band)
          parts.push_back(fmt::format(
              "{} index {} using 1:{}:{} with filledcurves fs transparent solid 0.2 noborder lc {} notitle", data, k,
              log_y ? fmt::format("(${0} > 0 ? ${0} : ${1} / 10)", col + 1, col) : std::to_string(col + 1), col + 2,
              k + 1));
        parts.push_back(fmt::format("{} index {} using 1:{} with {} lw 1.5 lc {} title {}", data, k, col, style, k + 1,
                                    gp(c.title)));
      }
      if (!p.dashed.empty() && has(c, p.dashed))
        parts.push_back(fmt::format("{} index {} using 1:{} with lines dt 2 lw 1.5 lc {} title {}", data, k,
                                    column_of(p.dashed), k + 1, gp(c.title + ": " + p.dashed)));
    }
    bodies.push_back(fmt::format("set title {}\nset ylabel {}\n{}plot {}\n", gp(p.title), gp(p.ylabel),
                                 log_y ? "set logscale y\n" : "unset logscale y\n", fmt::join(parts, ", \\\n     ")));
  }
  if (bodies.empty()) return std::nullopt;

  // the script: a grid of panels
  const int n = static_cast<int>(bodies.size());
  const int cols = n <= 2 ? n : n <= 4 ? 2 : 3;
  const int rows = (n + cols - 1) / cols;
  std::string script = gp_header(png, 600 * cols, 420 * rows);
  script += fmt::format(
      "set xlabel {}\nset key top right font ',8' samplen 2\nset format y '%g'\n"
      "set multiplot layout {},{} title {}\n",
      gp(xlabel), rows, cols, gp(title));
  for (const std::string& body : bodies) script += body;
  script += "unset multiplot\n";
  write_file(dat, fmt::to_string(b));
  const fs::path script_path = dir / (stem + ".gp");
  write_file(script_path, script);
  return script_path;
}

// Writes the heatmaps of one run: R / Z beside the terminating distribution (or the sample
// histogram), on one colour scale.
fs::path write_grid_plot(const fs::path& dir, const std::string& stem, const std::string& label, const GridPlot& g) {
  std::vector<const Heatmap*> maps;
  for (const auto* m : {&g.reward, &g.distribution})
    if (m->has_value()) maps.push_back(&**m);
  const fs::path dat = dir / (stem + ".dat"), png = dir / (stem + ".png");
  Buffer b;
  double top = 0;
  for (size_t k = 0; k < maps.size(); ++k) {
    const Heatmap& h = *maps[k];
    fmt::format_to(std::back_inserter(b), "{}# block {}: {}\n# x y probability\n", k > 0 ? "\n\n" : "", k, h.title);
    for (size_t i = 0; i < h.x.size(); ++i) {
      for (size_t j = 0; j < h.y.size(); ++j) {
        const double v = h.values[i * h.y.size() + j];
        if (std::isfinite(v)) top = std::max(top, v);
        fmt::format_to(std::back_inserter(b), "{} {} ", h.x[i], h.y[j]);
        csv_number(b, v);
        b.push_back('\n');
      }
      b.push_back('\n');
    }
  }
  const int n = static_cast<int>(maps.size());
  std::string script = gp_header(png, 560 * n, 520);
  script += fmt::format(
      "unset grid\nset size ratio -1\nset xlabel 'x1'\nset ylabel 'x2'\nset cblabel 'probability'\n"
      "unset colorbox\n"
      "set cbrange [0:{}]\nset autoscale fix\n"
      "set palette defined (0 '#440154', 1 '#3b528b', 2 '#21918c', 3 '#5ec962', 4 '#fde725')\n"
      "set multiplot layout 1,{} title {}\n",
      top > 0 ? top : 1.0, n, gp(label));
  // one colour scale for both: its bar beside the last panel
  for (size_t k = 0; k < maps.size(); ++k)
    script += fmt::format("set title {}\n{}plot {} index {} using 1:2:3 with image notitle\n", gp(maps[k]->title),
                          k + 1 == maps.size() ? "set colorbox\n" : "", gp(dat.string()), k);
  script += "unset multiplot\n";
  write_file(dat, fmt::to_string(b));
  const fs::path script_path = dir / (stem + ".gp");
  write_file(script_path, script);
  return script_path;
}

// Writes the histogram of /samples/log_reward of every run (50 common bins, fractions of each
// run's samples).
std::optional<fs::path> write_reward_histogram(const fs::path& dir, const std::vector<RunData>& runs,
                                               std::vector<std::string>& notes) {
  constexpr int kBins = 50;
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
  const double width = (hi - lo) / kBins;
  const fs::path dat = dir / "log_reward.dat", png = dir / "log_reward.png";
  Buffer b;
  std::vector<std::string> parts;
  int block = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::vector<double> counts(kBins, 0.0);
    double n = 0;
    for (double v : runs[i].sample_log_reward)
      if (std::isfinite(v)) {
        counts[std::clamp(static_cast<int>((v - lo) / width), 0, kBins - 1)] += 1;
        n += 1;
      }
    if (n == 0) {
      notes.push_back(
          fmt::format("{}: no /samples/log_reward, left out of the log_reward plot", runs[i].summary.label));
      continue;
    }
    fmt::format_to(std::back_inserter(b), "{}# block {}: {} ({} samples)\n# log_reward fraction\n",
                   block > 0 ? "\n\n" : "", block, runs[i].summary.label, n);
    for (int k = 0; k < kBins; ++k)
      fmt::format_to(std::back_inserter(b), "{} {}\n", lo + (k + 0.5) * width, counts[k] / n);
    parts.push_back(fmt::format("{} index {} using 1:2 with boxes fs transparent solid 0.35 noborder lc {} title {}",
                                gp(dat.string()), block, i + 1,
                                gp(fmt::format("{} ({} samples)", runs[i].summary.label, n))));
    ++block;
  }
  std::string script = gp_header(png, 900, 560);
  script += fmt::format(
      "set title 'log-rewards of the terminal samples of the final policy'\nset xlabel 'log R(x)'\n"
      "set ylabel 'fraction of samples'\nset boxwidth {}\nset key top left\nset yrange [0:*]\nplot {}\n",
      width, fmt::join(parts, ", \\\n     "));
  write_file(dat, fmt::to_string(b));
  const fs::path script_path = dir / "log_reward.gp";
  write_file(script_path, script);
  return script_path;
}

// The absolute path of the program `name` (a path when it holds '/', else looked up on PATH);
// nothing when not found or not executable.
std::optional<std::string> find_program(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos)
    return ::access(name.c_str(), X_OK) == 0 ? std::optional<std::string>(name) : std::nullopt;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string d; std::getline(dirs, d, ':');) {
    const fs::path candidate = fs::path(d.empty() ? "." : d) / name;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return std::nullopt;
}

// Runs `gnuplot script` for each script (a few at a time, no shell), with stderr captured;
// throws std::runtime_error naming the script when gnuplot fails or writes no PNG.
void run_gnuplot(const std::string& gnuplot, const std::vector<fs::path>& scripts) {
  struct Job {
    pid_t pid;
    int err_fd;
    fs::path script;
  };
  auto start = [&](const fs::path& script) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("--plot: cannot create a pipe for gnuplot");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    std::string arg0 = gnuplot, arg1 = script.string();
    char* argv[] = {arg0.data(), arg1.data(), nullptr};
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, gnuplot.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      throw std::runtime_error(fmt::format("--plot: cannot run {}: {}", gnuplot, std::strerror(rc)));
    }
    return Job{pid, fds[0], script};
  };
  auto finish = [&](const Job& job) {
    std::string err;
    char buf[4096];
    for (ssize_t n; (n = ::read(job.err_fd, buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      err.append(buf, static_cast<size_t>(n));
    }
    ::close(job.err_fd);
    int status = 0;
    while (::waitpid(job.pid, &status, 0) < 0 && errno == EINTR) {
    }
    const fs::path png = job.script.parent_path() / (job.script.stem().string() + ".png");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !fs::exists(png)) {
      // gnuplot's own message, on one line
      std::replace(err.begin(), err.end(), '\n', ' ');
      throw std::runtime_error(
          fmt::format("--plot: gnuplot failed on {}: {}", job.script.string(), err.empty() ? "no PNG written" : err));
    }
  };
  constexpr size_t kParallel = 4;
  std::vector<Job> jobs;
  size_t next = 0;
  try {
    while (next < scripts.size() || !jobs.empty()) {
      while (next < scripts.size() && jobs.size() < kParallel) jobs.push_back(start(scripts[next++]));
      const Job job = jobs.front();
      jobs.erase(jobs.begin());
      finish(job);
    }
  } catch (...) {
    // no zombies: reap what is still running
    for (const Job& job : jobs) {
      ::close(job.err_fd);
      int status = 0;
      ::waitpid(job.pid, &status, 0);
    }
    throw;
  }
}

// Writes and draws every plot; returns the PNGs written.
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

  // (c) grids of the 2-D runs
  const std::vector<std::string> stems = file_stems(runs);
  for (size_t i = 0; i < runs.size(); ++i)
    if (runs[i].grid.reward || runs[i].grid.distribution)
      scripts.push_back(write_grid_plot(dir, stems[i] + "_grid", runs[i].summary.label, runs[i].grid));

  // (d) terminal log-rewards
  if (auto s = write_reward_histogram(dir, runs, notes)) scripts.push_back(*s);

  run_gnuplot(gnuplot, scripts);
  std::vector<std::string> pngs;
  for (const fs::path& s : scripts) pngs.push_back((s.parent_path() / (s.stem().string() + ".png")).string());
  return pngs;
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

AnalyseReport summarise_logs(const std::vector<std::string>& paths) { return report_of(load_runs(paths, false)); }

void analyse(const std::vector<std::string>& paths, const AnalyseOptions& options, std::ostream& out) {
  // options first, then every input, then the outputs
  if (options.max_plot_points < 2)
    throw ConfigError(
        fmt::format("gfn analyse: max_plot_points = {}: expected an integer >= 2", options.max_plot_points));
  std::optional<std::string> gnuplot;
  if (!options.plot_dir.empty()) {
    gnuplot = find_program(options.gnuplot);
    if (!gnuplot)
      throw ConfigError(fmt::format(
          "--plot {}: gnuplot not found (no executable '{}' on PATH); install the Debian package gnuplot-nox "
          "(apt-get install gnuplot-nox)",
          options.plot_dir, options.gnuplot));
  }
  const std::vector<RunData> runs = load_runs(paths, !options.plot_dir.empty());
  const AnalyseReport report = report_of(runs);
  std::vector<std::string> notes, files;
  for (const RunData& r : runs)
    if (r.train.rows == 0) notes.push_back(fmt::format("{}: no /train rows yet (0 iterations)", r.summary.label));

  if (!options.csv_dir.empty()) {
    const std::vector<std::string> written = write_csv(make_dir(options.csv_dir, "--csv"), runs, report);
    files.insert(files.end(), written.begin(), written.end());
  }
  if (gnuplot) {
    const std::vector<std::string> written = write_plots(make_dir(options.plot_dir, "--plot"), *gnuplot, runs, report,
                                                         static_cast<size_t>(options.max_plot_points), notes);
    files.insert(files.end(), written.begin(), written.end());
  }

  if (options.json) {
    out << json_report(report, notes, files);
    return;
  }
  print_table(report, out);
  if (!notes.empty()) out << fmt::format("\nnotes:\n  {}\n", fmt::join(notes, "\n  "));
  if (!files.empty()) out << fmt::format("\nwrote {} files:\n  {}\n", files.size(), fmt::join(files, "\n  "));
}

}  // namespace gfn

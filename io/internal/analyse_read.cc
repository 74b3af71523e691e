#include "io/internal/analyse_read.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include "core/params.h"
#include "io/hdf5_log.h"

namespace gfn::analysis {

namespace {

namespace fs = std::filesystem;

// /train and /eval columns that are axes rather than metrics, in their table order
const std::vector<std::string> kAxisColumns = {"iteration", "trajectories", "wall_s"};

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
    // one row per logged iteration, in order: a writer appends in order and a resume drops the
    // rows after its checkpoint, so a repeat or a step back is a log written some other way
    // (by hand, or by two writers before runs were locked)
    if (const std::vector<double>* it = t.find("iteration"))
      for (size_t r = 1; r < t.rows; ++r)
        if (!((*it)[r] > (*it)[r - 1]))
          fail(fmt::format("{}/iteration is not increasing: row {} holds {} after {} (rows out of order or "
                           "repeated; not a log one gfn run wrote)",
                           group, r, (*it)[r], (*it)[r - 1]));
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

// The config's top-level `name`; "" when missing or when the text is not TOML (an old or odd log).
std::string config_name(const std::string& text) {
  try {
    return toml::parse(text)["name"].value_or<std::string>("");
  } catch (const toml::parse_error&) {
    return "";
  }
}

// /matrices: each sample matrix's last evaluation and its exact value, where logged.
void read_matrices(const LogFile& f, PlotContent& c) {
  const auto& log = f.log();
  if (!log.has("matrices/iteration")) return;
  const std::vector<double> iteration = f.doubles("matrices/iteration");
  for (const std::string& name : log.list("matrices")) {
    if (name == "iteration" || (name.size() > 6 && name.compare(name.size() - 6, 6, "_exact") == 0)) continue;
    std::vector<int64_t> dims;
    std::vector<double> values = f.doubles("matrices/" + name, &dims);
    if (dims.size() != 3) f.fail(fmt::format("matrices/{} has {} dimensions, expected 3 [E, rows, cols]", name, dims.size()));
    if (dims[0] == 0) continue;
    MatrixContent m;
    m.name = name;
    m.rows = dims[1];
    m.cols = dims[2];
    const auto per_row = static_cast<std::ptrdiff_t>(m.rows * m.cols);
    m.last.assign(values.end() - per_row, values.end());
    if (iteration.size() == static_cast<size_t>(dims[0])) m.iteration = static_cast<int64_t>(iteration.back());
    if (log.has("matrices/" + name + "_exact")) {
      std::vector<int64_t> exact_dims;
      m.exact = f.doubles("matrices/" + name + "_exact", &exact_dims);
      if (exact_dims != std::vector<int64_t>{m.rows, m.cols})
        f.fail(fmt::format("matrices/{}_exact has shape [{}], expected [{}, {}]", name, fmt::join(exact_dims, ", "),
                           m.rows, m.cols));
    }
    c.matrices.push_back(std::move(m));
  }
}

// /grid: the axes, R on the grid and the last terminating distribution, each where logged.
void read_grid(const LogFile& f, PlotContent& c) {
  const Hdf5LogReader& log = f.log();
  if (!log.has("grid/x") || !log.has("grid/y")) return;
  std::vector<int64_t> x_dims, y_dims;
  c.grid_x = f.doubles("grid/x", &x_dims);
  c.grid_y = f.doubles("grid/y", &y_dims);
  if (x_dims.size() != 1 || y_dims.size() != 1 || c.grid_x.empty() || c.grid_y.empty())
    f.fail("grid/x and grid/y must be non-empty 1-D datasets");
  const std::vector<int64_t> cells = {static_cast<int64_t>(c.grid_x.size()), static_cast<int64_t>(c.grid_y.size())};

  // R on the grid
  if (log.has("grid/log_reward")) {
    std::vector<int64_t> dims;
    c.grid_log_reward = f.doubles("grid/log_reward", &dims);
    if (dims != cells)
      f.fail(fmt::format("grid/log_reward has shape [{}], expected [{}] (grid/x by grid/y)", fmt::join(dims, ", "),
                         fmt::join(cells, ", ")));
  }

  // the terminating distribution of the last evaluation, and its iteration
  if (!log.has("grid/terminating")) return;
  std::vector<int64_t> dims;
  std::vector<double> terminating = f.doubles("grid/terminating", &dims);
  if (dims.size() != 3 || dims[1] != cells[0] || dims[2] != cells[1])
    f.fail(fmt::format("grid/terminating has shape [{}], expected [E, {}]", fmt::join(dims, ", "),
                       fmt::join(cells, ", ")));
  if (dims[0] == 0) return;
  const auto per_row = static_cast<std::ptrdiff_t>(cells[0] * cells[1]);
  c.grid_terminating.assign(terminating.end() - per_row, terminating.end());
  if (log.has("grid/iteration")) {
    const std::vector<double> iteration = f.doubles("grid/iteration");
    if (iteration.size() == static_cast<size_t>(dims[0])) c.grid_iteration = static_cast<int64_t>(iteration.back());
  }
}

// The terminal samples when they have 1 or 2 coordinates: /samples/states_continuous, else
// /samples/states_discrete.
void read_samples(const LogFile& f, PlotContent& c) {
  for (const auto& [dataset, discrete] : {std::pair{"samples/states_continuous", false},
                                          std::pair{"samples/states_discrete", true}}) {
    if (!f.log().has(dataset)) continue;
    std::vector<int64_t> dims;
    std::vector<double> states = f.doubles(dataset, &dims);
    if (dims.size() != 2 || dims[0] == 0 || dims[1] < 1 || dims[1] > 2) continue;
    c.sample_states = std::move(states);
    c.sample_dim = dims[1];
    c.samples_discrete = discrete;
    return;
  }
}

// Reads one log (a file, or a directory holding log.h5); the plot content only when
// `with_plots`. Every problem is a LogError naming the file.
RunData load_run(const std::string& input, bool with_plots) {
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
    s.name = config_name(config_text);
    run.train = f.table("train");
    run.eval = f.table("eval");
    if (log.has("samples/log_reward")) run.sample_log_reward = f.doubles("samples/log_reward");
    if (with_plots) {
      read_grid(f, run.plot_content);
      read_samples(f, run.plot_content);
      read_matrices(f, run.plot_content);
    }
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

}  // namespace

bool is_axis_column(const std::string& name) {
  return std::find(kAxisColumns.begin(), kAxisColumns.end(), name) != kAxisColumns.end();
}

const std::vector<double>* Table::find(const std::string& name) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return &columns[i];
  return nullptr;
}

double Table::last(const std::string& name) const {
  const std::vector<double>* c = find(name);
  return c != nullptr && rows > 0 ? (*c)[rows - 1] : kNaN;
}

const std::vector<double>* Table::x() const {
  const std::vector<double>* c = find("trajectories");
  return c != nullptr ? c : find("iteration");
}

std::vector<RunData> load_runs(const std::vector<std::string>& paths, bool with_plots) {
  if (paths.empty()) throw ConfigError("gfn analyse: no log given (expected LOG.h5 or a run directory)");
  std::vector<RunData> runs;
  for (const std::string& p : paths) runs.push_back(load_run(p, with_plots));
  assign_labels(runs);
  return runs;
}

}  // namespace gfn::analysis

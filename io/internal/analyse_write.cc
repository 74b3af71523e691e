#include "io/internal/analyse_write.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <iterator>
#include <ostream>
#include <set>
#include <stdexcept>
#include <utility>
#include <variant>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/params.h"

namespace gfn::analysis {

namespace {

namespace fs = std::filesystem;

using Buffer = fmt::memory_buffer;
using Json = nlohmann::ordered_json;  // keys in the order written

// "0.02671", "nan": a number for the table
std::string num(double v) { return fmt::format("{:.4g}", v); }

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
// the table

void print_run(const LogRunSummary& s, std::ostream& out) {
  out << fmt::format("\n{}  ({})\n", s.label, s.path);
  out << fmt::format("  {}, {}, seed {}: {} iterations, {} trajectories in {} s\n", s.env, s.objective, s.seed,
                     s.iterations, s.trajectories, num(s.wall_s));
  if (s.train_rows == 0) {
    out << "  no /train rows yet\n";
  } else {
    out << fmt::format("  {} ms/iteration, {} trajectories/s; final loss {}, log Z {}\n", num(s.ms_per_iteration),
                       num(s.trajectories_per_s), num(s.final_loss), num(s.final_log_z));
  }
  if (s.metrics.empty()) return;
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

void print_group(const AnalyseReport& report, const LogGroupSummary& g, std::ostream& out) {
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

// ---------------------------------------------------------------------------------------------
// JSON

// A number: null when not finite; an integer when integral (and exact in a double), so that
// 2.0 reads "2" as the README's examples show
Json json_value(double v) {
  constexpr double kExactIntegers = 9007199254740992.0;  // 2^53
  if (!std::isfinite(v)) return nullptr;
  if (v == std::trunc(v) && std::abs(v) < kExactIntegers) return static_cast<int64_t>(v);
  return v;
}
Json json_value(int64_t v) { return v; }
Json json_value(const std::string& v) { return v; }

Json json_stats(const std::vector<LogGroupStat>& stats) {
  Json j = Json::object();
  for (const LogGroupStat& s : stats) j[s.name] = Json{{"mean", json_value(s.mean)}, {"std", json_value(s.std)}};
  return j;
}

Json json_run(const LogRunSummary& s) {
  Json run = Json::object();
  for (const auto& [name, value] : run_fields(s))
    run[name] = std::visit([](const auto& v) { return json_value(v); }, value);
  Json metrics = Json::object();
  for (const LogMetricSummary& m : s.metrics)
    metrics[m.name] = Json{{"final", json_value(m.final_value)},
                           {"best", json_value(m.best)},
                           {"best_iteration", m.best_iteration},
                           {"best_is", best_rule_name(m.rule)}};
  run["metrics"] = std::move(metrics);
  return run;
}

Json json_group(const AnalyseReport& report, const LogGroupSummary& g) {
  Json labels = Json::array(), seeds = Json::array();
  for (size_t r : g.runs) {
    labels.push_back(report.runs[r].label);
    seeds.push_back(report.runs[r].seed);
  }
  Json group = Json::object();
  group["label"] = g.label;
  group["runs"] = std::move(labels);
  group["seeds"] = std::move(seeds);
  group["final"] = json_stats(g.final_values);
  group["best"] = json_stats(g.best_values);
  return group;
}

// ---------------------------------------------------------------------------------------------
// CSV

// a CSV text cell: quoted when it holds a comma, a quote or a line break
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
void csv_cell(Buffer& b, double v) { append_number(b, v); }

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
      append_number(b, t.columns[c][r]);
    }
    b.push_back('\n');
  }
  return fmt::to_string(b);
}

// The /eval metrics of any run, in the order first met, with their best rule.
std::vector<std::pair<std::string, BestRule>> all_metrics(const AnalyseReport& report) {
  std::vector<std::pair<std::string, BestRule>> metrics;
  for (const LogRunSummary& s : report.runs)
    for (const LogMetricSummary& m : s.metrics)
      if (std::none_of(metrics.begin(), metrics.end(), [&](const auto& p) { return p.first == m.name; }))
        metrics.emplace_back(m.name, m.rule);
  return metrics;
}

// summary.csv: one row per run; for each /eval metric of any run <m>_final and, when it has a
// best rule, <m>_best (empty cells where a run lacks it).
std::string csv_summary(const AnalyseReport& report) {
  const std::vector<std::pair<std::string, BestRule>> metrics = all_metrics(report);
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
      const std::string& metric = name;  // C++17 lambdas cannot capture a structured binding (clang refuses)
      const auto m = std::find_if(s.metrics.begin(), s.metrics.end(), [&](const auto& x) { return x.name == metric; });
      b.push_back(',');
      if (m != s.metrics.end()) append_number(b, m->final_value);
      if (rule == BestRule::kNone) continue;
      b.push_back(',');
      if (m != s.metrics.end()) append_number(b, m->best);
    }
    b.push_back('\n');
  }
  return fmt::to_string(b);
}

}  // namespace

void print_table(const AnalyseReport& report, std::ostream& out) {
  out << fmt::format("gfn analyse: {} run{}, {} group{} of seeds\n", report.runs.size(),
                     report.runs.size() == 1 ? "" : "s", report.groups.size(), report.groups.size() == 1 ? "" : "s");
  for (const LogRunSummary& s : report.runs) print_run(s, out);
  for (const LogGroupSummary& g : report.groups) print_group(report, g, out);
}

std::string json_report(const AnalyseReport& report, const std::vector<std::string>& notes,
                        const std::vector<std::string>& files) {
  Json runs = Json::array(), groups = Json::array();
  for (const LogRunSummary& s : report.runs) runs.push_back(json_run(s));
  for (const LogGroupSummary& g : report.groups) groups.push_back(json_group(report, g));
  Json j = Json::object();
  j["runs"] = std::move(runs);
  j["groups"] = std::move(groups);
  j["notes"] = notes;
  j["files"] = files;
  // labels and paths are bytes of the file system: invalid UTF-8 becomes U+FFFD, not an error
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::vector<std::string> write_csv(const fs::path& dir, const std::vector<RunData>& runs,
                                   const AnalyseReport& report) {
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

void append_number(Buffer& b, double v) {
  if (std::isfinite(v))
    fmt::format_to(std::back_inserter(b), "{}", v);
  else
    fmt::format_to(std::back_inserter(b), "{}", std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

}  // namespace gfn::analysis

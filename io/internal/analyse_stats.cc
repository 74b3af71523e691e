#include "io/internal/analyse_stats.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace gfn::analysis {

namespace {

// The final and best value of the /eval column `c` of `eval`.
LogMetricSummary metric_summary(const Table& eval, size_t c) {
  LogMetricSummary m;
  m.name = eval.names[c];
  m.rule = best_rule(m.name);
  m.final_value = eval.last(m.name);
  m.best = kNaN;
  if (m.rule == BestRule::kNone) return m;
  auto score = [&](double v) {  // lower is better
    return m.rule == BestRule::kMin ? v : m.rule == BestRule::kMax ? -v : std::abs(v - 1.0);
  };
  const std::vector<double>* iteration = eval.find("iteration");
  for (size_t r = 0; r < eval.rows; ++r) {
    const double v = eval.columns[c][r];
    if (!std::isfinite(v) || (std::isfinite(m.best) && score(v) >= score(m.best))) continue;
    m.best = v;
    m.best_iteration = iteration != nullptr ? static_cast<int64_t>((*iteration)[r]) : -1;
  }
  return m;
}

// The group statistics of the runs `g.runs`: run-level numbers, then the /eval metrics every
// run of the group has.
void group_stats(const std::vector<RunData>& runs, LogGroupSummary& g) {
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
  for (const LogMetricSummary& m : runs[g.runs[0]].summary.metrics) {
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
    group_stats(runs, g);
    groups.push_back(std::move(g));
  }
  return groups;
}

}  // namespace

void summarise_run(RunData& run) {
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
  s.metrics.clear();
  for (size_t c = 0; c < run.eval.names.size(); ++c)
    if (!is_axis_column(run.eval.names[c])) s.metrics.push_back(metric_summary(run.eval, c));
}

LogGroupStat stat(const std::string& name, const std::vector<double>& values) {
  LogGroupStat g{name, 0, 0};
  for (double v : values) g.mean += v;
  g.mean /= static_cast<double>(values.size());
  for (double v : values) g.std += (v - g.mean) * (v - g.mean);
  g.std = values.size() > 1 ? std::sqrt(g.std / static_cast<double>(values.size() - 1)) : 0.0;
  return g;
}

AnalyseReport report_of(const std::vector<RunData>& runs) {
  AnalyseReport report;
  for (const RunData& r : runs) report.runs.push_back(r.summary);
  report.groups = find_groups(runs);
  return report;
}

int64_t Bins::of(double v) const {
  return std::clamp<int64_t>(static_cast<int64_t>(std::floor((v - origin) / width)), 0, count - 1);
}

std::vector<double> Bins::centres() const {
  std::vector<double> c;
  for (int64_t i = 0; i < count; ++i) c.push_back(origin + (static_cast<double>(i) + 0.5) * width);
  return c;
}

Bins span(const std::vector<double>& values, size_t stride, size_t offset, bool discrete, int64_t cells) {
  constexpr int64_t kMaxDiscreteCells = 4096;
  double lo = 0, hi = discrete ? 0 : 1;
  for (size_t k = offset; k < values.size(); k += stride)
    if (std::isfinite(values[k])) {
      lo = std::min(lo, values[k]);
      hi = std::max(hi, values[k]);
    }
  if (!discrete) return Bins{lo, (hi - lo) / static_cast<double>(cells), cells};
  // integer cells from the lowest to the highest integer, clamped against absurd ranges
  const double first = std::floor(lo);
  const double n = std::clamp(std::floor(hi) - first + 1, 1.0, static_cast<double>(kMaxDiscreteCells));
  return Bins{first - 0.5, 1.0, static_cast<int64_t>(n)};
}

std::vector<double> histogram(const std::vector<double>& values, const Bins& bins, double* finite) {
  std::vector<double> h(static_cast<size_t>(bins.count), 0.0);
  double n = 0;
  for (double v : values)
    if (std::isfinite(v)) {
      h[static_cast<size_t>(bins.of(v))] += 1;
      n += 1;
    }
  for (double& v : h) v /= std::max(n, 1.0);
  if (finite != nullptr) *finite = n;
  return h;
}

std::vector<double> histogram_2d(const std::vector<double>& points, const Bins& bx, const Bins& by) {
  std::vector<double> h(static_cast<size_t>(bx.count * by.count), 0.0);
  const size_t n = points.size() / 2;
  size_t counted = 0;
  for (size_t k = 0; k < n; ++k) {
    if (!std::isfinite(points[2 * k]) || !std::isfinite(points[2 * k + 1])) continue;
    h[static_cast<size_t>(bx.of(points[2 * k]) * by.count + by.of(points[2 * k + 1]))] += 1;
    ++counted;
  }
  for (double& v : h) v /= static_cast<double>(std::max<size_t>(counted, 1));
  return h;
}

std::vector<double> normalised_exp(const std::vector<double>& log_values) {
  double max = -std::numeric_limits<double>::infinity();
  for (double v : log_values)
    if (std::isfinite(v)) max = std::max(max, v);
  std::vector<double> p = log_values;
  double sum = 0;
  for (double& v : p) sum += (v = std::isfinite(v) ? std::exp(v - max) : 0.0);
  for (double& v : p) v = sum > 0 ? v / sum : 0.0;
  return p;
}

}  // namespace gfn::analysis

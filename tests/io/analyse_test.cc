// Tests of `gfn analyse` (io/analyse.h) on synthetic logs written with Hdf5Log: the summary
// numbers, groups of seeds, the JSON, CSV and PNG outputs, and the errors for bad files.
#include "io/analyse.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "core/params.h"
#include "io/hdf5_log.h"
#include "tests/apps/cli_fixture.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;

using testing::contains;
using testing::slurp;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// The message of the LogError that f throws ("" when it throws none).
template <class F>
std::string log_error_of(F&& f) {
  try {
    f();
  } catch (const LogError& e) {
    return e.what();
  }
  return "";
}

bool is_png(const fs::path& p) { return slurp(p).rfind("\x89PNG\r\n\x1a\n", 0) == 0; }

bool have_gnuplot() { return std::system("gnuplot -e 'exit' >/dev/null 2>&1") == 0; }

// analyse({path}) in a child process, so that a crash or a hang fails the test instead of
// killing or stalling the test binary: "ok", "LogError: <message>", or what went wrong.
std::string analyse_in_child(const std::string& path, int timeout_s = 10) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    std::string result = "ok";
    try {
      std::ostringstream out;
      analyse({path}, {}, out);
    } catch (const LogError& e) {
      result = std::string("LogError: ") + e.what();
    } catch (const std::exception& e) {
      result = std::string("another exception: ") + e.what();
    }
    if (::write(fds[1], result.data(), result.size()) < 0) _exit(2);
    _exit(0);
  }
  ::close(fds[1]);
  int status = 0;
  pid_t done = 0;
  for (int waited_ms = 0; (done = ::waitpid(child, &status, WNOHANG)) == 0 && waited_ms < 1000 * timeout_s;
       waited_ms += 10)
    ::usleep(10000);
  if (done == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    ::close(fds[0]);
    return "hang: no answer in " + std::to_string(timeout_s) + " s";
  }
  std::string result;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) result.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  if (WIFSIGNALED(status)) return "crash: signal " + std::to_string(WTERMSIG(status));
  return result;
}

const LogMetricSummary* metric(const LogRunSummary& run, const std::string& name) {
  for (const LogMetricSummary& m : run.metrics)
    if (m.name == name) return &m;
  return nullptr;
}

const LogGroupStat* stat(const std::vector<LogGroupStat>& stats, const std::string& name) {
  for (const LogGroupStat& s : stats)
    if (s.name == name) return &s;
  return nullptr;
}

class AnalyseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / ("gfn_analyse_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A new log at dir_/<run>/log.h5 of a hypergrid (height 4) config named `name` with `seed`.
  std::unique_ptr<Hdf5Log> new_log(const std::string& run, const std::string& name, int64_t seed,
                                   const std::string& env = "hypergrid", const std::string& extra = "") {
    fs::create_directories(dir_ / run);
    LogAttributes a;
    a.gfn_version = "0.1.0";
    a.created_utc = "2026-01-01T00:00:00Z";
    a.config_toml = "name = \"" + name + "\"  # run name\nseed = " + std::to_string(seed) +
                    "  # seed\ndevice = \"cpu\"\n\n[env]\nkind = \"" + env + "\"\nheight = 4\n" + extra;
    a.env = env;
    a.objective = "tb";
    a.device = "cpu";
    a.seed = seed;
    return Hdf5Log::create((dir_ / run / "log.h5").string(), a);
  }

  // A log of 10 /train rows (iterations 10..100, 16 trajectories each, 2 ms per iteration,
  // loss 1/iteration, log Z = `log_z`) and 2 /eval rows (iterations 50, 100) with `tv`, plus
  // samples of a 4 x 4 hypergrid.
  std::string standard_log(const std::string& run, const std::string& name, int64_t seed, double log_z,
                           std::vector<double> tv, const std::string& extra = "") {
    auto log = new_log(run, name, seed, "hypergrid", extra);
    for (int i = 1; i <= 10; ++i)
      log->append_row("train", {{"iteration", 10.0 * i},
                                {"trajectories", 160.0 * i},
                                {"wall_s", 0.02 * i},
                                {"loss", 1.0 / (10 * i)},
                                {"log_z", log_z}});
    for (int e = 0; e < 2; ++e)
      log->append_row("eval", {{"iteration", 50.0 * (e + 1)},
                               {"trajectories", 800.0 * (e + 1)},
                               {"wall_s", 0.1 * (e + 1)},
                               {"tv", tv[e]},
                               {"log_z", log_z}});
    const std::vector<double> log_reward = {-2.3, 0.7, 0.7, -0.7, -2.3, 0.7};
    const std::vector<int64_t> states = {0, 0, 3, 3, 0, 3, 1, 2, 2, 2, 3, 0};
    log->append("samples", "log_reward", LogDType::kFloat64, {}, log_reward.data(), 6);
    log->append("samples", "states_discrete", LogDType::kInt64, {2}, states.data(), 6);
    log->flush();
    return log->path();
  }

  fs::path dir_;
};

TEST_F(AnalyseTest, BestRules) {
  for (const char* m : {"tv", "jsd", "kl", "l1", "log_z_error", "log_z_is_error", "grid_jsd", "grid_tv",
                        "inclusion_error", "backward_loss"})
    EXPECT_EQ(best_rule(m), BestRule::kMin) << m;
  for (const char* m : {"elbo", "ess", "top_k_mean_reward", "top_k_found"})
    EXPECT_EQ(best_rule(m), BestRule::kMax) << m;
  EXPECT_EQ(best_rule("grid_mass"), BestRule::kClosestToOne);
  for (const char* m : {"log_z", "log_z_exact", "log_z_is", "something_new"})
    EXPECT_EQ(best_rule(m), BestRule::kNone) << m;
  EXPECT_STREQ(best_rule_name(BestRule::kClosestToOne), "closest to 1");
}

// final and best values, ms per iteration and trajectories per second of a synthetic log
TEST_F(AnalyseTest, SummaryNumbers) {
  auto log = new_log("r", "exp", 3);
  for (int i = 1; i <= 4; ++i)
    log->append_row("train", {{"iteration", 25.0 * i},
                              {"trajectories", 400.0 * i},
                              {"wall_s", 0.05 * i},
                              {"loss", 4.0 - i},
                              {"log_z", 0.5 * i},
                              {"backward_loss", 1.0}});
  const double rows[3][8] = {
      // iteration, tv, jsd, elbo, grid_mass, log_z, kl, foo
      {30, 0.3, 0.05, -3.0, 0.9, 1.0, kNaN, 7},
      {60, 0.1, 0.01, -2.0, 1.05, 2.0, 0.4, 8},
      {100, 0.2, kNaN, -4.0, 1.2, 3.0, 0.2, 9},
  };
  for (const auto& r : rows)
    log->append_row("eval", {{"iteration", r[0]},
                             {"tv", r[1]},
                             {"jsd", r[2]},
                             {"elbo", r[3]},
                             {"grid_mass", r[4]},
                             {"log_z", r[5]},
                             {"kl", r[6]},
                             {"foo", r[7]}});
  log->flush();

  const AnalyseReport report = summarise_logs({(dir_ / "r").string()});  // a run directory
  ASSERT_EQ(report.runs.size(), 1u);
  const LogRunSummary& s = report.runs[0];
  EXPECT_EQ(s.path, (dir_ / "r" / "log.h5").string());
  EXPECT_EQ(s.label, "r");
  EXPECT_EQ(s.name, "exp");
  EXPECT_EQ(s.env, "hypergrid");
  EXPECT_EQ(s.objective, "tb");
  EXPECT_EQ(s.seed, 3);
  EXPECT_EQ(s.train_rows, 4);
  EXPECT_EQ(s.eval_rows, 3);
  EXPECT_EQ(s.iterations, 100);
  EXPECT_EQ(s.trajectories, 1600);
  EXPECT_DOUBLE_EQ(s.wall_s, 0.2);
  EXPECT_DOUBLE_EQ(s.ms_per_iteration, 2.0);       // 1000 * 0.2 s / 100
  EXPECT_DOUBLE_EQ(s.trajectories_per_s, 8000.0);  // 1600 / 0.2 s
  EXPECT_DOUBLE_EQ(s.final_loss, 0.0);
  EXPECT_DOUBLE_EQ(s.final_log_z, 2.0);
  EXPECT_TRUE(report.groups.empty());

  struct Expected {
    const char* name;
    double final_value, best;
    int64_t best_iteration;
  };
  for (const Expected& e :
       {Expected{"tv", 0.2, 0.1, 60}, Expected{"jsd", kNaN, 0.01, 60}, Expected{"elbo", -4.0, -2.0, 60},
        Expected{"grid_mass", 1.2, 1.05, 60}, Expected{"kl", 0.2, 0.2, 100}, Expected{"log_z", 3.0, kNaN, -1},
        Expected{"foo", 9.0, kNaN, -1}}) {
    const LogMetricSummary* m = metric(s, e.name);
    ASSERT_NE(m, nullptr) << e.name;
    for (const auto& [got, want] : {std::pair{m->final_value, e.final_value}, std::pair{m->best, e.best}}) {
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got)) << e.name;
      } else {
        EXPECT_DOUBLE_EQ(got, want) << e.name;
      }
    }
    EXPECT_EQ(m->best_iteration, e.best_iteration) << e.name;
  }
  // the axes are not metrics
  EXPECT_EQ(metric(s, "iteration"), nullptr);
  EXPECT_EQ(metric(s, "wall_s"), nullptr);

  // the table names the run and its numbers
  std::ostringstream out;
  analyse({(dir_ / "r" / "log.h5").string()}, {}, out);
  const std::string text = out.str();
  EXPECT_TRUE(contains(text, "hypergrid, tb, seed 3: 100 iterations, 1600 trajectories in 0.2 s")) << text;
  EXPECT_TRUE(contains(text, "2 ms/iteration, 8000 trajectories/s; final loss 0, log Z 2")) << text;
  EXPECT_TRUE(contains(text, "grid_mass")) << text;
  EXPECT_TRUE(contains(text, "closest to 1")) << text;
  // readable in 100 columns
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!contains(line, dir_.string())) {
      EXPECT_LE(line.size(), 100u) << line;
    }
  }
}

// labels: the directory of log.h5, parents added until unique; another file name: its stem. A
// log given again (the same file, or its directory) counts once; a copy is another run
TEST_F(AnalyseTest, LabelsAreUnique) {
  const std::string a = standard_log("a/seed0", "x", 0, 1.0, {0.2, 0.1});
  const std::string b = standard_log("b/seed0", "x", 1, 1.0, {0.2, 0.1});
  const std::string c = standard_log("c", "x", 2, 1.0, {0.2, 0.1});
  fs::copy_file(c, dir_ / "other.h5");
  const AnalyseReport report =
      summarise_logs({a, b, c, (dir_ / "other.h5").string(), c, fs::path(c).parent_path().string()});
  ASSERT_EQ(report.runs.size(), 4u);
  EXPECT_EQ(report.runs[0].label, "a/seed0");
  EXPECT_EQ(report.runs[1].label, "b/seed0");
  EXPECT_EQ(report.runs[2].label, "c");
  EXPECT_EQ(report.runs[3].label, "other");
}

// runs of one config with other seeds form a group with mean ± std of their final values
TEST_F(AnalyseTest, GroupsSeedsOfOneConfig) {
  const std::string s0 = standard_log("s0", "grid", 0, 1.0, {0.5, 0.1});
  const std::string s1 = standard_log("s1", "grid", 1, 3.0, {0.2, 0.3});
  const std::string other = standard_log("other", "grid", 0, 2.0, {0.5, 0.1}, "[train]\nlr = 0.01\n");
  const AnalyseReport report = summarise_logs({s0, other, s1});
  ASSERT_EQ(report.groups.size(), 1u);
  const LogGroupSummary& g = report.groups[0];
  EXPECT_EQ(g.label, "grid");
  EXPECT_EQ(g.runs, (std::vector<size_t>{0, 2}));
  const LogGroupStat* log_z = stat(g.final_values, "final_log_z");
  ASSERT_NE(log_z, nullptr);
  EXPECT_DOUBLE_EQ(log_z->mean, 2.0);
  EXPECT_NEAR(log_z->std, std::sqrt(2.0), 1e-12);  // sample std of {1, 3}
  const LogGroupStat* tv = stat(g.final_values, "tv");
  ASSERT_NE(tv, nullptr);
  EXPECT_NEAR(tv->mean, 0.2, 1e-12);
  EXPECT_NEAR(tv->std, std::sqrt(0.02), 1e-12);  // {0.1, 0.3}
  const LogGroupStat* best_tv = stat(g.best_values, "tv");
  ASSERT_NE(best_tv, nullptr);
  EXPECT_NEAR(best_tv->mean, 0.15, 1e-12);  // bests {0.1, 0.2}
  EXPECT_NEAR(best_tv->std, std::sqrt(0.005), 1e-12);
  const LogGroupStat* ms = stat(g.final_values, "ms_per_iteration");
  ASSERT_NE(ms, nullptr);
  EXPECT_DOUBLE_EQ(ms->mean, 2.0);
  EXPECT_DOUBLE_EQ(ms->std, 0.0);
  EXPECT_EQ(stat(g.best_values, "log_z"), nullptr);  // no best rule

  std::ostringstream out;
  analyse({s0, other, s1}, {}, out);
  EXPECT_TRUE(contains(out.str(), "group grid: 2 runs (s0, s1; seeds 0, 1)")) << out.str();
  EXPECT_TRUE(contains(out.str(), "2 ± 1.414")) << out.str();
}

// --json: one object that python's json module parses, holding the numbers; NaN as null
TEST_F(AnalyseTest, JsonParsesAndHoldsValues) {
  const std::string s0 = standard_log("s0", "grid", 0, 1.0, {0.5, kNaN});
  const std::string s1 = standard_log("s1 \"quoted\"", "grid", 1, 3.0, {0.2, 0.3});
  AnalyseOptions options;
  options.json = true;
  std::ostringstream out;
  analyse({s0, s1}, options, out);
  const std::string text = out.str();
  EXPECT_EQ(text.front(), '{');
  EXPECT_TRUE(contains(text, "\"ms_per_iteration\": 2,")) << text;
  EXPECT_TRUE(contains(text, "\"label\": \"s1 \\\"quoted\\\"\"")) << text;
  EXPECT_FALSE(contains(text, ": nan")) << text;

  if (std::system("/usr/bin/python3 -c 'import json' >/dev/null 2>&1") != 0) GTEST_SKIP() << "/usr/bin/python3 missing";
  const fs::path json = dir_ / "out.json", script = dir_ / "check.py";
  write_text(json, text);
  write_text(script,
             "import json, sys\n"
             "d = json.load(open(sys.argv[1]))\n"
             "r0, r1 = d['runs']\n"
             "assert r0['label'] == 's0' and r1['label'] == 's1 \"quoted\"', (r0['label'], r1['label'])\n"
             "assert r0['iterations'] == 100 and r0['trajectories'] == 1600, r0\n"
             "assert r0['ms_per_iteration'] == 2.0 and r0['trajectories_per_s'] == 8000.0, r0\n"
             "assert r0['final_log_z'] == 1.0 and r0['final_loss'] == 0.01, r0\n"
             "assert r0['metrics']['tv']['final'] is None, r0['metrics']['tv']\n"
             "assert r0['metrics']['tv']['best'] == 0.5 and r0['metrics']['tv']['best_iteration'] == 50\n"
             "assert r0['metrics']['tv']['best_is'] == 'min'\n"
             "assert r0['metrics']['log_z']['best'] is None\n"
             "g, = d['groups']\n"
             "assert g['label'] == 'grid' and g['runs'] == ['s0', 's1 \"quoted\"'] and g['seeds'] == [0, 1], g\n"
             "assert g['final']['final_log_z']['mean'] == 2.0, g['final']\n"
             "assert abs(g['final']['final_log_z']['std'] - 2 ** 0.5) < 1e-12, g['final']\n"
             "assert g['final']['log_z']['mean'] == 2.0, g['final']\n"
             "assert g['final']['tv']['mean'] is None, g['final']['tv']\n"
             "assert abs(g['best']['tv']['mean'] - 0.35) < 1e-12, g['best']['tv']\n"
             "assert d['notes'] == [] and d['files'] == []\n");
  const std::string command = "/usr/bin/python3 '" + script.string() + "' '" + json.string() + "'";
  EXPECT_EQ(std::system(command.c_str()), 0) << text;
}

// --csv: summary.csv with a row per run, and every column of /train and /eval per run
TEST_F(AnalyseTest, CsvTables) {
  const std::string s0 = standard_log("run/one", "grid", 0, 1.0, {0.5, 0.25});
  const std::string s1 = standard_log("run two", "grid", 1, 3.0, {0.2, 0.3});
  AnalyseOptions options;
  options.csv_dir = (dir_ / "csv" / "new").string();
  std::ostringstream out;
  analyse({s0, s1}, options, out);

  const std::string summary = slurp(dir_ / "csv" / "new" / "summary.csv");
  std::istringstream lines(summary);
  std::string header, row0, row1, extra;
  std::getline(lines, header);
  std::getline(lines, row0);
  std::getline(lines, row1);
  EXPECT_FALSE(std::getline(lines, extra));
  EXPECT_EQ(header,
            "label,path,name,env,objective,seed,train_rows,eval_rows,iterations,trajectories,wall_s,ms_per_iteration,"
            "trajectories_per_s,final_loss,final_log_z,log_z_final,tv_final,tv_best");
  EXPECT_EQ(row0, "one," + s0 + ",grid,hypergrid,tb,0,10,2,100,1600,0.2,2,8000,0.01,1,1,0.25,0.25");
  EXPECT_EQ(row1.substr(0, 9), "run two,/");

  // labels made file names
  const std::string train = slurp(dir_ / "csv" / "new" / "one_train.csv");
  EXPECT_EQ(train.substr(0, train.find('\n')), "iteration,trajectories,wall_s,log_z,loss");
  EXPECT_TRUE(contains(train, "\n100,1600,0.2,1,0.01\n")) << train;
  EXPECT_EQ(std::count(train.begin(), train.end(), '\n'), 11);
  const std::string eval = slurp(dir_ / "csv" / "new" / "run_two_eval.csv");
  EXPECT_EQ(eval, "iteration,trajectories,wall_s,log_z,tv\n50,800,0.1,3,0.2\n100,1600,0.2,3,0.3\n");
  EXPECT_TRUE(contains(out.str(), "summary.csv")) << out.str();
}

// --plot: PNGs (with their .gp and .dat) for curves, groups, the 2-D grid and the rewards
TEST_F(AnalyseTest, PlotsArePngs) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot missing (Debian package gnuplot-nox)";
  const std::string s0 = standard_log("s0", "grid", 0, 1.0, {0.5, 0.25});
  const std::string s1 = standard_log("s1", "grid", 1, 3.0, {0.2, 0.3});
  // a box run with /grid: x, y, R on the grid and two evaluations of the terminating distribution
  auto log = new_log("box run's", "box", 0, "box");
  for (int i = 1; i <= 3000; ++i)
    log->append_row(
        "train",
        {{"iteration", i}, {"trajectories", 16.0 * i}, {"wall_s", 0.01 * i}, {"loss", 1.0 / i}, {"log_z", -1.0}});
  log->append_row("eval", {{"iteration", 3000},
                           {"trajectories", 48000},
                           {"wall_s", 30},
                           {"elbo", -2.0},
                           {"grid_jsd", 0.1},
                           {"log_z", -1.0},
                           {"log_z_exact", -1.2}});
  constexpr int kCells = 10;
  std::vector<double> axis, log_reward, terminating;
  for (int i = 0; i < kCells; ++i) axis.push_back((i + 0.5) / kCells);
  for (int i = 0; i < kCells * kCells; ++i) log_reward.push_back(i % 7 == 0 ? 0.7 : -2.3);
  for (int i = 0; i < 2 * kCells * kCells; ++i) terminating.push_back(1.0 / (kCells * kCells));
  const int64_t grid_iterations[2] = {1500, 3000};
  log->append("grid", "x", LogDType::kFloat64, {}, axis.data(), kCells);
  log->append("grid", "y", LogDType::kFloat64, {}, axis.data(), kCells);
  log->append("grid", "log_reward", LogDType::kFloat64, {kCells}, log_reward.data(), kCells);
  log->append("grid", "iteration", LogDType::kInt64, {}, grid_iterations, 2);
  log->append("grid", "terminating", LogDType::kFloat64, {kCells, kCells}, terminating.data(), 2);
  log->append("samples", "log_reward", LogDType::kFloat64, {}, log_reward.data(), 50);
  log->flush();
  log.reset();

  AnalyseOptions options;
  options.plot_dir = (dir_ / "plots with 'quotes'").string();
  options.max_plot_points = 100;
  std::ostringstream out;
  analyse({s0, s1, (dir_ / "box run's").string()}, options, out);
  const fs::path plots = options.plot_dir;
  for (const char* stem : {"train", "eval", "log_reward", "box_run_s_grid", "s0_grid", "s1_grid"}) {
    for (const char* ext : {".gp", ".dat"}) EXPECT_TRUE(fs::exists(plots / (std::string(stem) + ext))) << stem << ext;
    EXPECT_TRUE(is_png(plots / (std::string(stem) + ".png"))) << stem;
  }
  // groups are a mean line with a band; long curves are thinned; the grid shows the last evaluation
  const std::string train_gp = slurp(plots / "train.gp");
  EXPECT_TRUE(contains(train_gp, "grid (mean ± std of 2 seeds)")) << train_gp;
  EXPECT_TRUE(contains(train_gp, "filledcurves")) << train_gp;
  const std::string train_dat = slurp(plots / "train.dat");
  const auto box_block = train_dat.find("# block 1: box run's");
  ASSERT_NE(box_block, std::string::npos) << train_dat;
  EXPECT_LE(std::count(train_dat.begin() + static_cast<std::ptrdiff_t>(box_block), train_dat.end(), '\n'), 103);
  EXPECT_TRUE(contains(slurp(plots / "box_run_s_grid.gp"), "at iteration 3000"));
  EXPECT_TRUE(contains(slurp(plots / "s0_grid.gp"), "histogram of 6 terminal samples"));

  // the scripts run again on their own
  fs::remove(plots / "eval.png");
  const std::string shell_quoted = "cd '" + dir_.string() + "' && gnuplot \"plots with 'quotes'/eval.gp\" 2>/dev/null";
  EXPECT_EQ(std::system(shell_quoted.c_str()), 0);
  EXPECT_TRUE(is_png(plots / "eval.png"));
}

// --plot chooses a run's own plots by what its log holds, never by the env's name: a log of an
// env defined out of tree gets the plots, and the very data, of a built-in env's log with the
// same content
TEST_F(AnalyseTest, PlotsFollowContentNotEnvName) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot missing (Debian package gnuplot-nox)";
  enum class Content { kContinuous2d, kDiscrete2d, kContinuous1d, kGrid, kDiscrete3d };
  // a log of `env` holding 3 /train rows, 40 terminal log-rewards and `content`
  auto write = [&](const std::string& run, const std::string& env, Content content) {
    auto log = new_log(run, run, 0, env);
    for (int i = 1; i <= 3; ++i) log->append_row("train", {{"iteration", i}, {"trajectories", 8.0 * i}, {"loss", 1.0}});
    constexpr int kSamples = 40;
    std::vector<double> log_reward, coords;
    std::vector<int64_t> cells;
    for (int k = 0; k < kSamples; ++k) {
      log_reward.push_back(-0.1 * k);
      for (int d = 0; d < 3; ++d) {
        coords.push_back(std::fmod(0.37 * (k + 1) * (d + 1), 6.28));  // a torus's [0, 2 pi), not the unit box
        cells.push_back((k * (d + 2)) % 5);
      }
    }
    log->append("samples", "log_reward", LogDType::kFloat64, {}, log_reward.data(), kSamples);
    if (content == Content::kContinuous2d || content == Content::kContinuous1d) {
      const int64_t dim = content == Content::kContinuous2d ? 2 : 1;
      std::vector<double> rows;
      for (int k = 0; k < kSamples; ++k) rows.insert(rows.end(), coords.begin() + 3 * k, coords.begin() + 3 * k + dim);
      log->append("samples", "states_continuous", LogDType::kFloat64, {dim}, rows.data(), kSamples);
    } else if (content == Content::kDiscrete2d || content == Content::kDiscrete3d) {
      const int64_t dim = content == Content::kDiscrete2d ? 2 : 3;
      std::vector<int64_t> rows;
      for (int k = 0; k < kSamples; ++k) rows.insert(rows.end(), cells.begin() + 3 * k, cells.begin() + 3 * k + dim);
      log->append("samples", "states_discrete", LogDType::kInt64, {dim}, rows.data(), kSamples);
    } else {
      const std::vector<double> axis = {0.25, 0.75}, grid_log_reward = {0.0, -1.0, -2.0, 0.5},
                                terminating = {0.1, 0.2, 0.3, 0.4};
      const int64_t iteration = 3;
      log->write_fixed("grid", "x", LogDType::kFloat64, {2}, axis.data());
      log->write_fixed("grid", "y", LogDType::kFloat64, {2}, axis.data());
      log->write_fixed("grid", "log_reward", LogDType::kFloat64, {2, 2}, grid_log_reward.data());
      log->append("grid", "iteration", LogDType::kInt64, {}, &iteration, 1);
      log->append("grid", "terminating", LogDType::kFloat64, {2, 2}, terminating.data(), 1);
    }
    log->flush();
    return log->path();
  };
  struct Case {
    Content content;
    std::string builtin_env, stem;  // the env that writes such logs; the plot every such log gets ("": none)
  };
  const std::vector<Case> cases = {{Content::kContinuous2d, "box", "grid"},
                                   {Content::kDiscrete2d, "hypergrid", "grid"},
                                   {Content::kContinuous1d, "line", "samples"},
                                   {Content::kGrid, "labelled_box", "grid"},
                                   {Content::kDiscrete3d, "sets", ""}};
  std::vector<std::string> paths;
  for (size_t c = 0; c < cases.size(); ++c)
    for (const std::string& env : {cases[c].builtin_env, std::string("torus")})
      paths.push_back(write(fmt::format("{}{}", env == "torus" ? "torus" : "builtin", c), env, cases[c].content));

  AnalyseOptions options;
  options.plot_dir = (dir_ / "plots").string();
  std::ostringstream out;
  analyse(paths, options, out);
  const fs::path plots = options.plot_dir;
  EXPECT_TRUE(is_png(plots / "log_reward.png"));
  for (size_t c = 0; c < cases.size(); ++c) {
    const std::string builtin = fmt::format("builtin{}", c), torus = fmt::format("torus{}", c);
    for (const char* stem : {"grid", "samples"}) {
      const bool expected = cases[c].stem == stem;
      for (const std::string& run : {builtin, torus}) {
        const std::string file = run + "_" + stem;
        EXPECT_EQ(fs::exists(plots / (file + ".gp")), expected) << file << ".gp";
        EXPECT_EQ(is_png(plots / (file + ".png")), expected) << file << ".png";
      }
      if (expected) {
        EXPECT_EQ(slurp(plots / (torus + "_" + stem + ".dat")), slurp(plots / (builtin + "_" + stem + ".dat")))
            << cases[c].builtin_env << " " << stem;
      }
    }
  }
  // what each shows: the samples' histogram; /grid's R / Z and its last evaluation
  EXPECT_TRUE(contains(slurp(plots / "torus0_grid.gp"), "histogram of 40 terminal samples"));
  EXPECT_TRUE(contains(slurp(plots / "torus2_samples.dat"), "histogram of 40 terminal samples"));
  EXPECT_TRUE(contains(slurp(plots / "torus3_grid.gp"), "at iteration 3"));
  EXPECT_TRUE(contains(slurp(plots / "torus3_grid.gp"), "reward R(x) / Z on the grid"));
}

// --plot without gnuplot: a ConfigError naming the option and the package
TEST_F(AnalyseTest, MissingGnuplotIsConfigError) {
  const std::string s0 = standard_log("s0", "grid", 0, 1.0, {0.5, 0.25});
  AnalyseOptions options;
  options.plot_dir = (dir_ / "plots").string();
  options.gnuplot = "gnuplot-that-is-not-installed";
  std::ostringstream out;
  try {
    analyse({s0}, options, out);
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(contains(e.what(), "--plot")) << e.what();
    EXPECT_TRUE(contains(e.what(), "gnuplot-nox")) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "plots"));
  options.gnuplot = "gnuplot";
  options.max_plot_points = 1;
  EXPECT_THROW(analyse({s0}, options, out), ConfigError);
}

// a log without /train rows: 0 iterations, and its plots are skipped with a note
TEST_F(AnalyseTest, EmptyLogIsValid) {
  new_log("empty", "e", 0, "hypergrid", "[train]\niterations = 0\n")->flush();
  const std::string s0 = standard_log("s0", "grid", 0, 1.0, {0.5, 0.25});
  const AnalyseReport report = summarise_logs({(dir_ / "empty").string()});
  ASSERT_EQ(report.runs.size(), 1u);
  EXPECT_EQ(report.runs[0].iterations, 0);
  EXPECT_EQ(report.runs[0].train_rows, 0);
  EXPECT_TRUE(std::isnan(report.runs[0].final_loss));
  EXPECT_TRUE(report.runs[0].metrics.empty());

  AnalyseOptions options;
  if (have_gnuplot()) options.plot_dir = (dir_ / "plots").string();
  options.csv_dir = (dir_ / "csv").string();
  std::ostringstream out;
  analyse({(dir_ / "empty").string(), s0}, options, out);
  EXPECT_TRUE(contains(out.str(), "empty: no /train rows yet (0 iterations)")) << out.str();
  EXPECT_EQ(slurp(dir_ / "csv" / "empty_train.csv"), "\n");
  if (!options.plot_dir.empty()) {
    EXPECT_TRUE(contains(out.str(), "empty: no train rows, left out of the train plot")) << out.str();
    EXPECT_TRUE(is_png(dir_ / "plots" / "train.png"));
  }
}

// every bad input is a LogError naming the file, never a crash
TEST_F(AnalyseTest, BadFilesAreLogErrors) {
  const std::string good = standard_log("good", "grid", 0, 1.0, {0.5, 0.25});
  std::ostringstream out;
  auto error_of = [&](const std::string& path) { return log_error_of([&] { analyse({good, path}, {}, out); }); };

  const fs::path text = dir_ / "text.h5";
  write_text(text, "this is not an HDF5 file\n");
  EXPECT_EQ(error_of(text.string()), text.string() + ": cannot open: not an HDF5 file or truncated");
  EXPECT_TRUE(contains(error_of((dir_ / "missing").string()), (dir_ / "missing").string() + ": cannot open"));

  const fs::path plain = dir_ / "plain.h5";
  {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t f = H5Fcreate(plain.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    H5Fclose(f);
  }
  EXPECT_EQ(error_of(plain.string()), plain.string() + ": not a gfn log (no schema_version attribute)");

  // a bigger real log, then its first half
  auto log = new_log("big", "big", 0);
  for (int i = 0; i < 5000; ++i)
    log->append_row("train",
                    {{"iteration", i}, {"trajectories", 16.0 * i}, {"wall_s", 0.01 * i}, {"loss", 1.0 / (i + 1)}});
  for (int i = 0; i < 50; ++i) log->append_row("eval", {{"iteration", 100.0 * i}, {"tv", 0.5}});
  log->flush();
  log.reset();
  const std::string bytes = slurp(dir_ / "big" / "log.h5");
  const fs::path truncated = dir_ / "truncated.h5";
  write_text(truncated, bytes.substr(0, bytes.size() / 2));
  EXPECT_TRUE(contains(error_of(truncated.string()), truncated.string() + ": ")) << error_of(truncated.string());

  // garbage over the middle half of the file
  std::mt19937 rng(7);
  std::string garbled = bytes;
  for (size_t i = garbled.size() / 4; i < 3 * garbled.size() / 4; ++i) garbled[i] = static_cast<char>(rng());
  const fs::path corrupted = dir_ / "corrupted.h5";
  write_text(corrupted, garbled);
  EXPECT_TRUE(contains(analyse_in_child(corrupted.string()), "LogError: " + corrupted.string() + ": "))
      << analyse_in_child(corrupted.string());

  // shorter runs of garbage anywhere after the superblock: readable or a LogError, never a crash
  for (size_t offset = 64; offset + 256 < bytes.size(); offset += bytes.size() / 37) {
    std::string copy = bytes;
    for (size_t i = offset; i < offset + 256; ++i) copy[i] = static_cast<char>(rng());
    write_text(corrupted, copy);
    const std::string result = analyse_in_child(corrupted.string());
    EXPECT_TRUE(result == "ok" || contains(result, "LogError: " + corrupted.string() + ": "))
        << "garbage at byte " << offset << ": " << result;
  }
}

// A log whose rows repeat or step back (as two writers of one run left it before runs were
// locked: rows of iteration 0 among later ones) is refused, naming the table and the row
TEST_F(AnalyseTest, RowsOutOfOrderAreLogErrors) {
  std::ostringstream out;
  for (const auto& [run, iterations, row, message] :
       {std::tuple{"repeat", std::vector<double>{10, 20, 20, 30}, 2, "holds 20 after 20"},
        std::tuple{"back", std::vector<double>{10, 20, 30, 0, 40}, 3, "holds 0 after 30"}}) {
    auto log = new_log(run, run, 0);
    for (double it : iterations) log->append_row("train", {{"iteration", it}, {"loss", 1.0}});
    log->flush();
    const std::string path = log->path();
    log.reset();
    const std::string error = log_error_of([&, p = path] { analyse({p}, {}, out); });
    EXPECT_EQ(error, fmt::format("{}: train/iteration is not increasing: row {} {} (rows out of order or repeated; "
                                 "not a log one gfn run wrote)",
                                 path, row, message));
  }
  // the same in /eval
  auto log = new_log("eval", "eval", 0);
  log->append_row("train", {{"iteration", 10.0}, {"loss", 1.0}});
  for (double it : {50.0, 100.0, 50.0}) log->append_row("eval", {{"iteration", it}, {"tv", 0.5}});
  log->flush();
  const std::string path = log->path();
  log.reset();
  EXPECT_TRUE(contains(log_error_of([&] { analyse({path}, {}, out); }), "eval/iteration is not increasing: row 2"));
}

}  // namespace
}  // namespace gfn

// End-to-end tests of `gfn analyse`: exit codes, the table, --json, --csv and --plot, and the
// one-line error for a bad file. The binary's path comes from ctest (GFN_BIN).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/hdf5_log.h"
#include "tests/apps/cli_fixture.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;

using testing::contains;
using testing::slurp;

class AnalyseCli : public testing::CliFixture {
 protected:
  AnalyseCli() : CliFixture("gfn_analyse_cli_") {}

  // dir_/<run>/log.h5: 20 /train rows (iterations 5..100, 2 ms each), 2 /eval rows, 4 samples
  fs::path write_run(const std::string& run, int64_t seed) {
    fs::create_directories(dir_ / run);
    LogAttributes a;
    a.gfn_version = "0.1.0";
    a.created_utc = "2026-01-01T00:00:00Z";
    a.config_toml = "name = \"small\"\nseed = " + std::to_string(seed) + "\n[env]\nkind = \"hypergrid\"\nheight = 4\n";
    a.env = "hypergrid";
    a.objective = "tb";
    a.device = "cpu";
    a.seed = seed;
    auto log = Hdf5Log::create((dir_ / run / "log.h5").string(), a);
    for (int i = 1; i <= 20; ++i)
      log->append_row("train", {{"iteration", 5.0 * i},
                                {"trajectories", 80.0 * i},
                                {"wall_s", 0.01 * i},
                                {"loss", 1.0 / i},
                                {"log_z", 1.0 + seed}});
    log->append_row("eval", {{"iteration", 50}, {"trajectories", 800}, {"wall_s", 0.1}, {"tv", 0.4}, {"jsd", 0.1}});
    log->append_row("eval", {{"iteration", 100}, {"trajectories", 1600}, {"wall_s", 0.2}, {"tv", 0.2}, {"jsd", 0.05}});
    const double log_reward[4] = {-2.3, 0.7, 0.7, -0.7};
    const int64_t states[8] = {0, 0, 3, 3, 0, 3, 1, 2};
    log->append("samples", "log_reward", LogDType::kFloat64, {}, log_reward, 4);
    log->append("samples", "states_discrete", LogDType::kInt64, {2}, states, 4);
    log->flush();
    return dir_ / run;
  }
};

// a good log: exit 0 and the table
TEST_F(AnalyseCli, TableOfGoodLogs) {
  const fs::path a = write_run("seed0", 0), b = write_run("seed1", 1);
  auto r = run("analyse '" + a.string() + "' '" + (b / "log.h5").string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_TRUE(contains(r.out, "gfn analyse: 2 runs, 1 group of seeds")) << r.out;
  EXPECT_TRUE(contains(r.out, "seed0  (" + (a / "log.h5").string() + ")")) << r.out;
  EXPECT_TRUE(contains(r.out, "hypergrid, tb, seed 1: 100 iterations, 1600 trajectories in 0.2 s")) << r.out;
  EXPECT_TRUE(contains(r.out, "group small: 2 runs (seed0, seed1; seeds 0, 1)")) << r.out;
  EXPECT_TRUE(contains(r.out, "1.5 ± 0.7071")) << r.out;  // log Z of {1, 2}
}

// a bad file: exit 2 and one line on stderr naming it; nothing on stdout
TEST_F(AnalyseCli, BadFileExitsTwoWithOneLine) {
  const fs::path good = write_run("good", 0);
  const fs::path bad = dir_ / "bad log.h5";
  std::ofstream(bad) << "not HDF5\n";
  for (const fs::path& p : {bad, dir_ / "missing"}) {
    auto r = run("analyse '" + good.string() + "' '" + p.string() + "'");
    EXPECT_EQ(r.code, 2) << r.out << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(r.err.rfind("gfn: error: " + p.string() + ": cannot open", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// --json: one object, which python's json module parses
TEST_F(AnalyseCli, JsonOutput) {
  const fs::path a = write_run("seed0", 0);
  auto r = run("analyse '" + a.string() + "' --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.front(), '{') << r.out;
  EXPECT_TRUE(contains(r.out, "\"iterations\": 100,")) << r.out;
  EXPECT_TRUE(contains(r.out, "\"trajectories_per_s\": 8000,")) << r.out;
  if (std::system("/usr/bin/python3 -c 'import json' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no /usr/bin/python3";
  std::ofstream(dir_ / "out.json") << r.out;
  const std::string check =
      "/usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); "
      "assert d[\"runs\"][0][\"metrics\"][\"tv\"][\"best\"] == 0.2, d' < '" +
      (dir_ / "out.json").string() + "'";
  EXPECT_EQ(std::system(check.c_str()), 0) << r.out;
}

// --csv and --plot write their files; --plot without gnuplot on PATH is a usage error
TEST_F(AnalyseCli, CsvAndPlots) {
  const fs::path a = write_run("seed0", 0);
  const fs::path csv = dir_ / "out csv", plots = dir_ / "out plots";
  const bool gnuplot = std::system("gnuplot -e 'exit' >/dev/null 2>&1") == 0;
  auto r = run("analyse '" + a.string() + "' --csv '" + csv.string() + "'" +
               (gnuplot ? " --plot '" + plots.string() + "'" : std::string()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(csv / "seed0_eval.csv"),
            "iteration,trajectories,wall_s,jsd,tv\n50,800,0.1,0.1,0.4\n"
            "100,1600,0.2,0.05,0.2\n");
  EXPECT_TRUE(fs::exists(csv / "summary.csv"));
  if (gnuplot) {
    for (const char* png : {"train.png", "eval.png", "seed0_grid.png", "log_reward.png"})
      EXPECT_EQ(slurp(plots / png).substr(0, 4), "\x89PNG") << png;
  }

  // no gnuplot: PATH without it
  const std::string path = std::getenv("PATH") != nullptr ? std::getenv("PATH") : "";
  ::setenv("PATH", (dir_ / "empty").c_str(), 1);
  auto e = run("analyse '" + a.string() + "' --plot '" + (dir_ / "never").string() + "'");
  ::setenv("PATH", path.c_str(), 1);
  EXPECT_EQ(e.code, 2) << e.err;
  EXPECT_TRUE(contains(e.err, "--plot")) << e.err;
  EXPECT_TRUE(contains(e.err, "gnuplot-nox")) << e.err;
  EXPECT_FALSE(fs::exists(dir_ / "never"));
}

}  // namespace
}  // namespace gfn

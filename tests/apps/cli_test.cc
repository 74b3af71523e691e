// End-to-end tests of the `gfn` command line: exit codes, error messages, the files a run
// writes and what `gfn eval` prints. The binary's path comes from ctest (GFN_BIN).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "io/hdf5_log.h"
#include "tests/apps/cli_fixture.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;

using testing::contains;
using testing::Result;
using testing::slurp;

class Cli : public testing::CliFixture {
 protected:
  Cli() : CliFixture("gfn_cli_") {}
  void SetUp() override {
    CliFixture::SetUp();
    config_ = dir_ / "small.toml";
    std::ofstream(config_) << "name = \"small\"\n[env]\nkind = \"hypergrid\"\nndim = 2\nheight = 4\n"
                              "[train]\niterations = 60\nbatch_size = 8\n[eval]\nevery = 20\nsamples = 50\n"
                              "[log]\nevery = 5\ntrajectories_every = 30\ntrajectories_count = 4\n";
  }

  fs::path config_;
};

// a run writes config, model and a log with the documented datasets; eval prints exact metrics
TEST_F(Cli, TrainWritesRunAndEvalPrintsJson) {
  auto out = dir_ / "run";
  auto r = run("train '" + config_.string() + "' --out '" + out.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("exact: TV"), std::string::npos) << r.out;
  for (const char* f : {"config.toml", "model.pt", "log.h5"}) EXPECT_TRUE(fs::exists(out / f)) << f;

  Hdf5LogReader log((out / "log.h5").string());
  EXPECT_EQ(log.schema_version(), 2);
  EXPECT_EQ(log.attribute_string("env"), "hypergrid");
  EXPECT_EQ(log.attribute_string("objective"), "tb");
  EXPECT_EQ(log.attribute_string("device"), "cpu");
  EXPECT_NE(log.attribute_string("config").find("height = 4"), std::string::npos);
  // one /train row every 5 iterations, one /eval row every 20
  EXPECT_EQ(log.read_int64("train/iteration").size(), 12u);
  EXPECT_EQ(log.read_int64("train/iteration").back(), 60);
  EXPECT_EQ(log.read_int64("eval/iteration"), (std::vector<int64_t>{20, 40, 60}));
  for (const char* m : {"train/loss", "train/log_z", "train/wall_s", "train/trajectories", "train/lr", "train/grad_norm",
                        "train/mean_log_reward", "eval/tv", "eval/jsd", "eval/kl", "eval/l1", "eval/log_z_error"})
    EXPECT_TRUE(log.has(m)) << m;
  // trajectories at iterations 30 and 60, 4 each, T = 2*(4-1)+1 = 7 steps
  EXPECT_EQ(log.shape("trajectories/states_discrete"), (std::vector<int64_t>{8, 8, 2}));
  EXPECT_EQ(log.shape("trajectories/action_component"), (std::vector<int64_t>{8, 7}));
  EXPECT_EQ(log.shape("trajectories/log_pf"), (std::vector<int64_t>{8, 7}));
  EXPECT_EQ(log.shape("samples/states_discrete"), (std::vector<int64_t>{50, 2}));
  for (double g : log.read_double("train/grad_norm")) EXPECT_TRUE(std::isfinite(g) && g > 0) << g;
  auto tv = log.read_double("eval/tv");
  for (double v : tv) EXPECT_TRUE(v >= 0 && v <= 1) << v;

  auto e = run("eval '" + out.string() + "' --json");
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("\"iteration\": 60"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("\"tv\": "), std::string::npos) << e.out;
  // the saved policy is the one evaluated at the end of training
  EXPECT_NEAR(std::stod(e.out.substr(e.out.find("\"tv\": ") + 6)), tv.back(), 1e-9);
}

// an unknown key is a config error: exit 2, the key in the message, nothing written
TEST_F(Cli, ConfigErrorExitsTwoAndWritesNothing) {
  auto out = dir_ / "never";
  auto r = run("train '" + config_.string() + "' --set train.lrr=0.1 --out '" + out.string() + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown key 'train.lrr' (did you mean 'train.lr'?)"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));

  auto bad = run("train '" + config_.string() + "' --set env.height=1 --out '" + out.string() + "'");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("key 'env.height' = 1: expected an integer in [2, 1048576]"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(out));
}

// a directory that holds a run is never overwritten
TEST_F(Cli, ExistingRunIsNotOverwritten) {
  auto out = dir_ / "run";
  ASSERT_EQ(run("train '" + config_.string() + "' --out '" + out.string() + "'").code, 0);
  std::string before = slurp(out / "log.h5");
  auto r = run("train '" + config_.string() + "' --out '" + out.string() + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("already holds a run"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(out / "log.h5"), before);
}

// usage errors: missing file, missing subcommand, unknown device, CUDA graphs without CUDA, eval
// of a non-run
TEST_F(Cli, UsageErrorsExitTwo) {
  auto missing = run("train '" + (dir_ / "nope.toml").string() + "'");
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("nope.toml"), std::string::npos) << missing.err;
  EXPECT_EQ(run("").code, 2);
  auto dev = run("train '" + config_.string() + "' --set device=tpu --out '" + (dir_ / "x").string() + "'");
  EXPECT_EQ(dev.code, 2);
  EXPECT_NE(dev.err.find("device = \"tpu\""), std::string::npos) << dev.err;
  // CUDA graphs on a CPU device (or a CPU-only build): refused before anything is written
  auto graph = run("train '" + config_.string() + "' --set train.cuda_graph=true --out '" + (dir_ / "g").string() + "'");
  EXPECT_EQ(graph.code, 2);
  EXPECT_NE(graph.err.find("train.cuda_graph = true: CUDA graphs need device = \"cuda\""), std::string::npos)
      << graph.err;
  EXPECT_FALSE(fs::exists(dir_ / "g" / "log.h5"));
  auto ev = run("eval '" + dir_.string() + "'");
  EXPECT_EQ(ev.code, 2);
  EXPECT_NE(ev.err.find("no config.toml"), std::string::npos) << ev.err;
}

// a continuous environment logs the importance-sampled log Z and ELBO; a uniform P_B on R is
// refused before anything is written
TEST_F(Cli, ContinuousEnvLogsImportanceEstimates) {
  auto cfg = dir_ / "line.toml";
  std::ofstream(cfg) << "[env]\nkind = \"line\"\nsteps = 2\n[policy]\nbackward = \"learned\"\nhidden = 32\n"
                        "[train]\niterations = 40\n[eval]\nevery = 20\nis_samples = 512\nsamples = 10\n"
                        "[log]\ntrajectories_every = 20\n";
  auto out = dir_ / "line";
  auto r = run("train '" + cfg.string() + "' --out '" + out.string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  Hdf5LogReader log((out / "log.h5").string());
  EXPECT_EQ(log.read_int64("eval/iteration"), (std::vector<int64_t>{20, 40}));
  for (const char* m : {"eval/log_z_is", "eval/elbo", "eval/ess", "eval/log_z_is_error"}) EXPECT_TRUE(log.has(m)) << m;
  EXPECT_FALSE(log.has("eval/tv"));
  EXPECT_EQ(log.shape("trajectories/action_coords").size(), 3u);
  for (double e : log.read_double("eval/ess")) EXPECT_TRUE(e >= 1 && e <= 512) << e;
  auto ev = run("eval '" + out.string() + "' --json");
  ASSERT_EQ(ev.code, 0) << ev.err;
  EXPECT_NE(ev.out.find("\"log_z_is\": "), std::string::npos) << ev.out;

  auto uniform = run("train '" + cfg.string() + "' --set policy.backward=uniform --out '" + (dir_ / "u").string() + "'");
  EXPECT_EQ(uniform.code, 2);
  EXPECT_NE(uniform.err.find("piece 'move_back' lives on R^1"), std::string::npos) << uniform.err;
  EXPECT_FALSE(fs::exists(dir_ / "u"));
}

// the README's h5py snippet runs on a real log (skipped where h5py is missing)
TEST_F(Cli, ReadmeH5pySnippetRuns) {
  if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0) GTEST_SKIP() << "no h5py";
  auto out = dir_ / "run";
  ASSERT_EQ(run("train '" + config_.string() + "' --out '" + out.string() + "'").code, 0);
  // the snippet is read from the README between the markers, so the README cannot drift
  // ctest runs the tests from the source root
  std::string readme = slurp(fs::current_path() / "README.md");
  auto begin = readme.find("```python\n");
  ASSERT_NE(begin, std::string::npos);
  begin += 10;
  auto end = readme.find("```", begin);
  std::string snippet = readme.substr(begin, end - begin);
  auto script = dir_ / "snippet.py";
  std::ofstream(script) << "import os\nos.chdir('" << out.string() << "/..')\n"
                        << "import shutil\nshutil.copytree('run', 'runs/hypergrid', dirs_exist_ok=True)\n"
                        << snippet << "\nprint('SNIPPET OK')\n";
  std::string cmd = "/usr/bin/python3 '" + script.string() + "' >'" + (dir_ / "py.txt").string() + "' 2>&1";
  int rc = std::system(cmd.c_str());
  std::string py = slurp(dir_ / "py.txt");
  EXPECT_EQ(rc, 0) << py;
  EXPECT_NE(py.find("SNIPPET OK"), std::string::npos) << py;
  EXPECT_NE(py.find("TV on the grid"), std::string::npos) << py;  // the 2-D hypergrid logs /grid
}

// The README's table of every config key is what `gfn keys --markdown` derives from the options
// tables (scripts/update_readme_keys.sh rewrites it): neither can drift from the code.
TEST_F(Cli, ReadmeKeyTablesMatchTheCode) {
  auto r = run("keys --markdown");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "| `train.lr` | `0.001` | a float in (0, 10] | Adam learning rate of the policy |")) << r.out;
  const std::string readme = slurp(fs::current_path() / "README.md");
  const std::string begin = "<!-- keys:begin -->\n", end = "<!-- keys:end -->";
  const auto a = readme.find(begin), b = readme.find(end);
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  EXPECT_EQ(readme.substr(a + begin.size(), b - a - begin.size()), r.out)
      << "README.md's key tables are stale: run scripts/update_readme_keys.sh";
}

}  // namespace
}  // namespace gfn

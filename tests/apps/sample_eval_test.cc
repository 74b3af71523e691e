// `gfn eval` and `gfn sample` on a short run of every built-in environment kind: exit codes,
// the metrics each prints, the sample file's datasets and probabilities, and one-line errors
// (exit 2) for damaged inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/hdf5_log.h"
#include "tests/apps/cli_fixture.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;
using testing::contains;

class SampleEval : public testing::CliFixture {
 protected:
  SampleEval() : CliFixture("gfn_sample_eval_") {}

  // Trains env `kind` (with extra TOML for its sections) for a few iterations into DIR/<kind>.
  fs::path train(const std::string& kind, const std::string& extra) {
    const fs::path config = dir_ / (kind + ".toml"), out = dir_ / kind;
    std::ofstream(config) << "[env]\nkind = \"" << kind << "\"\n" << extra
                          << "\n[train]\niterations = 20\nbatch_size = 8\n[eval]\nevery = 0\nis_samples = 64\n"
                             "grid = 8\ndensity_samples = 2\nenv_samples = 32\nsamples = 10\n";
    auto r = run("train '" + config.string() + "' --out '" + out.string() + "'");
    EXPECT_EQ(r.code, 0) << r.err;
    return out;
  }
};

TEST_F(SampleEval, EveryEnvKind) {
  struct Case {
    std::string kind, extra, eval_field, sample_field;
  };
  const std::vector<Case> cases = {
      {"hypergrid", "ndim = 2\nheight = 4", "\"tv\": ", "samples/log_terminating_prob"},
      {"sets", "universe = 6\nsize = 3", "\"tv\": ", "samples/log_terminating_prob"},
      {"box", "dim = 2", "\"grid_jsd\": ", "samples/log_terminating_density_is"},
      {"labelled_box", "dim = 2", "\"log_z_is\": ", "samples/log_terminating_density_is"},
      {"line", "[policy]\nbackward = \"learned\"", "\"log_z_is\": ", "samples/log_terminating_density_is"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.kind);
    const fs::path run_dir = train(c.kind, c.extra);
    auto e = run("eval '" + run_dir.string() + "' --json");
    ASSERT_EQ(e.code, 0) << e.err;
    EXPECT_TRUE(contains(e.out, "\"iteration\": 20")) << e.out;
    EXPECT_TRUE(contains(e.out, "\"env\": \"" + c.kind + "\"")) << e.out;
    EXPECT_TRUE(contains(e.out, c.eval_field)) << e.out;

    auto s = run("sample '" + run_dir.string() + "' -n 50 --seed 3");
    ASSERT_EQ(s.code, 0) << s.err;
    EXPECT_TRUE(contains(s.out, "50 terminal samples of the policy at iteration 20")) << s.out;
    const fs::path file = run_dir / "samples.h5";
    ASSERT_TRUE(fs::exists(file));
    Hdf5LogReader samples(file.string());
    EXPECT_EQ(samples.attribute_string("env"), c.kind);
    EXPECT_EQ(samples.shape("samples/log_reward"), (std::vector<int64_t>{50}));
    EXPECT_EQ(samples.shape("samples/trajectory_log_pf"), (std::vector<int64_t>{50}));
    for (double v : samples.read_double(c.sample_field)) EXPECT_TRUE(std::isfinite(v)) << c.sample_field << " " << v;
    if (c.sample_field == "samples/log_terminating_prob") {
      // a terminating probability is at least the probability of the sampled path
      const auto lp = samples.read_double(c.sample_field), path = samples.read_double("samples/trajectory_log_pf");
      for (size_t i = 0; i < lp.size(); ++i) {
        EXPECT_LE(lp[i], 1e-12);
        EXPECT_GE(lp[i], path[i] - 1e-5);
      }
    }
    // the same seed draws the same samples; the default name moves on
    ASSERT_EQ(run("sample '" + run_dir.string() + "' -n 50 --seed 3").code, 0);
    Hdf5LogReader again((run_dir / "samples-2.h5").string());
    EXPECT_EQ(again.read_double("samples/log_reward"), samples.read_double("samples/log_reward"));
  }
}

// eval --set changes the evaluation's keys for one call (more backward trajectories per grid
// cell, say), and nothing else
TEST_F(SampleEval, EvalSetsEvaluationKeysOnly) {
  const fs::path run_dir = train("box", "dim = 2");
  auto more = run("eval '" + run_dir.string() + "' --json --set eval.density_samples=16 eval.grid=4");
  ASSERT_EQ(more.code, 0) << more.err;
  EXPECT_TRUE(contains(more.out, "\"grid_cells\": 16")) << more.out;
  auto env = run("eval '" + run_dir.string() + "' --set env.dim=3");
  EXPECT_EQ(env.code, 2);
  EXPECT_TRUE(contains(env.err, "gfn eval --set env.dim=3: only the evaluation's keys (eval.*) can change")) << env.err;
  auto bad = run("eval '" + run_dir.string() + "' --set eval.density_samples=0");
  EXPECT_EQ(bad.code, 2);
  EXPECT_TRUE(contains(bad.err, "eval.density_samples")) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
}

// A conditional run: its log has one set of exact columns per condition of condition.eval;
// eval and sample take --condition (inside the trained range) and write the condition with the
// states; an unconditional run refuses one.
TEST_F(SampleEval, ConditionalRunsTakeACondition) {
  const fs::path run_dir = train("hypergrid", "ndim = 2\nheight = 4\n[condition]\nparameters = \"beta\"\n"
                                              "low = \"0.5\"\nhigh = \"2\"\neval = \"0.5; 2\"");
  Hdf5LogReader log((run_dir / "log.h5").string());
  EXPECT_EQ(log.read_double("conditions/values"), (std::vector<double>{0.5, 2.0}));
  for (const char* column : {"eval/tv", "eval/tv_c0", "eval/tv_c1", "eval/log_z_c1", "eval/log_z_exact_c1"})
    EXPECT_EQ(log.shape(column), (std::vector<int64_t>{1})) << column;
  // the exact log Z(beta) of the 4x4 grid: 4 corners of R = 0.6 and 12 cells of 0.1, to the beta
  EXPECT_NEAR(log.read_double("eval/log_z_exact_c0")[0], std::log(4 * std::sqrt(0.6) + 12 * std::sqrt(0.1)), 1e-6);
  EXPECT_NEAR(log.read_double("eval/log_z_exact_c1")[0], std::log(4 * 0.36 + 12 * 0.01), 1e-6);

  auto e = run("eval '" + run_dir.string() + "' --json --condition 2");
  ASSERT_EQ(e.code, 0) << e.err;
  char exact[64];
  std::snprintf(exact, sizeof exact, "\"log_z_exact\": %.10g", log.read_double("eval/log_z_exact_c1")[0]);
  EXPECT_TRUE(contains(e.out, exact)) << e.out;
  auto s = run("sample '" + run_dir.string() + "' -n 20 --condition 1.5");
  ASSERT_EQ(s.code, 0) << s.err;
  Hdf5LogReader samples((run_dir / "samples.h5").string());
  EXPECT_EQ(samples.read_double("samples/states_continuous"), std::vector<double>(20, 1.5));
  for (double lp : samples.read_double("samples/log_terminating_prob")) EXPECT_LE(lp, 1e-12);

  auto none = run("eval '" + run_dir.string() + "'");
  EXPECT_EQ(none.code, 2);
  EXPECT_TRUE(contains(none.err, "a conditional run (condition.parameters = \"beta\"): name the condition to "
                                 "evaluate with --condition (e.g. --condition 0.5)"))
      << none.err;
  auto outside = run("sample '" + run_dir.string() + "' --condition 3");
  EXPECT_EQ(outside.code, 2);
  EXPECT_TRUE(contains(outside.err, "beta = 3 lies outside the trained range [0.5, 2]")) << outside.err;
  const fs::path plain = train("sets", "universe = 4\nsize = 2");
  auto refused = run("sample '" + plain.string() + "' --condition 1");
  EXPECT_EQ(refused.code, 2);
  EXPECT_TRUE(contains(refused.err, "is not a conditional run")) << refused.err;
}

TEST_F(SampleEval, BadInputsAreOneLineErrors) {
  const fs::path run_dir = train("hypergrid", "ndim = 2\nheight = 4");
  auto exists = run("sample '" + run_dir.string() + "' -n 5 --out '" + (run_dir / "log.h5").string() + "'");
  EXPECT_EQ(exists.code, 2);
  EXPECT_TRUE(contains(exists.err, "already exists (samples never overwrite a file)")) << exists.err;
  auto zero = run("sample '" + run_dir.string() + "' -n 0");
  EXPECT_EQ(zero.code, 2);
  EXPECT_TRUE(contains(zero.err, "-n 0: expected a number of samples in [1, 100000000]")) << zero.err;
  // a damaged model: eval and sample name the file, on one line
  std::ofstream((run_dir / "model.pt").string(), std::ios::trunc) << "not a model";
  for (const std::string command : {"eval", "sample"}) {
    auto r = run(command + " '" + run_dir.string() + "'");
    EXPECT_EQ(r.code, 2) << command;
    EXPECT_TRUE(contains(r.err, (run_dir / "model.pt").string() + ": not a gfn model file")) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

}  // namespace
}  // namespace gfn

// Hostile input to the `gfn` command line (issue 22, "Hardening"): every case a probe found
// refused up front with exit 2 and one line on stderr that names the key or the argument, the
// value and what was expected, before anything is allocated or written. The binary's path comes
// from ctest (GFN_BIN); the tests run in the repository root, so that configs/ is at hand.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/assembly.h"
#include "apps/registry.h"
#include "io/config.h"
#include "io/hdf5_log.h"
#include "tests/apps/cli_fixture.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;

using testing::contains;
using testing::Result;

class BadInput : public testing::CliFixture {
 protected:
  BadInput() : CliFixture("gfn_bad_input_") {}

  // `gfn train CONFIG --set ...` into dir_/run; the run directory must not exist afterwards
  // when the config is refused.
  Result train(const std::string& config, const std::string& sets) {
    return run("train '" + config + "' " + sets + " --out '" + (dir_ / "run").string() + "'");
  }

  // A refusal: exit 2, one line "gfn: error: ..." holding `part`, nothing written.
  ::testing::AssertionResult refused(const Result& r, const std::string& part) {
    if (r.code != 2) return ::testing::AssertionFailure() << "exit " << r.code << ", not 2: " << r.err;
    if (r.err.rfind("gfn: error: ", 0) != 0)
      return ::testing::AssertionFailure() << "not 'gfn: error: ...': " << r.err;
    if (std::count(r.err.begin(), r.err.end(), '\n') != 1)
      return ::testing::AssertionFailure() << "not one line: " << r.err;
    if (!contains(r.err, part)) return ::testing::AssertionFailure() << "'" << part << "' not in: " << r.err;
    if (fs::exists(dir_ / "run")) return ::testing::AssertionFailure() << "a refused run wrote " << (dir_ / "run");
    return ::testing::AssertionSuccess();
  }
};

// 1. a 2^20-high hypergrid: its one-hot input is 2^21 wide; refused before the 2 GB first layer
// is allocated, by the keys that size it; the same for a batch too large for memory, for state
// tables past 4 GiB and for an evaluation grid of hours
TEST_F(BadInput, SizesBoundedUpFront) {
  Result r = train("configs/hypergrid.toml", "--set env.height=1048576");
  EXPECT_TRUE(refused(r,
                 "the policy network would have 536,937,731 parameters (input width 2097152 from env.kind = "
                 "\"hypergrid\" with env.height = 1048576, env.ndim = 2; policy.hidden = 256, policy.layers = 2): "
                 "expected at most 100,000,000"));
  // 2-D H=1024: 2,048 wide, but 65,536 trajectories of up to 2,047 states each
  r = train("configs/hypergrid.toml", "--set env.height=1024 --set train.batch_size=65536");
  EXPECT_TRUE(refused(r, "one batch's network inputs and activations would hold 343,429,611,520 floats "
                    "(train.batch_size = 65536 trajectories of up to 2047 states"));
  // 3-D H=160: 4,096,000 states, each with a 480-wide one-hot row in the exact tables
  r = train("configs/hypergrid.toml", "--set env.ndim=3 --set env.height=160");
  EXPECT_TRUE(refused(r, "the exact state tables would take 8.1 GiB (4,096,000 states, from env.kind = \"hypergrid\""));
  r = train("configs/box.toml", "--set eval.grid=4096");
  EXPECT_TRUE(refused(r,
                 "eval.grid = 4096: an evaluation of the terminating density would run 268,435,456 backward "
                 "trajectories (eval.grid^d cells, d = 2, times eval.density_samples = 16): expected at most "
                 "4,194,304"));
  // gfn sample: -n has a bound, checked before the run directory is read
  r = run("sample '" + (dir_ / "none").string() + "' -n 100000000000");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "gfn: error: -n 100000000000: expected a number of samples in [1, 100000000]"))
      << r.err;
}

// 2. the common TOML slips get a hint; an unknown command is named, with the commands there are
TEST_F(BadInput, TomlSlipsAndUnknownCommand) {
  EXPECT_TRUE(refused(train("configs/hypergrid.toml", "--set train.lr=.5"),
                 "--set train.lr=.5: key 'train.lr' = \".5\": expected a float in (0, 10] (TOML needs a digit "
                 "before a float's point: write 0.5)"));
  EXPECT_TRUE(refused(train("configs/hypergrid.toml", "--set train.lr=1."),
                      "(TOML needs a digit after a float's point: write 1.0)"));
  EXPECT_TRUE(refused(train("configs/hypergrid.toml", "--set train.iterations=1e5"),
                 "key 'train.iterations' = 100000.0: expected an integer >= 1 (1e5 is a float in TOML: write the "
                 "integer 100000)"));
  const fs::path file = dir_ / "slip.toml";
  std::ofstream(file) << "[env]\nkind = \"hypergrid\"\n[train]\nlr = .5\n";
  EXPECT_TRUE(refused(train(file.string(), ""), "slip.toml:4:6: TOML syntax error: "));
  EXPECT_TRUE(refused(train(file.string(), ""), "(TOML needs a digit before a float's point: write 0.5)"));

  Result r = run("trian configs/hypergrid.toml");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "gfn: error: unknown command 'trian': expected one of train, launch, eval, keys, sample, check-env, "
            "analyse (run 'gfn --help' for usage)\n");
  r = run("");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "gfn: error: no command: expected one of train, launch")) << r.err;
}

// 3. `name` is one directory inside runs/: not empty, not . or .., no '/', at most 100
// characters; checked before runs/ is touched (the runs below start in an empty directory)
TEST_F(BadInput, RunNameIsOneDirectoryInsideRuns) {
  const std::string config = fs::absolute("configs/hypergrid.toml").string();
  const fs::path cwd = dir_ / "cwd";
  fs::create_directories(cwd);
  auto train_named = [&](const std::string& name) {
    return run("train '" + config + "' --set train.iterations=1 --set eval.samples=1 --set 'name=\"" + name + "\"'",
               cwd);
  };
  Result r = train_named(std::string(300, 'a'));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err, "gfn: error: name = \"" + std::string(40, 'a') +
                       "...\" (300 characters): expected at most 100 characters\n");
  r = train_named("../../escape");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "gfn: error: name = \"../../escape\": expected a single directory name, without '/' (runs/<name> must be "
            "a directory inside runs/; give --out DIR for another place)\n");
  for (const std::string name : {"", ".", ".."}) {
    r = train_named(name);
    EXPECT_EQ(r.code, 2) << name;
    EXPECT_EQ(r.err, "gfn: error: name = \"" + name +
                         "\": expected a directory name (runs/<name> must be a directory inside runs/)\n");
  }
  EXPECT_TRUE(fs::is_empty(cwd)) << "a refused name created something in " << cwd;
  // 100 characters are a name
  r = train_named(std::string(100, 'b'));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(cwd / "runs" / std::string(100, 'b') / "log.h5"));
}

// 4. policy.min_concentration = 0.01, max_concentration = 0.05 with the Box's uniform P_B is a
// valid config (the backward floor 0.1 is not checked: P_B draws no Beta); with a learned P_B
// the floor is checked, by its own key
TEST_F(BadInput, BackwardFloorCheckedOnlyForALearnedBackward) {
  const std::string small = "--set policy.min_concentration=0.01 --set policy.max_concentration=0.05 ";
  const std::string quick = "--set train.iterations=50 --set eval.every=0 --set eval.grid=10 "
                            "--set eval.is_samples=256 --set eval.samples=10 --set log.every=1 ";
  Result r = train("configs/box.toml", small + quick);
  ASSERT_EQ(r.code, 0) << r.err;
  // fits poorly, but every loss is finite
  Hdf5LogReader log((dir_ / "run" / "log.h5").string());
  const std::vector<double> loss = log.read_double("train/loss");
  ASSERT_EQ(loss.size(), 50u);
  for (double l : loss) EXPECT_TRUE(std::isfinite(l)) << l;
  fs::remove_all(dir_ / "run");
  EXPECT_TRUE(refused(train("configs/box.toml", small + "--set 'policy.backward=\"learned\"'"),
                 "gfn: error: policy.backward_min_concentration = 0.1: expected a float in (0, "
                 "policy.max_concentration = 0.05) with policy.backward = \"learned\""));
}

// 5. a learned P_B whose Betas are all U-shaped (max_concentration 0.05): P_B scores coordinates
// recovered on a chart's face at log-densities ~700, every metric blew up (log Z_IS off by 660);
// refused with the safe range. At the edge of the range (max 1) 50 iterations keep every loss
// finite and the importance-sampled log Z within 1 of the exact one.
TEST_F(BadInput, LearnedBackwardNeedsBoundedBetas) {
  const std::string learned = "--set policy.min_concentration=0.01 --set policy.backward_min_concentration=0.02 "
                              "--set 'policy.backward=\"learned\"' ";
  EXPECT_TRUE(refused(train("configs/box.toml", learned + "--set policy.max_concentration=0.05"),
                 "gfn: error: policy.max_concentration = 0.05 with policy.backward = \"learned\": expected at least 1 "
                 "where P_B has Beta pieces (env.kind = \"box\")"));
  Result r = train("configs/box.toml", learned +
                                           "--set policy.max_concentration=1 --set train.iterations=50 --set "
                                           "eval.every=0 --set eval.grid=10 --set eval.samples=10 --set log.every=1");
  ASSERT_EQ(r.code, 0) << r.err;
  Hdf5LogReader log((dir_ / "run" / "log.h5").string());
  const std::vector<double> loss = log.read_double("train/loss");
  ASSERT_EQ(loss.size(), 50u);
  for (double l : loss) EXPECT_TRUE(std::isfinite(l)) << l;
  const std::vector<double> error = log.read_double("eval/log_z_is_error");
  ASSERT_EQ(error.size(), 1u);
  EXPECT_LT(error[0], 1.0);
}

// 6. non-finite floats are refused for every float key; a hypergrid whose largest reward
// overflows a double is refused by the keys that set it
TEST_F(BadInput, NonFiniteValuesRefused) {
  EXPECT_TRUE(refused(train("configs/hypergrid.toml", "--set env.r1=inf"),
                 "--set env.r1=inf: key 'env.r1' = inf: expected a finite float >= 0"));
  EXPECT_TRUE(refused(train("configs/hypergrid.toml", "--set train.lr=nan"),
                 "--set train.lr=nan: key 'train.lr' = nan: expected a float in (0, 10]"));
  EXPECT_TRUE(refused(train("configs/box.toml", "--set env.r2=+inf"),
                 "--set env.r2=+inf: key 'env.r2' = inf: expected a finite float >= 0"));
  EXPECT_TRUE(refused(train("configs/hypergrid.toml", "--set env.r1=1e308 --set env.r2=1e308"),
                 "gfn: error: env.r0 + env.r1 + env.r2 = 0.1 + 1e+308 + 1e+308: the largest reward overflows a "
                 "double (log R = inf); expected a sum below 1.798e+308"));
}

// 8. one log given twice (the same directory twice, or a directory and its log.h5) counts once,
// with a note; check-env's arguments are named by their flags
TEST_F(BadInput, RepeatedLogCountsOnceAndCheckEnvNamesFlags) {
  const fs::path a = dir_ / "a";
  ASSERT_EQ(run("train configs/hypergrid.toml --set train.iterations=4 --set eval.samples=1 --out '" + a.string() + "'")
                .code,
            0);
  Result r = run("analyse '" + a.string() + "' '" + a.string() + "' '" + (a / "log.h5").string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "gfn analyse: 1 run, 0 groups of seeds")) << r.out;
  EXPECT_TRUE(contains(r.out, a.string() + ": the same log as " + a.string() + " (")) << r.out;
  EXPECT_TRUE(contains(r.out, (a / "log.h5").string() + ": the same log as " + a.string() + " (")) << r.out;
  EXPECT_TRUE(contains(r.out, "), counted once")) << r.out;
  // a second run of the same config is a group of two
  const fs::path b = dir_ / "b";
  ASSERT_EQ(run("train configs/hypergrid.toml --set train.iterations=4 --set eval.samples=1 --set seed=1 --out '" +
                b.string() + "'")
                .code,
            0);
  r = run("analyse '" + a.string() + "' '" + b.string() + "' '" + (b / "log.h5").string() + "'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "gfn analyse: 2 runs, 1 group of seeds")) << r.out;

  r = run("check-env box --samples 0");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "gfn: error: --samples 0: expected an integer in [2, 16777216]\n");
  r = run("check-env box --samples 100000000000");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "gfn: error: --samples 100000000000: expected an integer in [2, 16777216]\n");
  r = run("check-env box --reference-concentration nan");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "gfn: error: --reference-concentration nan: expected a float in [0.01, 5]\n");
  r = run("check-env box --set env.r1=inf");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "key 'env.r1' = inf: expected a finite float >= 0")) << r.err;
}

// every shipped config stays within a quarter of each up-front bound (the labelled box's grid,
// 3 x 100^2 cells x 16, is the closest: 480,000 of 4,194,304): it builds, and its policy has as
// many parameters as run_footprint counts (the count the bound is checked on)
TEST(RunFootprintTest, ShippedConfigsFitAndParametersAreCounted) {
  const Registry registry = Registry::builtin();
  int configs = 0;
  for (const auto& entry : fs::directory_iterator("configs")) {
    if (entry.path().extension() != ".toml") continue;
    ++configs;
    SCOPED_TRACE(entry.path().string());
    const RunConfig config = load_config_file(entry.path().string(), {}, run_schema(registry));
    gfn::Run run = build_run(config.params, registry);
    int64_t parameters = 0;
    for (const auto& p : run.estimators->policy->parameters()) parameters += p.numel();
    const RunFootprint f = run_footprint(*run.env, run.estimator_options, run.trainer_options,
                                         EvalOptions::keys().read(config.params), 0);
    EXPECT_EQ(f.policy_parameters, static_cast<double>(parameters));
    EXPECT_LT(f.policy_parameters, RunFootprint::kMaxPolicyParameters / 4);
    EXPECT_LT(f.batch_floats, RunFootprint::kMaxBatchFloats / 4);
    EXPECT_LT(f.table_bytes, RunFootprint::kMaxTableBytes / 4);
    EXPECT_LT(f.grid_trajectories, RunFootprint::kMaxGridTrajectories / 4);
  }
  EXPECT_GE(configs, 20);
}

}  // namespace
}  // namespace gfn

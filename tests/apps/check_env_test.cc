// `gfn check-env NAME [--set env.key=value ...] [--seed N] [--samples N] [--reference-concentration C]`: exit codes, the report
// it prints and its one-line errors. The binary's path comes from ctest (GFN_BIN).
#include <string>

#include "tests/apps/cli_fixture.h"

namespace gfn {
namespace {

using testing::contains;

class CheckEnvCli : public testing::CliFixture {
 protected:
  CheckEnvCli() : CliFixture("gfn_check_env_") {}
};

// a discrete env: every check runs or is skipped with its reason, and the verdict line closes it
TEST_F(CheckEnvCli, HypergridPasses) {
  auto r = run("check-env hypergrid --set env.ndim=2 --set env.height=4 --samples 20000");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  for (const char* line : {"PASS inverse: ", "SKIP jacobian: no continuous pieces", "PASS normalisation: ",
                           "PASS partition: log sum R(x) over the 16 enumerated terminal states", "PASS termination: all 1024 trajectories end with 'exit'",
                           "hypergrid: passed 4 of 5 checks (1 skipped)"})
    EXPECT_TRUE(contains(r.out, line)) << line << "\n" << r.out;
  EXPECT_TRUE(contains(r.out, "20000 importance samples")) << r.out;
  EXPECT_EQ(r.err, "");
}

// a continuous env with an env key: the Jacobians and densities are checked too
TEST_F(CheckEnvCli, LineWithSetPasses) {
  auto r = run("check-env line --set env.steps=2 --seed 3");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "PASS jacobian: forward 'move' (R^1)")) << r.out;
  EXPECT_TRUE(contains(r.out, "PASS normalisation: ")) << r.out;
  EXPECT_TRUE(contains(r.out, "vs exact 0.00000")) << r.out;
  EXPECT_TRUE(contains(r.out, "lengths (moves + exit) min 3 mean 3.00 max 3")) << r.out;  // 2 moves + exit
  EXPECT_TRUE(contains(r.out, "line: passed 5 of 5 checks")) << r.out;
}

TEST_F(CheckEnvCli, UnknownEnvListsTheKnownOnes) {
  auto r = run("check-env no_such_env");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "env.kind = \"no_such_env\": expected one of")) << r.err;
  EXPECT_TRUE(contains(r.err, "\"hypergrid\"")) << r.err;
  EXPECT_TRUE(contains(r.err, "\"line\"")) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(CheckEnvCli, BadSetNamesTheKey) {
  auto r = run("check-env line --set env.stepz=2");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--set env.stepz=2")) << r.err;
  EXPECT_TRUE(contains(r.err, "unknown key 'env.stepz'")) << r.err;

  r = run("check-env line --set env.steps=0");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "'env.steps' = 0: expected an integer in [1, 100]")) << r.err;

  // keys outside [env] mean nothing here
  r = run("check-env line --set train.lr=0.1");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--set train.lr=0.1: check-env takes the env's own keys")) << r.err;

  r = run("check-env line --samples 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--samples 1: expected an integer in [2, 16777216]")) << r.err;

  r = run("check-env line --reference-concentration 0");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.err, "--reference-concentration 0: expected a float in [0.01, 5]")) << r.err;
}

}  // namespace
}  // namespace gfn

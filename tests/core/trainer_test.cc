#include "core/trainer.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/evaluation.h"
#include "envs/box.h"
#include "envs/hypergrid.h"
#include "losses/tb.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

using testing::GridSetup;
using testing::make_grid;
using testing::small_net;
using testing::validate_error;

// TB training on a grid: estimators (hidden 32) initialised from `init_seed`, and a trainer with
// `options` whose sampling is seeded with `seed`.
struct TbRun : GridSetup {
  TrajectoryBalance tb;
  Trainer trainer;

  TbRun(int64_t ndim, int64_t height, uint64_t init_seed, const TrainerOptions& options, uint64_t seed)
      : GridSetup(ndim, height, init_seed, small_net(32)), trainer(env, est, tb, options, seed, torch::kCPU) {}
};

// 300 TB iterations (lr 1e-2) on 2-D H=4 bring the exact terminating distribution close to R/Z,
// learn log Z and shrink the loss, in both the tabular and the generic mode.
TEST(TrainerTest, TrainingImprovesTv) {
  for (auto mode : {TabularMode::kOn, TabularMode::kOff}) {
    TrainerOptions opts;
    opts.lr = 1e-2;
    opts.tabular = mode;
    TbRun run(2, 4, 1, opts, 2);
    ASSERT_EQ(run.trainer.tabular(), mode == TabularMode::kOn);
    ASSERT_NE(run.trainer.table(), nullptr);
    const double tv0 = exact_metrics(*run.trainer.table(), run.est).tv;
    const double err0 = exact_metrics(*run.trainer.table(), run.est).log_z_error;
    double first = 0.0, last = 0.0;
    const int64_t iters = 300, window = 30;
    for (int64_t i = 0; i < iters; ++i) {
      auto r = run.trainer.step();
      const double l = r.loss.item<double>();
      ASSERT_TRUE(std::isfinite(l)) << "iteration " << i;
      if (i < window) first += l / window;
      if (i >= iters - window) last += l / window;
    }
    EXPECT_EQ(run.trainer.iteration(), iters);
    auto m = exact_metrics(*run.trainer.table(), run.est);
    const char* what = mode == TabularMode::kOn ? "tabular" : "generic";
    // measured over 8 seeds: tv 0.37-0.44 -> <= 0.0041, log Z error 1.28 -> <= 0.0049, mean loss
    // of the first 30 iterations 0.43-0.63 -> <= 2e-4 for the last 30; bounds with a >= 10x margin
    EXPECT_GT(tv0, 0.2) << what;
    EXPECT_LT(m.tv, 0.05) << what << ": tv0=" << tv0 << " tv=" << m.tv;
    EXPECT_LT(m.log_z_error, 0.05) << what << ": error0=" << err0 << " error=" << m.log_z_error;
    EXPECT_LT(last, 0.05 * first) << what << ": first=" << first << " last=" << last;
  }
}

// One iteration's outputs: shapes, a loss equal to TB recomputed from the returned log-probs,
// and terminal indices that match the terminal states, in both modes.
TEST(TrainerTest, IterationResult) {
  for (auto mode : {TabularMode::kOn, TabularMode::kOff}) {
    TrainerOptions opts;
    opts.batch_size = 8;
    opts.tabular = mode;
    TbRun run(2, 4, 3, opts, 4);
    const double log_z_before = run.est.log_z.item<double>();
    auto r = run.trainer.step();
    EXPECT_EQ(r.trajectories.batch_size(), 8);
    EXPECT_EQ(r.log_pf.sizes(), r.trajectories.mask.sizes());
    EXPECT_EQ(r.log_pb.sizes(), r.trajectories.mask.sizes());
    EXPECT_FALSE(r.loss.requires_grad());
    LossInputs in;
    in.log_pf = r.log_pf;
    in.log_pb = r.log_pb;
    in.log_reward = r.trajectories.log_reward;
    in.log_z = torch::tensor(log_z_before);
    in.mask = r.trajectories.mask;
    in.length = r.trajectories.length;
    EXPECT_NEAR(run.tb.loss(in).item<double>(), r.loss.item<double>(), 1e-5);
    ASSERT_TRUE(r.terminal_index.defined());
    EXPECT_TRUE(torch::equal(r.terminal_index, run.env.state_index(r.trajectories.terminal_states())));
    // the optimiser moved log Z (lr_logz 0.1: Adam's first step is ~lr)
    EXPECT_NEAR(std::fabs(run.est.log_z.item<double>() - log_z_before), 0.1, 1e-3);
  }
}

// A seed fixes a whole training run.
TEST(TrainerTest, SeedDeterminism) {
  std::vector<double> losses[2];
  for (int i_run = 0; i_run < 2; ++i_run) {
    TbRun run(2, 4, 5, TrainerOptions{}, 6);
    for (int i = 0; i < 5; ++i) losses[i_run].push_back(run.trainer.step().loss.item<double>());
  }
  EXPECT_EQ(losses[0], losses[1]);
}

// train.reuse_rollout: scoring with the rollout's kept policy outputs gives the same losses and
// the same parameters as the batched pass after the rollout, on a grid and on the Box (pieces)
TEST(TrainerTest, ReusedRolloutScoresMatchTheBatchedPass) {
  for (const std::string kind : {"grid", "box"}) {
    std::vector<double> losses[2];
    std::vector<torch::Tensor> params[2];
    for (int reuse = 0; reuse < 2; ++reuse) {
      TrainerOptions o;
      o.tabular = TabularMode::kOff;
      o.batch_size = 32;
      o.reuse_rollout = reuse == 1;
      std::unique_ptr<Env> env;
      if (kind == "grid") {
        env = std::make_unique<HypergridEnv>(make_grid(2, 6));
      } else {
        BoxOptions b;
        b.dim = 2;
        env = std::make_unique<BoxEnv>(b);
      }
      auto init = make_generator(3, torch::kCPU);
      Estimators est(*env, small_net(32), init, torch::kCPU);
      TrajectoryBalance tb;
      Trainer trainer(*env, est, tb, o, 4, torch::kCPU);
      for (int i = 0; i < 4; ++i) losses[reuse].push_back(trainer.step().loss.item<double>());
      for (const auto& p : est.policy->parameters()) params[reuse].push_back(p.detach().clone());
    }
    for (size_t i = 0; i < losses[0].size(); ++i) EXPECT_NEAR(losses[0][i], losses[1][i], 1e-4 * std::max(1.0, std::abs(losses[0][i]))) << kind << " step " << i;
    for (size_t i = 0; i < params[0].size(); ++i) EXPECT_TRUE(torch::allclose(params[0][i], params[1][i], 1e-4, 1e-5)) << kind << " parameter " << i;
  }
}

// kOff never uses tables; kAuto uses them when num_states <= batch * T (2-D H=8: 64 <= 16 * 15)
// and not otherwise (4-D H=8: 4096 > 16 * 29); kOn forces them where a table exists.
TEST(TrainerTest, TabularModeSelection) {
  auto check = [](int64_t ndim, TabularMode mode) {
    TrainerOptions opts;
    opts.batch_size = 16;
    opts.tabular = mode;
    TbRun run(ndim, 8, 7, opts, 8);
    EXPECT_NE(run.trainer.table(), nullptr);
    return run.trainer.tabular();
  };
  EXPECT_TRUE(check(2, TabularMode::kAuto));
  EXPECT_FALSE(check(2, TabularMode::kOff));
  EXPECT_FALSE(check(4, TabularMode::kAuto));
  EXPECT_TRUE(check(4, TabularMode::kOn));
  EXPECT_TRUE(tabular_worthwhile(make_grid(2, 8), 16));
  EXPECT_FALSE(tabular_worthwhile(make_grid(4, 8), 16));
  EXPECT_TRUE(tabular_worthwhile(make_grid(4, 8), 4096 / 29 + 1));
}

// kOn on an env without a small enough table throws ConfigError naming train.tabular, both for a
// non-enumerable env (8^9 > 2^26 states) and an enumerable one too large to tabulate (8^8).
TEST(TrainerTest, TabularOnNeedsTable) {
  TrajectoryBalance tb;
  for (int64_t ndim : {9, 8}) {
    GridSetup g(ndim, 8, 9, small_net(32));
    EXPECT_EQ(g.env.enumerable(), ndim == 8);
    TrainerOptions opts;
    opts.tabular = TabularMode::kOn;
    std::string msg;
    try {
      Trainer trainer(g.env, g.est, tb, opts, 10, torch::kCPU);
    } catch (const ConfigError& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find("train.tabular"), std::string::npos) << "ndim=" << ndim << ": '" << msg << "'";
    EXPECT_NE(msg.find("hypergrid"), std::string::npos) << msg;
    // auto falls back to the generic path
    opts.tabular = TabularMode::kAuto;
    Trainer fallback(g.env, g.est, tb, opts, 10, torch::kCPU);
    EXPECT_FALSE(fallback.tabular());
    EXPECT_EQ(fallback.table(), nullptr);
  }
}

// validate names the config key of the bad field.
TEST(TrainerTest, ValidateNamesKey) {
  TrainerOptions o;
  EXPECT_EQ(validate_error(o), "");
  o.batch_size = 0;
  auto msg = validate_error(o);
  EXPECT_NE(msg.find("train.batch_size"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1, 16777216]"), std::string::npos) << msg;  // the key's one range, as `gfn keys` shows it
  o = TrainerOptions{};
  o.lr = 0.0;
  EXPECT_NE(validate_error(o).find("train.lr ="), std::string::npos);
  o = TrainerOptions{};
  o.lr_logz = std::nan("");
  EXPECT_NE(validate_error(o).find("train.lr_logz"), std::string::npos);
  o = TrainerOptions{};
  o.sampler.epsilon = 2.0;
  EXPECT_NE(validate_error(o).find("train.epsilon"), std::string::npos);
  // the constructor validates
  GridSetup g(2, 4, 11, small_net(32));
  TrajectoryBalance tb;
  TrainerOptions bad;
  bad.batch_size = -3;
  EXPECT_THROW(Trainer(g.env, g.est, tb, bad, 0, torch::kCPU), ConfigError);
}

}  // namespace
}  // namespace gfn

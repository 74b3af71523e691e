#include "losses/db.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/estimator.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/tabular.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"
#include "losses/tb.h"
#include "tests/losses/loss_testing.h"

namespace gfn {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

using testing::hand_inputs;

// hand_inputs() (tests/losses/loss_testing.h):
//   delta_00 = 1 - 1 - (0.5 - 0.2) = -0.3;  delta_10 = 0.5 - 2 - (-0.5 - 0.4) = -0.6;
//   delta_20 = -0.5 - 0.7 - (-1) = -0.2 (exit);  delta_01 = 1 - 0.5 - (0.25 - 0.1) = 0.35;
//   delta_11 = 0.25 - 0.3 - 0.5 = -0.55 (exit);  L = (0.09 + 0.36 + 0.04 + 0.1225 + 0.3025) / 5
TEST(DbTest, ValueByHand) {
  DetailedBalance db;
  EXPECT_EQ(db.name(), "db");
  EXPECT_FALSE(db.requirements().log_z);
  EXPECT_TRUE(db.requirements().flow);
  auto in = hand_inputs();
  auto r = DetailedBalance::residuals(in);
  ASSERT_EQ(r.sizes(), (std::vector<int64_t>{3, 2}));
  const std::vector<double> expected{-0.3, 0.35, -0.6, -0.55, -0.2, 0.0};
  for (int64_t i = 0; i < 6; ++i) EXPECT_NEAR(r.reshape({-1})[i].item<double>(), expected[i], 1e-12) << i;
  EXPECT_NEAR(db.loss(in).item<double>(), 0.915 / 5, 1e-12);
  EXPECT_NEAR(db.log_z_estimate(in).item<double>(), 1.0, 1e-12);
  // padding never counts, whatever it holds
  in.log_flow[2][1] = 7.0;
  in.log_pf[2][1] = -3.0;
  EXPECT_NEAR(db.loss(in).item<double>(), 0.915 / 5, 1e-12);
}

// Autograd gradients w.r.t. every input agree with central finite differences (float64).
TEST(DbTest, GradientMatchesFiniteDifferences) {
  DetailedBalance db;
  auto check = testing::input_gradient_check(
      db, {&LossInputs::log_flow, &LossInputs::log_pf, &LossInputs::log_pb, &LossInputs::log_reward});
  EXPECT_EQ(check.entries, 8 + 6 + 6 + 2);
  EXPECT_LE(check.worst_excess, 0.0) << check.worst;
  // d L / d log R_0 = -2 delta_20 / 5 = 0.08 by hand
  LossInputs in = hand_inputs();
  in.log_reward = in.log_reward.clone().set_requires_grad(true);
  auto g = torch::autograd::grad({db.loss(in)}, {in.log_reward})[0];
  EXPECT_NEAR(g[0].item<double>(), 0.08, 1e-12);
}

// Flows balanced along every transition (dyadic values: exact sums) give exactly 0; moving one
// flow breaks the two transitions that read it.
TEST(DbTest, BalancedIsZero) {
  DetailedBalance db;
  auto in = hand_inputs();
  in.log_pf = torch::tensor({-1.0, -0.5, -2.0, -0.25, -0.75, 0.0}, kF64).view({3, 2});
  in.log_pb = torch::tensor({-0.25, -0.125, -0.5, 0.0, 0.0, 0.0}, kF64).view({3, 2});
  // F(s_{t+1}) = F(s_t) + log_pf - log_pb; log R = F(x) + log p_F(exit)
  in.log_flow = torch::tensor({1.0, 1.0, 0.25, 0.625, -1.25, 0.0, 0.0, 0.0}, kF64).view({4, 2});
  in.log_reward = torch::tensor({-2.0, 0.375}, kF64);
  EXPECT_EQ(db.loss(in).item<double>(), 0.0);
  auto p = in;
  p.log_flow = in.log_flow.clone();
  p.log_flow[1][0] += 1e-3;  // delta_00 -= 1e-3, delta_10 += 1e-3
  EXPECT_NEAR(db.loss(p).item<double>(), 2e-6 / 5, 1e-15);
  // with these flows TB is balanced at log Z = F(s0) too
  in.log_z = torch::tensor(1.0, kF64);
  EXPECT_EQ(TrajectoryBalance().loss(in).item<double>(), 0.0);
}

// The gradient of DB through score_trajectories and through the tabular pass w.r.t. every
// parameter (flow head included) agrees with central finite differences (float64, 2-D H=3).
TEST(DbTest, PolicyGradientMatchesFiniteDifferences) {
  auto check = testing::policy_gradient_check(DetailedBalance(), ScoreOptions{});
  EXPECT_GT(check.entries, 0);
  EXPECT_LE(check.worst_excess, 0.0) << check.worst;
  EXPECT_GT(check.largest_gradient, 1e-6);
  EXPECT_GT(check.flow_gradient, 1e-8);  // the flow head learns
}

// an objective that reads flows refuses estimators without a flow head, by name
TEST(DbTest, NeedsAFlowHead) {
  HypergridEnv env(HypergridOptions{});
  auto gen = make_generator(1, torch::kCPU);
  Estimators est(env, EstimatorOptions{}, gen, torch::kCPU);
  DetailedBalance db;
  try {
    Trainer trainer(env, est, db, TrainerOptions{}, 0, torch::kCPU);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "objective.kind = \"db\" reads log F(s): the estimators need a flow head");
  }
}

}  // namespace
}  // namespace gfn

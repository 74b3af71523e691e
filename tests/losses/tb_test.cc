#include "losses/tb.h"

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/estimator.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"
#include "tests/losses/loss_testing.h"

namespace gfn {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

using testing::hand_inputs;

// hand_inputs() (tests/losses/loss_testing.h):
//   delta_0 = 1.5 + (-1 + 0.2) + (-2 + 0.4) + (-0.7) - (-1) = -0.6
//   delta_1 = 1.5 + (-0.5 + 0.1) + (-0.3) - 0.5 = 0.3
//   L = (0.36 + 0.09) / 2 = 0.225
// The residuals and the loss equal the hand computation.
TEST(TbTest, ValueByHand) {
  TrajectoryBalance tb;
  EXPECT_EQ(tb.name(), "tb");
  EXPECT_TRUE(tb.requirements().log_z);
  EXPECT_FALSE(tb.requirements().flow);
  auto in = hand_inputs();
  auto r = TrajectoryBalance::residuals(in);
  ASSERT_EQ(r.sizes(), (std::vector<int64_t>{2}));
  EXPECT_NEAR(r[0].item<double>(), -0.6, 1e-12);
  EXPECT_NEAR(r[1].item<double>(), 0.3, 1e-12);
  auto loss = tb.loss(in);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_NEAR(loss.item<double>(), 0.225, 1e-12);
}

// Autograd gradients w.r.t. every input agree with central finite differences (float64).
TEST(TbTest, GradientMatchesFiniteDifferences) {
  TrajectoryBalance tb;
  auto check = testing::input_gradient_check(
      tb, {&LossInputs::log_z, &LossInputs::log_pf, &LossInputs::log_pb, &LossInputs::log_reward});
  EXPECT_EQ(check.entries, 1 + 6 + 6 + 2);
  EXPECT_LE(check.worst_excess, 0.0) << check.worst;
  // d L / d log Z = mean(2 delta) = (-1.2 + 0.6) / 2 by hand
  LossInputs in = hand_inputs();
  in.log_z = in.log_z.clone().set_requires_grad(true);
  auto g = torch::autograd::grad({tb.loss(in)}, {in.log_z})[0];
  EXPECT_NEAR(g.item<double>(), -0.3, 1e-12);
}

// clip_log_reward clamps from below (no-op at -inf) and the loss sees the clipped value.
TEST(TbTest, ClippedReward) {
  auto raw = torch::tensor({-20.0, 0.5}, kF64);
  EXPECT_TRUE(torch::equal(clip_log_reward(raw, -std::numeric_limits<double>::infinity()), raw));
  auto clipped = clip_log_reward(raw, -5.0);
  EXPECT_TRUE(torch::equal(clipped, torch::tensor({-5.0, 0.5}, kF64)));
  EXPECT_TRUE(torch::equal(clip_log_reward(raw, 1.0), torch::tensor({1.0, 1.0}, kF64)));
  // with log R = -20 clipped to -5: delta_0 = 1.5 - 3.1 + 5 = 3.4, delta_1 = 0.3
  TrajectoryBalance tb;
  auto in = hand_inputs();
  in.log_reward = clipped;
  EXPECT_NEAR(tb.loss(in).item<double>(), (3.4 * 3.4 + 0.09) / 2, 1e-12);
  in.log_reward = raw;
  EXPECT_NEAR(tb.loss(in).item<double>(), (18.4 * 18.4 + 0.09) / 2, 1e-12);
}

// A balanced input (log Z + sum log_pf - sum log_pb = log R) has loss exactly 0; any
// perturbation of a valid entry makes it positive.
TEST(TbTest, BalancedIsZero) {
  TrajectoryBalance tb;
  auto in = hand_inputs();
  // log R_b := log Z + sum_t (log_pf - log_pb), so that delta = 0 in exact arithmetic: values
  // chosen as dyadic fractions so that the sums are exact in floating point
  in.log_pf = torch::tensor({-1.0, -0.5, -2.0, -0.25, -0.75, 0.0}, kF64).view({3, 2});
  in.log_pb = torch::tensor({-0.25, -0.125, -0.5, 0.0, 0.0, 0.0}, kF64).view({3, 2});
  in.log_z = torch::tensor(1.5, kF64);
  in.log_reward = torch::tensor({1.5 - 0.75 - 1.5 - 0.75, 1.5 - 0.375 - 0.25}, kF64);
  EXPECT_EQ(tb.loss(in).item<double>(), 0.0);
  auto p = in;
  p.log_pf = in.log_pf.clone();
  p.log_pf[1][0] += 1e-3;
  EXPECT_GT(tb.loss(p).item<double>(), 0.0);
  EXPECT_NEAR(tb.loss(p).item<double>(), 1e-6 / 2, 1e-12);
  p = in;
  p.log_z = in.log_z + 0.1;
  EXPECT_NEAR(tb.loss(p).item<double>(), 0.01, 1e-12);
}

// The gradient of TB through score_trajectories w.r.t. the policy's parameters agrees with
// central finite differences (float64, tiny net on the 2-D H=3 grid, learned P_B included).
TEST(TbTest, PolicyGradientMatchesFiniteDifferences) {
  HypergridOptions ho;
  ho.ndim = 2;
  ho.height = 3;
  HypergridEnv env(ho);
  for (auto backward : {BackwardPolicy::kUniform, BackwardPolicy::kLearned}) {
    EstimatorOptions eo;
    eo.hidden = 8;
    eo.dtype = torch::kFloat64;
    eo.activation = Activation::kElu;  // smooth, so finite differences never straddle a kink
    eo.backward = backward;
    eo.init_log_z = 0.3;
    auto gen = make_generator(21, torch::kCPU);
    Estimators est(env, eo, gen, torch::kCPU);
    auto sgen = make_generator(22, torch::kCPU);
    auto tr = rollout(env, *est.policy, 16, SamplerOptions{}, sgen, torch::kCPU);
    ASSERT_GT(tr.length.max().item<int64_t>(), 2);
    TrajectoryBalance tb;
    auto loss_fn = [&] { return tb.loss(score_trajectories(env, est, tr, ScoreOptions{})); };

    auto params = est.policy_parameters();
    params.push_back(est.log_z);
    auto grads = torch::autograd::grad({loss_fn()}, params);
    int64_t checked = 0;
    for (size_t k = 0; k < params.size(); ++k) {
      auto flat = params[k].detach().view({-1});  // shares storage with the parameter
      for (int64_t i : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
        const double fd = testing::central_difference(flat, i, loss_fn);
        const double ag = grads[k].reshape({-1})[i].item<double>();
        EXPECT_NEAR(ag, fd, 1e-6 + 1e-5 * std::fabs(fd)) << "parameter " << k << " entry " << i;
        ++checked;
      }
    }
    EXPECT_GE(checked, 3 * 7);
    // the gradient is not trivially zero
    double norm = 0.0;
    for (const auto& g : grads) norm += g.square().sum().item<double>();
    EXPECT_GT(norm, 1e-6);
  }
}

}  // namespace
}  // namespace gfn

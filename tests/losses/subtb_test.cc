#include "losses/subtb.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "apps/run.h"
#include "io/config.h"
#include "losses/db.h"
#include "losses/tb.h"
#include "tests/losses/loss_testing.h"

namespace gfn {
namespace {

using testing::hand_inputs;

SubTrajectoryBalance subtb(SubTbWeighting w, double lambda = 0.9, bool s0_log_z = false) {
  SubTbOptions o;
  o.weighting = w;
  o.lambda = lambda;
  o.s0 = s0_log_z ? SubTbStart::kLogZ : SubTbStart::kFlow;
  return SubTrajectoryBalance(o);
}

// random inputs with ragged lengths 1..T, 0 on padding, float64
LossInputs random_inputs(int64_t T, int64_t B, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  LossInputs in;
  in.length = torch::randint(1, T + 1, {B}, gen, torch::TensorOptions().dtype(torch::kInt64));
  in.length[0] = T;
  auto t = torch::arange(T, torch::kInt64).unsqueeze(1);
  in.mask = t.lt(in.length.unsqueeze(0));
  auto exit = t.eq(in.length.unsqueeze(0) - 1);
  in.log_pf = (-torch::rand({T, B}, gen, f64)).masked_fill(in.mask.logical_not(), 0.0);
  in.log_pb = (-torch::rand({T, B}, gen, f64)).masked_fill(in.mask.logical_not().logical_or(exit), 0.0);
  in.log_flow = torch::cat({torch::randn({T, B}, gen, f64).masked_fill(in.mask.logical_not(), 0.0),
                            torch::zeros({1, B}, f64)});
  in.log_reward = torch::randn({B}, gen, f64);
  in.log_z = torch::randn({}, gen, f64);
  return in;
}

// hand_inputs(): the DB residuals per transition are -0.3, -0.6, -0.2 (trajectory 0) and 0.35,
// -0.55 (trajectory 1); "db" averages each trajectory's squares, then the batch
TEST(SubTbTest, ValueByHand) {
  auto in = hand_inputs();
  auto db = subtb(SubTbWeighting::kDb);
  EXPECT_EQ(db.name(), "subtb");
  EXPECT_TRUE(db.requirements().flow);
  EXPECT_FALSE(db.requirements().log_z);
  EXPECT_TRUE(subtb(SubTbWeighting::kGeometric, 0.9, true).requirements().log_z);
  EXPECT_NEAR(db.loss(in).item<double>(), ((0.09 + 0.36 + 0.04) / 3 + (0.1225 + 0.3025) / 2) / 2, 1e-12);
  // the whole trajectory with phi_0 = log Z is TB (0.225, tb_test.cc)
  EXPECT_NEAR(subtb(SubTbWeighting::kTb, 0.9, true).loss(in).item<double>(), 0.225, 1e-12);
  // with phi_0 = log F(s0) = 1 the whole trajectory is TB at log Z = 1
  in.log_z = torch::tensor(1.0, torch::kFloat64);
  EXPECT_NEAR(subtb(SubTbWeighting::kTb).loss(in).item<double>(), TrajectoryBalance().loss(in).item<double>(),
              1e-12);
  EXPECT_NEAR(db.log_z_estimate(in).item<double>(), 1.0, 1e-12);
  EXPECT_FALSE(subtb(SubTbWeighting::kTb, 0.9, true).log_z_estimate(in).defined());
}

// every pair by explicit loops against the vectorised pass, for each weighting
TEST(SubTbTest, MatchesExplicitLoopsOverPairs) {
  auto in = random_inputs(7, 9, 5);
  for (auto w : {SubTbWeighting::kGeometric, SubTbWeighting::kEqual, SubTbWeighting::kTb, SubTbWeighting::kDb}) {
    const double lambda = 0.7;
    double total = 0.0;
    for (int64_t b = 0; b < 9; ++b) {
      const int64_t L = in.length[b].item<int64_t>();
      std::vector<double> phi(L + 1), c(L + 1, 0.0);
      for (int64_t t = 0; t < L; ++t) phi[t] = in.log_flow[t][b].item<double>();
      phi[L] = in.log_reward[b].item<double>();
      for (int64_t t = 0; t < L; ++t)
        c[t + 1] = c[t] + in.log_pf[t][b].item<double>() - in.log_pb[t][b].item<double>();
      double num = 0.0, den = 0.0;
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = i + 1; j <= L; ++j) {
          double weight = w == SubTbWeighting::kGeometric ? std::pow(lambda, j - i)
                          : w == SubTbWeighting::kEqual   ? 1.0
                          : w == SubTbWeighting::kTb      ? (i == 0 && j == L ? 1.0 : 0.0)
                                                          : (j == i + 1 ? 1.0 : 0.0);
          const double d = phi[i] + c[j] - c[i] - phi[j];
          num += weight * d * d;
          den += weight;
        }
      total += num / den;
    }
    EXPECT_NEAR(subtb(w, lambda).loss(in).item<double>(), total / 9, 1e-10) << static_cast<int>(w);
  }
}

// The quadratic form (two GEMMs) equals the explicit pairs in value and gradient, for every
// weighting and both choices of phi_0; in float32, potentials offset by 1000 (a balanced batch
// has a_t constant, so a naive quadratic form would cancel) still agree with the float64 pairs.
// lambda = 2 (the diffusion papers' FL-SubTB) takes the quadratic form in float64 too.
TEST(SubTbTest, QuadraticFormMatchesPairs) {
  for (auto w : {SubTbWeighting::kGeometric, SubTbWeighting::kEqual, SubTbWeighting::kTb, SubTbWeighting::kDb}) {
    for (int variant = 0; variant < 4; ++variant) {
      const bool s0_log_z = variant % 2 == 1;
      const double lambda = variant < 2 ? 0.8 : 2.0;
      if (lambda > 1.0 && w != SubTbWeighting::kGeometric) continue;
      auto obj = subtb(w, lambda, s0_log_z);
      auto in = random_inputs(30, 20, 11);
      in.log_flow.requires_grad_(true);
      in.log_pf.requires_grad_(true);
      in.log_z.requires_grad_(true);
      auto fast = obj.loss(in), pairs = obj.pairwise_loss(in);
      EXPECT_NEAR(fast.item<double>(), pairs.item<double>(), 1e-12 * pairs.item<double>());
      auto gf = torch::autograd::grad({fast}, {in.log_flow, in.log_pf, in.log_z}, {}, {}, false, true);
      auto gp = torch::autograd::grad({pairs}, {in.log_flow, in.log_pf, in.log_z}, {}, {}, false, true);
      for (size_t k = 0; k < gf.size(); ++k) {
        if (!gp[k].defined()) continue;
        ASSERT_TRUE(gf[k].defined()) << k;
        EXPECT_TRUE(torch::allclose(gf[k], gp[k], 1e-9, 1e-12)) << static_cast<int>(w) << " " << s0_log_z << " " << k;
      }
      auto off = random_inputs(30, 20, 12);
      off.log_flow = off.log_flow + 1000.0;
      off.log_reward = off.log_reward + 1000.0;
      off.log_z = off.log_z + 1000.0;
      const double reference = obj.pairwise_loss(off).item<double>();
      auto f32 = off;
      for (auto f : {&LossInputs::log_pf, &LossInputs::log_pb, &LossInputs::log_flow, &LossInputs::log_reward,
                     &LossInputs::log_z})
        f32.*f = (off.*f).to(torch::kFloat32);
      EXPECT_NEAR(obj.loss(f32).item<double>(), reference, 1e-3 * reference) << static_cast<int>(w);
    }
  }
}

// lambda -> 0+ gives the single transitions, lambda -> infinity the whole trajectory; with equal
// lengths "db" is DB's mean over transitions
TEST(SubTbTest, LambdaLimitsAreDbAndTb) {
  auto in = random_inputs(6, 12, 7);
  const double db = subtb(SubTbWeighting::kDb).loss(in).item<double>();
  const double tb = subtb(SubTbWeighting::kTb).loss(in).item<double>();
  EXPECT_NEAR(subtb(SubTbWeighting::kGeometric, 1e-9).loss(in).item<double>(), db, 1e-6 * db);
  EXPECT_NEAR(subtb(SubTbWeighting::kGeometric, 1e9).loss(in).item<double>(), tb, 1e-6 * tb);
  EXPECT_NEAR(subtb(SubTbWeighting::kGeometric, 1e300).loss(in).item<double>(), tb, 1e-6 * tb);  // no overflow
  in.length.fill_(6);
  in.mask.fill_(true);
  EXPECT_NEAR(subtb(SubTbWeighting::kDb).loss(in).item<double>(), DetailedBalance().loss(in).item<double>(), 1e-12);
}

TEST(SubTbTest, GradientMatchesFiniteDifferences) {
  auto geometric = testing::input_gradient_check(
      subtb(SubTbWeighting::kGeometric, 0.9),
      {&LossInputs::log_flow, &LossInputs::log_pf, &LossInputs::log_pb, &LossInputs::log_reward});
  EXPECT_EQ(geometric.entries, 8 + 6 + 6 + 2);
  EXPECT_LE(geometric.worst_excess, 0.0) << geometric.worst;
  auto equal = testing::input_gradient_check(subtb(SubTbWeighting::kEqual, 0.9, true),
                                             {&LossInputs::log_z, &LossInputs::log_flow});
  EXPECT_EQ(equal.entries, 1 + 8);
  EXPECT_LE(equal.worst_excess, 0.0) << equal.worst;
  // the whole trajectory with phi_0 = log Z is TB: d L / d log Z = mean(2 delta) = -0.3 by hand
  // (tb_test.cc), and the flows of the intermediate states get no gradient
  LossInputs in = hand_inputs();
  in.log_z = in.log_z.clone().set_requires_grad(true);
  in.log_flow = in.log_flow.clone().set_requires_grad(true);
  auto g = torch::autograd::grad({subtb(SubTbWeighting::kTb, 0.9, true).loss(in)}, {in.log_z, in.log_flow});
  EXPECT_NEAR(g[0].item<double>(), -0.3, 1e-12);
  EXPECT_EQ(g[1].abs().sum().item<double>(), 0.0);
}

// flows balanced along every transition balance every sub-trajectory: exactly 0 (dyadic values)
TEST(SubTbTest, BalancedIsZero) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto in = hand_inputs();
  in.log_pf = torch::tensor({-1.0, -0.5, -2.0, -0.25, -0.75, 0.0}, f64).view({3, 2});
  in.log_pb = torch::tensor({-0.25, -0.125, -0.5, 0.0, 0.0, 0.0}, f64).view({3, 2});
  in.log_flow = torch::tensor({1.0, 1.0, 0.25, 0.625, -1.25, 0.0, 0.0, 0.0}, f64).view({4, 2});
  in.log_reward = torch::tensor({-2.0, 0.375}, f64);
  for (auto w : {SubTbWeighting::kGeometric, SubTbWeighting::kEqual, SubTbWeighting::kTb, SubTbWeighting::kDb})
    EXPECT_EQ(subtb(w).loss(in).item<double>(), 0.0) << static_cast<int>(w);
  in.log_flow[1][0] += 1e-3;
  EXPECT_GT(subtb(SubTbWeighting::kGeometric).loss(in).item<double>(), 0.0);
}

// its keys are validated like every other: the message names the key, the value and the rule
TEST(SubTbTest, ConfigKeys) {
  const auto registry = Registry::builtin();
  auto config = load_config_file("configs/hypergrid.toml",
                                 {"objective.kind=subtb", "objective.lambda=0.5", "objective.weighting=equal"},
                                 run_schema(registry));
  EXPECT_EQ(config.params.get_float("objective.lambda"), 0.5);
  try {
    load_config_file("configs/hypergrid.toml", {"objective.kind=subtb", "objective.lambda=0"}, run_schema(registry));
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("objective.lambda"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gfn

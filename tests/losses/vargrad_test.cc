#include "losses/vargrad.h"

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include "apps/run.h"
#include "core/params.h"
#include "io/config.h"
#include "losses/tb.h"
#include "tests/losses/loss_testing.h"

namespace gfn {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

using testing::hand_inputs;

// hand_inputs() (tests/losses/loss_testing.h; its log Z is not read):
//   zeta_0 = -1 + (-0.2 + 1) + (-0.4 + 2) + (0 + 0.7) = 2.1
//   zeta_1 = 0.5 + (-0.1 + 0.5) + (0 + 0.3) = 1.2
//   mean 1.65, L = (0.45^2 + 0.45^2) / 2 = 0.2025
TEST(VarGradTest, ValueByHand) {
  VarGrad vg;
  EXPECT_EQ(vg.name(), "vargrad");
  EXPECT_FALSE(vg.requirements().log_z);
  EXPECT_FALSE(vg.requirements().flow);
  EXPECT_EQ(vg.requirements().min_batch_size, 2);
  auto in = hand_inputs();
  auto zeta = VarGrad::log_z_estimates(in);
  ASSERT_EQ(zeta.sizes(), (std::vector<int64_t>{2}));
  EXPECT_NEAR(zeta[0].item<double>(), 2.1, 1e-12);
  EXPECT_NEAR(zeta[1].item<double>(), 1.2, 1e-12);
  EXPECT_NEAR(vg.loss(in).item<double>(), 0.2025, 1e-12);
  auto estimate = vg.log_z_estimate(in);
  EXPECT_EQ(estimate.dim(), 0);
  EXPECT_NEAR(estimate.item<double>(), 1.65, 1e-12);
}

// VarGrad is TB with log Z set to the batch mean of the estimates
TEST(VarGradTest, EqualsTbAtTheBatchMean) {
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(3);
  LossInputs in;
  in.log_pf = -torch::rand({6, 32}, gen, kF64);
  in.log_pb = -torch::rand({6, 32}, gen, kF64);
  in.log_reward = torch::randn({32}, gen, kF64);
  in.mask = torch::ones({6, 32}, torch::kBool);
  in.length = torch::full({32}, 6, torch::kInt64);
  VarGrad vg;
  in.log_z = vg.log_z_estimate(in);
  EXPECT_NEAR(vg.loss(in).item<double>(), TrajectoryBalance().loss(in).item<double>(), 1e-12);
  // and TB at any other log Z is larger
  in.log_z = in.log_z + 0.3;
  EXPECT_NEAR(TrajectoryBalance().loss(in).item<double>() - vg.loss(in).item<double>(), 0.09, 1e-12);
}

// Autograd gradients w.r.t. every input agree with central finite differences (float64).
TEST(VarGradTest, GradientMatchesFiniteDifferences) {
  VarGrad vg;
  auto check = testing::input_gradient_check(vg, {&LossInputs::log_pf, &LossInputs::log_pb, &LossInputs::log_reward});
  EXPECT_EQ(check.entries, 6 + 6 + 2);
  EXPECT_LE(check.worst_excess, 0.0) << check.worst;
  // d L / d log R_b = 2 (zeta_b - mean) / B: +0.45 and -0.45 by hand
  LossInputs in = hand_inputs();
  in.log_reward = in.log_reward.clone().set_requires_grad(true);
  auto g = torch::autograd::grad({vg.loss(in)}, {in.log_reward})[0];
  EXPECT_NEAR(g[0].item<double>(), 0.45, 1e-12);
  EXPECT_NEAR(g[1].item<double>(), -0.45, 1e-12);
}

// Equal estimates give exactly 0 (dyadic values: exact sums); a perturbation makes it positive.
TEST(VarGradTest, BalancedIsZero) {
  VarGrad vg;
  auto in = hand_inputs();
  in.log_pf = torch::tensor({-1.0, -0.5, -2.0, -0.25, -0.75, 0.0}, kF64).view({3, 2});
  in.log_pb = torch::tensor({-0.25, -0.125, -0.5, 0.0, 0.0, 0.0}, kF64).view({3, 2});
  // zeta_b = log R_b + 3 (trajectory 0) and log R_b + 0.625 (trajectory 1): both 1.5
  in.log_reward = torch::tensor({-1.5, 0.875}, kF64);
  EXPECT_EQ(vg.loss(in).item<double>(), 0.0);
  EXPECT_EQ(vg.log_z_estimate(in).item<double>(), 1.5);
  auto p = in;
  p.log_pf = in.log_pf.clone();
  p.log_pf[1][0] += 1e-3;  // zeta_0 moves by -1e-3: L = 2 (5e-4)^2 / 2
  EXPECT_NEAR(vg.loss(p).item<double>(), 2.5e-7, 1e-15);
}

// a batch of 1 has no variance: refused by name before anything is written
TEST(VarGradTest, BatchOfOneIsAConfigError) {
  const auto registry = Registry::builtin();
  auto config = load_config_file("configs/hypergrid.toml", {"objective.kind=vargrad", "train.batch_size=1"},
                                 run_schema(registry));
  TrainOptions options;
  options.out_dir = (std::filesystem::temp_directory_path() / ("gfn-vargrad-b1-" + std::to_string(::getpid()))).string();
  options.progress = ProgressStyle::kNone;
  try {
    train(config, options, registry);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "train.batch_size = 1: objective.kind = \"vargrad\" needs at least 2 trajectories per batch");
  }
  EXPECT_FALSE(std::filesystem::exists(options.out_dir));
}

}  // namespace
}  // namespace gfn

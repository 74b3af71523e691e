// Estimators: architecture from the action spec, seeded initialisation, save/load round trip.
#include "core/estimator.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "components/led.h"
#include "core/component.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"
#include "envs/labelled_box.h"
#include "losses/tb.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

// heads have one output per forward / backward component; the learned P_B head is optional
TEST(EstimatorTest, HeadsFollowTheActionSpec) {
  HypergridOptions o;
  o.ndim = 3;
  o.height = 4;
  HypergridEnv env(o);
  EstimatorOptions eo;
  eo.hidden = 8;
  eo.backward = BackwardPolicy::kLearned;
  auto gen = make_generator(0, torch::kCPU);
  Estimators est(env, eo, gen, torch::kCPU);
  auto h = est.policy->trunk(env.features(env.initial_states(5, torch::kCPU)));
  EXPECT_EQ(h.sizes(), (std::vector<int64_t>{5, 8}));
  EXPECT_EQ(est.policy->forward_logits(h).size(1), 4);  // +0, +1, +2, exit
  EXPECT_EQ(est.policy->backward_logits(h).size(1), 3);
  EXPECT_EQ(est.log_z.dim(), 0);
  eo.backward = BackwardPolicy::kUniform;
  Estimators uni(env, eo, gen, torch::kCPU);
  EXPECT_FALSE(uni.policy->learned_backward());
  EXPECT_THROW(uni.policy->backward_logits(h), c10::Error);
}

// mixed precision: a bf16 trunk computes in bf16 from the float32 parameters and returns float32;
// its output is the float32 trunk's to bf16's precision, and gradients reach the float32
// parameters in float32
TEST(EstimatorTest, Bf16TrunkKeepsFloat32MasterParameters) {
  HypergridEnv env(HypergridOptions{});
  EstimatorOptions eo;
  auto g1 = make_generator(3, torch::kCPU), g2 = make_generator(3, torch::kCPU);
  Estimators fp32(env, eo, g1, torch::kCPU);
  eo.trunk_precision = Precision::kBf16;
  Estimators bf16(env, eo, g2, torch::kCPU);
  const auto features = env.features(env.initial_states(32, torch::kCPU));
  const auto a = fp32.policy->trunk(features), b = bf16.policy->trunk(features);
  EXPECT_EQ(b.scalar_type(), torch::kFloat32);
  const double scale = a.abs().max().item<double>();
  EXPECT_GT(scale, 0.1);
  const double error = (a - b).abs().max().item<double>();
  EXPECT_LT(error, 3e-2 * scale);  // bf16 keeps 8 bits of mantissa: relative error ~4e-3 per rounding
  EXPECT_GT(error, 0.0);           // and it did compute in bf16
  bf16.policy->forward_logits(b).sum().backward();
  for (const auto& p : bf16.policy_parameters()) {
    EXPECT_EQ(p.scalar_type(), torch::kFloat32);
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().scalar_type(), torch::kFloat32);
  }
}

// the same seed gives the same parameters, another seed others
TEST(EstimatorTest, SeededInitialisation) {
  HypergridEnv env(HypergridOptions{});
  auto g1 = make_generator(7, torch::kCPU), g2 = make_generator(7, torch::kCPU), g3 = make_generator(8, torch::kCPU);
  Estimators a(env, EstimatorOptions{}, g1, torch::kCPU), b(env, EstimatorOptions{}, g2, torch::kCPU),
      c(env, EstimatorOptions{}, g3, torch::kCPU);
  auto pa = a.policy_parameters(), pb = b.policy_parameters(), pc = c.policy_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  EXPECT_FALSE(torch::equal(pa[0], pc[0]));
}

// save then load into differently initialised estimators restores parameters and iteration;
// nothing temporary is left beside the file
TEST(EstimatorTest, SaveLoadRoundTrip) {
  HypergridEnv env(HypergridOptions{});
  auto g1 = make_generator(1, torch::kCPU), g2 = make_generator(2, torch::kCPU);
  EstimatorOptions eo;
  eo.init_log_z = 1.25;
  Estimators a(env, eo, g1, torch::kCPU), b(env, EstimatorOptions{}, g2, torch::kCPU);
  auto path = std::filesystem::temp_directory_path() / ("gfn_est_" + std::to_string(::getpid()) + ".pt");
  save_model(path.string(), a, Components{}, 4321);
  EXPECT_FALSE(std::filesystem::exists(path.string() + ".tmp"));
  EXPECT_EQ(load_model(path.string(), b, Components{}), 4321);
  EXPECT_DOUBLE_EQ(b.log_z.item<double>(), 1.25);
  auto pa = a.policy_parameters(), pb = b.policy_parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  std::filesystem::remove(path);
}

// a file that is not a model, or a model of another architecture, is refused by name
TEST(EstimatorTest, LoadRefusesForeignFiles) {
  HypergridEnv env(HypergridOptions{});
  auto g = make_generator(1, torch::kCPU);
  Estimators est(env, EstimatorOptions{}, g, torch::kCPU);
  auto dir = std::filesystem::temp_directory_path();
  auto junk = dir / ("gfn_junk_" + std::to_string(::getpid()) + ".pt");
  { std::ofstream(junk) << "garbage"; }
  try {
    load_model(junk.string(), est, Components{});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("not a gfn model file"), std::string::npos) << e.what();
  }
  HypergridOptions other;
  other.height = 9;
  HypergridEnv env9(other);
  Estimators est9(env9, EstimatorOptions{}, g, torch::kCPU);
  auto model = dir / ("gfn_h9_" + std::to_string(::getpid()) + ".pt");
  save_model(model.string(), est9, Components{}, 1);
  try {
    load_model(model.string(), est, Components{});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'trunk0_weight' has shape 18x256 but this config builds 16x256"),
              std::string::npos)
        << e.what();
  }
  std::filesystem::remove(junk);
  std::filesystem::remove(model);
}

// bad options name the config key
TEST(EstimatorTest, ValidateNamesKey) {
  EstimatorOptions eo;
  eo.hidden = 0;
  try {
    eo.validate();
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("policy.hidden = 0"), std::string::npos) << e.what();
  }
}

// the learned backward kernel gets its own concentration floor (the forward head keeps its own),
// checked against policy.max_concentration; the LED potential's shape is checked by key (the
// range of its key, [1, 64])
TEST(EstimatorTest, BackwardConcentrationFloorAndPotentialShape) {
  EstimatorOptions eo;
  eo.backward = BackwardPolicy::kLearned;
  eo.backward_min_concentration = 1.0;
  EXPECT_EQ(eo.backward_head_options().min_concentration, 1.0);
  EXPECT_EQ(eo.backward_head_options().max_concentration, eo.head.max_concentration);
  EXPECT_EQ(eo.head.min_concentration, 0.1);
  eo.backward_min_concentration = 6.0;
  auto error = testing::validate_error(eo);
  EXPECT_NE(error.find("policy.backward_min_concentration = 6: expected a float in (0, policy.max_concentration = 5.1)"),
            std::string::npos)
      << error;
  eo.backward_min_concentration = 1.0;
  EXPECT_EQ(testing::validate_error(eo), "");
  LedOptions led;
  led.layers = 0;
  error = testing::validate_error(led);
  EXPECT_NE(error.find("objective.led_layers = 0: expected an integer in [1, 64]"), std::string::npos) << error;
}

// a uniform or max-entropy P_B draws no Beta: the backward floor is neither applied nor checked,
// so forward bounds below the default floor (the Box's min 0.01, max 0.05) are valid, and the
// floor is checked, by its own key, only where P_B is learned
TEST(EstimatorTest, BackwardFloorOnlyWhereBackwardHasBetas) {
  EstimatorOptions eo;
  eo.head.min_concentration = 0.01;
  eo.head.max_concentration = 0.05;  // below the default backward floor 0.1
  for (auto backward : {BackwardPolicy::kUniform, BackwardPolicy::kMaxEnt}) {
    eo.backward = backward;
    EXPECT_FALSE(eo.backward_has_concentrations());
    EXPECT_EQ(testing::validate_error(eo), "");
    EXPECT_EQ(eo.backward_head_options().min_concentration, 0.01);
    EXPECT_EQ(testing::validate_error(eo.backward_head_options()), "");
  }
  for (auto backward : {BackwardPolicy::kLearned, BackwardPolicy::kTlm, BackwardPolicy::kFixed}) {
    eo.backward = backward;
    EXPECT_TRUE(eo.backward_has_concentrations());
    EXPECT_EQ(testing::validate_error(eo),
              fmt::format("policy.backward_min_concentration = 0.1: expected a float in (0, policy.max_concentration = "
                          "0.05) with policy.backward = \"{}\"",
                          enum_name(backward)));
  }
  eo.backward = BackwardPolicy::kLearned;
  eo.backward_min_concentration = 0.02;
  EXPECT_EQ(testing::validate_error(eo), "");
  EXPECT_EQ(eo.backward_head_options().min_concentration, 0.02);
}

}  // namespace
}  // namespace gfn

// LED (components/led.h): the redistributed credits sum to log R exactly, the dropout regression
// scales the kept steps by n / sum z and keeps at least one valid step, its gradient in float64,
// the regression recovers log R on sets (an additive energy: a known decomposition), the trainer
// step and its config errors, and the potential in the saved model.
#include "components/led.h"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "apps/registry.h"
#include "core/component.h"
#include "core/sampler.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"
#include "envs/sets.h"
#include "losses/fm.h"
#include "losses/subtb.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

// The LED component of estimators `est` built with `eo`, drawn from `gen` after them.
std::unique_ptr<LedComponent> led_for(const Env& env, Estimators& est, const EstimatorOptions& eo, torch::Generator& gen,
                                      const LedOptions& options = {}) {
  return testing::component_for<LedComponent>(env, est, eo, gen, options);
}

// B = 3 trajectories of lengths 3, 1 and 2 over T = 3 steps
struct Batch {
  torch::Tensor mask = torch::tensor({true, true, true, true, false, true, true, false, false}).view({3, 3});
  torch::Tensor length = torch::tensor({3, 1, 2}, torch::kInt64);
  torch::Tensor log_reward = torch::tensor({-1.25, 0.5, -3.0}, torch::kFloat64);
};

TEST(LedTest, RedistributedCreditsSumToLogR) {
  Batch b;
  auto phi = torch::tensor({0.3, -0.7, 1.1, 2.0, 9.0, -0.4, 0.6, 9.0, 9.0}, torch::kFloat64).view({3, 3});
  auto credits = redistributed_credits(phi, b.log_reward, b.mask, b.length);
  EXPECT_FALSE(credits.requires_grad());
  for (int64_t i = 0; i < 3; ++i) EXPECT_NEAR(credits.select(1, i).sum().item<double>(), b.log_reward[i].item<double>(), 1e-14);
  // phi_t + (log R - sum phi) / n; padding 0
  EXPECT_NEAR(credits[0][0].item<double>(), 0.3 + (-1.25 - (0.3 + 2.0 + 0.6)) / 3, 1e-14);
  EXPECT_NEAR(credits[0][1].item<double>(), 0.5, 1e-14);  // one step: all of log R
  EXPECT_EQ(credits[1][1].item<double>(), 0.0);
  EXPECT_EQ(credits[2][2].item<double>(), 0.0);
  // differences between the steps of a trajectory are phi's
  EXPECT_NEAR((credits[2][0] - credits[0][0]).item<double>(), 0.6 - 0.3, 1e-14);
  // float32 potentials: still log R up to float32 rounding
  auto c32 = redistributed_credits(phi.to(torch::kFloat32) * 100, b.log_reward.to(torch::kFloat32), b.mask, b.length);
  EXPECT_NEAR(c32.select(1, 0).sum().item<double>(), -1.25, 1e-4);
}

// a potential that is constant along each trajectory predicts n * c whatever is dropped
TEST(LedTest, RegressionScalesTheKeptSteps) {
  Batch b;
  auto c = torch::tensor({0.5, -2.0, 0.25}, torch::kFloat64);
  auto phi = c.unsqueeze(0).expand({3, 3}).masked_fill(b.mask.logical_not(), 7.0);  // padding never read
  auto expected = (c * b.length.to(torch::kFloat64) - b.log_reward).square().mean().item<double>();
  auto gen = make_generator(3, torch::kCPU);
  for (double rate : {0.0, 0.2, 0.5, 0.95})
    for (int rep = 0; rep < 5; ++rep)
      EXPECT_NEAR(potential_regression_loss(phi, b.log_reward, b.mask, b.length, rate, gen).item<double>(), expected,
                  1e-12)
          << "drop rate " << rate;
}

// at a drop rate near 1 exactly one valid step is kept, uniformly among the valid ones
TEST(LedTest, RegressionKeepsOneValidStep) {
  Batch b;
  auto gen = make_generator(4, torch::kCPU);
  auto counts = torch::zeros({3, 3}, torch::kFloat64);
  const int draws = 3000;
  for (int d = 0; d < draws; ++d) {
    auto phi = torch::tensor({0.3, -0.7, 1.1, 2.0, 9.0, -0.4, 0.6, 9.0, 9.0}, torch::kFloat64).view({3, 3});
    phi.set_requires_grad(true);
    auto loss = potential_regression_loss(phi, b.log_reward, b.mask, b.length, 0.999999, gen);
    auto g = torch::autograd::grad({loss}, {phi})[0];
    auto kept = g.ne(0.0);
    ASSERT_TRUE(torch::equal(kept.sum(0), torch::ones({3}, torch::kInt64))) << "draw " << d;
    ASSERT_FALSE(kept.logical_and(b.mask.logical_not()).any().item<bool>());
    counts += kept.to(torch::kFloat64);
  }
  // trajectory 0 has 3 valid steps, trajectory 2 two: each chosen with frequency 1/n
  for (int64_t t = 0; t < 3; ++t) EXPECT_NEAR(counts[t][0].item<double>() / draws, 1.0 / 3, 0.04);
  for (int64_t t = 0; t < 2; ++t) EXPECT_NEAR(counts[t][2].item<double>() / draws, 0.5, 0.04);
}

// float64 finite differences of the regression w.r.t. every parameter of the potential, through
// its values on sampled hypergrid trajectories (the same dropout draw in every evaluation)
TEST(LedTest, GradientCheckThroughTheNetwork) {
  auto env = testing::make_grid(2, 3);
  auto eo = testing::small_net(8, torch::kFloat64);
  eo.activation = Activation::kElu;
  auto gen = make_generator(7, torch::kCPU);
  Estimators est(env, eo, gen, torch::kCPU);
  auto led = led_for(env, est, eo, gen);
  auto& potential = led->potential();
  {
    torch::NoGradGuard no_grad;  // away from the zero output layer, so every layer has a gradient
    for (auto& p : potential.parameters()) p.uniform_(-0.5, 0.5, gen);
  }
  auto sgen = make_generator(8, torch::kCPU);
  auto tr = rollout(env, *est.policy, 12, SamplerOptions{}, sgen, torch::kCPU);
  auto log_reward = tr.log_reward.to(torch::kFloat64);
  auto loss_fn = [&] {
    auto dgen = make_generator(9, torch::kCPU);
    return potential_regression_loss(potential.values(env, tr), log_reward, tr.mask, tr.length, 0.3, dgen);
  };
  auto params = potential.parameters();
  auto grads = torch::autograd::grad({loss_fn()}, params);
  int64_t checked = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    auto flat = params[k].detach().view({-1});
    auto g = grads[k].reshape({-1});
    for (int64_t i : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
      const double fd = testing::central_difference(flat, i, loss_fn);
      EXPECT_NEAR(g[i].item<double>(), fd, 1e-6 + 1e-5 * std::fabs(fd)) << "parameter " << k << " entry " << i;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * static_cast<int64_t>(params.size()));
  EXPECT_GT(torch::cat({grads[0].reshape({-1}), grads.back().reshape({-1})}).abs().max().item<double>(), 1e-3);
}

// Sets: log R = -sum E(a) is additive over the steps (a known decomposition). The potential
// alone, regressed on trajectories of a fixed policy at the default drop rate (0.1: 5 steps),
// brings sum phi to log R on fresh trajectories: mean |sum phi - log R| 1.86 at the start (phi =
// 0: the mean |log R|), measured 0.075 after 400 steps, 0.035 after 1,000, 0.028 after 2,000 (the
// dropout keeps a small bias towards spreading log R evenly).
TEST(LedTest, RegressionRecoversAnAdditiveEnergy) {
  SetsOptions so;
  so.universe = 8;
  so.size = 4;
  SetsEnv env(so);
  auto eo = testing::small_net(64);
  auto gen = make_generator(11, torch::kCPU);
  Estimators est(env, eo, gen, torch::kCPU);
  auto led = led_for(env, est, eo, gen);
  auto& potential = led->potential();
  FusedAdam adam({{potential.parameters(), 1e-3}});
  auto sgen = make_generator(12, torch::kCPU);
  auto error = [&] {
    torch::NoGradGuard no_grad;
    auto tr = rollout(env, *est.policy, 256, SamplerOptions{}, sgen, torch::kCPU);
    return (potential.values(env, tr).sum(0) - tr.log_reward).abs().mean().item<double>();
  };
  const double before = error();
  for (int i = 0; i < 1000; ++i) {
    auto tr = rollout(env, *est.policy, 32, SamplerOptions{}, sgen, torch::kCPU);
    auto loss = potential_regression_loss(potential.values(env, tr), tr.log_reward, tr.mask, tr.length, 0.1, sgen);
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  const double after = error();
  EXPECT_GT(before, 1.5);
  EXPECT_LT(after, 0.1);
}

// one LED iteration on both paths: the potential moves, its loss is logged; the config errors
TEST(LedTest, TrainerStepAndErrors) {
  SetsOptions so;
  so.universe = 6;
  so.size = 3;
  SetsEnv env(so);
  for (auto mode : {TabularMode::kOn, TabularMode::kOff}) {
    auto eo = testing::small_net(16);
    auto gen = make_generator(5, torch::kCPU);
    Estimators est(env, eo, gen, torch::kCPU);
    SubTrajectoryBalance subtb;
    TrainerOptions opts;
    opts.tabular = mode;
    opts.score.credit = Credit::kLearned;
    Params keys;
    keys.set("train.led_steps", int64_t{3});
    const Requirements requirements = subtb.requirements();
    const auto components = make_components(Registry::builtin(),
                                            ComponentSetup{env, est, eo, opts, requirements, gen, torch::kCPU}, keys);
    ASSERT_EQ(components.size(), 2u);  // the flow head, then LED's potential
    auto& led = static_cast<LedComponent&>(*components[1]);
    auto before = led.potential().parameters().back().clone();  // the output bias, 0
    Trainer trainer(env, est, subtb, opts, 0, torch::kCPU, component_pointers(components));
    ASSERT_EQ(trainer.metric_names(), std::vector<std::string>{"potential_loss"});
    auto r = trainer.step();
    ASSERT_EQ(r.metrics.size(), 1u);
    EXPECT_GT(r.metrics[0].item<double>(), 0.0);
    EXPECT_TRUE(std::isfinite(r.loss.item<double>()));
    EXPECT_FALSE(torch::equal(led.potential().parameters().back(), before));
  }
  auto eo = testing::small_net(8);
  auto gen = make_generator(5, torch::kCPU);
  Estimators est(env, eo, gen, torch::kCPU);
  auto led = led_for(env, est, eo, gen);
  TrainerOptions opts;
  opts.score.credit = Credit::kLearned;
  FlowMatching fm;
  try {
    Trainer t(env, est, fm, opts, 0, torch::kCPU, {led.get()});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("objective.credit = \"led\": objective.kind = \"fm\" takes no local credits"),
              std::string::npos)
        << e.what();
  }
  LedOptions bad;
  bad.drop_rate = 1.0;
  auto error = testing::validate_error(bad);
  EXPECT_NE(error.find("objective.led_dropout = 1: expected a float in [0, 1)"), std::string::npos) << error;
  bad.drop_rate = -1.0;  // the paper's rule
  EXPECT_EQ(testing::validate_error(bad), "");
  // one key chooses the credits: fl and led cannot both be asked for
  try {
    enum_value<Credit>("fl+led", "objective.credit");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "objective.credit = \"fl+led\": expected one of \"none\", \"fl\", \"led\"");
  }
  // learned credits without the potential's component
  const auto plain = testing::small_net(8);
  Estimators none(env, plain, gen, torch::kCPU);
  SubTrajectoryBalance subtb;
  const auto flow = testing::components_for(env, none, plain, subtb, TrainerOptions{}, gen);
  EXPECT_THROW(Trainer(env, none, subtb, opts, 0, torch::kCPU, component_pointers(flow)), ConfigError);
}

TEST(LedTest, SaveLoadRoundTrip) {
  HypergridEnv env(HypergridOptions{});
  auto eo = testing::small_net(8);
  auto g1 = make_generator(1, torch::kCPU), g2 = make_generator(2, torch::kCPU);
  Estimators a(env, eo, g1, torch::kCPU), b(env, eo, g2, torch::kCPU);
  Components ca, cb;
  ca.push_back(led_for(env, a, eo, g1));
  cb.push_back(led_for(env, b, eo, g2));
  auto& pot_a = static_cast<LedComponent&>(*ca[0]).potential();
  auto& pot_b = static_cast<LedComponent&>(*cb[0]).potential();
  {
    torch::NoGradGuard no_grad;
    pot_a.parameters().back().fill_(0.75);
  }
  auto path = std::filesystem::temp_directory_path() / ("gfn_led_" + std::to_string(::getpid()) + ".pt");
  save_model(path.string(), a, ca, 4);
  EXPECT_EQ(load_model(path.string(), b, cb), 4);
  std::filesystem::remove(path);
  auto pa = pot_a.parameters(), pb = pot_b.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
}

}  // namespace
}  // namespace gfn

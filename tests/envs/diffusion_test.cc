// The diffusion env (envs/diffusion.h) and what it brings to the core: the fixed backward kernel
// is the Brownian bridge (scoring against the closed form), the reference process makes
// P_F(tau) / P_B(tau | x) = N(x; 0, sigma^2) on every path, the checker passes it, the time
// architecture computes the network it documents (its folded first layer against the explicit
// one, in float64; frozen tables against fresh ones; the Langevin term), the intermediate
// reward's ends, and exploration noise widens the draws by the documented amount.
#include "envs/diffusion.h"

#include <cmath>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "components/exploration.h"
#include "core/checker.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/trainer.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

using testing::validate_error;

DiffusionEnv make_diffusion(const std::string& target, int64_t steps, double sigma2) {
  DiffusionOptions o;
  o.target = target;
  o.steps = steps;
  o.sigma2 = sigma2;
  return DiffusionEnv(o);
}

EstimatorOptions net(Architecture a, torch::Dtype dtype = torch::kFloat32) {
  EstimatorOptions o;
  o.architecture = a;
  o.hidden = 16;
  o.embedding = 8;
  o.time_harmonics = 4;
  o.activation = Activation::kGelu;
  o.backward = BackwardPolicy::kFixed;
  o.dtype = dtype;
  return o;
}

TEST(DiffusionTest, ValidateNamesKeyAndRule) {
  EXPECT_EQ(validate_error(DiffusionOptions{}), "");
  DiffusionOptions o;
  o.sigma2 = 0.0;
  EXPECT_NE(validate_error(o).find("sigma2"), std::string::npos);
  o = DiffusionOptions{};
  o.target = "gmm";
  const auto msg = validate_error(o);
  EXPECT_NE(msg.find("target"), std::string::npos) << msg;
  EXPECT_NE(msg.find("manywell"), std::string::npos) << msg;
  EXPECT_THROW(DiffusionEnv{o}, ConfigError);
}

TEST(DiffusionTest, SpecMasksAndTimeIndexing) {
  const auto env = make_diffusion("9gmm", 4, 2.0);
  const auto& spec = env.action_spec();
  ASSERT_EQ(spec.forward.size(), 2);
  EXPECT_EQ(spec.forward.components[0].domain, Domain::kReal);
  EXPECT_EQ(spec.forward.components[0].dim, 2);
  EXPECT_EQ(spec.backward.components[1].kind, ComponentKind::kAtom);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  States s{torch::tensor({0, 1, 2, 4}, i64).unsqueeze(1), torch::zeros({4, 2}, torch::kFloat64),
           torch::tensor({true, false, false, false}), torch::zeros({4}, torch::kBool)};
  auto f = env.forward_mask(s), b = env.backward_mask(s);
  EXPECT_TRUE(torch::equal(f.select(1, 1), torch::tensor({false, false, false, true})));
  EXPECT_TRUE(torch::equal(b.select(1, 0), torch::tensor({false, false, true, true})));
  EXPECT_TRUE(torch::equal(b.select(1, 1), torch::tensor({false, true, false, false})));
  const auto time = env.time_indexing();
  ASSERT_TRUE(time.has_value());
  EXPECT_EQ(time->steps, 4);
  EXPECT_DOUBLE_EQ(time->drift_to_chart, std::sqrt(0.25) / std::sqrt(2.0));
  EXPECT_NEAR(env.features(s)[3][0].item<double>(), 1.0, 1e-7);
}

// log_pb of every step under policy.backward = "fixed" is the bridge's closed form in x space
TEST(DiffusionTest, FixedBackwardIsTheBrownianBridge) {
  const double sigma2 = 3.0;
  const int64_t T = 6, d = 2;
  const auto env = make_diffusion("25gmm", T, sigma2);
  auto gen = make_generator(0, torch::kCPU);
  Estimators est(env, net(Architecture::kMlp), gen, torch::kCPU);
  auto tr = rollout(env, *est.policy, 50, SamplerOptions{}, gen, torch::kCPU);
  auto in = score_trajectories(env, est, tr, ScoreOptions{});
  const double dt = 1.0 / T;
  for (int64_t t = 1; t < T; ++t) {
    auto x_prev = tr.states_continuous[t], x = tr.states_continuous[t + 1];  // s_t (k = t) <- s_{t+1}
    const double k = static_cast<double>(t + 1);
    auto mean = x * ((k - 1) / k);
    const double var = sigma2 * dt * (k - 1) / k;
    auto expected = (-(x_prev - mean).square().sum(1) / (2 * var) - 0.5 * d * std::log(2 * M_PI * var));
    EXPECT_TRUE(torch::allclose(in.log_pb[t].to(torch::kFloat64), expected, 1e-4, 1e-4)) << "step " << t;
  }
  EXPECT_TRUE(torch::equal(in.log_pb[0], torch::zeros({50})));  // s0 <- s1: the atom
  EXPECT_TRUE(torch::equal(in.log_pb[T], torch::zeros({50})));  // the exit
}

// a zero-output time network is the reference process: P_F / P_B = N(x; 0, sigma^2) on every path
TEST(DiffusionTest, ReferenceProcessRatioIsTheMarginal) {
  const double sigma2 = 5.0;
  const auto env = make_diffusion("25gmm", 10, sigma2);
  auto gen = make_generator(1, torch::kCPU);
  auto o = net(Architecture::kTime);
  o.log_var_range = 0.0;
  Estimators est(env, o, gen, torch::kCPU);
  auto tr = rollout(env, *est.policy, 200, SamplerOptions{}, gen, torch::kCPU);
  auto in = score_trajectories(env, est, tr, ScoreOptions{});
  auto ratio = (in.log_pf - in.log_pb).sum(0).to(torch::kFloat64);
  auto x = tr.terminal_continuous;
  auto marginal = -x.square().sum(1) / (2 * sigma2) - std::log(2 * M_PI * sigma2);
  EXPECT_LT((ratio - marginal).abs().max().item<double>(), 2e-4);
}

TEST(DiffusionTest, CheckerPasses) {
  const auto env = make_diffusion("25gmm", 10, 50.0);
  CheckOptions o;
  o.is_samples = 50000;
  const auto report = check_env(env, o);
  EXPECT_TRUE(report.passed()) << report.text();
}

// the folded first layer computes gelu([x W_s + b_s | temb(t)] W_1 + b_1), temb from the
// sinusoidal features by Linear-GELU-Linear (float64); frozen tables give the same outputs
TEST(DiffusionTest, TimeArchitectureIsTheDocumentedNetwork) {
  const auto env = make_diffusion("9gmm", 8, 1.0);
  auto gen = make_generator(2, torch::kCPU);
  Estimators est(env, net(Architecture::kTime, torch::kFloat64), gen, torch::kCPU);
  auto& p = *est.policy;
  auto params = p.named_parameters();
  auto k = torch::tensor({0, 3, 8, 5}, torch::kInt64);
  auto x = torch::randn({4, 2}, gen, torch::kFloat64);
  auto features = torch::cat({(k.to(torch::kFloat64) / 8.0).unsqueeze(1), x}, 1);
  auto freq = torch::linspace(0.1, 100.0, 4, torch::kFloat64);
  auto phase = (k.to(torch::kFloat64) / 8.0).unsqueeze(1) * freq.unsqueeze(0);
  auto tf = torch::cat({phase.sin(), phase.cos()}, 1);
  auto temb = torch::addmm(params["time1_bias"], torch::gelu(torch::addmm(params["time0_bias"], tf, params["time0_weight"])),
                           params["time1_weight"]);
  auto semb = torch::addmm(params["state_bias"], x, params["state_weight"]);
  auto h = torch::gelu(torch::addmm(params["trunk0_bias"], torch::cat({semb, temb}, 1), params["trunk0_weight"]));
  h = torch::gelu(torch::addmm(params["trunk1_bias"], h, params["trunk1_weight"]));
  auto got = p.trunk(features);
  EXPECT_LT((got - h).abs().max().item<double>(), 1e-12);
  torch::Tensor frozen;
  {
    torch::NoGradGuard no_grad;
    FrozenPolicy f(p);
    p.trunk(features * 0.5);  // fills the tables
    frozen = p.trunk(features);
  }
  EXPECT_TRUE(torch::allclose(frozen, got.detach(), 0.0, 1e-14));
  // the output layer starts at zero: the reference step (drift 0, log-scale 0)
  auto out = p.forward_outputs(got, features);
  EXPECT_EQ(out.abs().max().item<double>(), 0.0);
}

// the Langevin term: drift = s(t) * clip(grad log R), in chart units sqrt(dt) / sigma
TEST(DiffusionTest, LangevinDriftFollowsTheScore) {
  const double sigma2 = 2.0;
  const auto env = make_diffusion("9gmm", 4, sigma2);
  auto gen = make_generator(3, torch::kCPU);
  auto o = net(Architecture::kTime, torch::kFloat64);
  o.langevin = true;
  o.langevin_clip = 3.0;
  Estimators est(env, o, gen, torch::kCPU);
  auto& p = *est.policy;
  {
    torch::NoGradGuard no_grad;
    p.named_parameters()["langevin1_bias"].fill_(0.5);
  }
  auto x = torch::tensor({{0.1, -0.2}, {4.0, 4.5}, {-2.5, 0.0}}, torch::kFloat64);
  auto features = torch::cat({torch::full({3, 1}, 0.25, torch::kFloat64), x}, 1);
  auto out = p.forward_outputs(p.trunk(features), features);
  auto grad = env.target().grad_log_density(x).clamp(-3.0, 3.0);
  auto expected = 0.5 * grad * (std::sqrt(0.25) / std::sqrt(sigma2));
  EXPECT_TRUE(torch::allclose(out.narrow(1, 2, 2), expected, 1e-12, 1e-12)) << out << expected;
  EXPECT_GT(grad.abs().max().item<double>(), 1.0);  // the clip matters at these points
  // the Langevin option needs grad log R and one Gaussian piece over the state
  EXPECT_THROW(Estimators(testing::make_grid(2, 4), o, gen, torch::kCPU), ConfigError);
}

TEST(DiffusionTest, IntermediateRewardInterpolatesPriorAndTarget) {
  const double sigma2 = 5.0;
  const auto env = make_diffusion("25gmm", 10, sigma2);
  auto x = torch::tensor({{0.3, -1.0}, {5.0, 5.0}}, torch::kFloat64);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  States last{torch::full({2, 1}, 10, i64), x, torch::zeros({2}, torch::kBool), torch::zeros({2}, torch::kBool)};
  EXPECT_TRUE(torch::allclose(env.intermediate_log_reward(last), env.log_reward(last), 1e-6, 1e-6));
  States first{torch::full({2, 1}, 1, i64), x, torch::zeros({2}, torch::kBool), torch::zeros({2}, torch::kBool)};
  const double t = 0.1, var = sigma2 * t;
  auto prior = -x.square().sum(1) / (2 * var) - std::log(2 * M_PI * var);
  auto expected = (0.9 * prior + 0.1 * env.target().log_density(x)).to(torch::kFloat32);
  EXPECT_TRUE(torch::allclose(env.intermediate_log_reward(first), expected, 1e-5, 1e-5));
}

// exploration: the extra noise decays linearly, and the draws' variance is 1 + e^2 / sigma^2 in
// chart units (explore.noise in units of sigma for a time-indexed env)
TEST(DiffusionTest, ExplorationWidensTheSteps) {
  const double sigma2 = 4.0;
  const auto env = make_diffusion("9gmm", 5, sigma2);
  auto gen = make_generator(4, torch::kCPU);
  auto o = net(Architecture::kTime);
  o.log_var_range = 0.0;
  Estimators est(env, o, gen, torch::kCPU);
  TrainerOptions to;
  Requirements req;
  ExplorationOptions eo;
  eo.noise = 1.0;
  eo.decay = 100;
  ExplorationComponent explore({env, est, o, to, req, gen, torch::kCPU}, eo);
  EXPECT_DOUBLE_EQ(explore.noise_at(0), 1.0);
  EXPECT_DOUBLE_EQ(explore.noise_at(25), 0.75);
  EXPECT_DOUBLE_EQ(explore.noise_at(150), 0.0);
  SamplerOptions so;
  explore.adjust_sampling(so, 0);
  EXPECT_DOUBLE_EQ(so.noise, 0.5);  // 1 / sigma
  EXPECT_FALSE(so.on_policy());
  auto tr = rollout(env, *est.policy, 20000, so, gen, torch::kCPU);
  auto u = tr.action_coords.narrow(0, 0, 5).reshape({-1});
  const double var = u.var().item<double>();  // 1 + 0.25, standard error ~ 1.25 sqrt(2 / 2e5)
  EXPECT_NEAR(var, 1.25, 0.02);
  // an env without Gaussian pieces refuses it
  const auto grid = testing::make_grid(2, 4);
  EXPECT_THROW(ExplorationComponent({grid, est, o, to, req, gen, torch::kCPU}, eo), ConfigError);
}

}  // namespace
}  // namespace gfn

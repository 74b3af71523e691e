// Diffusion-sampler targets: the registry and its errors; log Z against quadrature (the mixtures on
// their extent box, the 2-D funnel and double well on grids, manywell d = 32 as 16 pairs); the
// gradients against central finite differences and against autograd; finite log densities far
// out; exact samples: mode frequencies and within-mode moments (mixtures), moments (funnel), and
// the law of x1 against its quadrature CDF (manywell); seeded reproducibility.
#include "envs/diffusion_targets.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/params.h"

namespace gfn {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

// log of the trapezoid rule over the tensor grid xs x ys (uniform, spacings hx, hy) of exp(log f),
// with log f given at the grid points as [len(xs) * len(ys)] (x-major).
double log_trapezoid_2d(const torch::Tensor& log_f, int64_t nx, int64_t ny, double hx, double hy) {
  auto wx = torch::ones({nx}, kF64), wy = torch::ones({ny}, kF64);
  wx[0] = wx[nx - 1] = 0.5;
  wy[0] = wy[ny - 1] = 0.5;
  auto log_w = (wx.unsqueeze(1) * wy.unsqueeze(0)).log().reshape({nx * ny});
  return (log_f + log_w).logsumexp(0).item<double>() + std::log(hx * hy);
}

// The grid xs x ys as points [len(xs) * len(ys), 2], x-major.
torch::Tensor grid_points(const torch::Tensor& xs, const torch::Tensor& ys) {
  return torch::stack({xs.repeat_interleave(ys.size(0)), ys.repeat({xs.size(0)})}, 1);
}

// log int R over [-a, a]^2 by the trapezoid rule with step h (spectrally accurate for these
// smooth, rapidly decaying integrands).
double log_integral_on_box(const DiffusionTarget& target, double a, double h) {
  const auto steps = static_cast<int64_t>(std::lround(2 * a / h));
  auto xs = torch::linspace(-a, a, steps + 1, kF64);
  return log_trapezoid_2d(target.log_density(grid_points(xs, xs)), steps + 1, steps + 1, 2 * a / steps,
                          2 * a / steps);
}

std::string config_error_text(const std::string& name, int64_t dim) {
  try {
    make_diffusion_target(name, dim);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(DiffusionTargetsTest, RegistryNamesAndDefaultDims) {
  EXPECT_EQ(diffusion_target_names(), (std::vector<std::string>{"25gmm", "9gmm", "funnel", "manywell"}));
  const std::vector<int64_t> default_dims = {2, 2, 10, 32};
  for (size_t k = 0; k < default_dims.size(); ++k) {
    const std::string name = diffusion_target_names()[k];
    auto target = make_diffusion_target(name);
    EXPECT_EQ(target->name(), name);
    EXPECT_EQ(target->dim(), default_dims[k]) << name;
    EXPECT_TRUE(target->has_samples()) << name;
    EXPECT_TRUE(target->log_partition().has_value()) << name;
    EXPECT_GT(target->extent(), 0.0) << name;
  }
  EXPECT_EQ(make_diffusion_target("funnel", 5)->dim(), 5);
  EXPECT_EQ(make_diffusion_target("manywell", 2)->dim(), 2);
  EXPECT_EQ(make_diffusion_target("25gmm", 2)->dim(), 2);
}

TEST(DiffusionTargetsTest, BadDimsAndNamesAreConfigErrors) {
  struct Case {
    const char* name;
    int64_t dim;
    const char* expected;
  };
  for (const Case& c : {Case{"25gmm", 3, "dimension 2"}, Case{"9gmm", 1, "dimension 2"},
                        Case{"funnel", 1, "integer >= 2"}, Case{"funnel", -4, "integer >= 2"},
                        Case{"manywell", 3, "even integer >= 2"}, Case{"manywell", -2, "even integer >= 2"}}) {
    const auto text = config_error_text(c.name, c.dim);
    EXPECT_NE(text.find("env.dim"), std::string::npos) << c.name << ": " << text;
    EXPECT_NE(text.find(std::to_string(c.dim)), std::string::npos) << text;
    EXPECT_NE(text.find(c.name), std::string::npos) << text;
    EXPECT_NE(text.find(c.expected), std::string::npos) << text;
  }
  const auto text = config_error_text("funel", 0);
  EXPECT_NE(text.find("env.target"), std::string::npos) << text;
  EXPECT_NE(text.find("\"funel\""), std::string::npos) << text;
  for (const auto& name : diffusion_target_names()) EXPECT_NE(text.find("\"" + name + "\""), std::string::npos) << text;
}

TEST(DiffusionTargetsTest, MixturesIntegrateToOneOnTheirBox) {
  for (const char* name : {"25gmm", "9gmm"}) {
    auto target = make_diffusion_target(name);
    const double log_z = log_integral_on_box(*target, target->extent(), 0.05);
    EXPECT_NEAR(log_z, *target->log_partition(), 1e-6) << name;
    EXPECT_EQ(*target->log_partition(), 0.0);
  }
}

// R(x) at a mode centre: (1/K) N(0; 0, 0.3 I) plus the (negligible) other components
TEST(DiffusionTargetsTest, MixtureDensityAtAMode) {
  auto target = make_diffusion_target("25gmm");
  auto x = torch::tensor({{5.0, -10.0}}, kF64);
  const double expected = -std::log(25.0) - std::log(2 * M_PI * 0.3);
  EXPECT_NEAR(target->log_density(x).item<double>(), expected, 1e-12);
}

// int R = int dx0 N(x0; 0, 9) int dx1 N(x1; 0, e^{x0}), with x1 = e^{x0 / 2} u (Jacobian e^{x0 / 2})
TEST(DiffusionTargetsTest, FunnelIntegratesToOneIn2D) {
  auto target = make_diffusion_target("funnel", 2);
  const double h = 0.05;
  auto x0 = torch::linspace(-30, 30, 1201, kF64), u = torch::linspace(-12, 12, 481, kF64);
  auto pts = grid_points(x0, u);  // (x0, u)
  auto x = torch::stack({pts.select(1, 0), pts.select(1, 1) * (0.5 * pts.select(1, 0)).exp()}, 1);
  auto log_f = target->log_density(x) + 0.5 * pts.select(1, 0);
  EXPECT_NEAR(log_trapezoid_2d(log_f, 1201, 481, h, h), 0.0, 1e-6);
  EXPECT_EQ(*target->log_partition(), 0.0);
}

TEST(DiffusionTargetsTest, ManywellLogPartitionMatchesQuadrature) {
  auto pair = make_diffusion_target("manywell", 2);
  const double h1 = 0.004, h2 = 0.05;
  auto x1 = torch::linspace(-4, 4, 2001, kF64), x2 = torch::linspace(-8, 8, 321, kF64);
  const double log_z = log_trapezoid_2d(pair->log_density(grid_points(x1, x2)), 2001, 321, h1, h2);
  EXPECT_NEAR(*pair->log_partition(), log_z, 1e-9);
  // the published constant: int exp(-t^4 + 6 t^2 + t / 2) dt = 11784.50927
  EXPECT_NEAR(*pair->log_partition() - 0.5 * std::log(2 * M_PI), std::log(11784.50927), 1e-9);
  auto many = make_diffusion_target("manywell");
  EXPECT_NEAR(*many->log_partition(), 16 * *pair->log_partition(), 1e-9);
  // and the box of the extent holds the mass (the 2-D grid and plots)
  EXPECT_NEAR(log_integral_on_box(*pair, pair->extent(), 0.01), log_z, 1e-6);
}

// log R of d = 32 is the sum of its 16 pairs' log R (x1 at even, x2 at odd coordinates)
TEST(DiffusionTargetsTest, ManywellIsASumOfPairs) {
  auto gen = at::detail::createCPUGenerator(1);
  auto many = make_diffusion_target("manywell"), pair = make_diffusion_target("manywell", 2);
  auto x = torch::randn({7, 32}, gen, kF64) * 2;
  auto pairs = pair->log_density(x.reshape({7 * 16, 2})).reshape({7, 16}).sum(1);
  EXPECT_TRUE(torch::allclose(many->log_density(x), pairs, 1e-12, 1e-12));
  auto one = torch::tensor({{1.5, -0.5}}, kF64);
  EXPECT_NEAR(pair->log_density(one).item<double>(), -5.0625 + 13.5 + 0.75 - 0.125, 1e-12);
}

std::vector<std::unique_ptr<DiffusionTarget>> all_targets() {
  std::vector<std::unique_ptr<DiffusionTarget>> targets;
  for (const auto& name : diffusion_target_names()) targets.push_back(make_diffusion_target(name));
  targets.push_back(make_diffusion_target("funnel", 2));
  targets.push_back(make_diffusion_target("manywell", 4));
  return targets;
}

// Random points where each target's density matters: spread over its modes, the funnel's x0 in
// [-4, 4].
torch::Tensor probe_points(const DiffusionTarget& target, int64_t n, torch::Generator& gen) {
  auto x = torch::randn({n, target.dim()}, gen, kF64);
  if (target.name() == "25gmm") return x * 6;
  if (target.name() == "9gmm") return x * 3;
  if (target.name() == "funnel") return x.clamp(-2, 2) * 2;
  return x * 1.5;
}

TEST(DiffusionTargetsTest, GradientsMatchFiniteDifferences) {
  auto gen = at::detail::createCPUGenerator(2);
  for (const auto& target : all_targets()) {
    auto x = probe_points(*target, 12, gen);
    auto grad = target->grad_log_density(x);
    ASSERT_EQ(grad.sizes(), x.sizes());
    const double eps = 1e-5;
    for (int64_t k = 0; k < target->dim(); ++k) {
      auto up = x.clone(), down = x.clone();
      up.select(1, k) += eps;
      down.select(1, k) -= eps;
      auto fd = (target->log_density(up) - target->log_density(down)) / (2 * eps);
      auto scale = fd.abs().clamp_min(1.0);
      EXPECT_LT(((grad.select(1, k) - fd).abs() / scale).max().item<double>(), 1e-6)
          << target->name() << " d = " << target->dim() << ", coordinate " << k;
    }
    // the closed forms agree with autograd (the base implementation)
    auto autograd = target->DiffusionTarget::grad_log_density(x);
    EXPECT_TRUE(torch::allclose(grad, autograd, 1e-10, 1e-10)) << target->name();
  }
}

TEST(DiffusionTargetsTest, GradientWorksUnderNoGradAndLogDensityIsDifferentiable) {
  auto target = make_diffusion_target("manywell", 4);
  auto x = torch::tensor({{0.3, -1.0, 2.0, 0.5}}, kF64);
  torch::Tensor grad;
  {
    torch::NoGradGuard no_grad;
    grad = target->DiffusionTarget::grad_log_density(x);
  }
  auto expected = torch::tensor({{-4 * 0.027 + 3.6 + 0.5, 1.0, -32.0 + 24.0 + 0.5, -0.5}}, kF64);
  EXPECT_TRUE(torch::allclose(grad, expected, 1e-12, 1e-12)) << grad;
  auto leaf = x.clone().requires_grad_(true);
  target->log_density(leaf).sum().backward();
  EXPECT_TRUE(torch::allclose(leaf.grad(), expected, 1e-12, 1e-12));
}

TEST(DiffusionTargetsTest, LogDensityIsFiniteFarOut) {
  for (const auto& target : all_targets()) {
    for (double value : {-1e3, 1e3, 1e10}) {
      auto x = torch::full({2, target->dim()}, value, kF64);
      x[1][0] = -800.0;  // the funnel's neck, where e^{-x0} overflows without the floor
      auto log_r = target->log_density(x);
      EXPECT_TRUE(torch::isfinite(log_r).all().item<bool>()) << target->name() << " at " << value << ": " << log_r;
      EXPECT_TRUE(torch::isfinite(target->grad_log_density(x)).all().item<bool>()) << target->name();
    }
  }
  EXPECT_THROW(make_diffusion_target("9gmm")->log_density(torch::zeros({3, 3}, kF64)), c10::Error);
}

// per-mode frequencies (each 1/K within 4.5 standard errors) and the within-mode moments
void check_mixture_samples(const std::string& name, int64_t modes_per_axis) {
  auto target = make_diffusion_target(name);
  auto gen = at::detail::createCPUGenerator(3);
  const int64_t n = 100000, k = modes_per_axis * modes_per_axis;
  auto x = target->sample(n, gen);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{n, 2}));
  ASSERT_EQ(x.scalar_type(), torch::kFloat64);
  auto mode = (x / 5).round();  // the nearest mean, / 5
  const int64_t half = modes_per_axis / 2;
  auto index = (mode.select(1, 0) + half) * modes_per_axis + (mode.select(1, 1) + half);
  auto counts = torch::bincount(index.to(torch::kInt64), {}, k).to(torch::kFloat64);
  const double p = 1.0 / k, se = std::sqrt(p * (1 - p) / n);
  EXPECT_LT(((counts / n - p).abs() / se).max().item<double>(), 4.5) << name << " " << counts;
  auto residual = x - 5 * mode;
  EXPECT_LT(residual.mean(0).abs().max().item<double>(), 4.5 * std::sqrt(0.3 / n)) << name;
  EXPECT_LT((residual.var(0) - 0.3).abs().max().item<double>(), 4.5 * 0.3 * std::sqrt(2.0 / n)) << name;
  EXPECT_LT(x.abs().max().item<double>(), target->extent());
}

TEST(DiffusionTargetsTest, MixtureSamplesHitEveryModeEqually) {
  check_mixture_samples("25gmm", 5);
  check_mixture_samples("9gmm", 3);
}

TEST(DiffusionTargetsTest, FunnelSamplesHaveTheirMoments) {
  auto target = make_diffusion_target("funnel", 4);
  auto gen = at::detail::createCPUGenerator(4);
  const int64_t n = 200000;
  auto x = target->sample(n, gen);
  auto x0 = x.select(1, 0);
  EXPECT_LT(std::abs(x0.mean().item<double>()), 4.5 * 3 / std::sqrt(n));
  EXPECT_LT(std::abs(x0.var().item<double>() - 9), 4.5 * 9 * std::sqrt(2.0 / n));
  // standardised given x0: independent standard normals, uncorrelated with x0
  auto z = x.slice(1, 1) * (-0.5 * x0).exp().unsqueeze(1);
  EXPECT_LT(z.mean(0).abs().max().item<double>(), 4.5 / std::sqrt(n));
  EXPECT_LT((z.var(0) - 1).abs().max().item<double>(), 4.5 * std::sqrt(2.0 / n));
  auto corr = (z * (x0 / 3).unsqueeze(1)).mean(0);
  EXPECT_LT(corr.abs().max().item<double>(), 4.5 / std::sqrt(n));
}

// int_a^b exp(-t^4 + 6 t^2 + t / 2) dt by the trapezoid rule with about 1e-4 steps.
double well_integral(double a, double b) {
  const auto steps = std::max<int64_t>(1, std::lround((b - a) * 1e4));
  auto t = torch::linspace(a, b, steps + 1, kF64);
  auto f = (-t.pow(4) + 6 * t.pow(2) + 0.5 * t).exp();
  return ((f.sum() - 0.5 * (f[0] + f[-1])) * (b - a) / steps).item<double>();
}

// The exact CDF of x1 at t (exp(g) < e^{-150} beyond +-4).
double well_cdf(double t) { return well_integral(-4, t) / well_integral(-4, 4); }

TEST(DiffusionTargetsTest, ManywellSamplesFollowTheWells) {
  auto target = make_diffusion_target("manywell");
  auto gen = at::detail::createCPUGenerator(5);
  const int64_t n = 200000;
  auto x = target->sample(n, gen);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{n, 32}));
  auto x1 = x.slice(1, 0, 32, 2), x2 = x.slice(1, 1, 32, 2);  // [n, 16] each
  // P(x1 > 0) in every pair, and pooled, within 4 standard errors
  const double p = 1 - well_cdf(0.0);
  EXPECT_NEAR(p, 0.844307096, 1e-8);
  auto positive = x1.gt(0).to(torch::kFloat64).mean(0);  // [16]
  EXPECT_LT((positive - p).abs().max().item<double>(), 4.5 * std::sqrt(p * (1 - p) / n)) << positive;
  EXPECT_NEAR(positive.mean().item<double>(), p, 4 * std::sqrt(p * (1 - p) / (16.0 * n)));
  // the CDF of x1 at points across both wells (pooled over the 16 pairs)
  for (double t : {-2.0, -1.7, -1.4, -0.5, 1.5, 1.75, 2.0}) {
    const double cdf = well_cdf(t);
    const double frac = x1.le(t).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(frac, cdf, 4 * std::sqrt(cdf * (1 - cdf) / (16.0 * n))) << "at " << t;
  }
  // x2 standard normal
  EXPECT_LT(x2.mean(0).abs().max().item<double>(), 4.5 / std::sqrt(n));
  EXPECT_LT((x2.var(0) - 1).abs().max().item<double>(), 4.5 * std::sqrt(2.0 / n));
}

TEST(DiffusionTargetsTest, SamplesAreReproducibleFromTheGenerator) {
  for (const auto& target : all_targets()) {
    auto g1 = at::detail::createCPUGenerator(9), g2 = at::detail::createCPUGenerator(9);
    auto a = target->sample(50, g1), b = target->sample(50, g2);
    EXPECT_TRUE(torch::equal(a, b)) << target->name();
    EXPECT_FALSE(torch::equal(a, target->sample(50, g1))) << target->name();
    EXPECT_EQ(target->sample(0, g1).size(0), 0);
  }
}

// a target without an exact sampler: the default sample() throws
class NoSamples : public DiffusionTarget {
 public:
  std::string name() const override { return "plain"; }
  int64_t dim() const override { return 1; }
  torch::Tensor log_density(const torch::Tensor& x) const override { return -0.5 * x.pow(2).sum(1); }
  double extent() const override { return 5; }
};

TEST(DiffusionTargetsTest, DefaultsOfTheBaseClass) {
  NoSamples target;
  auto gen = at::detail::createCPUGenerator(1);
  EXPECT_FALSE(target.has_samples());
  EXPECT_FALSE(target.log_partition().has_value());
  EXPECT_THROW(target.sample(3, gen), std::logic_error);
  auto x = torch::tensor({{1.5}, {-2.0}}, kF64);
  EXPECT_TRUE(torch::allclose(target.grad_log_density(x), -x, 1e-15, 1e-15));
}

}  // namespace
}  // namespace gfn

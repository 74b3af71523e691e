// Charts: log-volume factors against autograd Jacobians and against known volumes, inverses,
// and images inside the box (float64).
#include "measures/charts.h"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace gfn {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

// Jacobian of a row-wise map f: [N, k] -> [N, d] by autograd: [N, d, k]
template <typename F>
torch::Tensor row_jacobian(F f, const torch::Tensor& u0) {
  auto u = u0.clone().set_requires_grad(true);
  auto x = f(u);
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < x.size(1); ++i) {
    auto g = torch::autograd::grad({x.select(1, i).sum()}, {u}, {}, /*retain_graph=*/true)[0];
    rows.push_back(g);
  }
  return torch::stack(rows, 1);
}

// log sqrt(det(J^T J)): the k-volume factor of a map into R^d
torch::Tensor log_volume(const torch::Tensor& jac) {
  return 0.5 * torch::logdet(jac.transpose(1, 2).bmm(jac));
}

torch::Tensor interior_uniform(int64_t n, int64_t k, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::rand({n, k}, gen, kF64) * 0.98 + 0.01;
}

// the affine chart: log J = sum log(hi - lo), the autograd determinant, and the inverse
TEST(ChartsTest, AffineChart) {
  auto lo = torch::tensor({{0.1, 0.2}, {0.5, 0.0}}, kF64), hi = torch::tensor({{0.6, 1.0}, {0.9, 0.3}}, kF64);
  AffineChart chart{lo, hi};
  auto u = interior_uniform(2, 2, 1);
  auto p = chart.forward(u);
  auto jac = row_jacobian([&](const torch::Tensor& v) { return chart.forward(v).x; }, u);
  EXPECT_TRUE(torch::allclose(p.log_jacobian, log_volume(jac), 1e-12, 1e-12));
  EXPECT_NEAR(p.log_jacobian[0].item<double>(), std::log(0.5 * 0.8), 1e-14);
  EXPECT_TRUE(torch::allclose(chart.inverse(p.x), u, 1e-12, 1e-12));
}

// hyperspherical unit vectors: norm 1, in the positive orthant, angles recovered
TEST(ChartsTest, HypersphericalRoundTrip) {
  for (int64_t d : {2, 3, 5}) {
    auto angles = interior_uniform(64, d - 1, 2) * (M_PI / 2);
    auto v = unit_vector_from_angles(angles);
    EXPECT_TRUE(torch::allclose(v.norm(2, 1), torch::ones({64}, kF64), 1e-12, 1e-12)) << d;
    EXPECT_TRUE(v.ge(0).all().item<bool>()) << d;
    EXPECT_TRUE(torch::allclose(angles_from_unit_vector(v), angles, 1e-10, 1e-10)) << d;
  }
}

// the orthant ball: log J equals log|det| of the autograd Jacobian in d = 1..4, the 2-D
// closed form delta^2 r pi/2, the inverse, and images inside the ball's orthant
TEST(ChartsTest, OrthantBallJacobian) {
  const double delta = 0.3;
  for (int64_t d : {1, 2, 3, 4}) {
    auto center = interior_uniform(16, d, 7) * 0.5;
    OrthantBallChart chart{center, delta};
    auto u = interior_uniform(16, d, 3);
    auto p = chart.forward(u);
    auto jac = row_jacobian([&](const torch::Tensor& v) { return chart.forward(v).x; }, u);
    EXPECT_TRUE(torch::allclose(p.log_jacobian, log_volume(jac), 1e-10, 1e-10)) << d;
    EXPECT_TRUE(torch::allclose(chart.inverse(p.x), u, 1e-10, 1e-10)) << d;
    auto y = p.x - center;
    EXPECT_TRUE(y.ge(0).all().item<bool>()) << d;
    EXPECT_TRUE(y.norm(2, 1).le(delta + 1e-12).all().item<bool>()) << d;
    if (d == 2) {
      auto expected = (delta * delta * u.select(1, 0) * (M_PI / 2)).log();
      EXPECT_TRUE(torch::allclose(p.log_jacobian, expected, 1e-12, 1e-12));
    }
  }
}

// integrating J over [0,1]^d gives the volume of the orthant ball: pi delta^2 / 4 in 2-D,
// (4/3) pi delta^3 / 8 in 3-D (midpoint rule, independent of autograd)
TEST(ChartsTest, OrthantBallVolume) {
  const double delta = 0.25;
  for (int64_t d : {2, 3}) {
    const int64_t m = d == 2 ? 400 : 60;
    auto g = (torch::arange(m, kF64) + 0.5) / m;
    std::vector<torch::Tensor> axes(d, g);
    auto mesh = torch::meshgrid(axes, "ij");
    std::vector<torch::Tensor> cols;
    for (auto& t : mesh) cols.push_back(t.reshape({-1}));
    auto u = torch::stack(cols, 1);
    OrthantBallChart chart{torch::zeros({u.size(0), d}, kF64), delta};
    double volume = chart.forward(u).log_jacobian.exp().mean().item<double>();
    double expected = d == 2 ? M_PI * delta * delta / 4 : (4.0 / 3.0) * M_PI * std::pow(delta, 3) / 8;
    EXPECT_NEAR(volume / expected, 1.0, 1e-3) << d;
  }
}

// the in-box arc: arc-length factor by autograd, points on the circle and inside the square,
// the full quarter arc near the origin, infeasible near the far corner, and the inverse
TEST(ChartsTest, OrthantSphereArc) {
  const double delta = 0.25;
  auto center = torch::tensor({{0.1, 0.1}, {0.85, 0.2}, {0.3, 0.9}, {0.8, 0.8}, {0.95, 0.95}}, kF64);
  OrthantSphereChart chart{center, delta};
  auto feasible = chart.feasible();
  EXPECT_TRUE(torch::equal(feasible, torch::tensor({true, true, true, true, false})));
  auto u = interior_uniform(5, 1, 4);
  auto p = chart.forward(u);
  auto jac = row_jacobian([&](const torch::Tensor& v) { return chart.forward(v).x; }, u);
  auto ok = feasible.nonzero().squeeze(1);
  EXPECT_TRUE(torch::allclose(p.log_jacobian.index_select(0, ok), log_volume(jac).index_select(0, ok), 1e-10, 1e-10));
  EXPECT_NEAR(p.log_jacobian[0].item<double>(), std::log(delta * M_PI / 2), 1e-12);
  EXPECT_TRUE(std::isinf(p.log_jacobian[4].item<double>()) && p.log_jacobian[4].item<double>() < 0);
  auto x = p.x.index_select(0, ok), c = center.index_select(0, ok);
  EXPECT_TRUE(torch::allclose((x - c).norm(2, 1), torch::full({ok.size(0)}, delta, kF64), 1e-12, 1e-12));
  EXPECT_TRUE(x.le(1.0 + 1e-12).all().item<bool>());
  EXPECT_TRUE((x - c).ge(-1e-12).all().item<bool>());
  EXPECT_TRUE(torch::allclose(chart.inverse(p.x).index_select(0, ok), u.index_select(0, ok), 1e-10, 1e-10));
}

}  // namespace
}  // namespace gfn

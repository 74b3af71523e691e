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

// Jacobian of a row-wise map f: [N, k] -> [N, d] by central finite differences: [N, d, k]
template <typename F>
torch::Tensor fd_jacobian(F f, const torch::Tensor& u, double h = 1e-6) {
  std::vector<torch::Tensor> cols;
  for (int64_t k = 0; k < u.size(1); ++k) {
    auto e = torch::zeros_like(u);
    e.select(1, k).fill_(h);
    cols.push_back((f(u + e) - f(u - e)) / (2 * h));
  }
  return torch::stack(cols, 2);
}

// centres [n, d] in [0, 0.95]^d whose sphere chart is feasible with some margin (||h|| > 1.02)
torch::Tensor feasible_centres(int64_t n, int64_t d, double delta, uint64_t seed) {
  auto c = interior_uniform(4 * n, d, seed) * 0.95;
  auto h = ((1.0 - c) / delta).clamp(0.0, 1.0);
  auto ok = h.square().sum(1).gt(1.02 * 1.02).nonzero().squeeze(1);
  return c.index_select(0, ok).narrow(0, 0, std::min<int64_t>(n, ok.size(0)));
}

// the sequential sphere chart in d = 2..5: points on the sphere of radius delta, in the box and
// in the positive orthant around the centre; the inverse; log J against the finite-difference
// (d-1)-volume factor sqrt(det(D^T D)) in float64
TEST(ChartsTest, OrthantSphereAnyDimension) {
  const double delta = 0.3;
  for (int64_t d : {2, 3, 4, 5}) {
    auto centre = feasible_centres(200, d, delta, 11 + d);
    const int64_t n = centre.size(0);
    ASSERT_GE(n, 100) << d;
    OrthantSphereChart chart{centre, delta};
    EXPECT_TRUE(chart.feasible().all().item<bool>()) << d;
    auto u = interior_uniform(n, d - 1, 5 + d);
    auto p = chart.forward(u);
    auto y = p.x - centre;
    EXPECT_TRUE(torch::allclose(y.norm(2, 1), torch::full({n}, delta, kF64), 1e-12, 1e-12)) << d;
    EXPECT_TRUE(y.ge(-1e-12).all().item<bool>()) << d;
    EXPECT_TRUE(p.x.le(1.0 + 1e-12).all().item<bool>()) << d;
    EXPECT_TRUE(p.x.ge(0.0).all().item<bool>()) << d;
    EXPECT_LT((chart.inverse(p.x) - u).abs().max().item<double>(), 1e-9) << d;
    auto jac = fd_jacobian([&](const torch::Tensor& v) { return chart.forward(v).x; }, u);
    auto fd = log_volume(jac);
    // arccos(min(1, t)) has a square-root singularity at t = 1 (where a bound starts to bind),
    // which spoils the finite differences of rows near it: those rows only get a loose bound
    auto v = y / delta;
    auto rho = v.square().flip({1}).cumsum(1).flip({1}).sqrt();  // [N, d]: ||v_{i:}||
    auto hb = ((1.0 - centre) / delta).clamp(0.0, 1.0);
    auto tail = hb.square().flip({1}).cumsum(1).flip({1}).sqrt();
    auto t = hb.narrow(1, 0, d - 1) / rho.narrow(1, 0, d - 1);
    auto q = tail.narrow(1, 1, d - 1) / rho.narrow(1, 0, d - 1);
    // (stage 0 has rho = 1 whatever u, so its ratios never move)
    auto near_kink = ((t - 1).abs().lt(1e-3) | (q - 1).abs().lt(1e-3)).narrow(1, 1, d - 2).any(1);
    auto err = (p.log_jacobian - fd).abs();
    EXPECT_LT(err.masked_select(near_kink.logical_not()).max().item<double>(), 1e-6) << d;
    EXPECT_LT(err.max().item<double>(), 1e-4) << d;
    EXPECT_LT(near_kink.sum().item<int64_t>(), n / 10) << d;  // measured 10 of 200 rows in 4-D and 5-D
    // the ranges are ordered and the angles inside them
    auto [a, b] = chart.ranges(u);
    EXPECT_TRUE(a.le(b).all().item<bool>()) << d;
    EXPECT_TRUE(b.le(M_PI / 2 + 1e-15).all().item<bool>()) << d;
    // the first range is the one range() reports
    auto [a0, b0] = chart.range();
    EXPECT_TRUE(torch::allclose(a0, a.select(1, 0), 1e-15, 0)) << d;
    EXPECT_TRUE(torch::allclose(b0, b.select(1, 0), 1e-15, 0)) << d;
  }
}

// at the origin the whole orthant fits: integrating J over [0,1]^(d-1) gives the orthant's share
// of the sphere's area, 2 pi delta^2 / 8 in 3-D and 2 pi^2 delta^3 / 16 in 4-D (midpoint rule);
// close to the far corner the piece shrinks and J with it
TEST(ChartsTest, OrthantSphereArea) {
  const double delta = 0.25;
  for (int64_t d : {3, 4}) {
    const int64_t m = d == 3 ? 400 : 60;
    auto g = (torch::arange(m, kF64) + 0.5) / m;
    std::vector<torch::Tensor> axes(d - 1, g);
    std::vector<torch::Tensor> cols;
    for (auto& t : torch::meshgrid(axes, "ij")) cols.push_back(t.reshape({-1}));
    auto u = torch::stack(cols, 1);
    OrthantSphereChart chart{torch::zeros({u.size(0), d}, kF64), delta};
    const double area = chart.forward(u).log_jacobian.exp().mean().item<double>();
    const double expected = d == 3 ? 4 * M_PI * delta * delta / 8 : 2 * M_PI * M_PI * std::pow(delta, 3) / 16;
    EXPECT_NEAR(area / expected, 1.0, 1e-3) << d;
    // a centre whose piece is a small cap: J well below the full orthant's
    OrthantSphereChart small{torch::full({u.size(0), d}, 1.0 - 0.7 * delta, kF64), delta};
    const double cap = small.forward(u).log_jacobian.exp().mean().item<double>();
    EXPECT_GT(cap, 0.0) << d;
    EXPECT_LT(cap, 0.9 * expected) << d;
  }
}

// equal-area angles: at the origin (the whole orthant fits) log J is the same constant at every
// u, down to u = 1e-30 where a linear-angle chart's log J was -inf-bound (sin^k of a tiny angle);
// the round trip recovers u there too, and the ball's log J is d log delta + (d-1) log u_0 + log A_d
TEST(ChartsTest, EqualAreaAnglesStayFiniteAtTinyCoordinates) {
  const double delta = 0.25;
  for (int64_t d : {3, 4, 5, 8}) {
    const double log_area = d == 3 ? std::log(M_PI / 2) : d == 4 ? std::log(M_PI * M_PI / 8)
                          : d == 5 ? std::log(M_PI * M_PI / 12) : std::log(std::pow(M_PI, 4) / 768);
    auto u = interior_uniform(64, d - 1, 3 + d);
    for (int64_t r = 0; r < d - 1; ++r) u[r][r] = 1e-30;  // one tiny coordinate per row
    u[d - 1].fill_(1e-12);
    OrthantSphereChart sphere{torch::zeros({64, d}, kF64), delta};
    auto p = sphere.forward(u);
    auto expected = torch::full({64}, (d - 1) * std::log(delta) + log_area, kF64);
    EXPECT_TRUE(torch::allclose(p.log_jacobian, expected, 1e-12, 1e-12)) << d;
    EXPECT_TRUE(torch::allclose((p.x).norm(2, 1), torch::full({64}, delta, kF64), 1e-12, 1e-12)) << d;
    EXPECT_LT((sphere.inverse(p.x) - u).abs().max().item<double>(), 1e-12) << d;
    auto ub = torch::cat({torch::full({64, 1}, 0.5, kF64), u}, 1);
    auto q = OrthantBallChart{torch::zeros({64, d}, kF64), delta}.forward(ub);
    const double ball = d * std::log(delta) + (d - 1) * std::log(0.5) + log_area;
    EXPECT_TRUE(torch::allclose(q.log_jacobian, torch::full({64}, ball, kF64), 1e-12, 1e-12)) << d;
  }
}

// feasibility is ||min((1 - c)/delta, 1)||_2 > 1: just inside, log J is finite and the points
// stay in the box; just outside, log J is -inf and the points stay finite
TEST(ChartsTest, OrthantSphereFeasibilityBoundary) {
  const double delta = 0.25;
  for (int64_t d : {2, 3, 5}) {
    // c = 1 - delta s / sqrt(d) (1, ..., 1): ||h|| = s
    std::vector<double> scales{1.0 + 1e-6, 1.0 + 1e-3, 1.0 - 1e-6, 0.5};
    auto s = torch::tensor(scales, kF64).unsqueeze(1);
    auto centre = (1.0 - delta * s / std::sqrt(static_cast<double>(d))).expand({4, d}).contiguous();
    OrthantSphereChart chart{centre, delta};
    auto feasible = chart.feasible();
    EXPECT_TRUE(torch::equal(feasible, torch::tensor({true, true, false, false}))) << d;
    auto p = chart.forward(torch::full({4, d - 1}, 0.5, kF64));
    EXPECT_TRUE(torch::isfinite(p.x).all().item<bool>()) << d;
    EXPECT_TRUE(std::isfinite(p.log_jacobian[0].item<double>())) << d;
    EXPECT_TRUE(std::isfinite(p.log_jacobian[1].item<double>())) << d;
    EXPECT_LT(p.log_jacobian[0].item<double>(), p.log_jacobian[1].item<double>()) << d;
    EXPECT_TRUE(p.x.narrow(0, 0, 2).le(1.0 + 1e-12).all().item<bool>()) << d;
    for (int64_t r : {2, 3}) {
      const double lj = p.log_jacobian[r].item<double>();
      EXPECT_TRUE(std::isinf(lj) && lj < 0) << d << " row " << r;
    }
    // the inverse of an infeasible row is finite too
    EXPECT_TRUE(torch::isfinite(chart.inverse(p.x)).all().item<bool>()) << d;
  }
}

// d = 2: the sequential chart is the old arc, theta = a + u (b - a) with a = arccos(min(1, g0)),
// b = arcsin(min(1, g1)), log J = log delta + log(b - a)
TEST(ChartsTest, OrthantSphereTwoDimensionsClosedForm) {
  const double delta = 0.25;
  auto centre = torch::tensor({{0.1, 0.1}, {0.85, 0.2}, {0.3, 0.9}, {0.8, 0.8}, {0.8, 0.75}}, kF64);
  auto u = interior_uniform(5, 1, 9);
  auto p = OrthantSphereChart{centre, delta}.forward(u);
  auto g = ((1.0 - centre) / delta).clamp_max(1.0);
  auto a = g.select(1, 0).acos(), b = g.select(1, 1).asin();
  auto theta = a + u.select(1, 0) * (b - a);
  auto x = centre + delta * torch::stack({theta.cos(), theta.sin()}, 1);
  EXPECT_TRUE(torch::allclose(p.x, x, 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(p.log_jacobian, std::log(delta) + (b - a).log(), 1e-12, 1e-12));
}

}  // namespace
}  // namespace gfn

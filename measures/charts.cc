#include "measures/charts.h"

#include <cmath>
#include <stdexcept>

#include <torch/torch.h>

namespace gfn {

namespace {

constexpr double kHalfPi = M_PI / 2.0;

void require_rows(const torch::Tensor& t, int64_t dim, const char* what) {
  if (t.dim() != 2 || (dim >= 0 && t.size(1) != dim))
    throw std::invalid_argument(std::string(what) + ": expected a [N, " + std::to_string(dim) + "] tensor");
}

}  // namespace

ChartPoint AffineChart::forward(const torch::Tensor& u) const {
  auto width = hi - lo;
  return {lo + width * u, width.log().sum(1)};
}

torch::Tensor AffineChart::inverse(const torch::Tensor& x) const { return (x - lo) / (hi - lo); }

torch::Tensor unit_vector_from_angles(const torch::Tensor& angles) {
  const int64_t n = angles.size(0), m = angles.size(1);
  auto sines = angles.sin().cumprod(1);  // [N, d-1]: prod_{j<=i} sin phi_j
  // prefix products prod_{j<i} sin phi_j, with 1 for i = 0
  auto prefix = torch::cat({torch::ones({n, 1}, angles.options()), sines.narrow(1, 0, m - 1)}, 1);
  return torch::cat({prefix * angles.cos(), sines.narrow(1, m - 1, 1)}, 1);
}

torch::Tensor angles_from_unit_vector(const torch::Tensor& v) {
  const int64_t d = v.size(1);
  // tail norms ||v_{i+1:}|| by a reversed cumulative sum of squares
  auto sq = v.square().flip({1}).cumsum(1).flip({1});  // [N, d]: sum_{j>=i} v_j^2
  auto tail = sq.narrow(1, 1, d - 1).clamp_min(0).sqrt();
  return torch::atan2(tail, v.narrow(1, 0, d - 1));
}

ChartPoint OrthantBallChart::forward(const torch::Tensor& u) const {
  require_rows(u, center.size(1), "OrthantBallChart::forward");
  const int64_t d = center.size(1);
  if (d == 1) return {center + delta * u, torch::full({u.size(0)}, std::log(delta), u.options())};
  auto r = u.select(1, 0);
  auto angles = u.narrow(1, 1, d - 1) * kHalfPi;
  auto x = center + delta * r.unsqueeze(1) * unit_vector_from_angles(angles);
  // the volume element of hyperspherical coordinates, rescaled from [0,1]^d
  auto powers = torch::arange(d - 2, -1, -1, u.options());  // d-2-i for i = 0..d-2
  auto log_j = d * std::log(delta) + (d - 1) * (r.log() + std::log(kHalfPi)) + (powers * angles.sin().log()).sum(1);
  return {x, log_j};
}

torch::Tensor OrthantBallChart::inverse(const torch::Tensor& x) const {
  const int64_t d = center.size(1);
  auto y = (x - center) / delta;
  if (d == 1) return y;
  auto r = y.norm(2, 1, /*keepdim=*/true);
  auto angles = angles_from_unit_vector(y / r);
  return torch::cat({r, angles / kHalfPi}, 1);
}

std::pair<torch::Tensor, torch::Tensor> OrthantSphereChart::range() const {
  require_rows(center, 2, "OrthantSphereChart");
  auto g = ((1.0 - center) / delta).clamp(0.0, 1.0);
  return {g.select(1, 0).acos(), g.select(1, 1).asin()};
}

torch::Tensor OrthantSphereChart::feasible() const {
  auto [a, b] = range();
  return a.lt(b);
}

ChartPoint OrthantSphereChart::forward(const torch::Tensor& u) const {
  require_rows(u, 1, "OrthantSphereChart::forward");
  auto [a, b] = range();
  auto width = b - a;
  auto theta = a + u.select(1, 0) * width;
  auto x = center + delta * torch::stack({theta.cos(), theta.sin()}, 1);
  // an empty range has no volume: log J = -inf there
  auto log_j = std::log(delta) + width.clamp_min(0).log();
  return {x, log_j};
}

torch::Tensor OrthantSphereChart::inverse(const torch::Tensor& x) const {
  auto [a, b] = range();
  auto y = x - center;
  auto theta = torch::atan2(y.select(1, 1), y.select(1, 0));
  return ((theta - a) / (b - a)).unsqueeze(1);
}

}  // namespace gfn

#include "measures/charts.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <torch/torch.h>

namespace gfn {

namespace {

constexpr double kHalfPi = M_PI / 2.0;

void require_rows(const torch::Tensor& t, int64_t dim, const char* what) {
  if (t.dim() != 2 || (dim >= 0 && t.size(1) != dim))
    throw std::invalid_argument(std::string(what) + ": expected a [N, " + std::to_string(dim) + "] tensor");
}

// sum_{i<d-2} (d-2-i) log sin phi_i over angles [N, d-1]: the surface element of the unit sphere
// (the last angle has power 0 and is left out, so a zero angle there gives no 0 * -inf)
torch::Tensor log_sphere_element(const torch::Tensor& angles) {
  const int64_t m = angles.size(1);
  if (m < 2) return torch::zeros({angles.size(0)}, angles.options());
  auto powers = torch::arange(m - 1, 0, -1, angles.options());  // d-2-i for i = 0..d-3
  return (powers * angles.narrow(1, 0, m - 1).sin().log()).sum(1);
}

// The range [a, b] of one angle of the sequential sphere chart, given the tail norm rho [N],
// the bound h [N] on this coordinate and the norm H [N] of the bounds of the later ones:
//     a = arccos(min(1, h / rho)),  b = arcsin(min(1, H / rho)),
// written with atan2, which stays accurate where the ratios approach 1. rho = 0 is guarded.
std::pair<torch::Tensor, torch::Tensor> stage_range(const torch::Tensor& h, const torch::Tensor& tail_bound,
                                                    const torch::Tensor& rho) {
  auto rr = rho.clamp_min(std::numeric_limits<float>::min());
  auto t = (h / rr).clamp_max(1.0);
  auto q = (tail_bound / rr).clamp_max(1.0);
  return {torch::atan2(((1.0 - t) * (1.0 + t)).sqrt(), t), torch::atan2(q, ((1.0 - q) * (1.0 + q)).sqrt())};
}

// The angles and their ranges of the sequential sphere chart: from coordinates u [N, d-1]
// (forward) or from given angles [N, d-1] (inverse, where u is recovered). Returns {phi, a, b, u}.
struct SphereStages {
  torch::Tensor phi, a, b, u;  // [N, d-1] each
};

SphereStages sphere_stages(const torch::Tensor& center, double delta, const torch::Tensor& given, bool given_angles) {
  const int64_t n = center.size(0), d = center.size(1);
  auto h = ((1.0 - center) / delta).clamp(0.0, 1.0);                    // [N, d]
  auto tail = h.square().flip({1}).cumsum(1).flip({1}).sqrt();           // [N, d]: ||h_{i:}||
  auto rho = torch::ones({n}, center.options());
  std::vector<torch::Tensor> phis, as, bs, us;
  for (int64_t i = 0; i < d - 1; ++i) {
    auto [a, b] = stage_range(h.select(1, i), tail.select(1, i + 1), rho);
    auto width = (b - a).clamp_min(0.0);
    torch::Tensor phi, u;
    if (given_angles) {
      phi = given.select(1, i);
      u = torch::where(width.gt(0), (phi - a) / width.clamp_min(std::numeric_limits<float>::min()), 0.0);
    } else {
      u = given.select(1, i);
      phi = a + u * width;
    }
    rho = rho * phi.sin();
    phis.push_back(phi);
    as.push_back(a);
    bs.push_back(b);
    us.push_back(u);
  }
  return {torch::stack(phis, 1), torch::stack(as, 1), torch::stack(bs, 1), torch::stack(us, 1)};
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
  auto log_j = d * std::log(delta) + (d - 1) * (r.log() + std::log(kHalfPi)) + log_sphere_element(angles);
  return {x, log_j};
}

torch::Tensor OrthantBallChart::inverse(const torch::Tensor& x) const {
  const int64_t d = center.size(1);
  auto y = (x - center) / delta;
  if (d == 1) return y;
  auto r = y.norm(2, 1, /*keepdim=*/true);
  auto angles = angles_from_unit_vector(y);  // atan2 of tail norms: scale-free, finite at y = 0
  return torch::cat({r, angles / kHalfPi}, 1);
}

std::pair<torch::Tensor, torch::Tensor> OrthantSphereChart::range() const {
  require_rows(center, -1, "OrthantSphereChart");
  auto h = ((1.0 - center) / delta).clamp(0.0, 1.0);
  auto rest = h.narrow(1, 1, h.size(1) - 1).square().sum(1).sqrt();
  return stage_range(h.select(1, 0), rest, torch::ones({h.size(0)}, h.options()));
}

std::pair<torch::Tensor, torch::Tensor> OrthantSphereChart::ranges(const torch::Tensor& u) const {
  require_rows(u, center.size(1) - 1, "OrthantSphereChart::ranges");
  auto st = sphere_stages(center, delta, u, /*given_angles=*/false);
  return {st.a, st.b};
}

torch::Tensor OrthantSphereChart::feasible() const {
  require_rows(center, -1, "OrthantSphereChart");
  return ((1.0 - center) / delta).clamp(0.0, 1.0).square().sum(1).gt(1.0);
}

ChartPoint OrthantSphereChart::forward(const torch::Tensor& u) const {
  require_rows(center, -1, "OrthantSphereChart");
  if (center.size(1) < 2) throw std::invalid_argument("OrthantSphereChart: dimension d >= 2 expected");
  require_rows(u, center.size(1) - 1, "OrthantSphereChart::forward");
  const int64_t d = center.size(1);
  auto st = sphere_stages(center, delta, u, /*given_angles=*/false);
  auto x = center + delta * unit_vector_from_angles(st.phi);
  // an empty range has no volume: log J = -inf there
  auto log_j = (d - 1) * std::log(delta) + log_sphere_element(st.phi) + (st.b - st.a).clamp_min(0.0).log().sum(1);
  return {x, log_j};
}

torch::Tensor OrthantSphereChart::inverse(const torch::Tensor& x) const {
  require_rows(x, center.size(1), "OrthantSphereChart::inverse");
  auto angles = angles_from_unit_vector(x - center);
  return sphere_stages(center, delta, angles, /*given_angles=*/true).u;
}

}  // namespace gfn

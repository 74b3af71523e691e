#include "measures/charts.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include <boost/math/quadrature/gauss.hpp>
#include <torch/torch.h>

namespace gfn {

namespace {

constexpr double kHalfPi = M_PI / 2.0;

void require_rows(const torch::Tensor& t, int64_t dim, const char* what) {
  if (t.dim() != 2 || (dim >= 0 && t.size(1) != dim))
    throw std::invalid_argument(std::string(what) + ": expected a [N, " + std::to_string(dim) + "] tensor");
}

// Equal-area angles. The surface element of the sphere has the factor sin^k(phi_i) in angle i
// (k = d-2-i), which vanishes where a tail of the unit vector vanishes. A chart linear in the
// angles carries that factor into log J, which then reaches -inf where float32 states cannot
// tell the tail's direction (a recovered angle of exactly 0); P_B's density at such a move is
// +inf. So every angle with k >= 1 is parametrised by its share of the area instead:
//     u_i = S_k(a_i, phi_i) / S_k(a_i, b_i),   S_k(a, phi) = int_a^phi sin^k t dt,
// whose volume factor d phi_i / d u_i = S_k(a_i, b_i) / sin^k(phi_i) cancels the surface
// element: log J = (d-1) log delta + sum_i log S_k(a_i, b_i), finite wherever the range is not
// empty. Angles with k = 0 stay linear (S_0(a, b) = b - a), so d = 2 is Lahlou et al.'s arc.
//
// S_k(a, phi) = (phi - a) sum_j w_j sin^k(a + (phi - a) s_j) by Gauss-Legendre on [0, 1]: every
// term is positive (no cancellation for tiny or narrow ranges) and sin^k is entire, so 10 nodes
// are exact to 1e-15 (relative) for k <= 3 and 1e-13 for k <= 6, and 20 nodes to double
// precision up to k = 14 (d = 16) on [0, pi/2] (measured against 20 and 10 nodes).
struct AreaRule {
  torch::Tensor nodes, weights;  // float64 on [0, 1]
};

template <int N>
AreaRule make_area_rule() {
  using G = boost::math::quadrature::gauss<double, N>;
  std::vector<double> s, w;
  const auto& x = G::abscissa();
  const auto& wt = G::weights();
  for (size_t i = 0; i < x.size(); ++i) {  // the non-negative abscissae of [-1, 1]; both signs
    s.push_back(0.5 * (1.0 + x[i]));
    w.push_back(0.5 * wt[i]);
    if (x[i] != 0.0) {
      s.push_back(0.5 * (1.0 - x[i]));
      w.push_back(0.5 * wt[i]);
    }
  }
  return AreaRule{torch::tensor(s, torch::kFloat64), torch::tensor(w, torch::kFloat64)};
}

const AreaRule& area_rule(int64_t k) {
  static const AreaRule ten = make_area_rule<10>(), twenty = make_area_rule<20>();
  return k <= 6 ? ten : twenty;
}

// S_k(a, phi) for rows a, phi [N] (phi >= a): [N]
torch::Tensor sin_power_area(int64_t k, const torch::Tensor& a, const torch::Tensor& phi) {
  auto width = phi - a;
  if (k == 0) return width;
  const auto& rule = area_rule(k);
  auto s = rule.nodes.to(a.options()), w = rule.weights.to(a.options());
  auto t = a.unsqueeze(1) + width.unsqueeze(1) * s;  // [N, 20]
  return width * (t.sin().pow(static_cast<double>(k)) * w).sum(1);
}

// the angle phi in [a, b] with S_k(a, phi) = u S_k(a, b), given area = S_k(a, b): [N]. For k = 1
// in closed form, S_1(a, phi) = cos a - cos phi, written as phi = 2 asin(sqrt(sin^2(a/2) + t/2))
// to stay accurate near 0. For k >= 2 Newton's method kept inside a shrinking bracket (bisection
// where a step leaves it): S_k(a, .) is increasing and convex on [0, pi/2], and the start
// a + (b - a) u^(1/(k+1)) is exact for a power law. Fixed iterations (no host synchronisation):
// the residual reached its floor (1e-12 of the area, u down to 1e-30) after 5, 6, 8 and 11
// iterations for k = 2, 3, 6, 14; 5 + k, at most 12, are run.
torch::Tensor sin_power_angle(int64_t k, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& area,
                              const torch::Tensor& u) {
  if (k == 0) return a + u * (b - a);
  auto target = u * area;
  if (k == 1) {
    auto half = (0.5 * a).sin();
    return torch::minimum(torch::maximum(2.0 * (half * half + 0.5 * target).clamp(0.0, 1.0).sqrt().asin(), a), b);
  }
  auto lo = a, hi = b;
  auto phi = a + (b - a) * u.pow(1.0 / static_cast<double>(k + 1));
  for (int64_t iter = 0; iter < std::min<int64_t>(5 + k, 12); ++iter) {
    auto f = sin_power_area(k, a, phi) - target;
    auto below = f.le(0);
    lo = torch::where(below, phi, lo);
    hi = torch::where(below, hi, phi);
    auto step = phi - f / phi.sin().pow(static_cast<double>(k));
    auto inside = step.ge(lo) & step.le(hi);  // false for a non-finite step; a root on the bracket is kept
    phi = torch::where(inside, step, 0.5 * (lo + hi));
  }
  return phi;
}

// S_k(0, pi/2) = sqrt(pi) G((k+1)/2) / (2 G(k/2+1)), in closed form
double orthant_area(int64_t k) {
  return std::exp(0.5 * std::log(M_PI) + std::lgamma(0.5 * (k + 1)) - std::log(2.0) - std::lgamma(0.5 * k + 1));
}

// sum_i log S_{d-2-i}(0, pi/2) over the d-1 angles of the full orthant: the log-area of the
// positive orthant of the unit sphere in R^d
double log_orthant_area(int64_t d) {
  double total = 0;
  for (int64_t k = 0; k + 2 <= d; ++k) total += std::log(orthant_area(k));
  return total;
}

// Equal-area angles of the full orthant, [0, pi/2] each, from coordinates [N, d-1]
// (to_angles), or back from such angles to coordinates
torch::Tensor orthant_equal_area(const torch::Tensor& x, bool to_angles) {
  const int64_t m = x.size(1);
  std::vector<torch::Tensor> cols;
  for (int64_t i = 0; i < m; ++i) {
    const int64_t k = m - 1 - i;
    auto xi = x.select(1, i);
    auto a = torch::zeros_like(xi);
    const double area = orthant_area(k);
    cols.push_back(to_angles ? sin_power_angle(k, a, torch::full_like(xi, kHalfPi), torch::full_like(xi, area), xi)
                             : sin_power_area(k, a, xi) / area);
  }
  return torch::stack(cols, 1);
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
  torch::Tensor log_area;      // [N]: sum_i log S_k(a_i, b_i) (-inf where a range is empty)
};

SphereStages sphere_stages(const torch::Tensor& h, const torch::Tensor& given, bool given_angles) {
  const int64_t n = h.size(0), d = h.size(1);
  auto tail = h.square().flip({1}).cumsum(1).flip({1}).sqrt();           // [N, d]: ||h_{i:}||
  auto rho = torch::ones({n}, h.options());
  auto log_area = torch::zeros({n}, h.options());
  std::vector<torch::Tensor> phis, as, bs, us;
  for (int64_t i = 0; i < d - 1; ++i) {
    const int64_t k = d - 2 - i;
    auto [a, b] = stage_range(h.select(1, i), tail.select(1, i + 1), rho);
    b = torch::maximum(a, b);  // an empty range has no area
    auto area = sin_power_area(k, a, b);
    torch::Tensor phi, u;
    if (given_angles) {
      phi = given.select(1, i);
      auto part = sin_power_area(k, a, torch::clamp(phi, a, b));
      u = torch::where(area.gt(0), part / area.clamp_min(std::numeric_limits<double>::min()), 0.0);
    } else {
      u = given.select(1, i);
      phi = sin_power_angle(k, a, b, area, u);
    }
    log_area = log_area + area.log();
    rho = rho * phi.sin();
    phis.push_back(phi);
    as.push_back(a);
    bs.push_back(b);
    us.push_back(u);
  }
  return {torch::stack(phis, 1), torch::stack(as, 1), torch::stack(bs, 1), torch::stack(us, 1), log_area};
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
  auto angles = orthant_equal_area(u.narrow(1, 1, d - 1), /*to_angles=*/true);
  auto x = center + delta * r.unsqueeze(1) * unit_vector_from_angles(angles);
  // radius delta r, equal-area angles: J = delta^d r^(d-1) (area of the orthant of the unit sphere)
  auto log_j = d * std::log(delta) + (d - 1) * r.log() + log_orthant_area(d);
  return {x, log_j};
}

torch::Tensor OrthantBallChart::inverse(const torch::Tensor& x) const {
  const int64_t d = center.size(1);
  auto y = (x - center) / delta;
  if (d == 1) return y;
  auto r = y.norm(2, 1, /*keepdim=*/true);
  auto angles = angles_from_unit_vector(y);  // atan2 of tail norms: scale-free, finite at y = 0
  return torch::cat({r, orthant_equal_area(angles, /*to_angles=*/false)}, 1);
}

torch::Tensor OrthantSphereChart::reach() const {
  return ((room.defined() ? room : 1.0 - center) / delta).clamp(0.0, 1.0);
}

std::pair<torch::Tensor, torch::Tensor> OrthantSphereChart::range() const {
  require_rows(center, -1, "OrthantSphereChart");
  auto h = reach();
  auto rest = h.narrow(1, 1, h.size(1) - 1).square().sum(1).sqrt();
  return stage_range(h.select(1, 0), rest, torch::ones({h.size(0)}, h.options()));
}

std::pair<torch::Tensor, torch::Tensor> OrthantSphereChart::ranges(const torch::Tensor& u) const {
  require_rows(u, center.size(1) - 1, "OrthantSphereChart::ranges");
  auto st = sphere_stages(reach(), u, /*given_angles=*/false);
  return {st.a, st.b};
}

torch::Tensor OrthantSphereChart::feasible() const {
  require_rows(center, -1, "OrthantSphereChart");
  auto h = reach();
  return h.square().sum(1).gt(1.0) & h.gt(0).all(1);
}

ChartPoint OrthantSphereChart::forward(const torch::Tensor& u) const {
  require_rows(center, -1, "OrthantSphereChart");
  if (center.size(1) < 2) throw std::invalid_argument("OrthantSphereChart: dimension d >= 2 expected");
  require_rows(u, center.size(1) - 1, "OrthantSphereChart::forward");
  const int64_t d = center.size(1);
  auto st = sphere_stages(reach(), u, /*given_angles=*/false);
  auto offset = delta * unit_vector_from_angles(st.phi);
  // an empty range has no volume: log J = -inf there
  auto log_j = (d - 1) * std::log(delta) + st.log_area;
  return {center + offset, log_j, offset};
}

torch::Tensor OrthantSphereChart::angles(const torch::Tensor& u) const {
  require_rows(u, center.size(1) - 1, "OrthantSphereChart::angles");
  return sphere_stages(reach(), u, /*given_angles=*/false).phi;
}

std::pair<torch::Tensor, torch::Tensor> OrthantSphereChart::coords(const torch::Tensor& phi) const {
  require_rows(phi, center.size(1) - 1, "OrthantSphereChart::coords");
  auto st = sphere_stages(reach(), phi, /*given_angles=*/true);
  return {st.u, (center.size(1) - 1) * std::log(delta) + st.log_area};
}

torch::Tensor OrthantSphereChart::inverse(const torch::Tensor& x) const {
  require_rows(x, center.size(1), "OrthantSphereChart::inverse");
  auto angles = angles_from_unit_vector(x - center);
  return sphere_stages(reach(), angles, /*given_angles=*/true).u;
}

}  // namespace gfn

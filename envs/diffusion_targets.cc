#include "envs/diffusion_targets.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include <boost/math/quadrature/tanh_sinh.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include "core/params.h"

namespace gfn {

torch::Tensor DiffusionTarget::grad_log_density(const torch::Tensor& x) const {
  // a fresh leaf, so that the caller's graph (if any) is left alone
  torch::AutoGradMode enable_grad(true);
  auto leaf = x.detach().to(torch::kFloat64).requires_grad_(true);  // [N, d]
  auto log_r = log_density(leaf);                                    // [N]
  return torch::autograd::grad({log_r.sum()}, {leaf})[0].detach();
}

torch::Tensor DiffusionTarget::sample(int64_t /*n*/, torch::Generator& /*generator*/) const {
  throw std::logic_error("DiffusionTarget '" + name() + "': no exact sampler");
}

namespace {

constexpr double kLogTwoPi = 1.8378770664093453;  // log(2 pi)

torch::TensorOptions cpu_f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

// x as float64 after checking that it is [N, d].
torch::Tensor as_points(const torch::Tensor& x, int64_t d, const std::string& who) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == d, who, ": points must be [N, ", d, "], got ", x.sizes());
  TORCH_CHECK(x.is_floating_point(), who, ": points must be floating point, got ", x.scalar_type());
  return x.to(torch::kFloat64);
}

// Equal-weight mixture of K Gaussians N(mu_k, v I) in 2-D, the means on the square grid
// coords x coords:
//   log R(x) = logsumexp_k( -|x - mu_k|^2 / (2 v) ) - log(2 pi v) - log K,
//   grad log R(x) = -(x - sum_k w_k(x) mu_k) / v,  w(x) = softmax_k( -|x - mu_k|^2 / (2 v) ).
class GridMixture : public DiffusionTarget {
 public:
  GridMixture(std::string name, const std::vector<double>& coords, double variance, double extent)
      : name_(std::move(name)), variance_(variance), extent_(extent) {
    std::vector<double> flat;
    for (double a : coords) {
      for (double b : coords) flat.insert(flat.end(), {a, b});
    }
    const auto k = static_cast<int64_t>(coords.size() * coords.size());
    means_ = torch::tensor(flat, cpu_f64()).reshape({k, 2});
    coords_ = torch::tensor(coords, cpu_f64());
  }

  std::string name() const override { return name_; }
  int64_t dim() const override { return 2; }
  std::optional<double> log_partition() const override { return 0.0; }
  bool has_samples() const override { return true; }
  double extent() const override { return extent_; }

  torch::Tensor log_density(const torch::Tensor& x) const override {
    auto points = as_points(x, 2, name_);
    const double k = static_cast<double>(means_.size(0));
    return component_logits(points).logsumexp(1) - std::log(2 * M_PI * variance_) - std::log(k);
  }

  torch::Tensor grad_log_density(const torch::Tensor& x) const override {
    auto points = as_points(x, 2, name_).detach();
    auto w = component_logits(points).softmax(1);           // [N, K]
    auto centre = w.matmul(means_.to(points.device()));     // [N, 2]
    return (centre - points) / variance_;
  }

  // The component by a uniform draw of its index, then the point: mu_k + sqrt(v) z.
  torch::Tensor sample(int64_t n, torch::Generator& generator) const override {
    TORCH_CHECK(n >= 0, name_, ": sample count must be >= 0, got ", n);
    auto k = torch::randint(means_.size(0), {n}, generator, cpu_f64().dtype(torch::kInt64));
    auto z = torch::randn({n, 2}, generator, cpu_f64());
    return means_.index_select(0, k) + std::sqrt(variance_) * z;
  }

 private:
  // -|x - mu_k|^2 / (2 v): [N, 2] -> [N, K]. The grid is separable, mu_k = (c_a, c_b) with
  // k = a m + b: per-axis squares [N, m] summed by broadcasting (an FL credit evaluates R at every
  // state of a batch, 30,300 at T = 100: [N, K, 2] differences cost 3x as much).
  torch::Tensor component_logits(const torch::Tensor& points) const {
    auto c = coords_.to(points.device());
    const int64_t m = c.size(0);
    auto s1 = (points.select(1, 0).unsqueeze(1) - c).square();  // [N, m]
    auto s2 = (points.select(1, 1).unsqueeze(1) - c).square();
    return (s1.unsqueeze(2) + s2.unsqueeze(1)).view({points.size(0), m * m}) * (-0.5 / variance_);
  }

  std::string name_;
  double variance_;
  double extent_;
  torch::Tensor means_;   // [K, 2] float64, CPU
  torch::Tensor coords_;  // [m] float64, CPU: the grid's coordinates, K = m^2
};

// Neal's funnel (header). The variance floor e^{kFunnelFloor} keeps the quadratic term finite.
constexpr double kFunnelFloor = -600.0;

class Funnel : public DiffusionTarget {
 public:
  explicit Funnel(int64_t dim) : dim_(dim) {}

  std::string name() const override { return "funnel"; }
  int64_t dim() const override { return dim_; }
  std::optional<double> log_partition() const override { return 0.0; }
  bool has_samples() const override { return true; }
  double extent() const override { return 10.0; }

  torch::Tensor log_density(const torch::Tensor& x) const override {
    auto points = as_points(x, dim_, "funnel");
    auto x0 = points.select(1, 0);                                  // [N]
    auto rest_sq = points.slice(1, 1).pow(2).sum(1);                // [N]
    const double others = static_cast<double>(dim_ - 1);
    auto log_prior = x0.pow(2) / -18.0 - std::log(3.0) - 0.5 * kLogTwoPi;
    auto inv_var = torch::exp(-x0.clamp_min(kFunnelFloor));         // e^{-x_0}, floored variance
    return log_prior - 0.5 * rest_sq * inv_var - 0.5 * others * (x0 + kLogTwoPi);
  }

  // d/dx_0 = -x_0 / 9 - (d - 1) / 2 + e^{-x_0} sum_i x_i^2 / 2  (the last term 0 below the floor),
  // d/dx_i = -x_i e^{-x_0}.
  torch::Tensor grad_log_density(const torch::Tensor& x) const override {
    auto points = as_points(x, dim_, "funnel").detach();
    auto x0 = points.select(1, 0);
    auto rest = points.slice(1, 1);
    auto inv_var = torch::exp(-x0.clamp_min(kFunnelFloor));
    auto above = x0.ge(kFunnelFloor).to(torch::kFloat64);
    auto g0 = -x0 / 9.0 - 0.5 * static_cast<double>(dim_ - 1) + 0.5 * rest.pow(2).sum(1) * inv_var * above;
    return torch::cat({g0.unsqueeze(1), -rest * inv_var.unsqueeze(1)}, 1);
  }

  // x_0 = 3 z_0, then x_i = e^{x_0 / 2} z_i (z ~ N(0, I) drawn as one [n, d] block).
  torch::Tensor sample(int64_t n, torch::Generator& generator) const override {
    TORCH_CHECK(n >= 0, "funnel: sample count must be >= 0, got ", n);
    auto z = torch::randn({n, dim_}, generator, cpu_f64());
    auto x0 = 3.0 * z.slice(1, 0, 1);                                // [n, 1]
    return torch::cat({x0, z.slice(1, 1) * torch::exp(0.5 * x0)}, 1);
  }

 private:
  int64_t dim_;
};

// ---- the double well in x1: f(t) = exp(g(t)), g(t) = -t^4 + 6 t^2 + t / 2 ----

double well_log_f(double t) { return -t * t * t * t + 6 * t * t + 0.5 * t; }
double well_log_f_d1(double t) { return -4 * t * t * t + 12 * t + 0.5; }
double well_log_f_d2(double t) { return -12 * t * t + 12; }

// log int f(t) dt by tanh-sinh quadrature on [-7, 7] (outside, f < e^{-2000}).
double well_log_integral() {
  boost::math::quadrature::tanh_sinh<double> integrator;
  double error = 0;
  const double z = integrator.integrate([](double t) { return std::exp(well_log_f(t)); }, -7.0, 7.0, 1e-15, &error);
  TORCH_CHECK(std::isfinite(z) && error < 1e-12 * z, "manywell: quadrature of the double well failed (", z, " +- ",
              error, ")");
  return std::log(z);
}

// The rejection envelope of f: a mixture q(t) = sum_k w_k N(t; m_k, s^2) of two Gaussians at the
// local maxima m_k of g, with f(t) <= M q(t) for every t. M is proved at construction
// (make_well_envelope): with r(t) = g(t) - log q(t),
//   on [-L, L]: |r'(t)| <= B = 4 L^3 + 12 L + 1/2 + (L + max|m_k|) / s^2 (as |d log q / dt| is a
//     weighted mean of |t - m_k| / s^2), so r <= max over a grid of step h + B h / 2;
//   beyond L: q >= w_k N(t; m_k, s^2) for the component on that side, whose log-ratio bound
//     p(t) = g(t) - log w_k + log(s sqrt(2 pi)) + (t - m_k)^2 / (2 s^2) is concave there
//     (12 L^2 > 12 + 1/s^2) and falls away from the box (p'(L) < 0, p'(-L) > 0), so r <= p(+-L),
//     which is checked to be below log M.
// With w = (0.15, 0.85) and s = 0.4 the acceptance rate Z1 / M is about 0.51.
struct WellEnvelope {
  double mean[2] = {0, 0};       // the local maxima of g, near -1.71 and +1.75
  double weight[2] = {0.15, 0.85};
  double sd = 0.4;
  double log_bound = 0;          // log M
};

double envelope_log_q(const WellEnvelope& e, double t) {
  double terms[2];
  for (int k = 0; k < 2; ++k) {
    const double z = (t - e.mean[k]) / e.sd;
    terms[k] = std::log(e.weight[k]) - 0.5 * z * z - std::log(e.sd) - 0.5 * kLogTwoPi;
  }
  const double hi = std::max(terms[0], terms[1]);
  return hi + std::log(std::exp(terms[0] - hi) + std::exp(terms[1] - hi));
}

// Builds the envelope and proves its bound M (see WellEnvelope).
WellEnvelope make_well_envelope() {
  WellEnvelope e;
  // the local maxima of g by Newton's method from +-1.7
  for (int k = 0; k < 2; ++k) {
    double t = k == 0 ? -1.7 : 1.7;
    for (int it = 0; it < 50; ++it) t -= well_log_f_d1(t) / well_log_f_d2(t);
    e.mean[k] = t;
  }
  // the grid maximum of r on [-L, L] plus the Lipschitz margin
  constexpr double kBox = 4.0;
  constexpr int64_t kSteps = 800000;
  const double h = 2 * kBox / static_cast<double>(kSteps);
  double max_r = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j <= kSteps; ++j) {
    const double t = -kBox + static_cast<double>(j) * h;
    max_r = std::max(max_r, well_log_f(t) - envelope_log_q(e, t));
  }
  const double inv_s2 = 1.0 / (e.sd * e.sd);
  const double lipschitz = 4 * kBox * kBox * kBox + 12 * kBox + 0.5 +
                           (kBox + std::max(std::abs(e.mean[0]), std::abs(e.mean[1]))) * inv_s2;
  e.log_bound = max_r + 0.5 * lipschitz * h;
  // the tails: concave one-component bounds, falling away from the box, below log M at its ends
  TORCH_CHECK(12 * kBox * kBox > 12 + inv_s2, "manywell envelope: the tail bound is not concave");
  for (int k = 0; k < 2; ++k) {
    const double end = k == 0 ? -kBox : kBox;
    const double side_log_q = std::log(e.weight[k]) - 0.5 * (end - e.mean[k]) * (end - e.mean[k]) * inv_s2 -
                              std::log(e.sd) - 0.5 * kLogTwoPi;
    const double slope = well_log_f_d1(end) + (end - e.mean[k]) * inv_s2;
    TORCH_CHECK(slope * end < 0, "manywell envelope: the tail bound grows beyond ", end);
    TORCH_CHECK(well_log_f(end) - side_log_q < e.log_bound, "manywell envelope: the tail bound exceeds M at ", end);
  }
  return e;
}

// n exact draws from f / Z1 by rejection from the envelope, batched: each round proposes one point
// for every row not yet accepted (component, normal, uniform), accepting where
// log u < g(t) - log M - log q(t). Returns [n] float64 on the CPU.
torch::Tensor sample_well(const WellEnvelope& e, int64_t n, torch::Generator& generator) {
  auto out = torch::empty({n}, cpu_f64());
  auto pending = torch::arange(n, cpu_f64().dtype(torch::kInt64));  // rows still to fill
  constexpr int kMaxRounds = 1000;
  for (int round = 0; round < kMaxRounds && pending.numel() > 0; ++round) {
    const int64_t m = pending.numel();
    // the proposal t ~ q
    auto plus = torch::rand({m}, generator, cpu_f64()).lt(e.weight[1]);
    auto centre = e.mean[0] + (e.mean[1] - e.mean[0]) * plus.to(torch::kFloat64);
    auto t = centre + e.sd * torch::randn({m}, generator, cpu_f64());
    auto log_u = torch::rand({m}, generator, cpu_f64()).log();
    // log q(t), as envelope_log_q
    const double norm = -std::log(e.sd) - 0.5 * kLogTwoPi;
    auto lq0 = std::log(e.weight[0]) + norm - 0.5 * ((t - e.mean[0]) / e.sd).pow(2);
    auto lq1 = std::log(e.weight[1]) + norm - 0.5 * ((t - e.mean[1]) / e.sd).pow(2);
    auto log_g = -t.pow(4) + 6 * t.pow(2) + 0.5 * t;
    auto accept = log_u.lt(log_g - e.log_bound - torch::logaddexp(lq0, lq1));
    out.index_copy_(0, pending.masked_select(accept), t.masked_select(accept));
    pending = pending.masked_select(accept.logical_not());
  }
  TORCH_CHECK(pending.numel() == 0, "manywell: rejection sampling left ", pending.numel(), " rows after ", kMaxRounds,
              " rounds");
  return out;
}

// d/2 independent double wells on the pairs (x_{2j}, x_{2j+1}) (header).
class ManyWell : public DiffusionTarget {
 public:
  explicit ManyWell(int64_t dim)
      : dim_(dim), log_z_pair_(well_log_integral() + 0.5 * kLogTwoPi), envelope_(make_well_envelope()) {}

  std::string name() const override { return "manywell"; }
  int64_t dim() const override { return dim_; }
  std::optional<double> log_partition() const override { return static_cast<double>(dim_ / 2) * log_z_pair_; }
  bool has_samples() const override { return true; }
  double extent() const override { return 6.0; }

  torch::Tensor log_density(const torch::Tensor& x) const override {
    auto points = as_points(x, dim_, "manywell");
    auto x1 = points.slice(1, 0, dim_, 2);  // [N, d/2]
    auto x2 = points.slice(1, 1, dim_, 2);  // [N, d/2]
    return (-x1.pow(4) + 6 * x1.pow(2) + 0.5 * x1).sum(1) - 0.5 * x2.pow(2).sum(1);
  }

  // d/dx1 = -4 x1^3 + 12 x1 + 1/2, d/dx2 = -x2, interleaved as the coordinates.
  torch::Tensor grad_log_density(const torch::Tensor& x) const override {
    auto points = as_points(x, dim_, "manywell").detach();
    auto x1 = points.slice(1, 0, dim_, 2);
    auto x2 = points.slice(1, 1, dim_, 2);
    return torch::stack({-4 * x1.pow(3) + 12 * x1 + 0.5, -x2}, 2).reshape({points.size(0), dim_});
  }

  // All n d/2 values of x1 by rejection first, then the x2 values as one normal block.
  torch::Tensor sample(int64_t n, torch::Generator& generator) const override {
    TORCH_CHECK(n >= 0, "manywell: sample count must be >= 0, got ", n);
    const int64_t pairs = dim_ / 2;
    auto x1 = sample_well(envelope_, n * pairs, generator).reshape({n, pairs});
    auto x2 = torch::randn({n, pairs}, generator, cpu_f64());
    return torch::stack({x1, x2}, 2).reshape({n, dim_});
  }

 private:
  int64_t dim_;
  double log_z_pair_;  // log of the integral of one pair's R
  WellEnvelope envelope_;
};

// ConfigError for a dim the target `name` cannot have; `expected` is the rule in words.
[[noreturn]] void bad_dim(const std::string& name, int64_t dim, const std::string& expected) {
  throw ConfigError(fmt::format("env.dim = {}: env.target = \"{}\" expects {} (or 0 for its default)", dim, name,
                                expected));
}

}  // namespace

std::vector<std::string> diffusion_target_names() { return {"25gmm", "9gmm", "funnel", "manywell"}; }

std::unique_ptr<DiffusionTarget> make_diffusion_target(const std::string& name, int64_t dim) {
  if (name == "25gmm" || name == "9gmm") {
    if (dim != 0 && dim != 2) bad_dim(name, dim, "dimension 2");
    if (name == "25gmm") return std::make_unique<GridMixture>(name, std::vector<double>{-10, -5, 0, 5, 10}, 0.3, 13.0);
    return std::make_unique<GridMixture>(name, std::vector<double>{-5, 0, 5}, 0.3, 8.0);
  }
  if (name == "funnel") {
    if (dim != 0 && dim < 2) bad_dim(name, dim, "an integer >= 2");
    return std::make_unique<Funnel>(dim == 0 ? 10 : dim);
  }
  if (name == "manywell") {
    if (dim != 0 && (dim < 2 || dim % 2 != 0)) bad_dim(name, dim, "an even integer >= 2");
    return std::make_unique<ManyWell>(dim == 0 ? 32 : dim);
  }
  throw ConfigError(fmt::format("env.target = \"{}\": expected {}", name, one_of(diffusion_target_names())));
}

}  // namespace gfn

#include "measures/densities.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include <torch/torch.h>

#include "measures/categorical.h"

namespace gfn {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kLog2Pi = 1.8378770664093454836;  // log(2 pi)
constexpr double kLn2 = 0.69314718055994530942;
// |standardised bound| beyond which Phi is 0 (or 1) in every floating dtype
constexpr double kTailCut = 1e4;
constexpr int kVonMisesMaxRounds = 1000;
constexpr int kVonMisesFixedRounds = 32;

// The representable open unit interval of a floating dtype: [smallest normal, largest below 1].
std::pair<double, double> open_unit_bounds(torch::ScalarType dtype) {
  if (dtype == torch::kDouble) return {std::numeric_limits<double>::min(), std::nextafter(1.0, 0.0)};
  TORCH_CHECK(dtype == torch::kFloat, "densities: float32 or float64 parameters expected, got ", dtype);
  return {std::numeric_limits<float>::min(), std::nextafter(1.0f, 0.0f)};
}

// log(1 - exp(y)) for y <= 0 (Maechler's log1mexp): log(-expm1(y)) near 0, log1p(-exp(y)) below
// -log 2. Each branch sees a harmless input where it is not selected, so gradients stay finite.
torch::Tensor log1mexp(const torch::Tensor& y) {
  auto near = y > -kLn2;
  auto y_near = torch::where(near, y, -1.0);
  auto y_far = torch::where(near, -1.0, y);
  return torch::where(near, torch::log(-torch::expm1(y_near)), torch::log1p(-torch::exp(y_far)));
}

// Rows of `x` ([N, D]) with every coordinate in the open unit interval: [N] bool.
torch::Tensor inside_open_unit(const torch::Tensor& x) { return ((x > 0) & (x < 1)).all(1); }

// log Gamma(a) variates (a > 0, any shape) from `gen`: log G_{a+1} + log(V) / a with V uniform in
// (0, 1] — finite even where G_a itself would underflow (small a).
torch::Tensor log_gamma_variate(const torch::Tensor& a, torch::Generator& gen) {
  auto g = torch::_standard_gamma(a + 1, gen);
  auto u = torch::rand(a.sizes(), gen, a.options());
  return g.log() + torch::log1p(-u) / a;
}

// (bound - loc) / scale, clamped to +-kTailCut; infinite bounds enter no arithmetic with the
// parameters, so their gradients are exactly zero rather than NaN.
torch::Tensor standardise(const torch::Tensor& bound, const torch::Tensor& loc, const torch::Tensor& scale) {
  auto finite = torch::isfinite(bound);
  auto z = (torch::where(finite, bound, torch::zeros_like(bound)) - loc) / scale;
  return torch::where(finite, z, bound).clamp(-kTailCut, kTailCut);
}

// log(Phi(b) - Phi(a)) for standardised a < b, accurate in both tails: on the reflected side
// Phi(-a) - Phi(-b) when a > 0.
torch::Tensor log_normaliser(const torch::Tensor& a, const torch::Tensor& b) {
  auto la = torch::special::log_ndtr(a), lb = torch::special::log_ndtr(b);
  auto lower = lb + log1mexp(la - lb);
  auto ua = torch::special::log_ndtr(-a), ub = torch::special::log_ndtr(-b);
  auto upper = ua + log1mexp(ub - ua);
  return torch::where(a > 0, upper, lower);
}

// The z with log Phi(z) = t, for t <= about log(1/2): start from ndtri(exp(t)), or where exp(t)
// underflows to 0 from the asymptotic z = -sqrt(s - log s - log 2 pi), s = -2t; then Newton steps
// on log_ndtr (concave, so they converge monotonically from the left), which also repair the
// precision ndtri loses on subnormal arguments.
torch::Tensor inverse_log_ndtr(const torch::Tensor& t) {
  auto z0 = torch::special::ndtri(torch::exp(t));
  auto s = (-2 * t).clamp_min(2.0);
  auto asymptotic = -torch::sqrt((s - torch::log(s) - kLog2Pi).clamp_min(0.0));
  auto z = torch::where(torch::isfinite(z0), z0, asymptotic);
  for (int i = 0; i < 3; ++i) {
    auto lz = torch::special::log_ndtr(z);
    auto ratio = torch::exp(-0.5 * z * z - 0.5 * kLog2Pi - lz);  // phi(z) / Phi(z)
    z = z - (lz - t) / ratio;
  }
  return z;
}

// log I0(k) - k = log(i0e(k)) for k >= 0; below 1e-3 by the series k^2/4 - k^4/64 - k, whose
// derivative at k = 0 is right (-1), where i0e's autograd formula uses sgn(0) = 0.
torch::Tensor log_i0_minus_x(const torch::Tensor& k) {
  auto small = k < 1e-3;
  auto ks = torch::where(small, k, torch::zeros_like(k));
  auto kl = torch::where(small, torch::ones_like(k), k);
  auto k2 = ks * ks;
  return torch::where(small, k2 / 4 - k2 * k2 / 64 - ks, torch::log(torch::special::i0e(kl)));
}

// One mixture component per row drawn from logits [N, K] by the Gumbel-max trick, as an index
// [N, 1, D] that gathers its [N, K, D] parameters.
torch::Tensor draw_mixture_component(const torch::Tensor& logits, int64_t D, torch::Generator& gen) {
  const int64_t N = logits.size(0);
  auto g = gumbel_noise(logits.sizes(), gen, logits.options());
  return (logits.log_softmax(1) + g).argmax(1).view({N, 1, 1}).expand({N, 1, D});
}

// Where angles lie in [-pi, pi) as the dtype represents pi: elementwise bool.
torch::Tensor inside_circle(const torch::Tensor& x) { return (x >= -M_PI) & (x < M_PI); }

// log VonMises(x; mu, kappa) elementwise (broadcasting), for x inside the circle:
// -2 kappa sin^2((x - mu) / 2) - log 2 pi - log i0e(kappa).
torch::Tensor von_mises_log_density(const torch::Tensor& x, const torch::Tensor& mu, const torch::Tensor& kappa) {
  auto sin_half = torch::sin(0.5 * (x - mu));
  return -2 * kappa * sin_half * sin_half - kLog2Pi - log_i0_minus_x(kappa);
}

}  // namespace

torch::Tensor clamp_open_unit(const torch::Tensor& x) {
  auto [lo, hi] = open_unit_bounds(x.scalar_type());
  return x.clamp(lo, hi);
}

torch::Tensor wrap_angle(const torch::Tensor& x) {
  auto w = torch::remainder(x + M_PI, 2 * M_PI) - M_PI;
  w = torch::where(w >= M_PI, w - 2 * M_PI, w);
  return torch::where(w < -M_PI, w + 2 * M_PI, w);
}

// ---------------------------------------------------------------------------------------------
// BetaMixture

BetaMixture BetaMixture::from_raw(const torch::Tensor& raw, int64_t K, int64_t D, double cmin, double cmax) {
  TORCH_CHECK(raw.dim() == 2 && raw.size(1) == raw_size(K, D), "BetaMixture::from_raw: raw must be [N, ",
              raw_size(K, D), "], got ", raw.sizes());
  const int64_t N = raw.size(0);
  auto conc = [&](int64_t start) {
    return (cmin + (cmax - cmin) * torch::sigmoid(raw.narrow(1, start, K * D))).view({N, K, D});
  };
  return BetaMixture{raw.narrow(1, 0, K), conc(K), conc(K + K * D)};
}

torch::Tensor BetaMixture::log_prob(const torch::Tensor& x) const {
  TORCH_CHECK(x.dim() == 2 && x.size(0) == alpha.size(0) && x.size(1) == alpha.size(2),
              "BetaMixture::log_prob: x must be [N, D] = [", alpha.size(0), ", ", alpha.size(2), "], got ", x.sizes());
  auto inside = inside_open_unit(x);                                                           // [N]
  auto xs = torch::where(inside.unsqueeze(1), x, 0.5).unsqueeze(1);                            // [N, 1, D]
  auto log_b = torch::lgamma(alpha) + torch::lgamma(beta) - torch::lgamma(alpha + beta);       // [N, K, D]
  auto comp = ((alpha - 1) * torch::log(xs) + (beta - 1) * torch::log1p(-xs) - log_b).sum(2);  // [N, K]
  auto lp = (logits.log_softmax(1) + comp).logsumexp(1);
  return torch::where(inside, lp, -kInf);
}

torch::Tensor BetaMixture::sample(torch::Generator& gen) const {
  torch::NoGradGuard no_grad;
  auto idx = draw_mixture_component(logits, alpha.size(2), gen);
  auto a = alpha.gather(1, idx).squeeze(1), b = beta.gather(1, idx).squeeze(1);  // [N, D]
  auto lg1 = log_gamma_variate(a, gen);
  auto lg2 = log_gamma_variate(b, gen);
  return clamp_open_unit(torch::sigmoid(lg1 - lg2));  // G1 / (G1 + G2)
}

// ---------------------------------------------------------------------------------------------
// Kumaraswamy

torch::Tensor Kumaraswamy::log_prob(const torch::Tensor& x) const {
  TORCH_CHECK(x.dim() == 2 && x.sizes() == a.sizes(), "Kumaraswamy::log_prob: x must be ", a.sizes(), ", got ",
              x.sizes());
  auto inside = inside_open_unit(x);
  auto log_x = torch::log(torch::where(inside.unsqueeze(1), x, 0.5));
  auto lp = (torch::log(a) + torch::log(b) + (a - 1) * log_x + (b - 1) * log1mexp(a * log_x)).sum(1);
  return torch::where(inside, lp, -kInf);
}

torch::Tensor Kumaraswamy::sample(torch::Generator& gen) const {
  torch::NoGradGuard no_grad;
  auto v = 1 - torch::rand(a.sizes(), gen, a.options());  // (0, 1]
  return clamp_open_unit(torch::exp(log1mexp(torch::log(v) / b) / a));
}

// ---------------------------------------------------------------------------------------------
// TruncatedNormal

TruncatedNormal::TruncatedNormal(torch::Tensor loc_, torch::Tensor scale_, torch::Tensor lo_, torch::Tensor hi_)
    : loc(std::move(loc_)), scale(std::move(scale_)), lo(std::move(lo_)), hi(std::move(hi_)) {}

TruncatedNormal::TruncatedNormal(torch::Tensor loc_, torch::Tensor scale_, double lo_, double hi_)
    : loc(std::move(loc_)), scale(std::move(scale_)) {
  lo = torch::full({}, lo_, loc.options());
  hi = torch::full({}, hi_, loc.options());
}

torch::Tensor TruncatedNormal::log_prob(const torch::Tensor& x) const {
  TORCH_CHECK(x.dim() == 2 && x.sizes() == loc.sizes(), "TruncatedNormal::log_prob: x must be ", loc.sizes(), ", got ",
              x.sizes());
  auto inside = ((x >= lo) & (x <= hi) & torch::isfinite(x)).all(1);
  auto z = (torch::where(inside.unsqueeze(1), x, loc.detach()) - loc) / scale;
  auto log_z = log_normaliser(standardise(lo, loc, scale), standardise(hi, loc, scale));
  auto lp = (-0.5 * z * z - 0.5 * kLog2Pi - torch::log(scale) - log_z).sum(1);
  return torch::where(inside, lp, -kInf);
}

torch::Tensor TruncatedNormal::sample(torch::Generator& gen) const {
  torch::NoGradGuard no_grad;
  auto opts = loc.options().dtype(torch::kDouble);
  auto m = loc.to(torch::kDouble), s = scale.to(torch::kDouble);
  auto lo64 = lo.to(torch::kDouble), hi64 = hi.to(torch::kDouble);
  auto a = standardise(lo64, m, s), b = standardise(hi64, m, s);  // [N, D]
  auto log_z = log_normaliser(a, b);
  auto u = torch::rand(a.sizes(), gen, opts);
  // the draw's lower-tail mass p = Phi(a) + u Z and upper-tail mass q = Phi(-b) + (1 - u) Z
  // (p + q = 1); invert whichever is smaller
  auto lp = torch::logaddexp(torch::special::log_ndtr(a), torch::log(u) + log_z);
  auto lq = torch::logaddexp(torch::special::log_ndtr(-b), torch::log1p(-u) + log_z);
  auto lower = lp < lq;
  auto w = inverse_log_ndtr(torch::where(lower, lp, lq));
  auto x = m + s * torch::where(lower, w, -w);
  x = torch::max(torch::min(x, hi64), lo64).to(loc.scalar_type());
  return torch::max(torch::min(x, hi), lo);  // again after rounding to the dtype
}

// ---------------------------------------------------------------------------------------------
// VonMises

torch::Tensor VonMises::log_prob(const torch::Tensor& x) const {
  TORCH_CHECK((x.dim() == 1 || x.dim() == 2) && x.sizes() == loc.sizes(), "VonMises::log_prob: x must be ", loc.sizes(),
              ", got ", x.sizes());
  auto inside = inside_circle(x);
  auto lp = von_mises_log_density(torch::where(inside, x, torch::zeros_like(x)), loc, concentration);
  if (x.dim() == 2) {
    lp = lp.sum(1);
    inside = inside.all(1);
  }
  return torch::where(inside, lp, -kInf);
}

torch::Tensor VonMises::sample(torch::Generator& gen) const {
  torch::NoGradGuard no_grad;
  auto opts = loc.options().dtype(torch::kDouble);
  auto mu = loc.to(torch::kDouble).reshape({-1});
  auto kappa = concentration.to(torch::kDouble).reshape({-1}).clamp_min(1e-30);
  // Best and Fisher's proposal parameter, its Taylor expansion 1/kappa + kappa for small kappa
  auto tau = 1 + torch::sqrt(1 + 4 * kappa * kappa);
  auto rho = (tau - torch::sqrt(2 * tau)) / (2 * kappa);
  auto r = torch::where(kappa < 1e-5, 1 / kappa + kappa, (1 + rho * rho) / (2 * rho));

  // one round of Best and Fisher's proposal for every entry of r, kappa: the angle and whether it
  // is accepted (the acceptance rate is at least 0.66 for every kappa)
  auto propose = [&](const torch::Tensor& u, const torch::Tensor& rp, const torch::Tensor& kp) {
    auto z = torch::cos(M_PI * u.select(-2, 0));
    auto f = ((1 + rp * z) / (rp + z)).clamp(-1.0, 1.0);
    auto c = kp * (rp - f);
    auto accept = (c * (2 - c) - u.select(-2, 1) > 0) | (torch::log(c / u.select(-2, 1)) + 1 - c >= 0);
    auto angle = torch::where(u.select(-2, 2) < 0.5, -torch::acos(f), torch::acos(f));
    return std::make_pair(angle, accept);
  };
  torch::Tensor theta;
  if (fixed_rounds) {
    // kVonMisesFixedRounds rounds at once, each entry taking its first accepted angle
    auto u = torch::rand({kVonMisesFixedRounds, 3, mu.numel()}, gen, opts);
    auto [angle, accept] = propose(u, r.unsqueeze(0), kappa.unsqueeze(0));
    auto first = accept.to(torch::kInt).argmax(0, /*keepdim=*/true);
    first = torch::where(accept.any(0, /*keepdim=*/true), first, torch::full_like(first, kVonMisesFixedRounds - 1));
    theta = angle.gather(0, first).squeeze(0);
  } else {
    theta = torch::zeros_like(mu);
    auto pending = torch::arange(mu.numel(), opts.dtype(torch::kLong));
    for (int round = 0; pending.numel() > 0; ++round) {
      if (round == kVonMisesMaxRounds)
        throw std::runtime_error("VonMises::sample: rejection sampling did not finish in 1000 rounds");
      auto u = torch::rand({3, pending.numel()}, gen, opts);
      auto [angle, accept] = propose(u, r.index_select(0, pending), kappa.index_select(0, pending));
      theta.index_put_({pending.masked_select(accept)}, angle.masked_select(accept));
      pending = pending.masked_select(accept.logical_not());
    }
  }
  // wrapped in float64, then again after the cast (rounding may put an angle on pi)
  return wrap_angle(wrap_angle(theta + mu).view(loc.sizes()).to(loc.scalar_type()));
}

// ---------------------------------------------------------------------------------------------
// VonMisesMixture

VonMisesMixture VonMisesMixture::from_raw(const torch::Tensor& raw, int64_t K, int64_t D, bool fixed_rounds) {
  TORCH_CHECK(raw.dim() == 2 && raw.size(1) == raw_size(K, D), "VonMisesMixture::from_raw: raw must be [N, ",
              raw_size(K, D), "], got ", raw.sizes());
  const int64_t N = raw.size(0);
  auto loc = M_PI * raw.narrow(1, K, K * D).tanh();
  auto kappa = torch::softplus(raw.narrow(1, K + K * D, K * D));
  return VonMisesMixture{raw.narrow(1, 0, K), loc.view({N, K, D}), kappa.view({N, K, D}), fixed_rounds};
}

torch::Tensor VonMisesMixture::log_prob(const torch::Tensor& x) const {
  TORCH_CHECK(x.dim() == 2 && x.size(0) == loc.size(0) && x.size(1) == loc.size(2),
              "VonMisesMixture::log_prob: x must be [N, D] = [", loc.size(0), ", ", loc.size(2), "], got ", x.sizes());
  auto inside = inside_circle(x).all(1);                                        // [N]
  auto xs = torch::where(inside.unsqueeze(1), x, 0.0).unsqueeze(1);             // [N, 1, D]
  auto comp = von_mises_log_density(xs, loc, concentration).sum(2);             // [N, K]
  auto lp = (logits.log_softmax(1) + comp).logsumexp(1);
  return torch::where(inside, lp, -kInf);
}

torch::Tensor VonMisesMixture::sample(torch::Generator& gen) const {
  torch::NoGradGuard no_grad;
  auto idx = draw_mixture_component(logits, loc.size(2), gen);
  return VonMises{loc.gather(1, idx).squeeze(1), concentration.gather(1, idx).squeeze(1), fixed_rounds}.sample(gen);
}

// ---------------------------------------------------------------------------------------------
// DiagonalGaussian

torch::Tensor DiagonalGaussian::log_prob(const torch::Tensor& x) const {
  TORCH_CHECK(x.dim() == 2 && x.sizes() == loc.sizes(), "DiagonalGaussian::log_prob: x must be ", loc.sizes(), ", got ",
              x.sizes());
  auto z = (x - loc) * torch::exp(-log_scale);
  return (-0.5 * z * z - log_scale - 0.5 * kLog2Pi).sum(1);
}

torch::Tensor DiagonalGaussian::sample(torch::Generator& gen) const {
  // standard normals drawn in float32 (LibTorch 1.13's float64 normal is ~6x slower on the CPU;
  // bench/RESULTS.md, 2026-12-03): their tails end at ~5.8 sd, which cuts a mass of ~1e-8 per
  // coordinate. The density is evaluated at the coordinates drawn, so scores stay exact.
  auto eps = torch::randn(loc.sizes(), gen, loc.options().dtype(torch::kFloat32));
  return loc + torch::exp(log_scale) * eps.to(loc.scalar_type());
}

}  // namespace gfn

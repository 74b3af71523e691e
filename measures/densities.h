// Densities on the standard chart domains of continuous kernel pieces (q(u | s, c) in log p_F = log pi(c | s) + log q(u | s, c) - log J; core/env.h):
// the unit cube, an interval, the circle and R^D. Each is a small value type holding parameter
// tensors with a leading batch dimension N (any device, float32 or float64), one distribution per
// row, with
//   log_prob(x)  the log-density w.r.t. Lebesgue measure on the domain, [N]; exactly -inf out of
//                the support (never NaN, never finite there), finite and accurate up to the
//                boundary inside it, and differentiable w.r.t. the parameters (out-of-support rows
//                get exactly zero gradient);
//   sample(gen)  one draw per row, every random number from `gen`, inside the support.
// Out-of-support inputs are masked before any arithmetic, so no intermediate is NaN either.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace gfn {

// Clamps x (float32 or float64) into its dtype's representable open unit interval, [smallest
// normal, largest number below 1]: where the densities of the unit cube are finite. For chart
// coordinates that a draw or an environment's arithmetic may put on a face.
torch::Tensor clamp_open_unit(const torch::Tensor& x);

// Wraps angles (any float dtype, any shape) into [-pi, pi) as the dtype represents pi: what
// rounding puts on pi goes to the other end. For angles an environment adds or subtracts.
torch::Tensor wrap_angle(const torch::Tensor& x);

// Mixture of K products of D independent Betas on the open cube (0, 1)^D:
//   log p(x) = logsumexp_k( log_softmax(logits)_k + sum_d log Beta(x_d; alpha_kd, beta_kd) ),
//   log Beta(x; a, b) = (a-1) log x + (b-1) log1p(-x) - [lgamma a + lgamma b - lgamma(a+b)].
// The support is the open cube: a point with a coordinate <= 0 or >= 1 (where the density would
// be 0 or +inf) has log_prob -inf. Draws use Beta = G1 / (G1 + G2) with Gamma variates formed in
// log space (G_a = G_{a+1} U^{1/a}) so that small concentrations neither underflow nor give 0/0,
// clamped to [smallest normal, 1 - eps/2] of the dtype (the representable open interval).
// Note: with beta < ~0.4 a visible share of the mass lies within one ulp of 1, where no double
// exists; such draws land on 1 - eps/2, and quadrature of exp(log_prob) misses that mass.
struct BetaMixture {
  torch::Tensor logits;  // [N, K] float, unnormalised log mixture weights
  torch::Tensor alpha;   // [N, K, D] float, > 0
  torch::Tensor beta;    // [N, K, D] float, > 0

  // The width of the raw network output that from_raw consumes: K * (1 + 2 D).
  static int64_t raw_size(int64_t K, int64_t D) { return K * (1 + 2 * D); }
  // Maps raw network outputs [N, raw_size(K, D)], laid out as [logits (K) | alpha (K*D, k-major)
  // | beta (K*D, k-major)], to logits and concentrations cmin + (cmax - cmin) * sigmoid(raw).
  static BetaMixture from_raw(const torch::Tensor& raw, int64_t K, int64_t D, double cmin = 0.1, double cmax = 5.1);

  torch::Tensor log_prob(const torch::Tensor& x) const;  // x [N, D] -> [N]
  torch::Tensor sample(torch::Generator& gen) const;     // [N, D], no grad
};

// Product of D independent Kumaraswamy(a, b) on the open cube (0, 1)^D:
//   log p(x) = sum_d log a + log b + (a-1) log x + (b-1) log(1 - x^a),
// with log(1 - x^a) = log1mexp(a log x) (log(-expm1) near x = 1, log1p(-exp) near 0). Support as
// for BetaMixture (open cube). Draws by the inverse CDF x = (1 - (1-u)^{1/b})^{1/a}, evaluated as
// exp(log1mexp(log(v) / b) / a) with v = 1 - u in (0, 1], clamped to the representable open interval.
struct Kumaraswamy {
  torch::Tensor a;  // [N, D] float, > 0
  torch::Tensor b;  // [N, D] float, > 0

  torch::Tensor log_prob(const torch::Tensor& x) const;  // x [N, D] -> [N]
  torch::Tensor sample(torch::Generator& gen) const;     // [N, D], no grad
};

// Independent normals N(loc, scale^2) truncated to the closed intervals [lo, hi] (elementwise,
// infinite bounds allowed, lo < hi), product over D:
//   log p(x) = sum_d log phi(z) - log scale - log Z,  z = (x - loc) / scale,
//   log Z = log(Phi(beta) - Phi(alpha)),  alpha = (lo - loc) / scale,  beta = (hi - loc) / scale,
// with log Z computed by log_ndtr and a log-sub-exp, on the reflected side
// Phi(-alpha) - Phi(-beta) when alpha > 0, so that intervals deep in either tail stay accurate
// (beyond 38 sd too, where Phi(-alpha) underflows a double). Standardised bounds are clamped to
// +-1e4 (Phi there is 0 in double) so infinite bounds give finite intermediates and gradients; an
// interval lying wholly beyond 1e4 sd is not supported. Draws by the inverse CDF with ndtri,
// computed in float64 on whichever side of the median the draw falls (the lower tail from
// Phi(alpha) + u Z, the upper from Phi(-beta) + (1-u) Z), refined by Newton steps on log_ndtr
// (which also covers tail masses below the smallest double), then clamped into [lo, hi].
struct TruncatedNormal {
  torch::Tensor loc;    // [N, D] float
  torch::Tensor scale;  // [N, D] float, > 0
  torch::Tensor lo;     // broadcastable to [N, D], same dtype; may be -inf
  torch::Tensor hi;     // broadcastable to [N, D], same dtype; may be +inf

  TruncatedNormal(torch::Tensor loc, torch::Tensor scale, torch::Tensor lo, torch::Tensor hi);
  TruncatedNormal(torch::Tensor loc, torch::Tensor scale, double lo, double hi);

  torch::Tensor log_prob(const torch::Tensor& x) const;  // x [N, D] -> [N]
  torch::Tensor sample(torch::Generator& gen) const;     // [N, D], no grad
};

// von Mises on the circle, parametrised by the angle in [-pi, pi) (as the dtype represents pi):
//   log p(x) = kappa (cos(x - mu) - 1) - log(2 pi) - log(i0e(kappa)),
// i.e. kappa cos(x - mu) - log(2 pi) - log I0(kappa) with log I0 = log i0e + kappa, written so that
// nothing cancels at large kappa (cos(x - mu) - 1 = -2 sin^2((x - mu) / 2)); below kappa = 1e-3 the
// series log I0 = kappa^2/4 - kappa^4/64 keeps d/dkappa right at kappa = 0. x outside [-pi, pi)
// has log_prob -inf. Shapes [N] or [N, D] (D independent angles, summed). Draws by Best and
// Fisher's (1979) rejection algorithm in float64, batched: each round draws for the rows not yet
// accepted (one host check per round; std::runtime_error after 1000 rounds), or, with
// `fixed_rounds`, 32 rounds for every row at once with no host check (for fixed-shape execution
// on a GPU): each row takes its first accepted proposal; all 32 are rejected with probability
// below 0.34^32 < 1e-14, and such a row keeps its last proposal. kappa >= 0; kappa = 0 is the
// uniform distribution.
struct VonMises {
  torch::Tensor loc;            // [N] or [N, D] float, the mean direction mu
  torch::Tensor concentration;  // same shape as loc, float, kappa >= 0
  bool fixed_rounds = false;    // sample() in fixed shapes (above)

  torch::Tensor log_prob(const torch::Tensor& x) const;  // x shaped as loc -> [N]
  torch::Tensor sample(torch::Generator& gen) const;     // shaped as loc, in [-pi, pi), no grad
};

// Mixture of K products of D independent von Mises on the torus [-pi, pi)^D (a single von Mises
// cannot put mass on two arcs):
//   log p(x) = logsumexp_k( log_softmax(logits)_k + sum_d log VonMises(x_d; mu_kd, kappa_kd) ),
// each factor as in VonMises (no cancellation at large kappa, the series below kappa = 1e-3).
// x outside [-pi, pi)^D has log_prob -inf. Draws pick the component by the Gumbel-max trick, then
// draw its D angles with VonMises::sample (`fixed_rounds` as there).
struct VonMisesMixture {
  torch::Tensor logits;         // [N, K] float, unnormalised log mixture weights
  torch::Tensor loc;            // [N, K, D] float, mean directions in [-pi, pi]
  torch::Tensor concentration;  // [N, K, D] float, kappa >= 0
  bool fixed_rounds = false;    // sample() in fixed shapes (VonMises)

  // The width of the raw network output that from_raw consumes: K * (1 + 2 D).
  static int64_t raw_size(int64_t K, int64_t D) { return K * (1 + 2 * D); }
  // Maps raw network outputs [N, raw_size(K, D)], laid out as [logits (K) | location (K*D,
  // k-major) | concentration (K*D, k-major)], to logits, locations pi tanh(raw) and
  // concentrations softplus(raw).
  static VonMisesMixture from_raw(const torch::Tensor& raw, int64_t K, int64_t D, bool fixed_rounds = false);

  torch::Tensor log_prob(const torch::Tensor& x) const;  // x [N, D] -> [N]
  torch::Tensor sample(torch::Generator& gen) const;     // [N, D] in [-pi, pi), no grad
};

// Diagonal Gaussian on R^D:
//   log p(x) = sum_d -z^2 / 2 - log_scale - log(2 pi) / 2,  z = (x - loc) exp(-log_scale).
// sample() is reparameterised: loc + exp(log_scale) * eps, differentiable w.r.t. the parameters; eps
// is drawn in float32 (6x faster on the CPU than float64), so |eps| <= ~5.8: a cut tail mass of
// ~1e-8 per coordinate.
struct DiagonalGaussian {
  torch::Tensor loc;        // [N, D] float
  torch::Tensor log_scale;  // [N, D] float

  torch::Tensor log_prob(const torch::Tensor& x) const;  // x [N, D] -> [N]
  torch::Tensor sample(torch::Generator& gen) const;     // [N, D], with grad (reparameterised)
};

}  // namespace gfn

// Unnormalised target densities R on R^d for diffusion samplers (envs/diffusion.h): the benchmark
// energies of Sendera et al. (2024), "Improved off-policy training of diffusion samplers", defined
// as in that paper's public code. A sampler learns to draw x with probability R(x) / Z,
// Z = int R(x) dx; each target gives log R and its gradient (the Langevin term of the policy), and
// where they are known, log Z and exact samples (for the evaluation metrics).
//
//   "25gmm"    d = 2. Equal-weight mixture of 25 Gaussians N(mu_k, 0.3 I), mu_k in {-10, -5, 0, 5, 10}^2:
//                log R(x) = logsumexp_k( -|x - mu_k|^2 / (2 * 0.3) ) - log(2 pi 0.3) - log 25;
//              normalised (log Z = 0).
//   "9gmm"     d = 2. The same with the 9 means {-5, 0, 5}^2 and log 9; normalised.
//   "funnel"   d >= 2 (default 10). Neal's funnel, x_0 ~ N(0, 3^2), x_i | x_0 ~ N(0, e^{x_0}), i >= 1:
//                log R(x) = -x_0^2 / 18 - log(3 sqrt(2 pi))
//                           + sum_{i>=1} [ -x_i^2 e^{-x_0} / 2 - x_0 / 2 - log(2 pi) / 2 ];
//              normalised. Where x_0 < -600 (a region of mass below e^{-20000}) the variance in the
//              quadratic term is held at e^{-600} so that the density stays finite (the term would
//              overflow near x_0 = -709); its x_0-gradient is zero there.
//   "manywell" d even (default 32). d/2 independent copies of the double well on the pairs
//              (x_{2j}, x_{2j+1}), each
//                log R(x1, x2) = -x1^4 + 6 x1^2 + x1 / 2 - x2^2 / 2   (unnormalised),
//                log Z = (d/2) [ log int exp(-t^4 + 6 t^2 + t/2) dt + log(2 pi) / 2 ],
//              the 1-D integral (= 11784.50927) by tanh-sinh quadrature to ~1e-14 relative.
//              Exact samples: x2 ~ N(0, 1); x1 by rejection from a two-Gaussian envelope (the
//              bound is proved numerically at construction; see diffusion_targets.cc).
//
// Every computation is in float64. log R is finite at every x with |x_i| < 1e23: the mixtures use
// logsumexp, so nothing underflows to -inf far from the modes, and the funnel floors its variance.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace gfn {

// An unnormalised density R on R^d that a diffusion sampler learns to sample (envs/diffusion.h).
// An immutable definition: every method is const and may be called from several threads.
class DiffusionTarget {
 public:
  virtual ~DiffusionTarget() = default;

  // The name the target is made by ("25gmm", ...).
  virtual std::string name() const = 0;
  // The dimension d of the space.
  virtual int64_t dim() const = 0;

  // log R(x) at points x [N, d] (float64, any device; other float dtypes are converted) -> [N]
  // float64 on x's device; differentiable by autograd w.r.t. x.
  virtual torch::Tensor log_density(const torch::Tensor& x) const = 0;

  // grad_x log R(x) at x [N, d] -> [N, d] float64 on x's device, without autograd history.
  // Default: autograd through log_density, with grad enabled locally (so it works under a
  // NoGradGuard too); targets with a closed form override it.
  virtual torch::Tensor grad_log_density(const torch::Tensor& x) const;

  // log of int R(x) dx when known exactly (or to quadrature precision); nullopt otherwise.
  virtual std::optional<double> log_partition() const { return std::nullopt; }

  // Whether sample() draws exact samples from R / Z.
  virtual bool has_samples() const { return false; }
  // n exact samples from R / Z: [n, d] float64 on the CPU, every random number from `generator`
  // (a CPU generator). Default: throws std::logic_error (no exact sampler).
  virtual torch::Tensor sample(int64_t n, torch::Generator& generator) const;

  // Half-width a of a centred box [-a, a]^d holding all but a negligible part of the mass (the 2-D
  // evaluation grid and plots). The funnel is the exception: no box of moderate size holds its
  // neck and mouth, and its value (10) only frames plots.
  virtual double extent() const = 0;
};

// The built-in targets by name: "25gmm" (d = 2), "9gmm" (d = 2), "funnel" (d >= 2, default 10),
// "manywell" (d even >= 2, default 32). `dim` 0 means the target's default. Throws ConfigError
// (core/params.h) for an unknown name (naming env.target and listing the names) and for a dim the
// target cannot have (naming env.dim, the value and what was expected).
std::unique_ptr<DiffusionTarget> make_diffusion_target(const std::string& name, int64_t dim = 0);

// The names make_diffusion_target accepts, in a fixed order.
std::vector<std::string> diffusion_target_names();

}  // namespace gfn

// The policy head of one kernel (forward or backward), built from its KernelSpec: a categorical
// over the available components times, for a continuous piece, a density on the piece's chart
// domain (core/env.h):
//     log pi(c | s) + log q(u | s, c)       (the chart's -log J is the environment's part).
// The network emits one flat row per state: C component logits, then each piece's raw density
// parameters in component order. Densities by domain:
//   unit cube / interval  mixture of products of Betas, concentrations in [cmin, cmax]
//   R^k                   diagonal Gaussian, log-scale clamped to [-7, 3]
//   circle (torus)        mixture of products of von Mises, locations pi tanh(raw),
//                         concentrations softplus(raw)
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "core/env.h"
#include "core/options.h"

namespace gfn {

struct HeadOptions : KeyedOptions<HeadOptions> {
  int64_t mixture_components = 2;   // Beta or von Mises mixture components per piece, >= 1
  int64_t initial_mixture_components = 0;  // for pieces available only at s0 (0: as mixture_components)
  double min_concentration = 0.1;   // Beta concentration bounds, 0 < min < max
  double max_concentration = 5.1;

  // The config keys (policy.mixture_components, ...); validate() comes from KeyedOptions.
  static const OptionTable<HeadOptions>& keys();
};

class KernelHead {
 public:
  KernelHead(const KernelSpec& spec, int64_t coord_dim, const HeadOptions& options);

  // Width of the network output this head reads: C + the pieces' raw parameter sizes.
  int64_t output_size() const { return output_size_; }
  int64_t num_components() const { return spec_.size(); }
  bool has_pieces() const { return !pieces_.empty(); }

  // The component logits: out [N, output_size] -> [N, C] (a view).
  torch::Tensor logits(const torch::Tensor& out) const;
  // log q(u | s, c) of each row's piece at its coordinates, 0 for atoms: [N]. Rows of other
  // components never reach a density (compact execution leaves them out; fixed shapes replace
  // their coordinates by an interior point), so gradients stay finite.
  torch::Tensor log_density(const torch::Tensor& out, const torch::Tensor& component, const torch::Tensor& coords,
                            Execution execution = Execution::kAuto) const;
  // Draws chart coordinates for each row's chosen piece (zeros for atoms): [N, Da] float64. A
  // temperature T != 1 draws from a tempered density instead, for off-policy exploration (the
  // trainer scores every draw under the untempered policy): Gaussian scales times sqrt(T), von
  // Mises mixtures with logits / T and concentrations / T, Beta mixtures with logits / T and
  // concentrations (c - 1) / T + 1 (floored at 0.01): q^(1/T) for a single Beta or von Mises,
  // near it for mixtures.
  // `noise` > 0 widens Gaussian pieces: their scale becomes sqrt(scale^2 T + noise^2) (exploration
  // of diffusion samplers).
  torch::Tensor sample_coords(const torch::Tensor& out, const torch::Tensor& component, torch::Generator& generator,
                              Execution execution = Execution::kAuto, double temperature = 1.0,
                              double noise = 0.0) const;
  // Draws chart coordinates uniformly on each row's piece domain (zeros for atoms): [N, Da]
  // float64, inside the open cube. Throws ConfigError if a piece lives on R^k.
  torch::Tensor sample_uniform_coords(const torch::Tensor& component, torch::Generator& generator) const;
  // log of the uniform density on each row's piece domain (0 on the unit cube and for atoms,
  // -k log 2pi on the k-torus): [N] float32.
  torch::Tensor log_uniform_density(const torch::Tensor& component) const;
  // Throws ConfigError if a piece lives on R^k, where no uniform density exists.
  void require_uniform() const;

  // Where each piece's raw parameters sit in an output row, in component order (a Gaussian on
  // R^k reads [loc (k) | log-scale (k)] from `offset`).
  struct Piece {
    int64_t component;   // index in the kernel
    Domain domain;
    int64_t dim;
    int64_t offset;      // first raw column in the output row
    int64_t raw_size;
    int64_t mixtures;    // Beta mixture components (cube and interval domains)
  };
  const std::vector<Piece>& pieces() const { return pieces_; }

 private:
  // log q of one piece for every row at coordinates u [N, dim]
  torch::Tensor piece_log_density(const Piece& piece, const torch::Tensor& raw, const torch::Tensor& u) const;
  torch::Tensor piece_sample(const Piece& piece, const torch::Tensor& raw, torch::Generator& generator,
                             double temperature, double noise, bool fixed_shapes) const;

  // Gaussian pieces on R^k sharing the dimension k, two or more of them (one per candidate edge
  // of the Bayesian-network env): scored and drawn in one pass, each row's parameters gathered
  // from its own piece's columns, rather than in a pass per piece (380 passes at d = 20).
  struct GaussianGroup {
    Piece representative;   // a member: domain and dim
    DeviceConstant offset;  // [C] int64: the first raw column of component c's piece, -1 outside the group
  };
  // [N, raw] float: each row's piece parameters within group `g` (rows of other components: any)
  torch::Tensor group_raw(const GaussianGroup& g, const torch::Tensor& out, const torch::Tensor& offsets) const;
  // [N] int64: each row's offset in group `g`, -1 outside it
  torch::Tensor group_offsets(const GaussianGroup& g, const torch::Tensor& component) const;

  KernelSpec spec_;
  int64_t coord_dim_;
  HeadOptions options_;
  std::vector<Piece> pieces_;
  std::vector<bool> grouped_;  // [pieces] the piece belongs to a GaussianGroup
  std::vector<GaussianGroup> gaussian_groups_;
  int64_t output_size_ = 0;
};

}  // namespace gfn

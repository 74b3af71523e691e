#include "core/kernel_head.h"

#include <cmath>
#include <map>
#include <type_traits>

#include <fmt/format.h>
#include <torch/torch.h>

#include "measures/densities.h"

namespace gfn {

const OptionTable<HeadOptions>& HeadOptions::keys() {
  using O = HeadOptions;
  static const auto table =
      OptionTable<O>()
          .add("policy.mixture_components", &O::mixture_components,
               "mixture components of each continuous piece on a cube (Betas) or a circle (von Mises)", in(1, 64))
          .add("policy.s0_mixture_components", &O::initial_mixture_components,
               "mixture components of the pieces available only at s0 (their own output head; 0: as "
               "policy.mixture_components)",
               in(0, 64))
          .add("policy.min_concentration", &O::min_concentration, "lower bound of every Beta concentration",
               above(0).at_most(1e6))
          .add("policy.max_concentration", &O::max_concentration,
               "upper bound of every Beta concentration (> the lower bound; at least 1 where P_B has Betas of its "
               "own, policy.backward = learned, tlm or fixed: below 1 every Beta is unbounded at its chart's faces)",
               above(0).at_most(1e6))
          .rule([](const O& o) {
            return o.max_concentration > o.min_concentration
                       ? std::string()
                       : fmt::format("policy.min_concentration = {}, policy.max_concentration = {}: expected 0 < min "
                                     "< max",
                                     o.min_concentration, o.max_concentration);
          });
  return table;
}

KernelHead::KernelHead(const KernelSpec& spec, int64_t coord_dim, const HeadOptions& options)
    : spec_(spec), coord_dim_(coord_dim), options_(options) {
  options_.validate();
  output_size_ = spec_.size();
  for (int64_t c = 0; c < spec_.size(); ++c) {
    const auto& comp = spec_.components[c];
    if (comp.kind != ComponentKind::kPiece) continue;
    if (comp.dim < 1 || comp.dim > coord_dim_)
      throw std::invalid_argument(fmt::format("piece '{}': dimension {} outside [1, coord_dim = {}]", comp.name,
                                              comp.dim, coord_dim_));
    int64_t raw = 0;
    const int64_t mixtures = comp.initial_only && options_.initial_mixture_components > 0
                                 ? options_.initial_mixture_components
                                 : options_.mixture_components;
    switch (comp.domain) {
      case Domain::kUnitCube:
      case Domain::kInterval: raw = BetaMixture::raw_size(mixtures, comp.dim); break;
      case Domain::kReal: raw = 2 * comp.dim; break;
      case Domain::kCircle: raw = VonMisesMixture::raw_size(mixtures, comp.dim); break;
      case Domain::kNone: throw std::invalid_argument("piece '" + comp.name + "' has no chart domain");
    }
    pieces_.push_back({c, comp.domain, comp.dim, output_size_, raw, mixtures});
    output_size_ += raw;
  }
  // Gaussian pieces of one dimension, two or more: one group each
  grouped_.assign(pieces_.size(), false);
  std::map<int64_t, std::vector<size_t>> real_by_dim;
  for (size_t k = 0; k < pieces_.size(); ++k)
    if (pieces_[k].domain == Domain::kReal) real_by_dim[pieces_[k].dim].push_back(k);
  for (const auto& [dim, members] : real_by_dim) {
    if (members.size() < 2) continue;
    std::vector<int64_t> offset(spec_.size(), -1);
    for (size_t k : members) {
      offset[pieces_[k].component] = pieces_[k].offset;
      grouped_[k] = true;
    }
    gaussian_groups_.push_back({pieces_[members.front()], torch::tensor(offset, torch::kInt64)});
  }
}

torch::Tensor KernelHead::logits(const torch::Tensor& out) const { return out.narrow(1, 0, spec_.size()); }

namespace {

// Builds the density of a piece from its raw parameters and hands it to `f` (`fixed_shapes`: a
// von Mises samples in fixed rounds).
template <typename F>
torch::Tensor with_density(Domain domain, int64_t dim, int64_t mixtures, const HeadOptions& options,
                           const torch::Tensor& raw, bool fixed_shapes, F f) {
  switch (domain) {
    case Domain::kUnitCube:
    case Domain::kInterval:
      return f(BetaMixture::from_raw(raw, mixtures, dim, options.min_concentration, options.max_concentration));
    case Domain::kReal: return f(DiagonalGaussian{raw.narrow(1, 0, dim), raw.narrow(1, dim, dim).clamp(-7.0, 3.0)});
    case Domain::kCircle: return f(VonMisesMixture::from_raw(raw, mixtures, dim, fixed_shapes));
    case Domain::kNone: break;
  }
  throw std::logic_error("piece without a domain");
}

}  // namespace

torch::Tensor KernelHead::piece_log_density(const Piece& piece, const torch::Tensor& raw,
                                            const torch::Tensor& u) const {
  return with_density(piece.domain, piece.dim, piece.mixtures, options_, raw, /*fixed_shapes=*/false,
                      [&](const auto& q) { return q.log_prob(u); });
}

torch::Tensor KernelHead::piece_sample(const Piece& piece, const torch::Tensor& raw, torch::Generator& generator,
                                       double temperature, double noise, bool fixed_shapes) const {
  if (temperature == 1.0 && (noise == 0.0 || piece.domain != Domain::kReal))
    return with_density(piece.domain, piece.dim, piece.mixtures, options_, raw, fixed_shapes,
                        [&](const auto& q) { return q.sample(generator).detach(); });
  // tempered draws for exploration
  const double t = temperature;
  return with_density(piece.domain, piece.dim, piece.mixtures, options_, raw, fixed_shapes, [&](const auto& q) {
    using Q = std::decay_t<decltype(q)>;
    if constexpr (std::is_same_v<Q, BetaMixture>) {
      auto temper = [t](const torch::Tensor& c) { return ((c - 1.0) / t + 1.0).clamp_min(0.01); };
      return BetaMixture{q.logits / t, temper(q.alpha), temper(q.beta)}.sample(generator).detach();
    } else if constexpr (std::is_same_v<Q, DiagonalGaussian>) {
      // scale^2 T + noise^2, in log space
      auto log_var = 2.0 * q.log_scale + std::log(t);
      if (noise > 0.0) log_var = torch::logaddexp(log_var, torch::full_like(log_var, 2.0 * std::log(noise)));
      return DiagonalGaussian{q.loc, 0.5 * log_var}.sample(generator).detach();
    } else {
      return VonMisesMixture{q.logits / t, q.loc, q.concentration / t, q.fixed_rounds}.sample(generator).detach();
    }
  });
}

namespace {

// an interior point of each domain, where every density is finite
double interior_point(Domain domain) { return domain == Domain::kUnitCube || domain == Domain::kInterval ? 0.5 : 0.0; }

}  // namespace

torch::Tensor KernelHead::log_density(const torch::Tensor& out, const torch::Tensor& component,
                                      const torch::Tensor& coords, Execution execution) const {
  execution = resolve_execution(execution, out.device());
  auto total = torch::zeros({out.size(0)}, out.options());
  for (const auto& g : gaussian_groups_) {
    // a group of Gaussians: every member's rows at once, in the network's dtype
    auto offsets = group_offsets(g, component);
    RowSelection rows(offsets.ge(0), execution);
    if (rows.empty()) continue;
    const int64_t dim = g.representative.dim;
    auto u = rows.take_or(coords.narrow(1, 0, dim), 0.0).to(out.scalar_type());
    auto raw = group_raw(g, rows.take(out), rows.take(offsets));
    total = rows.put(piece_log_density(g.representative, raw, u), total);
  }
  for (size_t k = 0; k < pieces_.size(); ++k) {
    if (grouped_[k]) continue;
    const Piece& piece = pieces_[k];
    // each piece's density on its own rows (fixed shapes: on every row, the others' coordinates
    // replaced by an interior point so that their values and gradients stay finite), in float64
    // at float64 coordinates: a coordinate within 1e-30 of a face keeps its digits. Gaussians on
    // R^k have no face: they compute in the network's dtype (a diffusion sampler scores 30,000
    // 32-dimensional steps per iteration; float64 there tripled the scoring time, RESULTS.md)
    RowSelection rows(component.eq(piece.component), execution);
    if (rows.empty()) continue;
    const auto dtype = piece.domain == Domain::kReal ? out.scalar_type() : torch::kFloat64;
    auto u = rows.take_or(coords.narrow(1, 0, piece.dim), interior_point(piece.domain)).to(dtype);
    auto raw = rows.take(out).narrow(1, piece.offset, piece.raw_size).to(dtype);
    total = rows.put(piece_log_density(piece, raw, u).to(out.scalar_type()), total);
  }
  return total;
}

torch::Tensor KernelHead::sample_coords(const torch::Tensor& out, const torch::Tensor& component,
                                        torch::Generator& generator, Execution execution, double temperature,
                                        double noise) const {
  execution = resolve_execution(execution, out.device());
  auto coords = torch::zeros({out.size(0), coord_dim_}, out.options().dtype(torch::kFloat64));
  for (const auto& g : gaussian_groups_) {
    auto offsets = group_offsets(g, component);
    RowSelection rows(offsets.ge(0), execution);
    if (rows.empty()) continue;
    auto raw = group_raw(g, rows.take(out), rows.take(offsets)).to(torch::kFloat64);
    auto u = piece_sample(g.representative, raw, generator, temperature, noise, rows.fixed());
    const int64_t dim = g.representative.dim;
    coords = rows.put(dim == coord_dim_ ? u : torch::constant_pad_nd(u, {0, coord_dim_ - dim}), coords);
  }
  for (size_t k = 0; k < pieces_.size(); ++k) {
    if (grouped_[k]) continue;
    const Piece& piece = pieces_[k];
    // float64 draws: a Beta of concentration 0.1 puts 1e-4 of its mass below float32's smallest
    // normal and 1e-31 below float64's
    RowSelection rows(component.eq(piece.component), execution);
    if (rows.empty()) continue;
    auto raw = rows.take(out).narrow(1, piece.offset, piece.raw_size).to(torch::kFloat64);
    auto u = piece_sample(piece, raw, generator, temperature, noise, rows.fixed());
    auto padded = piece.dim == coord_dim_ ? u : torch::constant_pad_nd(u, {0, coord_dim_ - piece.dim});
    coords = rows.put(padded, coords);
  }
  return coords;
}

torch::Tensor KernelHead::group_offsets(const GaussianGroup& g, const torch::Tensor& component) const {
  auto table = g.offset.on(component.device());
  return torch::where(component.ge(0), table.index_select(0, component.clamp_min(0)), torch::full_like(component, -1));
}

torch::Tensor KernelHead::group_raw(const GaussianGroup& g, const torch::Tensor& out,
                                    const torch::Tensor& offsets) const {
  // columns offset .. offset + 2k of each row: [loc (k) | log-scale (k)]
  auto columns = offsets.clamp_min(0).unsqueeze(1) + torch::arange(g.representative.raw_size, offsets.options());
  return out.gather(1, columns);
}

torch::Tensor KernelHead::sample_uniform_coords(const torch::Tensor& component, torch::Generator& generator) const {
  require_uniform();
  auto f64 = component.options().dtype(torch::kFloat64);
  auto coords = torch::zeros({component.size(0), coord_dim_}, f64);
  for (const auto& piece : pieces_) {
    // the open cube (0, 1)^k: a draw of exactly 0 would sit outside the Betas' support
    auto u = clamp_open_unit(torch::rand({component.size(0), piece.dim}, generator, f64));
    if (piece.domain == Domain::kCircle) u = (2.0 * M_PI) * u - M_PI;  // [-pi, pi)
    auto padded = piece.dim == coord_dim_ ? u : torch::constant_pad_nd(u, {0, coord_dim_ - piece.dim});
    coords = torch::where(component.eq(piece.component).unsqueeze(1), padded, coords);
  }
  return coords;
}

torch::Tensor KernelHead::log_uniform_density(const torch::Tensor& component) const {
  require_uniform();
  auto total = torch::zeros({component.size(0)}, component.options().dtype(torch::kFloat32));
  for (const auto& piece : pieces_) {
    // (2 pi)^-k on the torus
    const double lq = piece.domain == Domain::kCircle ? -static_cast<double>(piece.dim) * std::log(2 * M_PI) : 0.0;
    total = torch::where(component.eq(piece.component), torch::full_like(total, lq), total);
  }
  return total;
}

void KernelHead::require_uniform() const {
  for (const auto& piece : pieces_)
    if (piece.domain == Domain::kReal)
      throw ConfigError(fmt::format("policy.backward = \"uniform\": piece '{}' lives on R^{}, which has no uniform "
                                    "density; use \"learned\" (or \"fixed\" where the env supplies P_B)",
                                    spec_.components[piece.component].name, piece.dim));
}

}  // namespace gfn

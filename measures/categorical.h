// The categorical distribution over the available components of a kernel: the discrete part
// of every policy head (pi(c | s) in log p_F = log pi(c | s) + log q(u | s, c) - log J; core/env.h). Batched, any device, log space.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace gfn {

// log softmax of `logits` ([N, C]) over the entries where `mask` ([N, C] bool) is true; -inf
// elsewhere. A row with a single available entry gets exactly 0 there (a forced move).
torch::Tensor masked_log_softmax(const torch::Tensor& logits, const torch::Tensor& mask);

// Standard Gumbel noise G = -log(-log U) of shape `sizes`, U ~ Uniform[0, 1) from `generator`
// clamped away from 0 so that G is always finite: argmax(log p + G) is then a draw from p that
// never picks an entry with p = 0.
torch::Tensor gumbel_noise(at::IntArrayRef sizes, torch::Generator& generator, const torch::TensorOptions& options);

// Inverse-CDF draw on the host from one row of cumulative weights `cdf` (C entries, not
// necessarily normalised) with u in [0, 1): the first entry whose cumulative weight exceeds
// u * total. Zero-weight entries are never returned; rounding at the top falls back to the last
// entry with positive weight.
inline int64_t inverse_cdf_pick(const double* cdf, int64_t C, double u) {
  const double target = u * cdf[C - 1];
  int64_t c = 0;
  while (c < C && !(cdf[c] > target)) ++c;
  if (c == C) {
    c = C - 1;
    while (c > 0 && cdf[c] == cdf[c - 1]) --c;
  }
  return c;
}

}  // namespace gfn

// Fused operations of the rollout (issue 7): one CUDA kernel each on CUDA tensors, in a build
// with CUDA, in place of several LibTorch operations (and as many kernel launches) per rollout
// step. On CPU tensors the same functions run host loops over the kernels' row functions
// (core/kernels/rows.h): what the tests compare with the LibTorch operations.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace gfn::fused {

// Whether the fused CUDA kernels run for tensors on `device`: a CUDA build, a CUDA device, and
// not switched off (set_enabled(false): bench_train --kernels off times the LibTorch operations).
bool enabled(const torch::Device& device);
void set_enabled(bool on);

// One step of masked Gumbel-max sampling (rows::categorical_step) on logits [B, C] (float32),
// mask [B, C] bool, done [B] bool (undefined: no row is done) and Gumbel noise [B, C]:
//   score = where(mask | done, logits, -inf), component = argmax(score + gumbel),
//   stay = done | component == exit.
struct CategoricalStep {
  torch::Tensor score;      // [B, C] float32
  torch::Tensor component;  // [B] int64
  torch::Tensor stay;       // [B] bool
};
// The kernel where enabled (float32 logits), the LibTorch operations otherwise.
CategoricalStep categorical_step(const torch::Tensor& logits, const torch::Tensor& mask, const torch::Tensor& done,
                                 const torch::Tensor& gumbel, int64_t exit);
// The LibTorch operations and the host loop over the row function (CPU tensors), for tests.
CategoricalStep categorical_step_ops(const torch::Tensor& logits, const torch::Tensor& mask, const torch::Tensor& done,
                                     const torch::Tensor& gumbel, int64_t exit);
CategoricalStep categorical_step_rows(const torch::Tensor& logits, const torch::Tensor& mask,
                                      const torch::Tensor& done, const torch::Tensor& gumbel, int64_t exit);

// The hypergrid's one-hot features [B, n * H], forward mask [B, n + 1] and forward step [B, n]
// of states x [B, n] int64 (components [B] int64): the kernel on CUDA tensors, the host loop
// over the row function on CPU tensors. HypergridEnv calls them where enabled().
torch::Tensor hypergrid_features(const torch::Tensor& x, int64_t height);
torch::Tensor hypergrid_forward_mask(const torch::Tensor& x, int64_t height);
torch::Tensor hypergrid_step(const torch::Tensor& x, const torch::Tensor& component);

}  // namespace gfn::fused

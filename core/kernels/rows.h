// The per-row work of gfn's fused kernels, written once for both sides: the CUDA kernels
// (core/kernels/cuda_kernels.cu) run one row per thread, and the host reference loops
// (core/kernels/kernels.cc) run the same functions on the CPU, where the tests compare them with
// the LibTorch operations they replace. Plain C++ on raw pointers, no LibTorch.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define GFN_HD __host__ __device__
#else
#define GFN_HD
#endif

namespace gfn::rows {

// One step of masked Gumbel-max sampling over C components (the rollout's categorical draw):
//   score[c] = allowed ? logits[c] : -inf,  allowed = mask[c] || done,
//   component = the first c maximising score[c] + gumbel[c]  (torch.argmax's tie rule),
//   stay = done || component == exit.
// A finished row (done) gets a full mask, so that its draw stays finite; the caller masks it out.
GFN_HD inline void categorical_step(const float* logits, const bool* mask, const float* gumbel, bool done,
                                    int64_t C, int64_t exit, float* score, int64_t* component, bool* stay) {
  const float neg_inf = -INFINITY;
  int64_t best = 0;
  float best_value = neg_inf;
  bool first = true;
  for (int64_t c = 0; c < C; ++c) {
    const float s = (mask[c] || done) ? logits[c] : neg_inf;
    score[c] = s;
    const float v = s + gumbel[c];
    if (first || v > best_value) {
      best = c;
      best_value = v;
      first = false;
    }
  }
  *component = best;
  *stay = done || best == exit;
}

// Hypergrid of n coordinates in [0, H): the one-hot features of state x ([n * H] floats).
GFN_HD inline void hypergrid_features(const int64_t* x, int64_t n, int64_t H, float* out) {
  for (int64_t i = 0; i < n * H; ++i) out[i] = 0.0f;
  for (int64_t d = 0; d < n; ++d) out[d * H + x[d]] = 1.0f;
}

// Its forward mask ([n + 1]): coordinate d may go up while below H - 1; the exit always.
GFN_HD inline void hypergrid_forward_mask(const int64_t* x, int64_t n, int64_t H, bool* out) {
  for (int64_t d = 0; d < n; ++d) out[d] = x[d] < H - 1;
  out[n] = true;
}

// Its forward step: component d < n raises coordinate d by one; the exit (n) changes nothing.
GFN_HD inline void hypergrid_step(const int64_t* x, int64_t component, int64_t n, int64_t* next) {
  for (int64_t d = 0; d < n; ++d) next[d] = x[d] + (component == d ? 1 : 0);
}

}  // namespace gfn::rows

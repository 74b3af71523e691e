// Launchers of gfn's CUDA kernels (core/kernels/cuda_kernels.cu), on raw device pointers of
// contiguous row-major arrays and a cudaStream_t passed as void* (so that callers need no CUDA
// headers). Each launches one kernel, asynchronously, and throws std::runtime_error when the
// launch fails. Built only with GFN_WITH_CUDA.
#pragma once

#include <cstdint>

namespace gfn::cuda {

// rows::categorical_step on B rows of C components: logits, gumbel, score [B, C] float; mask
// [B, C] bool; done, stay [B] bool; component [B] int64.
void categorical_step(const float* logits, const bool* mask, const float* gumbel, const bool* done, int64_t B,
                      int64_t C, int64_t exit, float* score, int64_t* component, bool* stay, void* stream);

// The hypergrid's rows::hypergrid_* on B states x [B, n] int64: features [B, n * H] float,
// forward mask [B, n + 1] bool, next states [B, n] int64 from components [B] int64.
void hypergrid_features(const int64_t* x, int64_t B, int64_t n, int64_t H, float* out, void* stream);
void hypergrid_forward_mask(const int64_t* x, int64_t B, int64_t n, int64_t H, bool* out, void* stream);
void hypergrid_step(const int64_t* x, const int64_t* component, int64_t B, int64_t n, int64_t* next, void* stream);

}  // namespace gfn::cuda

// gfn's fused CUDA kernels: one thread per row, each running the row function of
// core/kernels/rows.h that the CPU tests hold to the LibTorch operations these kernels replace.
// Raw pointers and streams only (no LibTorch headers: this file compiles with nvcc alone);
// core/kernels/kernels.cc calls the launchers with tensors' data on LibTorch's current stream.
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/kernels/cuda_launch.h"
#include "core/kernels/rows.h"

namespace gfn::cuda {

namespace {

constexpr int kThreads = 128;

int blocks(int64_t rows) { return static_cast<int>((rows + kThreads - 1) / kThreads); }

void check(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

__global__ void categorical_step_kernel(const float* logits, const bool* mask, const float* gumbel, const bool* done,
                                        int64_t B, int64_t C, int64_t exit, float* score, int64_t* component,
                                        bool* stay) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b >= B) return;
  rows::categorical_step(logits + b * C, mask + b * C, gumbel + b * C, done[b], C, exit, score + b * C,
                         component + b, stay + b);
}

__global__ void hypergrid_features_kernel(const int64_t* x, int64_t B, int64_t n, int64_t H, float* out) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b < B) rows::hypergrid_features(x + b * n, n, H, out + b * n * H);
}

__global__ void hypergrid_forward_mask_kernel(const int64_t* x, int64_t B, int64_t n, int64_t H, bool* out) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b < B) rows::hypergrid_forward_mask(x + b * n, n, H, out + b * (n + 1));
}

__global__ void hypergrid_step_kernel(const int64_t* x, const int64_t* component, int64_t B, int64_t n,
                                      int64_t* next) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b < B) rows::hypergrid_step(x + b * n, component[b], n, next + b * n);
}

}  // namespace

void categorical_step(const float* logits, const bool* mask, const float* gumbel, const bool* done, int64_t B,
                      int64_t C, int64_t exit, float* score, int64_t* component, bool* stay, void* stream) {
  if (B == 0) return;
  categorical_step_kernel<<<blocks(B), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      logits, mask, gumbel, done, B, C, exit, score, component, stay);
  check("gfn::cuda::categorical_step");
}

void hypergrid_features(const int64_t* x, int64_t B, int64_t n, int64_t H, float* out, void* stream) {
  if (B == 0) return;
  hypergrid_features_kernel<<<blocks(B), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, B, n, H, out);
  check("gfn::cuda::hypergrid_features");
}

void hypergrid_forward_mask(const int64_t* x, int64_t B, int64_t n, int64_t H, bool* out, void* stream) {
  if (B == 0) return;
  hypergrid_forward_mask_kernel<<<blocks(B), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, B, n, H, out);
  check("gfn::cuda::hypergrid_forward_mask");
}

void hypergrid_step(const int64_t* x, const int64_t* component, int64_t B, int64_t n, int64_t* next, void* stream) {
  if (B == 0) return;
  hypergrid_step_kernel<<<blocks(B), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, component, B, n, next);
  check("gfn::cuda::hypergrid_step");
}

}  // namespace gfn::cuda

// One training iteration captured as a CUDA graph and replayed (train.cuda_graph).
//
// A GFlowNet iteration on a small network is hundreds of small kernels; launched one by one from
// the host, their launch cost is the iteration's cost. Captured once and replayed, they launch
// as one graph. What makes an iteration capturable is built elsewhere: fixed shapes and no host
// reads in the rollout and the scoring (core/types.h fixed_shapes), an optimiser whose step
// counter and learning rates live on the device (FusedAdam::set_device_state), and draws from
// the device's default generator (the only one LibTorch 1.13 lets a capture advance).
//
// Compiled against a CUDA-enabled LibTorch only (GFN_WITH_CUDA); elsewhere the constructor
// throws ConfigError naming train.cuda_graph.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include <torch/types.h>

namespace gfn {

// The default CUDA generator of `device`, reseeded with `seed`: a captured draw from it takes a
// fresh Philox offset at every replay.
torch::Generator graph_generator(uint64_t seed, const torch::Device& device);

// The peak of memory allocated through LibTorch's caching allocator on CUDA `device` (0 in a
// build without CUDA), for benchmarks.
int64_t cuda_peak_memory_bytes(const torch::Device& device);

class CudaGraphStep {
 public:
  // `warmup` eager iterations run before the capture (lazy initialisations such as cuBLAS's
  // workspace and the envs' device constants must happen outside it).
  CudaGraphStep(const torch::Device& device, int64_t warmup);
  ~CudaGraphStep();
  CudaGraphStep(const CudaGraphStep&) = delete;
  CudaGraphStep& operator=(const CudaGraphStep&) = delete;

  // One iteration, on a side stream: `body` itself for the first `warmup` calls, its capture
  // and a replay at the next, replays from then on. The tensors the body wrote at its capture
  // are rewritten by every replay. The side stream waits for the caller's stream before the
  // iteration and the caller's stream for the iteration after it, so the caller reads results
  // and evaluates parameters as usual.
  void run(const std::function<void()>& body);
  bool captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gfn

#include "core/cuda_graph.h"

#include <fmt/format.h>

#include "core/params.h"

#ifdef GFN_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace gfn {

#ifdef GFN_WITH_CUDA

torch::Generator graph_generator(uint64_t seed, const torch::Device& device) {
  auto gen = at::cuda::detail::getDefaultCUDAGenerator(device.has_index() ? device.index() : -1);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
  return gen;
}

int64_t cuda_peak_memory_bytes(const torch::Device& device) {
  const auto index = device.has_index() ? device.index() : static_cast<c10::DeviceIndex>(at::cuda::current_device());
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  return stats.allocated_bytes[static_cast<size_t>(c10::cuda::CUDACachingAllocator::StatType::AGGREGATE)].peak;
}

struct CudaGraphStep::Impl {
  Impl(const torch::Device& d, int64_t w)
      : device(d.has_index() ? d.index() : static_cast<c10::DeviceIndex>(at::cuda::current_device())),
        warmup(w),
        side(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device)) {}
  c10::DeviceIndex device;
  int64_t warmup;
  int64_t calls = 0;
  c10::cuda::CUDAStream side;
  at::cuda::CUDAGraph graph;
  bool captured = false;
};

CudaGraphStep::CudaGraphStep(const torch::Device& device, int64_t warmup) {
  if (!device.is_cuda())
    throw ConfigError(fmt::format("train.cuda_graph = true: needs a CUDA device, not device = \"{}\"", device.str()));
  impl_ = std::make_unique<Impl>(device, warmup);
}

CudaGraphStep::~CudaGraphStep() = default;

bool CudaGraphStep::captured() const { return impl_->captured; }

void CudaGraphStep::run(const std::function<void()>& body) {
  c10::cuda::CUDAGuard device_guard(impl_->device);
  auto caller = c10::cuda::getCurrentCUDAStream(impl_->device);
  at::cuda::CUDAEvent before, after;
  before.record(caller);
  before.block(impl_->side);
  {
    c10::cuda::CUDAStreamGuard stream_guard(impl_->side);
    if (impl_->captured) {
      impl_->graph.replay();
    } else if (impl_->calls < impl_->warmup) {
      body();
    } else {
      impl_->side.synchronize();  // the capture starts from an idle stream
      impl_->graph.capture_begin();
      body();
      impl_->graph.capture_end();
      impl_->captured = true;
      impl_->graph.replay();  // the capture ran nothing: this is the iteration
    }
  }
  ++impl_->calls;
  after.record(impl_->side);
  after.block(caller);
}

#else

torch::Generator graph_generator(uint64_t /*seed*/, const torch::Device& device) {
  throw ConfigError(fmt::format("train.cuda_graph = true: this gfn was built without CUDA (device \"{}\"); build "
                                "against a CUDA-enabled LibTorch (README: GPU build)",
                                device.str()));
}

int64_t cuda_peak_memory_bytes(const torch::Device& /*device*/) { return 0; }

struct CudaGraphStep::Impl {};

CudaGraphStep::CudaGraphStep(const torch::Device& device, int64_t /*warmup*/) {
  throw ConfigError(fmt::format("train.cuda_graph = true: CUDA graphs need device = \"cuda\" and a gfn built against "
                                "a CUDA-enabled LibTorch (README: GPU build); this one has no CUDA (device = \"{}\")",
                                device.str()));
}

CudaGraphStep::~CudaGraphStep() = default;

bool CudaGraphStep::captured() const { return false; }

void CudaGraphStep::run(const std::function<void()>& body) { body(); }

#endif

}  // namespace gfn

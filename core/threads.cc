#include "core/threads.h"

#include <dlfcn.h>

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <torch/torch.h>

namespace gfn {

void set_cpu_threads(int threads) {
  torch::set_num_threads(threads);
  // OpenBLAS is found at run time: the BLAS behind LibTorch is chosen by Debian's alternatives
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(threads);
}

void tune_allocator() {
#if defined(__GLIBC__)
  const auto user_set = [](const char* name) { return std::getenv(name) != nullptr; };
  if (user_set("MALLOC_MMAP_THRESHOLD_") || user_set("MALLOC_TRIM_THRESHOLD_") || user_set("MALLOC_TOP_PAD_")) return;
  // both together: fixing either one alone turns off glibc's dynamic mmap threshold, and the
  // trim threshold alone then maps every block over 128 KiB anew (21 ms an iteration, not 11)
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

}  // namespace gfn

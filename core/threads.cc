#include "core/threads.h"

#include <dlfcn.h>

#include <torch/torch.h>

namespace gfn {

void set_cpu_threads(int threads) {
  torch::set_num_threads(threads);
  // OpenBLAS is found at run time: the BLAS behind LibTorch is chosen by Debian's alternatives
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(threads);
}

}  // namespace gfn

// Stand-in for the header a CUDA build of LibTorch generates and Debian's CPU-only libtorch-dev
// leaves out; used only by the cuda_syntax test, which type-checks gfn's CUDA code on machines
// without a CUDA LibTorch (CMakeLists.txt).
#pragma once
#define C10_CUDA_BUILD_SHARED_LIBS

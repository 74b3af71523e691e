// The process's CPU settings for training: intra-op threads and the allocator.
#pragma once

namespace gfn {

// Sets LibTorch's intra-op threads and, when the process runs on OpenBLAS, OpenBLAS's own
// thread pool (which otherwise spins on every core beside LibTorch's threads). On the 2-core
// machine a hypergrid TB iteration is fastest with 1 (bench/RESULTS.md).
void set_cpu_threads(int threads);

// Keeps glibc's allocator from handing freed tensor memory back to the kernel after every
// iteration: blocks up to 64 MiB come from the heap (not a fresh mmap each), and the heap is
// trimmed only beyond 256 MiB free. By default glibc returns a freed heap top over 128 KiB and
// maps large blocks anew, so each iteration's activations fault in fresh zeroed pages: on the
// 2-core VM a third of the Box 2-D's iteration (11.0 -> 7.3 ms, bench/RESULTS.md) and the reason
// two processes side by side slowed each other. Peak memory grows a little (the Box 184 -> 186
// MB, the diffusion sampler 262 -> 288 MB): freed blocks stay with the process for the next
// iteration. Leaves either setting alone where the user set it through
// glibc's environment (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_);
// nothing outside glibc.
void tune_allocator();

}  // namespace gfn

// CPU threading of a run.
#pragma once

namespace gfn {

// Sets LibTorch's intra-op threads and, when the process runs on OpenBLAS, OpenBLAS's own
// thread pool (which otherwise spins on every core beside LibTorch's threads). On the 2-core
// machine a hypergrid TB iteration is fastest with 1 (bench/RESULTS.md).
void set_cpu_threads(int threads);

}  // namespace gfn

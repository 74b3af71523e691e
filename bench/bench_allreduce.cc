// The gradient all-reduce alone (core/distributed.h): two local processes (a fork), each averaging
// the gradients of a parameter set of the given size over and over, through shared memory
// (distributed.transport = "auto") and through Gloo; prints ms per all-reduce on rank 0. What an
// iteration of a data-parallel run pays on top of its compute, without the wait for the slower
// rank that a real iteration adds.
//   bench_allreduce [--params N] [--iters K]   (default: 75,526, the 2x256 MLP of hypergrid 4-D H=8)
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/distributed.h"
#include "core/threads.h"

int main(int argc, char** argv) {
  int64_t params = 75526, iters = 500;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--params") == 0) params = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::atoll(argv[i + 1]);
  }
  if (!gfn::distributed_available()) {
    std::printf("built without c10d's Gloo\n");
    return 0;
  }
  const int port = 20000 + static_cast<int>(::getpid() % 20000);
  const pid_t child = ::fork();
  const int64_t rank = child == 0 ? 1 : 0;
  gfn::set_cpu_threads(1);
  gfn::tune_allocator();
  for (const auto transport : {gfn::Transport::kAuto, gfn::Transport::kGloo}) {
    gfn::DistributedOptions o;
    o.rank = rank;
    o.world_size = 2;
    o.master_port = transport == gfn::Transport::kAuto ? port : port + 1;
    o.timeout_s = 60;
    o.transport = transport;
    gfn::Collective c(o);
    // the MLP's parameters as four tensors, float32 like a policy's
    std::vector<torch::Tensor> p;
    for (int64_t k = 0; k < 4; ++k) {
      auto t = torch::zeros({params / 4 + (k == 0 ? params % 4 : 0)}).requires_grad_(true);
      t.mutable_grad() = torch::randn_like(t);
      p.push_back(t);
    }
    for (int i = 0; i < 20; ++i) c.average_gradients(p);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iters; ++i) c.average_gradients(p);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rank == 0)
      std::printf("all-reduce of %lld float32 parameters on 2 processes through %s: %.3f ms each\n",
                  static_cast<long long>(params), c.transport().c_str(), 1e3 * s / static_cast<double>(iters));
  }
  if (rank == 0) {
    int status = 0;
    ::waitpid(child, &status, 0);
  }
  return 0;
}

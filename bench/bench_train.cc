// Benchmark: milliseconds per training iteration (sampling included) and trajectories per
// second, for hypergrid with trajectory balance. Prints one line per configuration.
//
//   bench_train [--iters N] [--warmup N] [--threads N] [--tabular auto|on|off] [--only NAME]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/estimator.h"
#include "core/threads.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"
#include "losses/tb.h"

namespace {

struct Case {
  std::string name;
  int64_t ndim, height, batch, hidden, layers;
};

void run_case(const Case& c, int64_t iters, int64_t warmup, gfn::TabularMode mode) {
  gfn::HypergridOptions ho;
  ho.ndim = c.ndim;
  ho.height = c.height;
  gfn::HypergridEnv env(ho);
  gfn::EstimatorOptions eo;
  eo.hidden = c.hidden;
  eo.layers = c.layers;
  auto gen = gfn::make_generator(0, torch::kCPU);
  gfn::Estimators est(env, eo, gen, torch::kCPU);
  gfn::TrajectoryBalance tb;
  gfn::TrainerOptions to;
  to.batch_size = c.batch;
  to.tabular = mode;
  gfn::Trainer trainer(env, est, tb, to, 0, torch::kCPU);
  for (int64_t i = 0; i < warmup; ++i) trainer.step();
  auto t0 = std::chrono::steady_clock::now();
  double steps = 0;
  for (int64_t i = 0; i < iters; ++i) {
    auto r = trainer.step();
    steps += r.trajectories.length.sum().item<double>();
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%-28s tabular=%-3s  %8.3f ms/iter  %10.0f traj/s  mean length %.2f\n", c.name.c_str(),
              trainer.tabular() ? "yes" : "no", 1e3 * s / iters, c.batch * iters / s, steps / (c.batch * iters));
}

}  // namespace

int main(int argc, char** argv) {
  int64_t iters = 2000, warmup = 200, threads = 1;
  std::string tabular = "auto", only;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--iters") iters = std::stoll(argv[i + 1]);
    else if (k == "--warmup") warmup = std::stoll(argv[i + 1]);
    else if (k == "--threads") threads = std::stoll(argv[i + 1]);
    else if (k == "--tabular") tabular = argv[i + 1];
    else if (k == "--only") only = argv[i + 1];
    else {
      std::fprintf(stderr, "bench_train: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  gfn::set_cpu_threads(static_cast<int>(threads));
  auto mode = tabular == "on" ? gfn::TabularMode::kOn : tabular == "off" ? gfn::TabularMode::kOff : gfn::TabularMode::kAuto;
  std::printf("bench_train: TB, MLP 2x256, %lld iterations after %lld warm-up, %lld thread(s)\n",
              static_cast<long long>(iters), static_cast<long long>(warmup), static_cast<long long>(threads));
  std::vector<Case> cases = {{"hypergrid 2-D H=8 batch 16", 2, 8, 16, 256, 2},
                             {"hypergrid 4-D H=8 batch 16", 4, 8, 16, 256, 2}};
  for (const auto& c : cases)
    if (only.empty() || c.name.find(only) != std::string::npos) run_case(c, iters, warmup, mode);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("peak resident memory %.0f MiB\n", usage.ru_maxrss / 1024.0);
  return 0;
}

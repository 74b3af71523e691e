// What logging costs a training run: `gfn train` (the library's train()) at the default log
// settings (a /train row every 10 iterations with its host reads and gradient norm, trajectories
// every 1000, a flush every 10 s, a checkpoint every 60 s) against the same run logging one row
// at the end (no trajectories, no periodic flush or checkpoint). Both evaluate once, at the end,
// and write the same samples; runs alternate, and the medians are compared.
//
//   build/bin/bench_logging [--config configs/hypergrid.toml] [--iterations 3000] [--repeats 5]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/run.h"
#include "bench/bench_flags.h"

namespace {

namespace fs = std::filesystem;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "configs/hypergrid.toml";
  int64_t iterations = 3000, repeats = 5;
  const char* help =
      "usage: bench_logging [--config FILE] [--iterations N] [--repeats R]\n"
      "  ms per iteration of gfn train with the default logging and with almost none\n";
  if (auto code = gfn::bench::parse_flags(argc, argv, "bench_logging", help, [&](const std::string& k, const char* v) {
        if (k == "--config") config_path = v;
        else if (k == "--iterations") iterations = std::stoll(v);
        else if (k == "--repeats") repeats = std::stoll(v);
        else return false;
        return true;
      }))
    return *code;

  const auto registry = gfn::Registry::builtin();
  const std::string n = std::to_string(iterations);
  const std::vector<std::string> common = {"train.iterations=" + n, "eval.every=0"};
  std::vector<std::string> quiet = common;
  for (const char* s : {"log.trajectories_every=0", "checkpoint.seconds=0", "log.flush_seconds=1e9"})
    quiet.push_back(s);
  quiet.push_back("log.every=" + n);
  const fs::path root = fs::temp_directory_path() / ("gfn_bench_logging_" + std::to_string(::getpid()));
  std::vector<double> logged, silent;
  for (int64_t r = 0; r < repeats; ++r) {
    for (int variant = 0; variant < 2; ++variant) {
      auto config = gfn::load_config_file(config_path, variant == 0 ? common : quiet, gfn::run_schema(registry));
      gfn::TrainOptions options;
      options.out_dir = (root / std::to_string(2 * r + variant)).string();
      options.progress = gfn::ProgressStyle::kNone;
      const auto t0 = std::chrono::steady_clock::now();
      gfn::train(config, options, registry);
      const double ms = 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                        static_cast<double>(iterations);
      (variant == 0 ? logged : silent).push_back(ms);
      fs::remove_all(options.out_dir);
    }
  }
  fs::remove_all(root);
  const double a = median(logged), b = median(silent);
  std::vector<double> ratios;  // per interleaved pair: the machine's drift cancels
  for (size_t i = 0; i < logged.size(); ++i) ratios.push_back(logged[i] / silent[i]);
  std::sort(ratios.begin(), ratios.end());
  std::printf("bench_logging %s, %lld iterations, %lld repeats (medians, whole train() incl. setup, final eval, samples)\n",
              config_path.c_str(), static_cast<long long>(iterations), static_cast<long long>(repeats));
  std::printf("  default logging : %.4f ms/iteration\n", a);
  std::printf("  one row at end  : %.4f ms/iteration\n", b);
  std::printf("  logging overhead: %+.2f %% (ratio of medians); per pair median %+.2f %%, range %+.2f .. %+.2f %%\n",
              100.0 * (a / b - 1.0), 100.0 * (median(ratios) - 1.0), 100.0 * (ratios.front() - 1.0),
              100.0 * (ratios.back() - 1.0));
  return 0;
}

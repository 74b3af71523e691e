// What the hardening costs: an atomic file write (core/file_io.h) with and without the fsync of
// the file and of its directory, at the sizes of real checkpoints (60 KB: a 2x32 hypergrid MLP;
// 900 KB: the default 2x256 MLP with its Adam moments; 10 MB), and the per-step check that
// every gradient is finite (core/optim.h all_finite) over the default MLP's 75,526 parameters.
// Writes alternate between the two variants; medians.
//
//   build/bin/bench_durability [--dir DIR] [--repeats 30]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "bench/bench_flags.h"
#include "core/file_io.h"
#include "core/optim.h"

namespace {

namespace fs = std::filesystem;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class F>
double ms(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return 1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "runs";
  int64_t repeats = 30;
  const char* help =
      "usage: bench_durability [--dir DIR] [--repeats R]\n"
      "  ms per atomic checkpoint-sized write with and without fsync (in DIR, default runs/), and us per "
      "finite-gradient check\n";
  if (auto code = gfn::bench::parse_flags(argc, argv, "bench_durability", help, [&](const std::string& k, const char* v) {
        if (k == "--dir") dir = v;
        else if (k == "--repeats") repeats = std::stoll(v);
        else return false;
        return true;
      }))
    return *code;
  const fs::path root = fs::path(dir) / ("bench_durability_" + std::to_string(::getpid()));
  fs::create_directories(root);
  std::printf("bench_durability: %lld repeats in %s (medians)\n", static_cast<long long>(repeats), root.c_str());
  for (const size_t bytes : {size_t{60} << 10, size_t{900} << 10, size_t{10} << 20}) {
    const std::string data(bytes, 'x');
    const std::string path = (root / "checkpoint.pt").string();
    std::vector<double> synced, unsynced;
    for (int64_t r = 0; r < repeats; ++r) {
      synced.push_back(ms([&] { gfn::write_file_atomic(path, data, true); }));
      unsynced.push_back(ms([&] { gfn::write_file_atomic(path, data, false); }));
    }
    std::printf("  %6zu KB: fsync %.3f ms, no fsync %.3f ms (+%.3f ms)\n", bytes >> 10, median(synced),
                median(unsynced), median(synced) - median(unsynced));
  }
  fs::remove_all(root);

  // the default policy's gradients: 2x256 MLP trunk and heads, 75,526 float32 parameters
  const auto grad = torch::randn({75526});
  std::vector<double> check;
  bool finite = true;
  for (int64_t r = 0; r < 1000; ++r) check.push_back(1e3 * ms([&] { finite = finite && gfn::all_finite(grad); }));
  std::printf("  finite-gradient check of 75,526 float32: %.2f us (%s)\n", median(check), finite ? "finite" : "not");
  return 0;
}

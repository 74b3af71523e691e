// Benchmark: `gfn analyse` on a large synthetic log. Writes a log with --rows /train rows (10
// columns), --eval-rows /eval rows (10 metrics), --samples terminal samples and a --grid x --grid
// /grid with one terminating distribution per evaluation, then times analyse() on it: the
// summary alone, with --csv, and with --plot (gnuplot); prints the median milliseconds of each
// over --reps repetitions (the first call, which meets a cold page cache, excluded).
//
//   bench_analyse [--rows N] [--eval-rows N] [--samples N] [--grid N] [--reps N] [--dir DIR]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_flags.h"
#include "io/analyse.h"
#include "io/hdf5_log.h"

namespace {

namespace fs = std::filesystem;

constexpr const char* kHelp =
    "bench_analyse: times `gfn analyse` (summary, --csv, --plot) on a synthetic log\n"
    "  --rows N       /train rows (default 100000)\n"
    "  --eval-rows N  /eval rows, each with a /grid row (default 1000)\n"
    "  --samples N    terminal samples (default 10000)\n"
    "  --grid N       cells per side of /grid (default 100)\n"
    "  --reps N       timed repetitions (default 3)\n"
    "  --dir DIR      where the log and outputs go (default a fresh folder in the temp dir)\n";

// Writes the synthetic log (a 2-D hypergrid-like run) at `path`.
void write_log(const std::string& path, int64_t rows, int64_t eval_rows, int64_t samples, int64_t grid) {
  gfn::LogAttributes a;
  a.gfn_version = "0.1.0";
  a.created_utc = gfn::utc_now_iso8601();
  a.config_toml = "name = \"bench\"\nseed = 0\n[env]\nkind = \"hypergrid\"\nndim = 2\nheight = 100\n";
  a.env = "hypergrid";
  a.objective = "tb";
  a.device = "cpu";
  auto log = gfn::Hdf5Log::create(path, a);
  const int64_t every = std::max<int64_t>(1, rows / std::max<int64_t>(eval_rows, 1));

  // /grid: the axes and R, then a terminating distribution per evaluation
  std::vector<double> axis(static_cast<size_t>(grid)), log_reward, terminating(static_cast<size_t>(grid * grid));
  for (int64_t i = 0; i < grid; ++i) axis[static_cast<size_t>(i)] = static_cast<double>(i);
  for (int64_t i = 0; i < grid; ++i)
    for (int64_t j = 0; j < grid; ++j) log_reward.push_back(std::log(0.1 + ((i / 10 + j / 10) % 3 == 0 ? 2.0 : 0.0)));
  log->append("grid", "x", gfn::LogDType::kFloat64, {}, axis.data(), grid);
  log->append("grid", "y", gfn::LogDType::kFloat64, {}, axis.data(), grid);
  log->append("grid", "log_reward", gfn::LogDType::kFloat64, {grid}, log_reward.data(), grid);

  for (int64_t it = 1; it <= rows; ++it) {
    const double t = static_cast<double>(it);
    log->append_row("train", {{"iteration", t},
                              {"trajectories", 16 * t},
                              {"wall_s", 2e-3 * t},
                              {"loss", 10 / std::sqrt(t) * (1.2 + std::sin(t))},
                              {"log_z", 3 - 3 / std::sqrt(t)},
                              {"lr", 1e-3},
                              {"grad_norm", 1 / std::sqrt(t)},
                              {"mean_log_reward", -1 + 0.5 * std::sin(t)},
                              {"max_log_reward", 0.7},
                              {"mean_length", 10 + std::cos(t)}});
    if (it % every == 0 && it / every <= eval_rows) {
      const double d = 1 / std::sqrt(t);
      log->append_row("eval", {{"iteration", t},
                               {"trajectories", 16 * t},
                               {"wall_s", 2e-3 * t},
                               {"tv", d},
                               {"jsd", d * d},
                               {"kl", 2 * d * d},
                               {"l1", d / 100},
                               {"log_z_error", d},
                               {"log_z", 3 - d},
                               {"log_z_exact", 3},
                               {"top_k_mean_reward", 2 - d},
                               {"elbo", -d}});
      std::fill(terminating.begin(), terminating.end(), 1.0 / static_cast<double>(grid * grid));
      log->append("grid", "iteration", gfn::LogDType::kInt64, {}, &it, 1);
      log->append("grid", "terminating", gfn::LogDType::kFloat64, {grid, grid}, terminating.data(), 1);
    }
    if (it % 10000 == 0) log->flush();  // as a run flushes at its evaluations
  }

  // /samples
  std::vector<double> sample_log_reward;
  std::vector<int64_t> states;
  for (int64_t k = 0; k < samples; ++k) {
    sample_log_reward.push_back(k % 3 == 0 ? std::log(2.1) : std::log(0.1));
    states.push_back(k % grid);
    states.push_back((k * 7) % grid);
  }
  log->append("samples", "log_reward", gfn::LogDType::kFloat64, {}, sample_log_reward.data(), samples);
  log->append("samples", "states_discrete", gfn::LogDType::kInt64, {2}, states.data(), samples);
  log->flush();
}

// The median milliseconds of `reps` calls of f after one untimed call.
double median_ms(int reps, const std::function<void()>& f) {
  f();
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 100000, eval_rows = 1000, samples = 10000, grid = 100;
  int reps = 3;
  std::string dir;
  const auto stop =
      gfn::bench::parse_flags(argc, argv, "bench_analyse", kHelp, [&](const std::string& k, const char* v) {
        if (k == "--rows")
          rows = std::stoll(v);
        else if (k == "--eval-rows")
          eval_rows = std::stoll(v);
        else if (k == "--samples")
          samples = std::stoll(v);
        else if (k == "--grid")
          grid = std::stoll(v);
        else if (k == "--reps")
          reps = std::stoi(v);
        else if (k == "--dir")
          dir = v;
        else
          return false;
        return true;
      });
  if (stop) return *stop;
  if (rows < 1 || eval_rows < 0 || samples < 1 || grid < 1 || reps < 1) {
    std::fprintf(stderr, "bench_analyse: sizes and --reps must be positive\n%s", kHelp);
    return 2;
  }
  const bool own_dir = dir.empty();
  if (own_dir) dir = (fs::temp_directory_path() / ("gfn_bench_analyse_" + std::to_string(::getpid()))).string();
  fs::create_directories(dir);
  const std::string path = (fs::path(dir) / "log.h5").string();
  fs::remove(path);

  try {
    const auto start = std::chrono::steady_clock::now();
    write_log(path, rows, eval_rows, samples, grid);
    std::printf(
        "log: %lld train rows, %lld eval rows, %lld samples, grid %lldx%lld x %lld rows; %.1f MB, written in %.0f ms\n",
        static_cast<long long>(rows), static_cast<long long>(eval_rows), static_cast<long long>(samples),
        static_cast<long long>(grid), static_cast<long long>(grid), static_cast<long long>(eval_rows),
        static_cast<double>(fs::file_size(path)) / 1e6,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());

    auto run = [&](const gfn::AnalyseOptions& options) {
      return [&, options] {
        std::ostringstream out;
        gfn::analyse({path}, options, out);
      };
    };
    gfn::AnalyseOptions summary, csv, plot;
    csv.csv_dir = (fs::path(dir) / "csv").string();
    plot.plot_dir = (fs::path(dir) / "plots").string();
    std::printf("analyse (summary only): %8.1f ms\n", median_ms(reps, run(summary)));
    std::printf("analyse --csv:          %8.1f ms\n", median_ms(reps, run(csv)));
    std::printf("analyse --plot:         %8.1f ms\n", median_ms(reps, run(plot)));
    std::printf("outputs in %s\n", dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_analyse: %s\n", e.what());
    return 1;
  }
  return 0;
}

// Benchmark: the objectives alone, no environment and no network. For a batch of B random
// trajectories of time extent T (ragged: lengths uniform in [max(1, T/2), T]; log_pf, log_pb
// standard normal, 0 on padding and log_pb 0 on the exit; log_flow [T+1, B], log_reward [B],
// log_z []; log_pf, log_pb, log_flow and log_z require grad as in training), times forward +
// backward of each loss and prints, per objective: the median milliseconds of forward, of
// backward and of both over --reps repetitions (warm-up excluded), the ratio to TB, the rise of
// the peak resident set size over the warm-up and timed loop (VmHWM of /proc/self/status,
// reset by writing "5" to /proc/self/clear_refs; memory the allocator already holds from an
// earlier objective does not show), and the analytic size of the largest intermediate tensor
// (SubTB: the larger of [T+1, T+1] and [T+1, B]; subtb-pairs [T+1, T+1, B]; [T, B] otherwise).
//
//   bench_losses [--T N --B N]   (default: both T=100 B=300 and T=20 B=16)
//                [--reps N] [--warmup N] [--threads N] [--dtype float32|float64] [--lambda X]
//                [--objectives tb,db,subtb,subtb-equal,subtb-tb,subtb-db,subtb-pairs,vargrad]
// (subtb-pairs: SubTB(lambda) through the explicit [T+1, T+1, B] pairs, the tested reference)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "bench/bench_flags.h"
#include "core/threads.h"
#include "losses/db.h"
#include "losses/subtb.h"
#include "losses/tb.h"
#include "losses/vargrad.h"

namespace {

// A field of /proc/self/status ("VmHWM", "VmRSS") in KiB, -1 if unreadable.
long proc_status_kib(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return -1;
}

// Resets the peak RSS (VmHWM) to the current RSS; false if the kernel refused.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return f.good();
}

gfn::LossInputs random_inputs(int64_t T, int64_t B, torch::Dtype dtype) {
  auto opt = torch::TensorOptions().dtype(dtype);
  auto length = torch::randint(std::max<int64_t>(1, T / 2), T + 1, {B}, torch::kLong);
  auto t = torch::arange(T, torch::kLong).unsqueeze(1);  // [T, 1]
  gfn::LossInputs in;
  in.mask = t.lt(length.unsqueeze(0));
  in.length = length;
  in.log_pf = (torch::randn({T, B}, opt) * in.mask.to(dtype)).requires_grad_();
  in.log_pb = (torch::randn({T, B}, opt) * t.lt(length.unsqueeze(0) - 1).to(dtype)).requires_grad_();
  in.log_flow = torch::randn({T + 1, B}, opt).requires_grad_();
  in.log_reward = torch::randn({B}, opt);
  in.log_z = torch::zeros({}, opt).requires_grad_();
  return in;
}

// SubTB through its explicit [T+1, T+1, B] pairs (the reference the quadratic form replaced)
class PairwiseSubTb final : public gfn::Objective {
 public:
  explicit PairwiseSubTb(gfn::SubTbOptions o) : subtb_(o) {}
  std::string name() const override { return "subtb-pairs"; }
  gfn::Requirements requirements() const override { return subtb_.requirements(); }
  torch::Tensor loss(const gfn::LossInputs& in) const override { return subtb_.pairwise_loss(in); }

 private:
  gfn::SubTrajectoryBalance subtb_;
};

std::unique_ptr<gfn::Objective> make_objective(const std::string& name, double lambda) {
  if (name == "tb") return std::make_unique<gfn::TrajectoryBalance>();
  if (name == "db") return std::make_unique<gfn::DetailedBalance>();
  if (name == "vargrad") return std::make_unique<gfn::VarGrad>();
  gfn::SubTbOptions o;
  o.lambda = lambda;
  if (name == "subtb") o.weighting = gfn::SubTbWeighting::kGeometric;
  else if (name == "subtb-equal") o.weighting = gfn::SubTbWeighting::kEqual;
  else if (name == "subtb-tb") o.weighting = gfn::SubTbWeighting::kTb;
  else if (name == "subtb-db") o.weighting = gfn::SubTbWeighting::kDb;
  else if (name == "subtb-pairs") return std::make_unique<PairwiseSubTb>(o);
  else return nullptr;
  return std::make_unique<gfn::SubTrajectoryBalance>(o);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void run_config(int64_t T, int64_t B, torch::Dtype dtype, const std::vector<std::string>& objectives, double lambda,
                int64_t reps, int64_t warmup) {
  torch::manual_seed(0);
  auto in = random_inputs(T, B, dtype);
  const double elem = dtype == torch::kDouble ? 8 : 4;
  std::printf("\nT=%lld B=%lld %s, mean length %.2f; median over %lld reps after %lld warm-up\n",
              static_cast<long long>(T), static_cast<long long>(B), dtype == torch::kDouble ? "float64" : "float32",
              in.length.to(torch::kDouble).mean().item<double>(), static_cast<long long>(reps),
              static_cast<long long>(warmup));
  std::printf("%-12s %9s %9s %10s %7s %14s %13s\n", "objective", "fwd ms", "bwd ms", "fwd+bwd ms", "x TB",
              "peak RSS +MiB", "largest MiB");
  double tb_ms = -1;
  for (const auto& name : objectives) {
    auto objective = make_objective(name, lambda);
    auto clear_grads = [&] {
      for (auto* p : {&in.log_pf, &in.log_pb, &in.log_flow, &in.log_z}) p->mutable_grad().reset();
    };
    // the peak is taken over the warm-up too: its first call is the one that touches new pages
    const bool reset = reset_peak_rss();
    const long rss0 = proc_status_kib("VmRSS"), hwm0 = proc_status_kib("VmHWM");
    for (int64_t r = 0; r < warmup; ++r) {
      clear_grads();
      objective->loss(in).backward();
    }
    clear_grads();
    std::vector<double> fwd, bwd, total;
    for (int64_t r = 0; r < reps; ++r) {
      auto a = std::chrono::steady_clock::now();
      auto loss = objective->loss(in);
      auto b = std::chrono::steady_clock::now();
      loss.backward();
      auto c = std::chrono::steady_clock::now();
      fwd.push_back(std::chrono::duration<double, std::milli>(b - a).count());
      bwd.push_back(std::chrono::duration<double, std::milli>(c - b).count());
      total.push_back(std::chrono::duration<double, std::milli>(c - a).count());
      clear_grads();  // outside the timed region
    }
    const long hwm1 = proc_status_kib("VmHWM");
    const double ms = median(total);
    if (name == "tb") tb_ms = ms;
    // SubTB's quadratic form: the [T+1, T+1] weights and [T+1, B] potentials
    const bool subtb = name.rfind("subtb", 0) == 0;
    const double largest = (name == "subtb-pairs" ? (T + 1.0) * (T + 1.0) * B
                            : subtb               ? std::max((T + 1.0) * (T + 1.0), (T + 1.0) * B)
                                                  : double(T) * B) *
                           elem / (1024.0 * 1024.0);
    char ratio[16] = "-", peak[64];
    if (tb_ms > 0) std::snprintf(ratio, sizeof ratio, "%.2f", ms / tb_ms);
    if (reset) std::snprintf(peak, sizeof peak, "%.2f", (hwm1 - rss0) / 1024.0);
    else  // no reset: the process-wide peak before and after the loop
      std::snprintf(peak, sizeof peak, "n/a (VmHWM %.1f->%.1f)", hwm0 / 1024.0, hwm1 / 1024.0);
    std::printf("%-12s %9.3f %9.3f %10.3f %7s %14s %13.3f\n", name.c_str(), median(fwd), median(bwd), ms, ratio, peak,
                largest);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int64_t T = 0, B = 0, reps = 200, warmup = 20, threads = 1;
  double lambda = 0.9;
  std::string dtype_name = "float32", objectives = "tb,db,subtb,subtb-equal,subtb-tb,subtb-db,subtb-pairs,vargrad";
  const char* help =
      "usage: bench_losses [--T N --B N] [--reps N] [--warmup N] [--threads N] [--dtype float32|float64]\n"
      "                    [--lambda X] [--objectives tb,db,subtb,subtb-equal,subtb-tb,subtb-db,subtb-pairs,vargrad]\n"
      "  without --T/--B: both T=100 B=300 and T=20 B=16\n";
  if (auto code = gfn::bench::parse_flags(argc, argv, "bench_losses", help, [&](const std::string& k, const char* v) {
        if (k == "--T") T = std::stoll(v);
        else if (k == "--B") B = std::stoll(v);
        else if (k == "--reps") reps = std::stoll(v);
        else if (k == "--warmup") warmup = std::stoll(v);
        else if (k == "--threads") threads = std::stoll(v);
        else if (k == "--dtype") dtype_name = v;
        else if (k == "--lambda") lambda = std::stod(v);
        else if (k == "--objectives") objectives = v;
        else
          return false;
        return true;
      }))
    return *code;
  if (dtype_name != "float32" && dtype_name != "float64") {
    std::fprintf(stderr, "bench_losses: --dtype must be float32 or float64\n%s", help);
    return 2;
  }
  if ((T > 0) != (B > 0) || reps < 1 || warmup < 0 || !(lambda > 0)) {
    std::fprintf(stderr, "bench_losses: give both --T and --B (> 0), --reps >= 1, --lambda > 0\n%s", help);
    return 2;
  }
  std::vector<std::string> names;
  std::stringstream list(objectives);
  for (std::string n; std::getline(list, n, ',');) {
    if (!make_objective(n, lambda)) {
      std::fprintf(stderr, "bench_losses: unknown objective '%s'\n%s", n.c_str(), help);
      return 2;
    }
    names.push_back(n);
  }
  gfn::set_cpu_threads(static_cast<int>(threads));
  const bool can_reset = reset_peak_rss();
  std::printf("bench_losses: forward + backward of each loss alone, %lld thread(s), subtb lambda %g\n",
              static_cast<long long>(threads), lambda);
  if (!can_reset)
    std::printf("note: writing 5 to /proc/self/clear_refs failed: VmHWM cannot be reset, so the peak column shows the "
                "process-wide VmHWM before -> after each loop (MiB)\n");
  std::vector<std::pair<int64_t, int64_t>> configs;
  if (T > 0) configs = {{T, B}};
  else configs = {{100, 300}, {20, 16}};
  const auto dtype = dtype_name == "float64" ? torch::kDouble : torch::kFloat;
  for (const auto& [t, b] : configs) run_config(t, b, dtype, names, lambda, reps, warmup);
  return 0;
}

// Benchmark: milliseconds per training iteration (sampling, scoring, backward and the optimiser
// step included) and trajectories per second, trajectory balance, one line per configuration:
// hypergrid (discrete), box (continuous, both forms), labelled_box (hybrid), line, torus and the
// diffusion samplers (25gmm, manywell).
//
//   bench_train [--iters N] [--warmup N] [--threads N] [--tabular auto|on|off] [--only NAME]
//               [--phases on|off]   (time the phases of the per-step path separately)
//               [--reuse on|off]   (train.reuse_rollout: score with the rollout's own network outputs)
//               [--objective NAME]   (any registered objective: tb, db, subtb, fm, modified_db,
//                                     vargrad; default tb)
//               [--credit none|fl|led]   (local credits: forward-looking from the env, or LED's
//                                         learned potential; default none)
//               [--backward case|uniform|learned|tlm|maxent|fixed]   (P_B of every case; default: each
//                                         case's own)
//               [--batch N]   (every case at batch N)
//               [--env KEY=VALUE]   (an [env] key of every case selected, e.g. steps=100; repeatable)
//               [--device cpu|cuda|cuda:N] [--graph on|off]   (CUDA: eager or as a CUDA graph)
//               [--fixed on|off]   (CPU: the fixed-shape path the GPU runs, instead of compaction)
//               [--kernels on|off]   (CUDA: the fused kernels of core/kernels, or LibTorch operations)
//               [--count-ops on|off]   (LibTorch operator calls per iteration, nested calls included:
//                                       an upper bound on a GPU iteration's kernel launches)
#include <sys/resource.h>

#include <map>
#include <set>
#include <mutex>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/record_function.h>
#include <torch/torch.h>

#include "apps/run.h"
#include "bench/bench_flags.h"
#include "core/condition.h"
#include "core/estimator.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/threads.h"
#include "core/cuda_graph.h"
#include "core/kernels/kernels.h"
#include "core/trainer.h"

namespace {

struct Case {
  std::string name;
  std::string env;                                      // registered env kind
  std::vector<std::pair<std::string, gfn::ParamValue>> params;  // [env] keys
  int64_t batch, hidden, layers;
  gfn::Activation activation = gfn::Activation::kRelu;
  gfn::BackwardPolicy backward = gfn::BackwardPolicy::kUniform;
  gfn::Architecture architecture = gfn::Architecture::kMlp;  // time: embeddings of width 64
  bool conditional = false;  // a conditional GFlowNet over beta in [0.5, 2] (core/condition.h), log Z(c) 2x64
};

struct Variant {
  bool count_ops = false;
  std::string objective = "tb";
  std::string credit = "none";
  std::string backward = "case";
  std::string device = "cpu";
  bool graph = false;
  bool reuse = false;  // train.reuse_rollout
};

gfn::BackwardPolicy backward_policy(const std::string& name, gfn::BackwardPolicy fallback) {
  if (name == "uniform") return gfn::BackwardPolicy::kUniform;
  if (name == "learned") return gfn::BackwardPolicy::kLearned;
  if (name == "tlm") return gfn::BackwardPolicy::kTlm;
  if (name == "maxent") return gfn::BackwardPolicy::kMaxEnt;
  if (name == "fixed") return gfn::BackwardPolicy::kFixed;
  return fallback;
}

void run_case(const Case& c, const Variant& variant, int64_t iters, int64_t warmup, gfn::TabularMode mode,
              bool phases, gfn::Execution execution) {
  const auto registry = gfn::Registry::builtin();
  const auto& entry = registry.env(c.env);
  gfn::Params given;
  for (const auto& [k, v] : c.params) given.set(k, v);
  std::unique_ptr<gfn::Env> env = registry.make_env(c.env, gfn::resolve_params(entry.params, given, "bench " + c.name));
  if (c.conditional) {
    gfn::ConditionOptions co;
    co.parameters = "beta", co.low = "0.5", co.high = "2", co.eval = "1";
    auto spec = gfn::parse_condition(co, *env);
    env = std::make_unique<gfn::ConditionedEnv>(std::shared_ptr<const gfn::Env>(std::move(env)), std::move(spec));
  }
  gfn::EstimatorOptions eo;
  eo.hidden = c.hidden;
  eo.layers = c.layers;
  eo.activation = c.activation;
  eo.backward = backward_policy(variant.backward, c.backward);
  eo.architecture = c.architecture;
  const auto& oentry = registry.objective(variant.objective);
  auto objective = oentry.make(gfn::resolve_params(oentry.params, gfn::Params{}, "bench objective"));
  auto gen = gfn::make_generator(0, torch::kCPU);
  const torch::Device device(variant.device);
  gfn::TrainerOptions to;
  to.batch_size = c.batch;
  to.cuda_graph = variant.graph;
  to.tabular = mode;
  to.execution = execution;
  to.reuse_rollout = variant.reuse;
  to.score.credit = gfn::enum_value<gfn::Credit>(variant.credit, "--credit");
  std::unique_ptr<gfn::Estimators> owned_est;
  gfn::Components components;
  std::unique_ptr<gfn::Trainer> owned;
  try {
    owned_est = std::make_unique<gfn::Estimators>(*env, eo, gen, device);
    if (c.conditional) {
      owned_est->log_z_net = gfn::LogZNet(1, 64, 2, eo.activation, torch::kFloat32, gen);
      owned_est->log_z_net->to(device);
    }
    const gfn::Requirements requirements = objective->requirements();
    components = gfn::make_components(registry, {*env, *owned_est, eo, to, requirements, gen, device});
    owned = std::make_unique<gfn::Trainer>(*env, *owned_est, *objective, to, 0, device,
                                           gfn::component_pointers(components));
  } catch (const gfn::ConfigError& e) {  // an objective, credit or P_B this env cannot feed (fm on the box)
    std::printf("%-44s skipped: %s\n", c.name.c_str(), e.what());
    return;
  }
  auto& trainer = *owned;
  auto& est = *owned_est;
  for (int64_t i = 0; i < warmup; ++i) trainer.step();
  if (device.is_cuda()) torch::cuda::synchronize();
  auto t0 = std::chrono::steady_clock::now();
  // the trajectory lengths stay on the device until the end (a read per iteration would sync)
  auto steps_t = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  for (int64_t i = 0; i < iters; ++i) {
    auto r = trainer.step();
    steps_t += r.trajectories.length.sum();
  }
  const double steps = static_cast<double>(steps_t.item<int64_t>());
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (variant.count_ops) {
    // every operator call of a few iterations, through a RecordFunction callback, by name
    static std::mutex mutex;
    static std::map<std::string, int64_t> calls;
    calls.clear();
    auto handle = at::addGlobalCallback(
        at::RecordFunctionCallback([](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
          std::lock_guard<std::mutex> lock(mutex);
          ++calls[fn.name()];
          return nullptr;
        }).scopes({at::RecordScope::FUNCTION}));
    const int64_t n = 5;
    for (int64_t i = 0; i < n; ++i) trainer.step();
    at::removeCallback(handle);
    // operators that only make views, allocate, wrap scalars or call another operator (relu_ is
    // clamp_min_) launch no kernel of their own; what remains is an upper bound on launches
    static const std::set<std::string> no_kernel = {
        "aten::as_strided", "aten::resolve_conj", "aten::resolve_neg", "aten::empty", "aten::empty_strided",
        "aten::empty_like", "aten::slice", "aten::narrow", "aten::unsqueeze", "aten::squeeze", "aten::view",
        "aten::reshape", "aten::_reshape_alias", "aten::select", "aten::t", "aten::transpose", "aten::expand",
        "aten::alias", "aten::detach", "aten::to", "aten::_to_copy", "aten::contiguous", "aten::lift_fresh",
        "aten::unbind", "aten::numpy_T", "aten::permute", "aten::result_type", "aten::broadcast_tensors",
        "aten::linear", "aten::matmul", "aten::zeros", "aten::zeros_like", "aten::ones", "aten::full",
        "aten::full_like", "aten::log_softmax", "aten::set_", "aten::is_nonzero", "aten::relu_", "aten::relu",
        "aten::scalar_tensor"};
    int64_t total = 0, kernels = 0;
    std::vector<std::pair<int64_t, std::string>> by_count;
    for (const auto& [name, count] : calls) {
      total += count;
      if (!no_kernel.count(name)) {
        kernels += count;
        by_count.emplace_back(count, name);
      }
    }
    std::sort(by_count.rbegin(), by_count.rend());
    std::printf("  operator calls per iteration: %.0f, of which launch kernels: %.0f; the most frequent:",
                static_cast<double>(total) / n, static_cast<double>(kernels) / n);
    for (size_t i = 0; i < std::min<size_t>(by_count.size(), 12); ++i)
      std::printf(" %s %.0f%s", by_count[i].second.c_str(), static_cast<double>(by_count[i].first) / n,
                  i + 1 < std::min<size_t>(by_count.size(), 12) ? "," : "\n");
  }
  if (phases && !trainer.tabular() && device.is_cpu()) {
    // where an iteration's time goes: sampling, scoring + loss, backward (the optimiser is the rest)
    double t_roll = 0, t_score = 0, t_back = 0, t_net = 0, t_net_back = 0, rows = 0;
    auto clock = [] { return std::chrono::steady_clock::now(); };
    auto sec = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    auto pgen = gfn::make_generator(1, torch::kCPU);
    for (int64_t i = 0; i < iters; ++i) {
      auto a = clock();
      auto tr = gfn::rollout(*env, *est.policy, c.batch, gfn::SamplerOptions{}, pgen, torch::kCPU, trainer.execution());
      auto b = clock();
      auto loss = objective->loss(gfn::score_trajectories(*env, est, tr, to.score, trainer.execution()));
      auto d = clock();
      loss.backward();
      auto e = clock();
      t_roll += sec(a, b);
      t_score += sec(b, d);
      t_back += sec(d, e);
      // the policy network alone on as many rows as the iteration evaluated (every state of every
      // trajectory, s0 and the exit's state included), in one batched pass: what the network's
      // arithmetic costs at the least, whatever the rest of the path does
      const int64_t n = (tr.length + 1).sum().item<int64_t>();
      auto features = torch::randn({n, env->feature_dim()}, pgen);
      auto f = clock();
      {
        torch::NoGradGuard no_grad;
        est.policy->forward_outputs(est.policy->trunk(features), features);
      }
      auto g = clock();
      est.policy->forward_outputs(est.policy->trunk(features), features).sum().backward();
      auto h = clock();
      est.policy->zero_grad();
      t_net += sec(f, g);
      t_net_back += sec(g, h);
      rows += static_cast<double>(n);
    }
    std::printf("  phases: rollout %.3f ms, scoring + loss %.3f ms, backward %.3f ms\n", 1e3 * t_roll / iters,
                1e3 * t_score / iters, 1e3 * t_back / iters);
    std::printf("  the policy network alone on the %.0f rows an iteration evaluates, one batched pass: forward %.3f "
                "ms, forward + backward %.3f ms\n",
                rows / iters, 1e3 * t_net / iters, 1e3 * t_net_back / iters);
  }
  std::printf("%-44s tabular=%-3s  %8.3f ms/iter  %10.0f traj/s  mean length %.2f", c.name.c_str(),
              trainer.tabular() ? "yes" : "no", 1e3 * s / iters, c.batch * iters / s, steps / (c.batch * iters));
  if (device.is_cuda()) {
    std::printf("  peak device memory %.0f MiB", static_cast<double>(gfn::cuda_peak_memory_bytes(device)) / (1 << 20));
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  int64_t iters = 2000, warmup = 200, threads = 1, batch = 0;
  std::string tabular = "auto", only;
  Variant variant;
  bool phases = false, fixed = false, tuned_allocator = true;
  std::vector<std::pair<std::string, gfn::ParamValue>> env_sets;
  const char* help =
      "usage: bench_train [--iters N] [--warmup N] [--threads N] [--tabular auto|on|off] [--only NAME]\n"
      "                   [--phases on|off] [--reuse on|off] [--objective tb|db|subtb|fm|modified_db|vargrad]\n"
      "                   [--credit none|fl|led] [--backward case|uniform|learned|tlm|maxent]\n"
      "                   [--batch N]   (every case at batch N instead of its own)\n"
      "                   [--device cpu|cuda|cuda:N] [--graph on|off]   (CUDA graphs need cuda)\n"
      "                   [--fixed on|off]   (CPU: the fixed-shape path of the GPU)\n"
      "                   [--kernels on|off]   (CUDA: fused kernels or LibTorch operations)\n"
      "                   [--count-ops on|off]   (operator calls per iteration)\n"
      "                   [--env KEY=VALUE]   (an [env] key of the selected cases, e.g. steps=100)\n"
      "                   [--allocator tuned|glibc]   (gfn's allocator settings, core/threads.h, or glibc's)\n";
  if (auto code = gfn::bench::parse_flags(argc, argv, "bench_train", help, [&](const std::string& k, const char* v) {
        if (k == "--iters") iters = std::stoll(v);
        else if (k == "--warmup") warmup = std::stoll(v);
        else if (k == "--threads") threads = std::stoll(v);
        else if (k == "--tabular") tabular = v;
        else if (k == "--only") only = v;
        else if (k == "--phases") phases = std::string(v) == "on";
        else if (k == "--allocator") tuned_allocator = std::string(v) != "glibc";
        else if (k == "--reuse") variant.reuse = std::string(v) == "on";
        else if (k == "--objective") variant.objective = v;
        else if (k == "--credit") variant.credit = v;
        else if (k == "--backward") variant.backward = v;
        else if (k == "--batch") batch = std::stoll(v);
        else if (k == "--device") variant.device = gfn::resolve_device(v);
        else if (k == "--graph") variant.graph = std::string(v) == "on";
        else if (k == "--fixed") fixed = std::string(v) == "on";
        else if (k == "--kernels") gfn::fused::set_enabled(std::string(v) == "on");
        else if (k == "--count-ops") variant.count_ops = std::string(v) == "on";
        else if (k == "--env") {
          const std::string kv = v;
          const auto eq = kv.find('=');
          if (eq == std::string::npos) return false;
          const std::string value = kv.substr(eq + 1);
          char* end = nullptr;
          const long long i = std::strtoll(value.c_str(), &end, 10);
          if (*end == '\0' && !value.empty()) {
            env_sets.emplace_back(kv.substr(0, eq), int64_t{i});
          } else {
            const double d = std::strtod(value.c_str(), &end);
            if (*end == '\0' && !value.empty()) env_sets.emplace_back(kv.substr(0, eq), d);
            else env_sets.emplace_back(kv.substr(0, eq), value);
          }
        }
        else
          return false;
        return true;
      }))
    return *code;
  gfn::set_cpu_threads(static_cast<int>(threads));
  if (tuned_allocator) gfn::tune_allocator();
  auto mode = tabular == "on" ? gfn::TabularMode::kOn : tabular == "off" ? gfn::TabularMode::kOff : gfn::TabularMode::kAuto;
  const auto names = gfn::Registry::builtin().objective_names();
  if (std::find(names.begin(), names.end(), variant.objective) == names.end()) {
    std::fprintf(stderr, "bench_train: unknown objective '%s'\n%s", variant.objective.c_str(), help);
    return 2;
  }
  const std::vector<std::string> credits{"none", "fl", "led"}, backwards{"case", "uniform", "learned", "tlm", "maxent",
                                                                                   "fixed"};
  if (std::find(credits.begin(), credits.end(), variant.credit) == credits.end() ||
      std::find(backwards.begin(), backwards.end(), variant.backward) == backwards.end()) {
    std::fprintf(stderr, "bench_train: unknown --credit '%s' or --backward '%s'\n%s", variant.credit.c_str(),
                 variant.backward.c_str(), help);
    return 2;
  }
  std::printf("bench_train: %s, credit %s, P_B %s, Adam, %lld iterations after %lld warm-up, %lld thread(s), "
              "device %s%s%s%s\n",
              variant.objective.c_str(), variant.credit.c_str(), variant.backward.c_str(),
              static_cast<long long>(iters), static_cast<long long>(warmup), static_cast<long long>(threads),
              variant.device.c_str(), variant.graph ? ", CUDA graph" : "", fixed ? ", fixed shapes" : "",
              tuned_allocator ? "" : ", glibc's allocator settings");
  using gfn::Activation;
  using gfn::BackwardPolicy;
  std::vector<Case> cases = {
      {"hypergrid 2-D H=8 batch 16 MLP 2x256", "hypergrid", {{"ndim", int64_t{2}}, {"height", int64_t{8}}}, 16, 256, 2},
      {"hypergrid 4-D H=8 batch 16 MLP 2x256", "hypergrid", {{"ndim", int64_t{4}}, {"height", int64_t{8}}}, 16, 256, 2},
      // a conditional GFlowNet over beta in [0.5, 2] (configs/hypergrid_conditional.toml; run it
      // and the case above with --tabular off to compare like with like)
      {"hypergrid 2-D H=8 batch 16 MLP 2x256 conditional on beta", "hypergrid",
       {{"ndim", int64_t{2}}, {"height", int64_t{8}}}, 16, 256, 2, Activation::kRelu, BackwardPolicy::kUniform,
       gfn::Architecture::kMlp, true},
      {"box 2-D polar d=0.25 batch 128 MLP 4x128", "box", {{"dim", int64_t{2}}, {"delta", 0.25}}, 128, 128, 4,
       Activation::kElu},
      {"box 2-D cartesian batch 128 MLP 4x128", "box", {{"dim", int64_t{2}}, {"form", std::string("cartesian")}}, 128,
       128, 4, Activation::kElu, BackwardPolicy::kLearned},
      {"labelled_box 2-D 3 labels batch 128 MLP 4x128", "labelled_box", {{"dim", int64_t{2}}}, 128, 128, 4,
       Activation::kElu},
      {"line 5 steps batch 64 MLP 2x128", "line", {}, 64, 128, 2, Activation::kRelu, BackwardPolicy::kLearned},
      // circle pieces of dimension 2 with von Mises mixtures (configs/torus.toml)
      {"torus 2-D 2 steps batch 128 MLP 2x128", "torus", {}, 128, 128, 2, Activation::kElu},
      // diffusion samplers at the papers' settings (configs/diffusion_*.toml): T = 100, batch 300,
      // the time architecture 64 wide, the Brownian-bridge P_B
      {"diffusion 25gmm T=100 batch 300 time 2x64", "diffusion", {{"target", std::string("25gmm")}, {"sigma2", 5.0}},
       300, 64, 2, Activation::kGelu, BackwardPolicy::kFixed, gfn::Architecture::kTime},
      {"diffusion manywell d=32 T=100 batch 300 time 2x64", "diffusion", {{"target", std::string("manywell")}}, 300,
       64, 2, Activation::kGelu, BackwardPolicy::kFixed, gfn::Architecture::kTime},
      // issue 7's trajectory-length case (with --objective subtb: SubTB at T = 101, B = 300)
      {"line 100 steps batch 300 MLP 2x128", "line", {{"steps", int64_t{100}}}, 300, 128, 2, Activation::kRelu,
       BackwardPolicy::kLearned},
      {"hypergrid 4-D H=20 batch 16 MLP 2x256", "hypergrid", {{"ndim", int64_t{4}}, {"height", int64_t{20}}}, 16, 256,
       2},
      {"sets 60 of 80 batch 16 MLP 2x256", "sets", {{"universe", int64_t{80}}, {"size", int64_t{60}}}, 16, 256, 2},
      // Bayesian networks with their weights (configs/bayesnet_d*.toml; --objective modified_db as shipped)
      {"bayesnet d=5 n=100 batch 64 MLP 2x256", "bayesnet", {{"variables", int64_t{5}}}, 64, 256, 2},
      {"bayesnet d=20 n=100 batch 64 MLP 2x256", "bayesnet", {{"variables", int64_t{20}}}, 64, 256, 2},
      // bit sequences (configs/bitseq.toml): n = 120, k = 4, append; MLP against the transformer
      {"bitseq n=120 k=4 append batch 16 MLP 2x256", "bitseq", {}, 16, 256, 2},
      {"bitseq n=120 k=4 append batch 16 transformer 2x64", "bitseq", {}, 16, 64, 2, Activation::kRelu,
       BackwardPolicy::kUniform, gfn::Architecture::kTransformer},
      // issue 7's GPU targets, timed on the CPU too
      {"hypergrid 4-D H=16 batch 512 MLP 2x256", "hypergrid", {{"ndim", int64_t{4}}, {"height", int64_t{16}}}, 512,
       256, 2},
      {"hypergrid 4-D H=32 batch 512 MLP 2x256", "hypergrid", {{"ndim", int64_t{4}}, {"height", int64_t{32}}}, 512,
       256, 2}};
  for (auto c : cases) {
    if (!only.empty() && c.name.find(only) == std::string::npos) continue;
    for (const auto& set : env_sets) {  // [env] keys set on the command line, named
      const std::string& key = set.first;  // a plain reference: C++17 lambdas cannot capture a binding
      const auto& value = set.second;
      auto it = std::find_if(c.params.begin(), c.params.end(), [&](const auto& kv) { return kv.first == key; });
      if (it != c.params.end()) it->second = value;
      else c.params.emplace_back(key, value);
      c.name += " " + key + "=" + gfn::to_toml(value);
    }
    if (batch > 0) {  // the case at another batch size, named by it
      const auto at = c.name.find("batch ");
      c.name = c.name.substr(0, at) + "batch " + std::to_string(batch) + c.name.substr(c.name.find(' ', at + 6));
      c.batch = batch;
    }
    run_case(c, variant, iters, warmup, mode, phases, fixed ? gfn::Execution::kFixedShape : gfn::Execution::kAuto);
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("peak resident memory %.0f MiB\n", usage.ru_maxrss / 1024.0);
  return 0;
}

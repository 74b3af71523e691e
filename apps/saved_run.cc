// `gfn eval` and `gfn sample`: the exact or importance-sampled metrics of a saved run, and its
// terminal samples.
#include "apps/run.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "apps/assembly.h"
#include "apps/evaluator.h"
#include "core/condition.h"
#include "core/file_io.h"
#include "core/sampler.h"
#include "core/seeds.h"
#include "core/tabular.h"
#include "core/threads.h"
#include "io/run_log.h"

namespace gfn {

namespace fs = std::filesystem;

// evaluation of a saved run

std::string EvalResult::json() const {
  std::string s = fmt::format("{{\"iteration\": {}, \"env\": \"{}\"", iteration, env);
  auto num = [](double v) { return std::isfinite(v) ? fmt::format("{:.10g}", v) : std::string("null"); };
  if (exact) {
    s += fmt::format(", \"tv\": {}, \"jsd\": {}, \"kl\": {}, \"log_z\": {}, \"log_z_exact\": {}, \"log_z_error\": {}",
                     num(exact->tv), num(exact->jsd), num(exact->kl), num(exact->log_z), num(exact->log_z_exact),
                     num(exact->log_z_error));
  }
  if (importance) {
    s += fmt::format(", \"log_z_is\": {}, \"elbo\": {}, \"ess\": {}", num(importance->log_z), num(importance->elbo),
                     num(importance->ess));
    if (log_z_exact)
      s += fmt::format(", \"log_z_exact\": {}, \"log_z_is_error\": {}", num(*log_z_exact),
                       num(std::fabs(importance->log_z - *log_z_exact)));
  }
  if (grid) {
    s += fmt::format(", \"grid_jsd\": {}, \"grid_kl\": {}, \"grid_tv\": {}, \"grid_mass\": {}, \"grid_cells\": {}",
                     num(grid->jsd), num(grid->kl), num(grid->tv), num(grid->mass), grid->cells);
  }
  return s + "}";
}

std::string EvalResult::report() const {
  std::string s = fmt::format("env {} after {} iterations\n", env, iteration);
  if (exact) {
    s += fmt::format("  TV {:.6f}\n  JSD {:.6f}\n  KL(pi||p) {:.6f}\n  log Z {:.6f} (exact {:.6f}, error {:.6f})\n",
                     exact->tv, exact->jsd, exact->kl, exact->log_z, exact->log_z_exact, exact->log_z_error);
  } else if (importance) {
    s += fmt::format("  importance-sampled log Z {:.6f}\n  ELBO {:.6f}\n  ESS {:.0f} of {}\n", importance->log_z,
                     importance->elbo, importance->ess, importance->samples);
    if (log_z_exact)
      s += fmt::format("  exact log Z {:.6f} (error {:.6f})\n", *log_z_exact, std::fabs(importance->log_z - *log_z_exact));
    if (grid)
      s += fmt::format("  terminating density on {} grid cells: JSD {:.6f}  KL(pi||p) {:.6f}  TV {:.6f}  mass {:.4f}\n",
                       grid->cells, grid->jsd, grid->kl, grid->tv, grid->mass);
  } else {
    s += "  (no exact evaluation for this environment)\n";
  }
  return s;
}

namespace {

// The run saved in `dir`: its config, built, with the estimators of DIR/model.pt.
struct SavedRun {
  std::unique_ptr<Env> trained_env;  // a conditional run's env, when `run` holds it at one condition
  RunConfig config;
  Run run;
  int64_t iteration = 0;
};

SavedRun load_saved_run(const std::string& dir_str, const Registry& registry,
                        const std::vector<std::string>& sets = {}, const std::string& condition = "",
                        bool needs_condition = false) {
  const fs::path dir = dir_str;
  if (!fs::is_directory(dir)) throw ConfigError(fmt::format("{}: not a run directory", dir_str));
  for (const char* f : {"config.toml", "model.pt"})
    if (!fs::exists(dir / f)) throw ConfigError(fmt::format("{}: no {} (not a finished or checkpointed run)", dir_str, f));
  SavedRun s{nullptr, load_config_file((dir / "config.toml").string(), sets, run_schema(registry)), Run{}, 0};
  s.run = build_run(s.config.params, registry);
  set_cpu_threads(static_cast<int>(s.run.options.threads));
  s.iteration = load_model((dir / "model.pt").string(), *s.run.estimators, s.run.components);
  // a conditional run at one condition: the env at it (log Z(c) read through its states)
  const auto* conditional = dynamic_cast<const ConditionedEnv*>(s.run.env.get());
  if (!condition.empty()) {
    if (conditional == nullptr)
      throw ConfigError(fmt::format("--condition {}: {} is not a conditional run (its config has no "
                                    "condition.parameters)",
                                    condition, dir_str));
    auto at = conditional->at(conditional->spec().parse(condition, "--condition"));
    s.trained_env = std::move(s.run.env);  // the components hold references to it
    s.run.env = std::move(at);
  } else if (conditional != nullptr && needs_condition) {
    throw ConfigError(fmt::format("{}: a conditional run (condition.parameters = \"{}\"): name the condition to "
                                  "evaluate with --condition (e.g. --condition {})",
                                  dir_str, fmt::join(conditional->spec().names, ", "),
                                  fmt::join(conditional->spec().eval.front(), ",")));
  }
  return s;
}

}  // namespace

EvalResult evaluate_run(const std::string& dir_str, const Registry& registry,
                        const std::vector<std::string>& eval_sets, const std::string& condition) {
  for (const auto& set : eval_sets)
    if (set.rfind("eval.", 0) != 0)
      throw ConfigError(fmt::format("gfn eval --set {}: only the evaluation's keys (eval.*) can change for a saved "
                                    "run; the model was trained with the others",
                                    set));
  SavedRun saved = load_saved_run(dir_str, registry, eval_sets, condition, /*needs_condition=*/true);
  Run& run = saved.run;
  // at a condition, log Z(c) is the model's log Z
  if (run.env->condition_dim() > 0) *run.estimators = run.estimators->at_condition(*run.env, run.device);
  const EvalOptions eval = EvalOptions::keys().read(saved.config.params);
  EvalResult result;
  result.env = run.env->name();
  result.iteration = saved.iteration;
  if (has_state_table(*run.env)) {  // as training evaluates it: enumerable, and a table small enough to hold
    StateTable table(*run.env, run.device);
    result.exact = exact_metrics(table, *run.estimators);
  } else if (eval.is_samples > 0) {
    auto gen = make_generator(stream_seed(run.options.seed, SeedStream::kEvaluation), run.device);
    result.importance = importance_log_z(*run.env, *run.estimators, eval.is_samples, 4096, gen, run.device, run.execution);
    result.log_z_exact = run.env->log_partition();
    if (eval.grid > 0) {
      if (auto grid = run.env->terminal_grid(eval.grid, run.device))
        result.grid = grid_metrics(*run.env, *run.estimators, *grid, eval.density_samples, 1 << 15, gen, run.execution);
    }
  }
  return result;
}

std::string SampleResult::report() const {
  return fmt::format("{} terminal samples of the policy at iteration {}: mean log R {:.5f}, max log R {:.5f}\n  "
                     "written to {}\n",
                     count, iteration, mean_log_reward, max_log_reward, out);
}

namespace {

// DIR/samples.h5, or DIR/samples-2.h5, ... when taken
std::string next_free_samples_name(const fs::path& dir) {
  std::string path = (dir / "samples.h5").string();
  for (int i = 2; fs::exists(path); ++i) path = (dir / fmt::format("samples-{}.h5", i)).string();
  return path;
}

// Gives the complete file `partial` the name `path` without ever replacing a file there: link(2)
// fails with EEXIST where rename(2) would overwrite (the partial name is removed by the caller's
// guard). Returns false when `path` was taken meanwhile.
bool link_into_place(const std::string& partial, const std::string& path) {
  if (::link(partial.c_str(), path.c_str()) == 0) return true;
  if (errno == EEXIST) return false;
  throw WriteError(fmt::format("{}: cannot create ({})", path, std::strerror(errno)));
}

}  // namespace

SampleResult sample_run(const std::string& dir_str, int64_t count, const std::string& out, uint64_t seed,
                        const Registry& registry, const std::string& condition,
                        const std::function<int()>& stop_requested) {
  // 1e8 samples are ~25,000 chunks of 4,096 rollouts and a file of a few GB: more is a slip
  constexpr int64_t kMaxSamples = 100'000'000;
  if (count < 1 || count > kMaxSamples)
    throw ConfigError(fmt::format("-n {}: expected a number of samples in [1, {}]", count, kMaxSamples));
  const fs::path dir = dir_str;
  std::string path = out;
  if (path.empty()) {
    path = next_free_samples_name(dir);
  } else if (fs::exists(path)) {
    throw ConfigError(fmt::format("--out {}: already exists (samples never overwrite a file)", path));
  }
  SavedRun saved = load_saved_run(dir_str, registry, {}, condition);
  Run& run = saved.run;
  const EvalOptions eval = EvalOptions::keys().read(saved.config.params);
  // written under a name of its own, removed unless it is complete and in place
  const std::string partial = fmt::format("{}.{}.partial", path, ::getpid());
  struct RemovePartial {
    const std::string& file;
    ~RemovePartial() {
      std::error_code ec;
      fs::remove(file, ec);
    }
  } remove_partial{partial};
  auto log = Hdf5Log::create(partial, log_attributes(saved.config, run));

  std::optional<StateTable> table;
  std::vector<double> terminating;
  if (has_state_table(*run.env)) {
    table.emplace(*run.env, run.device);
    terminating = exact_metrics(*table, *run.estimators).terminating;
  }
  auto gen = make_generator(stream_seed(seed, SeedStream::kSampling), run.device);
  auto density_gen = make_generator(stream_seed(seed, SeedStream::kEvaluation), run.device);
  SampleResult result{path, count, saved.iteration, 0.0, -std::numeric_limits<double>::infinity()};
  constexpr int64_t kChunk = 4096;
  for (int64_t done = 0; done < count; done += kChunk) {
    if (stop_requested) {
      result.stopped_by_signal = stop_requested();
      if (result.stopped_by_signal != 0) return result;  // the partial file goes with remove_partial
    }
    const int64_t n = std::min(kChunk, count - done);
    auto tr = rollout(*run.env, *run.estimators->policy, n, SamplerOptions{}, gen, run.device, run.execution);
    append_samples(*log, tr);
    const auto terminal = tr.terminal_states();
    if (table) {
      auto index = run.env->state_index(terminal).to(torch::kCPU).contiguous();
      std::vector<double> log_p(n);
      for (int64_t i = 0; i < n; ++i) log_p[i] = std::log(terminating[index.data_ptr<int64_t>()[i]]);
      log->append("samples", "log_terminating_prob", LogDType::kFloat64, {}, log_p.data(), n);
    } else {
      append_tensor(*log, "samples", "log_terminating_density_is",
                    terminating_log_density(*run.env, *run.estimators, terminal, eval.density_samples, 1 << 15,
                                            density_gen, run.execution));
    }
    auto lr = tr.log_reward.to(torch::kFloat64);
    result.mean_log_reward += lr.sum().item<double>() / static_cast<double>(count);
    result.max_log_reward = std::max(result.max_log_reward, lr.max().item<double>());
  }
  log->flush();
  log.reset();  // closed: complete on disk before it takes its name
  while (!link_into_place(partial, path)) {
    // taken while sampling: a default name moves to the next free one, a given one is refused
    if (!out.empty())
      throw ConfigError(fmt::format("--out {}: already exists (samples never overwrite a file)", path));
    path = next_free_samples_name(dir);
    result.out = path;
  }
  return result;
}

}  // namespace gfn

// `gfn train`: a run from its config or its checkpoint, its log, checkpoints and progress.
#include "apps/run.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "apps/run_parts.h"
#include "core/estimator.h"
#include "core/sampler.h"
#include "core/threads.h"
#include "core/trainer.h"
#include "io/hdf5_log.h"

namespace gfn {

namespace fs = std::filesystem;

namespace {

// Writes the first `count` trajectories of a batch, batch-major ([N, T, ...]).
void log_trajectories(Hdf5Log& log, int64_t iteration, const IterationResult& r, int64_t count) {
  const auto& tr = r.trajectories;
  const int64_t n = std::min(count, tr.batch_size());
  auto first = [n](const torch::Tensor& t) { return t.narrow(1, 0, n).transpose(0, 1); };
  append_tensor(log, "trajectories", "iteration", torch::full({n}, iteration, torch::kInt64));
  append_tensor(log, "trajectories", "length", tr.length.narrow(0, 0, n));
  append_tensor(log, "trajectories", "states_discrete", first(tr.states_discrete));
  append_tensor(log, "trajectories", "states_continuous", first(tr.states_continuous));
  append_tensor(log, "trajectories", "states_is_sink", first(tr.is_sink));
  append_tensor(log, "trajectories", "action_component", first(tr.action_component));
  append_tensor(log, "trajectories", "action_coords", first(tr.action_coords));
  append_tensor(log, "trajectories", "log_pf", first(r.log_pf));
  append_tensor(log, "trajectories", "log_pb", first(r.log_pb));
  append_tensor(log, "trajectories", "log_reward", tr.log_reward.narrow(0, 0, n));
}

// Terminal samples of the final policy, on-policy, in batches.
void log_samples(Hdf5Log& log, const Env& env, Estimators& est, int64_t count, uint64_t seed,
                 const torch::Device& device) {
  auto gen = make_generator(seed, device);
  constexpr int64_t kChunk = 4096;
  for (int64_t done = 0; done < count; done += kChunk) {
    const int64_t n = std::min(kChunk, count - done);
    append_samples(log, rollout(env, *est.policy, n, SamplerOptions{}, gen, device));
  }
}

// Progress on a terminal (a bar rewritten in place) or as plain lines.
class Progress {
 public:
  Progress(ProgressStyle style, std::ostream& out, int64_t total) : style_(style), out_(out), total_(total) {}

  // Whether the bar is due for a redraw (at most every 100 ms, always when forced); callers
  // read the values to draw (host syncs) only then.
  bool due(bool force) {
    if (style_ != ProgressStyle::kBar) return false;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(100)) return false;
    last_ = now;
    return true;
  }

  void update(int64_t it, double loss, double log_z, double tv, double ms_per_it) {
    constexpr int kWidth = 30;
    int filled = static_cast<int>(kWidth * it / std::max<int64_t>(total_, 1));
    out_ << fmt::format("\r{:>8}/{} [{}{}] loss {:.4g}  log Z {:+.4f}{}  {:.2f} ms/it ", it, total_,
                        std::string(filled, '#'), std::string(kWidth - filled, '.'), loss, log_z,
                        std::isnan(tv) ? "" : fmt::format("  TV {:.2e}", tv), ms_per_it)
         << std::flush;
  }

  void line(const std::string& text) {
    if (style_ == ProgressStyle::kNone) return;
    if (style_ == ProgressStyle::kBar) out_ << "\r\033[K";
    out_ << text << "\n" << std::flush;
  }

  void finish() {
    if (style_ == ProgressStyle::kBar) out_ << "\n" << std::flush;
  }

 private:
  ProgressStyle style_;
  std::ostream& out_;
  int64_t total_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// training

std::string RunSummary::report() const {
  std::string s = fmt::format("run {}: {} iterations, {} trajectories in {:.1f} s ({:.3f} ms/iteration)\n", out_dir,
                              iterations, trajectories, wall_s, ms_per_iteration());
  s += fmt::format("  final loss {:.5g}, log Z {:.5f}\n", final_loss, log_z);
  if (exact) {
    s += fmt::format("  exact: TV {:.3e}  JSD {:.3e}  KL(pi||p) {:.3e}  |log Z - log Z_hat| {:.3e} (log Z {:.5f})\n",
                     exact->tv, exact->jsd, exact->kl, exact->log_z_error, exact->log_z_exact);
  }
  if (l1) s += fmt::format("  empirical L1 (papers' scale) {:.3e}\n", *l1);
  if (importance)
    s += fmt::format("  importance-sampled log Z {:.5f} (ELBO {:.5f}, ESS {:.0f} of {})\n", importance->log_z,
                     importance->elbo, importance->ess, importance->samples);
  if (grid)
    s += fmt::format("  terminating density on {} grid cells: JSD {:.3e}  KL(pi||p) {:.3e}  TV {:.3e}  mass {:.4f}\n",
                     grid->cells, grid->jsd, grid->kl, grid->tv, grid->mass);
  s += fmt::format("  log: {}/log.h5\n", out_dir);
  return s;
}

namespace {

constexpr int64_t kCheckpointFormat = 1;

// The keys a resumed run may change; every other key must equal the checkpoint's.
const std::vector<std::string>& resumable_keys() {
  static const std::vector<std::string> keys = {"train.iterations", "threads", "checkpoint.every",
                                                "checkpoint.seconds", "log.flush_seconds"};
  return keys;
}

// What a checkpoint holds beside the estimators and the trainer.
struct RunState {
  int64_t iteration = 0;
  int64_t trajectories = 0;
  double wall_s = 0;  // training time up to the checkpoint
  torch::Generator eval_gen;
  std::optional<EmpiricalL1> l1;
  std::optional<TopK> top;
};

// Writes DIR/checkpoint.pt atomically (a temporary file, then a rename).
void write_checkpoint(const fs::path& dir, const std::string& config_toml, const Estimators& estimators,
                      const Trainer& trainer, RunState& st) {
  torch::serialize::OutputArchive a;
  a.write("checkpoint.format", torch::tensor(kCheckpointFormat), /*is_buffer=*/true);
  a.write("checkpoint.config", c10::IValue(config_toml));
  estimators.write(a);
  trainer.save_state(a);
  a.write("run.iteration", torch::tensor(st.iteration), true);
  a.write("run.trajectories", torch::tensor(st.trajectories), true);
  a.write("run.wall_s", torch::tensor(st.wall_s, torch::kFloat64), true);
  a.write("run.eval_generator", st.eval_gen.get_state(), true);
  if (st.l1) a.write("run.l1_window", st.l1->state(), true);
  if (st.top) {
    auto [x, r] = st.top->state();
    a.write("run.top_k.states", x, true);
    a.write("run.top_k.log_reward", r, true);
  }
  save_archive(a, (dir / "checkpoint.pt").string());
}

// ConfigError unless `config` equals the config `saved_toml` (read from `source`, called `whose`
// in the message) up to the resumable keys.
void check_resumable(const fs::path& dir, const RunConfig& config, const std::string& saved_toml,
                     const std::string& source, const std::string& whose, const Registry& registry) {
  const Params saved = load_config(saved_toml, {}, run_schema(registry), source).params;
  const auto& keys = resumable_keys();
  for (const auto& [key, value] : config.params.values()) {
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
    const auto it = saved.values().find(key);
    if (it == saved.values().end() || !(it->second == value))
      throw ConfigError(fmt::format("--resume {}: config.toml's {} differs from {}; a resumed run may change only {}",
                                    dir.string(), key, whose, fmt::join(keys, ", ")));
  }
}

// Reads DIR/checkpoint.pt into the estimators, the trainer and `st`, after checking that it was
// written by a run of `config` (up to the resumable keys). The file must exist.
void read_checkpoint(const fs::path& dir, const RunConfig& config, const Registry& registry, Estimators& estimators,
                     Trainer& trainer, RunState& st) {
  const std::string path = (dir / "checkpoint.pt").string();
  torch::serialize::InputArchive a;
  try {
    a.load_from(path);
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{}: not a gfn checkpoint, or truncated ({})", path, first_line(e)));
  }
  try {
    torch::Tensor format;
    if (!a.try_read("checkpoint.format", format, true)) throw ConfigError(fmt::format("{}: not a gfn checkpoint", path));
    if (format.item<int64_t>() != kCheckpointFormat)
      throw ConfigError(fmt::format("{}: checkpoint format {} is not supported (this gfn reads {})", path,
                                    format.item<int64_t>(), kCheckpointFormat));
    c10::IValue text;
    a.read("checkpoint.config", text);
    check_resumable(dir, config, text.toStringRef(), path, "the checkpoint's", registry);
    estimators.read(a, path);
    trainer.load_state(a, path);
    auto read = [&](const std::string& key) {
      torch::Tensor t;  // fresh: try_read into a defined tensor resizes it in place
      if (!a.try_read(key, t, true)) throw ConfigError(fmt::format("{}: no entry '{}' (not a checkpoint of this config)", path, key));
      return t;
    };
    st.iteration = read("run.iteration").item<int64_t>();
    st.trajectories = read("run.trajectories").item<int64_t>();
    st.wall_s = read("run.wall_s").item<double>();
    st.eval_gen.set_state(read("run.eval_generator"));
    if (st.l1) st.l1->restore(read("run.l1_window"));
    if (st.top) {
      auto x = read("run.top_k.states");
      st.top->restore(x, read("run.top_k.log_reward"));
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{}: cannot read the checkpoint ({})", path, first_line(e)));
  }
}

// A 2-D environment's terminal cells on a grid: the logged reward heatmap and where each of the
// policy's cells (table states or terminal-grid cells) falls on it.
struct Grid2d {
  std::vector<double> xs, ys;      // sorted distinct coordinates
  std::vector<int64_t> cell;       // per source cell: its flat index x * ny + y, -1 when not terminal
  std::vector<double> log_reward;  // [nx * ny]: log R, summed (log-sum-exp) over cells sharing a point
};

// The grid of source cells at `coords` ([N, 2], float64) with `log_r` ([N]); `terminal` ([N]
// bool) marks the cells that count.
Grid2d make_grid2d(torch::Tensor coords, torch::Tensor log_r, torch::Tensor terminal) {
  coords = coords.to(torch::kCPU, torch::kFloat64).contiguous();
  log_r = log_r.to(torch::kCPU, torch::kFloat64).contiguous();
  terminal = terminal.to(torch::kCPU, torch::kBool).contiguous();
  const int64_t n = coords.size(0);
  const double* c = coords.data_ptr<double>();
  const bool* keep = terminal.data_ptr<bool>();
  Grid2d g;
  for (int64_t i = 0; i < n; ++i)
    if (keep[i]) g.xs.push_back(c[2 * i]), g.ys.push_back(c[2 * i + 1]);
  for (auto* v : {&g.xs, &g.ys}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  const int64_t ny = static_cast<int64_t>(g.ys.size());
  g.log_reward.assign(g.xs.size() * g.ys.size(), -std::numeric_limits<double>::infinity());
  g.cell.assign(n, -1);
  for (int64_t i = 0; i < n; ++i) {
    if (!keep[i]) continue;
    const int64_t xi = std::lower_bound(g.xs.begin(), g.xs.end(), c[2 * i]) - g.xs.begin();
    const int64_t yi = std::lower_bound(g.ys.begin(), g.ys.end(), c[2 * i + 1]) - g.ys.begin();
    g.cell[i] = xi * ny + yi;
    double& lr = g.log_reward[g.cell[i]];
    const double v = log_r.data_ptr<double>()[i];
    const double hi = std::max(lr, v);
    lr = std::isinf(hi) && hi < 0 ? hi : hi + std::log(std::exp(lr - hi) + std::exp(v - hi));
  }
  return g;
}

// The 2-D grid of an env with two coordinates: discrete ones of an enumerable env (hypergrid
// ndim = 2), or continuous ones of an env with a terminal grid (box dim = 2; labels merged).
std::optional<Grid2d> grid2d(const Env& env, const StateTable* table, const std::optional<TerminalGrid>& grid) {
  if (table != nullptr && table->states.discrete.size(1) == 2 && table->states.continuous.size(1) == 0)
    return make_grid2d(table->states.discrete.to(torch::kFloat64), table->log_reward,
                       table->forward_mask.select(1, table->exit));
  if (grid && grid->states.continuous.size(1) == 2)
    return make_grid2d(grid->states.continuous.to(torch::kFloat64), env.log_reward(grid->states),
                       torch::ones({grid->states.batch_size()}, torch::kBool));
  return std::nullopt;
}

// The policy's distribution over the source cells, summed onto the grid.
std::vector<double> on_grid(const Grid2d& g, const std::vector<double>& p) {
  std::vector<double> out(g.log_reward.size(), 0.0);
  for (size_t i = 0; i < p.size() && i < g.cell.size(); ++i)
    if (g.cell[i] >= 0) out[g.cell[i]] += p[i];
  return out;
}

}  // namespace

RunConfig resume_config(const std::string& dir, const std::vector<std::string>& sets, const Registry& registry) {
  const fs::path d = dir;
  if (!fs::is_directory(d)) throw ConfigError(fmt::format("--resume {}: not a run directory", dir));
  const auto& keys = resumable_keys();
  for (const auto& s : sets) {
    const auto key = override_key(s);
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      throw ConfigError(fmt::format("--set {}: a resumed run may change only {}", s, fmt::join(keys, ", ")));
  }
  return load_config_file((d / "config.toml").string(), sets, run_schema(registry));
}

RunSummary train(const RunConfig& config, const TrainOptions& options, const Registry& registry) {
  const Params& p = config.params;
  // everything that can be wrong with the config fails here, before anything is written
  Run run = build_run(p, registry);
  const fs::path dir = options.out_dir;
  if (dir.empty()) throw ConfigError("--out: the output directory must not be empty");
  if (!options.resume) {
    if (fs::exists(dir / "log.h5") || fs::exists(dir / "model.pt"))
      throw ConfigError(fmt::format("--out {}: the directory already holds a run (log.h5); choose another, or "
                                    "continue it with gfn train --resume {}",
                                    dir.string(), dir.string()));
    if (fs::exists(dir) && !fs::is_directory(dir))
      throw ConfigError(fmt::format("--out {}: exists and is not a directory", dir.string()));
  }
  const int64_t iterations = p.get_int("train.iterations");
  const int64_t eval_every = p.get_int("eval.every");
  const int64_t log_every = p.get_int("log.every");
  const int64_t traj_every = p.get_int("log.trajectories_every");
  const int64_t traj_count = p.get_int("log.trajectories_count");
  const int64_t checkpoint_every = p.get_int("checkpoint.every");
  const double checkpoint_seconds = p.get_float("checkpoint.seconds");
  const double flush_seconds = p.get_float("log.flush_seconds");
  const int64_t seed = p.get_int("seed");
  const int64_t is_samples = p.get_int("eval.is_samples");
  const int64_t density_samples = p.get_int("eval.density_samples");
  // continuous envs with a terminal grid: the terminating density against R/Z on it
  std::optional<TerminalGrid> grid;
  if (const int64_t points = p.get_int("eval.grid"); points > 0 && !run.env->enumerable())
    grid = run.env->terminal_grid(points, run.device);
  set_cpu_threads(static_cast<int>(p.get_int("threads")));

  Trainer trainer(*run.env, *run.estimators, *run.objective, run.trainer_options, static_cast<uint64_t>(seed) * 2,
                  run.device);
  const StateTable* table = trainer.table();
  RunState st{0, 0, 0.0, make_generator(static_cast<uint64_t>(seed) * 2 + 5, run.device), std::nullopt, std::nullopt};
  if (const int64_t k = p.get_int("eval.top_k"); k > 0 && run.env->continuous_dim() == 0) st.top.emplace(k);
  const int64_t env_samples = p.get_int("eval.env_samples");
  std::vector<double> target;
  if (table != nullptr) {
    target = target_distribution(*table);
    st.l1.emplace(table->size(), p.get_int("eval.l1_window"));
  }
  const std::optional<Grid2d> grid2 = grid2d(*run.env, table, grid);

  // the run directory: resolved config first, then the log; a resumed run reads its checkpoint
  // and drops the log's rows after it
  std::unique_ptr<Hdf5Log> log;
  if (options.resume && !fs::exists(dir / "log.h5"))
    throw ConfigError(fmt::format("--resume {}: no log.h5 (not a run directory)", dir.string()));
  if (options.resume) {
    // killed before its first checkpoint: from the start, as it began
    if (fs::exists(dir / "checkpoint.pt")) {
      read_checkpoint(dir, config, registry, *run.estimators, trainer, st);
    } else {
      const std::string path = (dir / "log.h5").string();
      check_resumable(dir, config, Hdf5LogReader(path).attribute_string("config"), path, "the log's", registry);
    }
    if (st.iteration >= iterations)
      throw ConfigError(fmt::format("--resume {}: the run is complete ({} of {} iterations); continue it with --set "
                                    "train.iterations=N, N > {}",
                                    dir.string(), st.iteration, iterations, st.iteration));
    log = Hdf5Log::open_append((dir / "log.h5").string(), st.iteration);
  } else {
    fs::create_directories(dir);
  }
  {
    const fs::path tmp = dir / "config.toml.tmp";
    std::ofstream cfg(tmp);
    cfg << config.resolved_toml;
    cfg.close();
    if (!cfg) throw std::runtime_error("cannot write " + tmp.string());
    fs::rename(tmp, dir / "config.toml");
  }
  if (!log) log = Hdf5Log::create((dir / "log.h5").string(), log_attributes(config, run));
  // the datasets known now, so that the first flush creates them before SWMR mode begins
  {
    std::vector<std::string> train_cols = {"iteration", "trajectories", "wall_s", "loss", "log_z", "lr",
                                           "grad_norm", "mean_log_reward", "max_log_reward", "mean_length"};
    if (run.estimators->tlm()) train_cols.push_back("backward_loss");
    if (run.trainer_options.led) train_cols.push_back("potential_loss");
    log->declare_columns("train", train_cols);
    std::vector<std::string> eval_cols = {"iteration", "trajectories", "wall_s", "log_z"};
    if (table != nullptr) eval_cols.insert(eval_cols.end(), {"tv", "jsd", "kl", "log_z_error", "log_z_exact", "l1"});
    if (is_samples > 0 && table == nullptr) {
      eval_cols.insert(eval_cols.end(), {"log_z_is", "elbo", "ess"});
      if (run.env->log_partition()) eval_cols.push_back("log_z_is_error");
    }
    if (grid) eval_cols.insert(eval_cols.end(), {"grid_jsd", "grid_kl", "grid_tv", "grid_mass"});
    if (st.top) eval_cols.insert(eval_cols.end(), {"top_k_mean_reward", "top_k_found"});
    log->declare_columns("eval", eval_cols);
    if (grid2) {
      const int64_t nx = static_cast<int64_t>(grid2->xs.size()), ny = static_cast<int64_t>(grid2->ys.size());
      log->write_fixed("grid", "x", LogDType::kFloat64, {nx}, grid2->xs.data());
      log->write_fixed("grid", "y", LogDType::kFloat64, {ny}, grid2->ys.data());
      log->write_fixed("grid", "log_reward", LogDType::kFloat64, {nx, ny}, grid2->log_reward.data());
      log->declare("grid", "iteration", LogDType::kInt64, {});
      log->declare("grid", "terminating", LogDType::kFloat64, {nx, ny});
    }
    log->flush();
  }

  std::ostream& out = options.progress_stream ? *options.progress_stream : std::cerr;
  Progress progress(options.progress, out, iterations);
  if (options.resume)
    progress.line(fmt::format("gfn train: resuming {} at iteration {} of {}", dir.string(), st.iteration, iterations));
  progress.line(fmt::format("gfn train: env {}{}, objective {}, batch {}, {} iterations, device {}", run.env->name(),
                            run.env->enumerable() ? fmt::format(" ({} states{})", run.env->num_states(),
                                                                trainer.tabular() ? ", tabular" : "")
                                                  : std::string(),
                            run.objective->name(), run.trainer_options.batch_size, iterations, run.device_name));

  RunSummary summary;
  summary.out_dir = dir.string();
  summary.resumed_from = st.iteration;
  const auto start = std::chrono::steady_clock::now();
  const double wall_before = st.wall_s;
  auto elapsed = [&] {
    return wall_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  auto last_flush = std::chrono::steady_clock::now();
  auto flush = [&] {
    log->flush();
    last_flush = std::chrono::steady_clock::now();
  };
  auto last_checkpoint = std::chrono::steady_clock::now();
  auto checkpoint = [&](int64_t it) {
    flush();  // the log holds every row up to `it` before the checkpoint says `it`
    st.iteration = it;
    st.wall_s = elapsed();
    write_checkpoint(dir, config.resolved_toml, *run.estimators, trainer, st);
    last_checkpoint = std::chrono::steady_clock::now();
  };
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  double last_tv = std::nan("");
  double loss = 0;
  for (int64_t it = st.iteration + 1; it <= iterations; ++it) {
    const bool last = it == iterations;
    const bool log_row = it % log_every == 0 || last;
    IterationResult r = trainer.step(/*with_grad_norm=*/log_row);
    st.trajectories += run.trainer_options.batch_size;
    if (st.l1) st.l1->add(r.terminal_index);
    if (st.top) st.top->add(r.trajectories.terminal_discrete, r.trajectories.log_reward);

    // a /train row
    if (log_row) {
      loss = r.loss.item<double>();
      const auto& tr = r.trajectories;
      std::vector<std::pair<std::string, double>> row = {{"iteration", static_cast<double>(it)},
                                                         {"trajectories", static_cast<double>(st.trajectories)},
                                                         {"wall_s", elapsed()},
                                                         {"loss", loss},
                                                         {"log_z", run.estimators->log_z.item<double>()},
                                                         {"lr", trainer.current_lr()},
                                                         {"grad_norm", r.grad_norm},
                                                         {"mean_log_reward", tr.log_reward.mean().item<double>()},
                                                         {"max_log_reward", tr.log_reward.max().item<double>()},
                                                         {"mean_length", tr.length.to(torch::kFloat64).mean().item<double>()}};
      if (r.backward_loss.defined()) row.push_back({"backward_loss", r.backward_loss.item<double>()});
      if (r.potential_loss.defined()) row.push_back({"potential_loss", r.potential_loss.item<double>()});
      log->append_row("train", row);
    }
    if (traj_every > 0 && (it % traj_every == 0)) log_trajectories(*log, it, r, traj_count);

    // exact evaluation, the model, a flush
    if ((eval_every > 0 && it % eval_every == 0) || last) {
      std::vector<std::pair<std::string, double>> row = {{"iteration", static_cast<double>(it)},
                                                         {"trajectories", static_cast<double>(st.trajectories)},
                                                         {"wall_s", elapsed()},
                                                         {"log_z", run.estimators->log_z.item<double>()}};
      std::string text = fmt::format("iter {:>7}  loss {:.4g}  log Z {:+.4f}", it, r.loss.item<double>(),
                                     run.estimators->log_z.item<double>());
      std::vector<double> cell_probability;  // the policy's distribution on the 2-D grid's cells
      if (table != nullptr) {
        ExactMetrics m = exact_metrics(*table, *run.estimators);
        double l1v = st.l1->l1(target);
        row.insert(row.end(), {{"tv", m.tv}, {"jsd", m.jsd}, {"kl", m.kl}, {"log_z_error", m.log_z_error},
                               {"log_z_exact", m.log_z_exact}, {"l1", l1v}});
        text += fmt::format("  TV {:.3e}  JSD {:.2e}  |dlogZ| {:.2e}  L1 {:.3e}", m.tv, m.jsd, m.log_z_error, l1v);
        last_tv = m.tv;
        if (grid2) cell_probability = on_grid(*grid2, m.terminating);
        if (last) {
          summary.exact = m;
          summary.l1 = l1v;
        }
      }
      if (is_samples > 0 && table == nullptr) {  // enumerable envs have the exact metrics above
        ImportanceEstimate e = importance_log_z(*run.env, *run.estimators, is_samples, 4096, st.eval_gen, run.device);
        row.insert(row.end(), {{"log_z_is", e.log_z}, {"elbo", e.elbo}, {"ess", e.ess}});
        if (auto exact = run.env->log_partition()) row.push_back({"log_z_is_error", std::fabs(e.log_z - *exact)});
        text += fmt::format("  log Z_IS {:+.4f}  ELBO {:+.4f}", e.log_z, e.elbo);
        if (last) summary.importance = e;
      }
      if (grid) {
        GridMetrics g = grid_metrics(*run.env, *run.estimators, *grid, density_samples, 1 << 15, st.eval_gen);
        row.insert(row.end(), {{"grid_jsd", g.jsd}, {"grid_kl", g.kl}, {"grid_tv", g.tv}, {"grid_mass", g.mass}});
        text += fmt::format("  grid JSD {:.3e}  mass {:.3f}", g.jsd, g.mass);
        if (grid2) cell_probability = on_grid(*grid2, g.cell_probability);
        if (last) summary.grid = g;
      }
      if (st.top) {
        row.insert(row.end(), {{"top_k_mean_reward", st.top->mean_reward()},
                               {"top_k_found", static_cast<double>(st.top->size())}});
        text += fmt::format("  top-{} mean R {:.4g}", st.top->size(), st.top->mean_reward());
      }
      if (run.env->has_sample_metrics()) {
        auto sampled = rollout(*run.env, *run.estimators->policy, env_samples, SamplerOptions{}, st.eval_gen, run.device);
        for (const auto& [name, value] : run.env->sample_metrics(sampled.terminal_states())) {
          row.push_back({name, value});
          text += fmt::format("  {} {:.3e}", name, value);
        }
      }
      log->append_row("eval", row);
      if (grid2 && !cell_probability.empty()) {
        log->append("grid", "iteration", LogDType::kInt64, {}, &it, 1);
        log->append("grid", "terminating", LogDType::kFloat64,
                    {static_cast<int64_t>(grid2->xs.size()), static_cast<int64_t>(grid2->ys.size())},
                    cell_probability.data(), 1);
      }
      run.estimators->save((dir / "model.pt").string(), it);
      flush();
      progress.line(text);
    }
    if (progress.due(last))
      progress.update(it, r.loss.item<double>(), run.estimators->log_z.item<double>(), last_tv,
                      1e3 * elapsed() / static_cast<double>(it));
    if (last) loss = r.loss.item<double>();

    // a signal: finish here, resumably
    if (const int signal = options.stop_requested ? options.stop_requested() : 0; signal != 0 && !last) {
      checkpoint(it);
      run.estimators->save((dir / "model.pt").string(), it);
      progress.finish();
      progress.line(fmt::format("gfn train: stopped by signal {} after iteration {} of {}; checkpoint written, "
                                "continue with: gfn train --resume {}",
                                signal, it, iterations, dir.string()));
      summary.stopped_by_signal = signal;
      summary.iterations = it;
      summary.trajectories = st.trajectories;
      summary.wall_s = elapsed();
      summary.final_loss = r.loss.item<double>();
      summary.log_z = run.estimators->log_z.item<double>();
      return summary;
    }
    if (!last && ((checkpoint_every > 0 && it % checkpoint_every == 0) ||
                  (checkpoint_seconds > 0 && seconds_since(last_checkpoint) >= checkpoint_seconds)))
      checkpoint(it);
    else if (log_row && seconds_since(last_flush) >= flush_seconds)
      flush();
  }
  summary.wall_s = elapsed();
  progress.finish();

  // terminal samples of the final policy, then the final checkpoint
  const int64_t samples = p.get_int("eval.samples");
  if (samples > 0) log_samples(*log, *run.env, *run.estimators, samples, static_cast<uint64_t>(seed) * 2 + 7,
                               run.device);
  checkpoint(iterations);

  summary.iterations = iterations;
  summary.trajectories = st.trajectories;
  summary.final_loss = loss;
  summary.log_z = run.estimators->log_z.item<double>();
  return summary;
}


}  // namespace gfn

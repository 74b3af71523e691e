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

#include "apps/assembly.h"
#include "apps/evaluator.h"
#include "apps/progress.h"
#include "core/distributed.h"
#include "core/fault.h"
#include "core/sampler.h"
#include "core/seeds.h"
#include "core/threads.h"
#include "core/trainer.h"
#include "core/file_io.h"
#include "io/checkpoint.h"
#include "io/hdf5_log.h"
#include "io/run_lock.h"
#include "io/run_log.h"

namespace gfn {

namespace fs = std::filesystem;

std::string RunSummary::report() const {
  std::string s = fmt::format(
      "run {}: {} iterations, {} trajectories in {:.1f} s ({:.3f} ms/iteration; training {:.3f} ms/iteration, "
      "evaluations and checkpoints {:.1f} s)\n",
      out_dir, iterations, trajectories, wall_s, ms_per_iteration(), train_ms_per_iteration, eval_s);
  s += fmt::format("  final loss {:.5g}, log Z {:.5f}\n", final_loss, log_z);
  if (world_size > 1) {
    const auto share = [&](double ms) { return train_ms_per_iteration > 0 ? 100.0 * ms / train_ms_per_iteration : 0.0; };
    s += fmt::format("  {} processes; gradient all-reduce {:.3f} ms/iteration ({:.1f}% of training) through {}", world_size,
                     allreduce_ms, share(allreduce_ms), transport);
    if (allreduce_wait_ms)
      s += fmt::format(": {:.3f} ms ({:.1f}%) exchanging, {:.3f} ms waiting for the last rank",
                       allreduce_ms - *allreduce_wait_ms, share(allreduce_ms - *allreduce_wait_ms), *allreduce_wait_ms);
    s += "\n";
  }
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

// The keys a resumed run may change (the schema's resumable ones); every other key must equal
// the checkpoint's.
std::vector<std::string> resumable_keys(const Registry& registry) {
  std::vector<std::string> keys;
  for (const auto& s : run_schema(registry).common)
    if (s.resumable) keys.push_back(s.key);
  return keys;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// ConfigError unless `config` equals the config `saved_toml` (read from `source`, called `whose`
// in the message) up to the resumable keys.
void check_resumable(const fs::path& dir, const RunConfig& config, const std::string& saved_toml,
                     const std::string& source, const std::string& whose, const Registry& registry) {
  const Params saved = load_config(saved_toml, {}, run_schema(registry), source).params;
  const auto keys = resumable_keys(registry);
  for (const auto& [key, value] : config.params.values()) {
    if (contains(keys, key)) continue;
    const auto it = saved.values().find(key);
    if (it == saved.values().end() || !(it->second == value))
      throw ConfigError(fmt::format("--resume {}: config.toml's {} differs from {}; a resumed run may change only {}",
                                    dir.string(), key, whose, fmt::join(keys, ", ")));
  }
}

// ConfigError unless the checkpoint was written by a run of `world_size` processes (a checkpoint
// without the entry: one).
void check_world_size(CheckpointReader& checkpoint, const fs::path& dir, int64_t world_size) {
  torch::Tensor entry;
  const int64_t saved = checkpoint.archive().try_read("run.world_size", entry, /*is_buffer=*/true)
                            ? entry.item<int64_t>()
                            : 1;
  if (saved != world_size)
    throw ConfigError(fmt::format("--resume {}: the run was trained by {} process{} (WORLD_SIZE), this resume has {}; "
                                  "the per-rank batch and sampling streams would change: resume with WORLD_SIZE={}",
                                  dir.string(), saved, saved == 1 ? "" : "es", world_size, saved));
}

// A rank > 0 of a multi-process run: the same model, its own share of each batch from its own
// sampling stream, gradients averaged with the others'; no log, no checkpoint, no output. A
// resumed run reads rank 0's checkpoint (model, optimiser, components) and draws from a fresh
// stream of the seed, rank and iteration (the run is then not bit for bit an uninterrupted one).
RunSummary train_worker(const RunConfig& config, const TrainOptions& options, const Registry& registry,
                        Collective& collective) {
  Run run = build_run(config.params, registry);
  run.trainer_options.batch_size /= collective.world_size();
  set_cpu_threads(static_cast<int>(run.options.threads));
  const uint64_t sampling = rank_seed(stream_seed(static_cast<uint64_t>(run.options.seed), SeedStream::kSampling),
                                      collective.rank());
  Trainer trainer(*run.env, *run.estimators, *run.objective, run.trainer_options, sampling, run.device,
                  component_pointers(run.components));
  trainer.set_gradient_reducer([&collective](std::vector<torch::Tensor>& params) { collective.average_gradients(params); });
  int64_t first = 1;
  const fs::path checkpoint_path = fs::path(options.out_dir) / "checkpoint.pt";
  if (options.resume && fs::exists(checkpoint_path)) {
    CheckpointReader checkpoint(checkpoint_path.string());
    checkpoint.read_parts([&](CheckpointReader& c) {
      check_world_size(c, options.out_dir, collective.world_size());
      run.estimators->read(c.archive(), c.path());
      for (const auto& component : run.components) component->read_model(c.archive(), c.path());
      trainer.load_state(c.archive(), c.path());
      first = c.read("run.iteration").item<int64_t>() + 1;
    });
    trainer.generator().set_current_seed(rank_seed(sampling + static_cast<uint64_t>(first), collective.rank()));
  }
  if (options.on_writing) options.on_writing();  // from here a signal is agreed on with the other ranks
  collective.barrier();                          // rank 0 has opened its log: training starts
  RunSummary s;
  s.out_dir = options.out_dir;
  s.world_size = collective.world_size();
  s.rank = collective.rank();
  for (int64_t it = first; it <= run.options.iterations; ++it) {
    trainer.step();
    const int signal = options.stop_requested ? options.stop_requested() : 0;
    collective.request_stop(signal != 0);
    if (collective.stop_agreed() && it != run.options.iterations) {
      s.stopped_by_signal = signal != 0 ? signal : 15;
      s.iterations = it;
      return s;
    }
  }
  s.iterations = run.options.iterations;
  return s;
}

// A training run in progress: the run assembled from its config, its trainer, evaluator, log,
// checkpoints and progress, and its counters.
class TrainingRun {
 public:
  // Everything that can be wrong with the config or the directory fails here, before anything
  // is written.
  TrainingRun(const RunConfig& config, const TrainOptions& options, const Registry& registry,
              Collective* collective = nullptr);
  // The directory, config.toml and the log, the checkpoint of a resumed run read.
  void open();
  int64_t first_iteration() const { return resumed_from_ + 1; }
  int64_t iterations() const { return run_.options.iterations; }
  // A new run that failed before its first iteration ended: removes what open() wrote (config.toml,
  // the empty log) and the directory when it made it and it is left empty, so that the error
  // leaves no run behind that would block its --out; a resumed run's files are never removed.
  void discard_unstarted();
  // One iteration: its /train row, stored trajectories, evaluation, progress and checkpoint.
  // Returns the signal that asked the run to stop (0: none).
  int step(int64_t it);
  // The final samples and checkpoint, and the summary.
  RunSummary finish();
  // The checkpoint and model of a run stopped by `signal` after iteration `it`.
  RunSummary stop(int signal, int64_t it);

 private:
  double elapsed() const;
  int64_t world_size() const { return collective_ != nullptr ? collective_->world_size() : 1; }
  void evaluate(int64_t it, const IterationResult& r);
  void checkpoint(int64_t it);
  void read_checkpoint();
  void save_model(int64_t it) const;
  // NonFiniteError unless every parameter of the model is finite: what is saved never holds a
  // NaN (the trainer's checks stop a run first; this guards what they cannot see, a CUDA graph's
  // replayed update).
  void require_finite_model(int64_t it) const;
  RunSummary summary(int64_t it) const;

  const RunConfig& config_;
  const TrainOptions& options_;
  const Registry& registry_;
  const fs::path dir_;
  Collective* collective_;  // a multi-process run's rank 0 (null: a single process)
  Run run_;
  LogOptions log_options_;
  EvalOptions eval_options_;
  CheckpointOptions checkpoint_options_;
  std::unique_ptr<Trainer> trainer_;
  std::unique_ptr<Evaluator> evaluator_;
  std::unique_ptr<Checkpointer> checkpointer_;
  std::unique_ptr<Hdf5Log> log_;
  std::unique_ptr<TrainLog> train_log_;
  std::unique_ptr<Progress> progress_;
  std::unique_ptr<RunDirLock> lock_;  // held from before the first write to the end
  bool made_dir_ = false;             // this run created its directory
  bool started_ = false;              // an iteration ended
  int64_t resumed_from_ = 0;
  int64_t dropped_rows_ = 0;  // a resume without a checkpoint: the log's rows it starts over
  bool repaired_log_ = false;  // a resume padded a log cut short by a failed write
  int64_t trajectories_ = 0;
  double wall_before_ = 0;  // training time before this process (a resumed run)
  std::chrono::steady_clock::time_point start_;
  double eval_s_ = 0;  // this process's time in evaluations, model saves and checkpoints
  double loss_ = 0;
  // Adds the time `f` takes to eval_s_.
  template <class F>
  void timed(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    eval_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  // This process's training time per iteration, evaluations and checkpoints excluded.
  double train_ms_per_iteration(int64_t it) const {
    const double own = elapsed() - wall_before_ - eval_s_;
    return it > resumed_from_ ? 1e3 * own / static_cast<double>(it - resumed_from_) : 0.0;
  }
};

TrainingRun::TrainingRun(const RunConfig& config, const TrainOptions& options, const Registry& registry,
                         Collective* collective)
    : config_(config), options_(options), registry_(registry), dir_(options.out_dir), collective_(collective) {
  const Params& p = config.params;
  run_ = build_run(p, registry);
  if (collective_ != nullptr) run_.trainer_options.batch_size /= collective_->world_size();  // this rank's share
  log_options_ = LogOptions::keys().read(p);
  eval_options_ = EvalOptions::keys().read(p);
  checkpoint_options_ = CheckpointOptions::keys().read(p);
  if (dir_.empty()) throw ConfigError("--out: the output directory must not be empty");
  // one writer per directory: an existing one is locked first, so that a second writer learns
  // who holds it (the lock is taken below for a directory this run creates)
  const char* flag = options.resume ? "--resume" : "--out";
  if (fs::is_directory(dir_)) lock_ = std::make_unique<RunDirLock>(dir_.string(), flag);
  if (!options.resume) {
    if (fs::exists(dir_ / "log.h5") || fs::exists(dir_ / "model.pt"))
      throw ConfigError(fmt::format("--out {}: the directory already holds a run (log.h5); choose another, or "
                                    "continue it with {} train --resume {}",
                                    dir_.string(), options.program, dir_.string()));
    if (fs::exists(dir_) && !fs::is_directory(dir_))
      throw ConfigError(fmt::format("--out {}: exists and is not a directory", dir_.string()));
  } else if (!fs::exists(dir_ / "log.h5")) {
    throw ConfigError(fmt::format("--resume {}: no log.h5 (not a run directory)", dir_.string()));
  }
  set_cpu_threads(static_cast<int>(run_.options.threads));
  const uint64_t seed = static_cast<uint64_t>(run_.options.seed);
  trainer_ = std::make_unique<Trainer>(*run_.env, *run_.estimators, *run_.objective, run_.trainer_options,
                                       stream_seed(seed, SeedStream::kSampling), run_.device,
                                       component_pointers(run_.components));
  if (collective_ != nullptr)
    trainer_->set_gradient_reducer([c = collective_](std::vector<torch::Tensor>& params) { c->average_gradients(params); });
  evaluator_ = std::make_unique<Evaluator>(*run_.env, *run_.estimators, trainer_->table(), eval_options_,
                                           stream_seed(seed, SeedStream::kEvaluation), run_.device, run_.execution);
  // a directory this run creates is locked now, and the checks above are made again under the
  // lock (a writer that held it a moment ago may have created a run there since)
  if (!lock_) {
    std::error_code ec;
    made_dir_ = fs::create_directories(dir_, ec);
    if (ec)
      throw ConfigError(fmt::format("--out {}: cannot create the directory ({})", dir_.string(), ec.message()));
    lock_ = std::make_unique<RunDirLock>(dir_.string(), flag);
  }
  if (!options.resume && (fs::exists(dir_ / "log.h5") || fs::exists(dir_ / "model.pt")))
    throw ConfigError(fmt::format("--out {}: the directory already holds a run (log.h5); choose another, or continue "
                                  "it with {} train --resume {}",
                                  dir_.string(), options.program, dir_.string()));
}

void TrainingRun::read_checkpoint() {
  CheckpointReader checkpoint((dir_ / "checkpoint.pt").string());
  check_resumable(dir_, config_, checkpoint.config_toml(), checkpoint.path(), "the checkpoint's", registry_);
  checkpoint.read_parts([&](CheckpointReader& c) {
    run_.estimators->read(c.archive(), c.path());
    for (const auto& component : run_.components) component->read_model(c.archive(), c.path());
    trainer_->load_state(c.archive(), c.path());
    evaluator_->read_state(c);
    check_world_size(c, dir_, world_size());
    resumed_from_ = c.read("run.iteration").item<int64_t>();
    trajectories_ = c.read("run.trajectories").item<int64_t>();
    wall_before_ = c.read("run.wall_s").item<double>();
  });
}

void TrainingRun::open() {
  // a resumed run reads its checkpoint (one killed before its first starts again from iteration
  // 0) and drops the log's rows after it; a new one writes the resolved config first, then the log
  if (options_.resume) {
    // a writer killed in the middle of an atomic write left its temporary file (core/file_io.h):
    // never read, removed under the lock
    for (const char* name : {"checkpoint.pt.tmp", "model.pt.tmp", "config.toml.tmp"}) {
      std::error_code ec;
      fs::remove(dir_ / name, ec);
    }
    // the log and the checkpoint verified before anything is written: a damaged one is an error
    // here, not after training; a log cut short by a failed write (a full disk) is padded back to
    // its recorded size first
    const std::string path = (dir_ / "log.h5").string();
    repaired_log_ = Hdf5Log::repair_cut_short(path);
    int64_t log_rows = 0;
    bool finished = false;
    {
      Hdf5LogReader log(path);
      const std::string saved = log.attribute_string("config");
      if (!fs::exists(dir_ / "checkpoint.pt")) check_resumable(dir_, config_, saved, path, "the log's", registry_);
      log_rows = log.has("train/iteration") ? log.shape("train/iteration")[0] : 0;
      finished = log.has("samples/log_reward") && log.shape("samples/log_reward")[0] > 0;
    }
    if (fs::exists(dir_ / "checkpoint.pt")) {
      read_checkpoint();
    } else if (finished) {
      // final samples are written after the last iteration: the run ended, its checkpoint is gone
      throw ConfigError(fmt::format("--resume {}: no checkpoint.pt, but the log holds a finished run ({} /train rows "
                                    "and its final samples); restore checkpoint.pt to continue it, or start a new "
                                    "run",
                                    dir_.string(), log_rows));
    }
    if (resumed_from_ == 0) dropped_rows_ = log_rows;
    if (resumed_from_ >= iterations())
      throw ConfigError(fmt::format("--resume {}: the run is complete ({} of {} iterations); continue it with --set "
                                    "train.iterations=N, N > {}",
                                    dir_.string(), resumed_from_, iterations(), resumed_from_));
    log_ = Hdf5Log::open_append((dir_ / "log.h5").string(), resumed_from_);
  } else {
    fs::create_directories(dir_);
  }
  write_file_atomic((dir_ / "config.toml").string(), config_.resolved_toml, /*sync=*/true);
  if (!log_) log_ = Hdf5Log::create((dir_ / "log.h5").string(), log_attributes(config_, run_));
  // the datasets known now, so that the first flush creates them before SWMR mode begins
  train_log_ = std::make_unique<TrainLog>(*log_, log_options_, trainer_->metric_names());
  train_log_->declare();
  evaluator_->declare(*log_);
  train_log_->flush();

  std::ostream& out = options_.progress_stream ? *options_.progress_stream : std::cerr;
  progress_ = std::make_unique<Progress>(options_.progress, out, iterations());
  if (repaired_log_)
    progress_->line(fmt::format("{} train: {}/log.h5 was cut short by a failed write: padded to its recorded size; "
                                "its rows up to the last completed flush are kept",
                                options_.program, dir_.string()));
  if (options_.resume && resumed_from_ == 0 && dropped_rows_ > 0)
    progress_->line(fmt::format("{} train: warning: {} has no checkpoint.pt: starting again at iteration 0, the "
                                "log's {} /train rows written before are dropped",
                                options_.program, dir_.string(), dropped_rows_));
  if (options_.resume)
    progress_->line(fmt::format("{} train: resuming {} at iteration {} of {}", options_.program, dir_.string(),
                                resumed_from_, iterations()));
  const Env& env = *run_.env;
  progress_->line(fmt::format(
      "{} train: env {}{}, objective {}, batch {}, {} iterations, device {}", options_.program, env.name(),
      env.enumerable() ? fmt::format(" ({} states{})", env.num_states(), trainer_->tabular() ? ", tabular" : "")
                       : std::string(),
      run_.objective->name(),
      world_size() > 1 ? fmt::format("{} ({} per rank on {} processes)", run_.trainer_options.batch_size * world_size(),
                                     run_.trainer_options.batch_size, world_size())
                       : std::to_string(run_.trainer_options.batch_size),
      iterations(), run_.device_name));
  checkpointer_ = std::make_unique<Checkpointer>((dir_ / "checkpoint.pt").string(), checkpoint_options_);
  if (collective_ != nullptr) collective_->barrier();  // the ranks start training together
  start_ = std::chrono::steady_clock::now();
}

void TrainingRun::require_finite_model(int64_t it) const {
  auto check = [&](const torch::nn::Module& m, const std::string& what) {
    for (const auto& p : m.named_parameters())
      if (!all_finite(p.value()))
        throw NonFiniteError(it, fmt::format("{} parameter '{}' is not finite; nothing was saved", what, p.key()));
  };
  check(*run_.estimators->policy, "the policy's");
  if (!all_finite(run_.estimators->log_z)) throw NonFiniteError(it, "log Z is not finite; nothing was saved");
}

void TrainingRun::save_model(int64_t it) const {
  require_finite_model(it);
  gfn::save_model((dir_ / "model.pt").string(), *run_.estimators, run_.components, it);
}

void TrainingRun::discard_unstarted() {
  if (options_.resume || started_ || !lock_) return;
  log_.reset();  // closed before it is removed
  std::error_code ec;
  for (const char* name : {"config.toml", "log.h5", "model.pt", "checkpoint.pt"}) fs::remove(dir_ / name, ec);
  if (made_dir_ && fs::is_empty(dir_, ec)) fs::remove(dir_, ec);
}

double TrainingRun::elapsed() const {
  return wall_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void TrainingRun::evaluate(int64_t it, const IterationResult& r) {
  const double log_z = run_.estimators->log_z.item<double>();
  std::string text = fmt::format("iter {:>7}  loss {:.4g}  log Z {:+.4f}", it, r.loss.item<double>(), log_z);
  text += evaluator_->evaluate(*log_, it, trajectories_, elapsed());
  fault_point("eval");
  save_model(it);
  train_log_->flush();
  progress_->line(text);
}

void TrainingRun::checkpoint(int64_t it) {
  require_finite_model(it);
  train_log_->flush();  // the log holds every row up to `it` before the checkpoint says `it`
  const double wall_s = elapsed();
  checkpointer_->write(config_.resolved_toml, [&](torch::serialize::OutputArchive& a) {
    run_.estimators->write(a);
    for (const auto& c : run_.components) c->write_model(a);
    trainer_->save_state(a);
    evaluator_->write_state(a);
    a.write("run.iteration", torch::tensor(it), /*is_buffer=*/true);
    a.write("run.trajectories", torch::tensor(trajectories_), true);
    a.write("run.wall_s", torch::tensor(wall_s, torch::kFloat64), true);
    a.write("run.world_size", torch::tensor(world_size()), true);
  });
}

int TrainingRun::step(int64_t it) {
  const bool last = it == iterations();
  const bool row = train_log_->row_due(it, last);
  IterationResult r;
  try {
    r = trainer_->step(/*with_grad_norm=*/row);
  } catch (const NonFiniteError& e) {
    // nothing of this iteration was applied; the log keeps its rows so far (flushed as the log
    // closes), the checkpoint and model.pt stay as they were
    const fs::path checkpoint = dir_ / "checkpoint.pt";
    const std::string kept = fs::exists(checkpoint)
                                 ? fmt::format("the last checkpoint ({}) and model.pt are kept as they were",
                                               checkpoint.string())
                                 : std::string("no checkpoint was written before it");
    throw NonFiniteError(e.iteration(),
                         fmt::format("{}; the run stops (train.on_nonfinite = \"stop\"): {}. Lower train.lr / "
                                     "train.lr_logz, bound the log-rewards (objective.log_reward_clip), or skip such "
                                     "batches with train.on_nonfinite = \"skip\"",
                                     e.what_happened(), kept));
  }
  trajectories_ += run_.trainer_options.batch_size * world_size();
  evaluator_->observe(r);
  const double log_z = run_.estimators->log_z.item<double>();
  if (row) {
    train_log_->write_row({it, trajectories_, elapsed(), log_z, trainer_->current_lr(), trainer_->nonfinite_skips()},
                          r);
    loss_ = r.loss.item<double>();
  }
  train_log_->write_trajectories(it, r);
  if (evaluator_->due(it, last)) timed([&] { evaluate(it, r); });
  started_ = true;
  fault_point("iteration");
  if (progress_->due(last))
    progress_->update(it, r.loss.item<double>(), log_z, evaluator_->last().tv, train_ms_per_iteration(it));
  if (last) loss_ = r.loss.item<double>();
  int signal = options_.stop_requested ? options_.stop_requested() : 0;
  if (collective_ != nullptr) {
    // every rank stops after the same iteration: the first whose all-reduce carried a rank's
    // request (SIGTERM's code for a peer's)
    collective_->request_stop(signal != 0);
    signal = collective_->stop_agreed() ? (signal != 0 ? signal : 15) : 0;
  }
  if (signal != 0 && !last) {
    loss_ = r.loss.item<double>();
    return signal;
  }
  if (!last && checkpointer_->due(it)) {
    timed([&] { checkpoint(it); });
  } else {
    train_log_->flush_if_due(row);
  }
  return 0;
}

RunSummary TrainingRun::summary(int64_t it) const {
  RunSummary s;
  s.out_dir = dir_.string();
  s.resumed_from = resumed_from_;
  s.iterations = it;
  s.trajectories = trajectories_;
  s.wall_s = elapsed();
  s.eval_s = eval_s_;
  s.train_ms_per_iteration = train_ms_per_iteration(it);
  s.final_loss = loss_;
  s.log_z = run_.estimators->log_z.item<double>();
  s.world_size = world_size();
  if (collective_ != nullptr && collective_->reductions() > 0) {
    const double n = static_cast<double>(collective_->reductions());
    s.allreduce_ms = 1e3 * collective_->reduce_seconds() / n;
    if (const auto wait = collective_->wait_seconds()) s.allreduce_wait_ms = 1e3 * *wait / n;
    s.transport = collective_->transport();
  }
  return s;
}

RunSummary TrainingRun::stop(int signal, int64_t it) {
  checkpoint(it);
  save_model(it);
  progress_->finish();
  const std::string resume = world_size() > 1 ? fmt::format("{} launch -n {} --resume {} (or {} train --resume {} on {} "
                                                            "ranks)",
                                                            options_.program, world_size(), dir_.string(),
                                                            options_.program, dir_.string(), world_size())
                                              : fmt::format("{} train --resume {}", options_.program, dir_.string());
  progress_->line(fmt::format("{} train: stopped by signal {} after iteration {} of {}; checkpoint written, "
                              "continue with: {}",
                              options_.program, signal, it, iterations(), resume));
  RunSummary s = summary(it);
  s.stopped_by_signal = signal;
  return s;
}

RunSummary TrainingRun::finish() {
  RunSummary s = summary(iterations());
  progress_->finish();
  // terminal samples of the final policy, then the final checkpoint
  const int64_t count = eval_options_.samples;
  auto gen = make_generator(stream_seed(run_.options.seed, SeedStream::kFinalSamples), run_.device);
  constexpr int64_t kChunk = 4096;
  for (int64_t done = 0; done < count; done += kChunk)
    append_samples(*log_, rollout(*run_.env, *run_.estimators->policy, std::min(kChunk, count - done),
                                  SamplerOptions{}, gen, run_.device, run_.execution));
  checkpoint(iterations());
  const EvalSummary& e = evaluator_->last();
  s.exact = e.exact;
  s.l1 = e.l1;
  s.importance = e.importance;
  s.grid = e.grid;
  s.eubo = e.eubo;
  s.w2 = e.w2;
  s.log_z = run_.estimators->log_z.item<double>();
  return s;
}

// "out of memory (<detail>)" with the keys that size what a run allocates.
std::string out_of_memory(const Params& p, const std::string& detail) {
  std::vector<std::string> keys;
  for (const char* key : {"train.batch_size", "policy.hidden", "policy.layers", "eval.samples", "eval.is_samples",
                          "eval.density_samples", "eval.grid", "replay.capacity"})
    if (p.has(key)) keys.push_back(fmt::format("{} = {}", key, value_text(p.values().at(key))));
  return fmt::format("out of memory ({}); the sizes come from {}: lower them, or give the process more memory", detail,
                     fmt::join(keys, ", "));
}

}  // namespace

RunConfig resume_config(const std::string& dir, const std::vector<std::string>& sets, const Registry& registry) {
  const fs::path d = dir;
  if (!fs::is_directory(d)) throw ConfigError(fmt::format("--resume {}: not a run directory", dir));
  const auto keys = resumable_keys(registry);
  for (const auto& s : sets)
    if (!contains(keys, override_key(s)))
      throw ConfigError(fmt::format("--set {}: a resumed run may change only {}", s, fmt::join(keys, ", ")));
  return load_config_file((d / "config.toml").string(), sets, run_schema(registry));
}

RunSummary train(const RunConfig& config, const TrainOptions& options, const Registry& registry) {
  std::unique_ptr<Collective> collective;
  if (options.distributed && options.distributed->world_size > 1) {
    // the config's own checks first, then the rendezvous: either fails before anything is written
    DistributedOptions d = *options.distributed;
    const RunOptions run_options = RunOptions::keys().read(config.params);
    const int64_t batch = TrainerOptions::keys().read(config.params).batch_size;
    if (batch % d.world_size != 0)
      throw ConfigError(fmt::format("train.batch_size = {}: expected a multiple of WORLD_SIZE = {} (each rank samples "
                                    "train.batch_size / WORLD_SIZE trajectories)",
                                    batch, d.world_size));
    d.timeout_s = run_options.distributed_timeout;
    d.transport = run_options.distributed_transport;
    collective = std::make_unique<Collective>(d);
    if (d.rank > 0) return train_worker(config, options, registry, *collective);
  }
  try {
    TrainingRun run(config, options, registry, collective.get());
    if (options.on_writing) options.on_writing();
    try {
      run.open();
      for (int64_t it = run.first_iteration(); it <= run.iterations(); ++it)
        if (const int signal = run.step(it)) return run.stop(signal, it);
      return run.finish();
    } catch (...) {
      run.discard_unstarted();
      throw;
    }
  } catch (const std::bad_alloc&) {
    throw std::runtime_error(out_of_memory(config.params, "operator new failed"));
  } catch (const c10::Error& e) {
    const std::string m = e.what_without_backtrace();
    if (m.find("can't allocate memory") == std::string::npos) throw;
    throw std::runtime_error(out_of_memory(config.params, first_line(e)));
  }
}

}  // namespace gfn

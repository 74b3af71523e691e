#include "apps/run.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/estimator.h"
#include "core/sampler.h"
#include "core/threads.h"
#include "core/trainer.h"
#include "envs/box.h"
#include "envs/hypergrid.h"
#include "envs/labelled_box.h"
#include "envs/line.h"
#include "envs/sets.h"
#include "io/hdf5_log.h"
#include "losses/db.h"
#include "losses/fm.h"
#include "losses/modified_db.h"
#include "losses/subtb.h"
#include "losses/tb.h"
#include "losses/vargrad.h"

namespace gfn {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// registry

Registry Registry::builtin() {
  Registry r;
  r.add_env({"hypergrid", "n-dimensional grid of side H with the TB paper's reward", HypergridOptions::specs(),
             [](const Params& p) { return std::make_unique<HypergridEnv>(HypergridOptions::from_params(p)); }});
  r.add_env({"line", "1-D Gaussian mixture reached by a fixed number of Gaussian increments", LineOptions::specs(),
             [](const Params& p) { return std::make_unique<LineEnv>(LineOptions::from_params(p)); }});
  r.add_env({"box", "[0,1]^d reached by a ball then sphere steps (polar) or minimum-step increments (cartesian)",
             BoxOptions::specs(),
             [](const Params& p) { return std::make_unique<BoxEnv>(BoxOptions::from_params(p)); }});
  r.add_env({"labelled_box", "a discrete label chosen first, then box moves; reward label_ratio^label R_box(x)",
             LabelledBoxOptions::specs(),
             [](const Params& p) { return std::make_unique<LabelledBoxEnv>(LabelledBoxOptions::from_params(p)); }});
  r.add_env({"sets", "subsets of exactly k of n elements with fixed energies, one element per step; R = exp(-energy)",
             SetsOptions::specs(), [](const Params& p) { return std::make_unique<SetsEnv>(SetsOptions::from_params(p)); }});
  r.add_objective({"tb", "trajectory balance", TrajectoryBalance::specs(),
                   [](const Params&) { return std::make_unique<TrajectoryBalance>(); }});
  r.add_objective({"db", "detailed balance: one residual per transition, with a flow head log F(s)",
                   DetailedBalance::specs(), [](const Params&) { return std::make_unique<DetailedBalance>(); }});
  r.add_objective({"subtb", "sub-trajectory balance SubTB(lambda), every sub-trajectory at once, with a flow head",
                   SubTbOptions::specs(), [](const Params& p) {
                     return std::make_unique<SubTrajectoryBalance>(SubTbOptions::from_params(p));
                   }});
  r.add_objective({"fm", "flow matching over edge flows (the forward logits); discrete envs", FlowMatching::specs(),
                   [](const Params&) { return std::make_unique<FlowMatching>(); }});
  r.add_objective({"modified_db", "modified detailed balance: F(s) = R(s) / P_F(exit | s), envs where every state may exit",
                   ModifiedDetailedBalance::specs(),
                   [](const Params&) { return std::make_unique<ModifiedDetailedBalance>(); }});
  r.add_objective({"vargrad", "log-partition variance (VarGrad): TB with log Z the batch mean, none learned",
                   VarGrad::specs(), [](const Params&) { return std::make_unique<VarGrad>(); }});
  return r;
}

void Registry::add_env(EnvEntry entry) {
  if (envs_.count(entry.name)) throw std::invalid_argument("env kind '" + entry.name + "' is already registered");
  envs_.emplace(entry.name, std::move(entry));
}

void Registry::add_objective(ObjectiveEntry entry) {
  if (objectives_.count(entry.name))
    throw std::invalid_argument("objective kind '" + entry.name + "' is already registered");
  objectives_.emplace(entry.name, std::move(entry));
}

namespace {

template <typename Map>
std::vector<std::string> keys_of(const Map& m) {
  std::vector<std::string> out;
  for (const auto& [k, v] : m) out.push_back(k);
  return out;
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

}  // namespace

const EnvEntry& Registry::env(const std::string& name) const {
  auto it = envs_.find(name);
  if (it == envs_.end())
    throw ConfigError(fmt::format("env.kind = \"{}\": expected one of {}", name, quoted_list(env_names())));
  return it->second;
}

const ObjectiveEntry& Registry::objective(const std::string& name) const {
  auto it = objectives_.find(name);
  if (it == objectives_.end())
    throw ConfigError(
        fmt::format("objective.kind = \"{}\": expected one of {}", name, quoted_list(objective_names())));
  return it->second;
}

std::vector<std::string> Registry::env_names() const { return keys_of(envs_); }
std::vector<std::string> Registry::objective_names() const { return keys_of(objectives_); }

// ---------------------------------------------------------------------------------------------
// schema

ConfigSchema run_schema(const Registry& registry) {
  const double inf = std::numeric_limits<double>::infinity();
  const auto env_names = registry.env_names();
  const auto objective_names = registry.objective_names();
  ConfigSchema s;
  s.common = {
      string_param("name", "run", "run name: the default output directory is runs/<name>"),
      int_param("seed", 0, "seed of every random draw (initialisation and sampling)", 0),
      string_param("device", "cpu", "\"cpu\", \"cuda\", \"cuda:N\" or \"auto\" (CUDA when available)"),
      int_param("threads", 1, "intra-op CPU threads (1 is fastest for small networks on 2 cores)", 1, 1024),
      string_param("env.kind", env_names.empty() ? "" : "hypergrid", "environment", env_names),
      int_param("policy.hidden", 256, "width of each hidden layer of the MLP trunk", 1, 1 << 16),
      int_param("policy.layers", 2, "number of hidden layers of the MLP trunk", 1, 64),
      string_param("policy.activation", "relu", "nonlinearity of the trunk", {"relu", "leaky_relu", "elu"}),
      string_param("policy.backward", "uniform",
                   "backward policy P_B: uniform, a learned head on the trunk (trained through the loss), or tlm "
                   "(its own network trained by trajectory likelihood maximisation, scored through an EMA target), "
                   "or maxent (N(s) / N(s'), envs that count paths: hypergrid, sets)",
                   {"uniform", "learned", "tlm", "maxent"}),
      string_param("policy.flow_trunk", "shared",
                   "the flow head log F(s) on the policy's trunk, or on its own MLP of the same shape",
                   {"shared", "separate"}),
      float_param("policy.init_log_z", 0.0, "initial value of the learned log Z", -1e6, 1e6),
      int_param("policy.mixture_components", 2, "Beta mixture components of each continuous piece on a cube", 1, 64),
      int_param("policy.s0_mixture_components", 4,
                "Beta mixture components of the pieces available only at s0 (their own output head; 0: as "
                "policy.mixture_components)",
                0, 64),
      float_param("policy.min_concentration", 0.1, "lower bound of every Beta concentration", 0.0, 1e6, true),
      float_param("policy.backward_min_concentration", 0.1,
                  "lower bound of the Beta concentrations of a learned backward kernel (learned, tlm); >= 1 keeps "
                  "its density bounded, which TLM's likelihood maximisation needs on envs with Beta pieces",
                  0.0, 1e6, true),
      float_param("policy.max_concentration", 5.1, "upper bound of every Beta concentration (> the lower bound)",
                  0.0, 1e6, true),
      string_param("objective.kind", "tb", "training objective", objective_names),
      string_param("objective.credit", "none",
                   "per-step local credits (tb, db, subtb): none, forward-looking (fl) from the env's intermediate "
                   "reward, or learned (led) from a potential network regressed on log R",
                   {"none", "fl", "led"}),
      float_param("objective.led_dropout", -1.0,
                  "LED: probability of dropping each step from the potential's regression (-1: 0.1 when "
                  "trajectories have < 10 steps, else 0.2)",
                  -1.0, 1.0, false, true),
      int_param("objective.led_hidden", 64, "LED: width of the potential network's hidden layers", 1, 1 << 16),
      int_param("objective.led_layers", 2, "LED: hidden layers of the potential network", 1, 64),
      float_param("objective.log_reward_clip", -inf, "log R is clamped from below at this value (-inf: none)", -inf,
                  0.0),
      int_param("train.iterations", 5000, "number of training iterations", 1),
      int_param("train.batch_size", 16, "trajectories per iteration", 1, 1 << 24),
      float_param("train.lr", 1e-3, "Adam learning rate of the policy", 0.0, 10.0, true),
      float_param("train.lr_logz", 0.1, "Adam learning rate of log Z", 0.0, 100.0, true),
      float_param("train.lr_flow", 1e-3, "Adam learning rate of the flow head log F(s) and its own trunk (objectives with flows: db, subtb)",
                  0.0, 10.0, true),
      float_param("train.lr_backward", 1e-3, "Adam learning rate of the TLM backward network", 0.0, 10.0, true),
      float_param("train.backward_decay", 0.999, "the TLM learning rate is multiplied by this after every step", 0.0,
                  1.0, true, false),
      float_param("train.tlm_ema", 0.25, "kappa of the TLM target update psi-bar <- (1 - kappa) psi-bar + kappa psi",
                  0.0, 1.0, true, false),
      int_param("train.led_steps", 1, "LED: potential updates per policy update", 1, 1 << 20),
      float_param("train.lr_potential", 1e-3, "LED: Adam learning rate of the potential network", 0.0, 10.0, true),
      int_param("train.lr_decay_every", 0, "every N iterations all learning rates are multiplied by train.lr_decay (0: never)", 0),
      float_param("train.lr_decay", 0.5, "step decay factor of the learning rates", 0.0, 1.0, true, false),
      float_param("train.epsilon", 0.0, "exploration: probability of a uniform choice among available moves", 0.0,
                  1.0),
      float_param("train.temperature", 1.0, "exploration: sampling logits are divided by it and continuous pieces draw from tempered densities", 0.0, 1e6, true),
      string_param("train.tabular", "auto",
                   "evaluate the policy once per state per iteration (auto: when num_states <= batch * T)",
                   {"auto", "on", "off"}),
      int_param("eval.every", 500, "exact evaluation and log flush every N iterations (0: at the end only)", 0),
      int_param("eval.l1_window", 200000, "terminal states in the empirical distribution of the papers' L1", 1),
      int_param("eval.is_samples", 4096,
                "trajectories for the importance-sampled log Z and ELBO at each evaluation of a non-enumerable env (0: none)", 0, 1 << 24),
      int_param("eval.grid", 100,
                "cells per continuous dimension of the terminal grid on which the terminating density is "
                "compared with R/Z (envs with a grid, d <= 2; 0: off)",
                0, 4096),
      int_param("eval.density_samples", 16,
                "backward trajectories per grid cell in the importance-sampled terminating density", 1, 1 << 16),
      int_param("eval.top_k", 100,
                "the K highest-reward distinct terminal states found in training, for top_k_mean_reward (envs "
                "without continuous coordinates; 0: off)",
                0, 1 << 20),
      int_param("eval.env_samples", 4096,
                "on-policy terminal samples for the env's own metrics at each evaluation (sets: inclusion_error)", 1,
                1 << 24),
      int_param("eval.samples", 1000, "terminal samples of the final policy written to /samples", 0, 1 << 24),
      int_param("log.every", 10, "a /train row every N iterations", 1),
      int_param("log.trajectories_every", 1000, "store sampled trajectories every N iterations (0: never)", 0),
      int_param("log.trajectories_count", 16, "how many of the batch's trajectories to store each time", 1),
  };
  for (const auto& n : env_names) s.env_kinds[n] = registry.env(n).params;
  for (const auto& n : objective_names) s.objective_kinds[n] = registry.objective(n).params;
  return s;
}

std::string resolve_device(const std::string& device) {
  if (device == "auto") return torch::cuda::is_available() ? "cuda" : "cpu";
  std::optional<torch::Device> d;
  try {
    d = torch::Device(device);
  } catch (const std::exception&) {
    throw ConfigError(fmt::format("device = \"{}\": expected \"cpu\", \"cuda\", \"cuda:N\" or \"auto\"", device));
  }
  if (d->is_cpu()) return "cpu";
  if (d->is_cuda()) {
    if (!torch::cuda::is_available())
      throw ConfigError(fmt::format("device = \"{}\": this LibTorch has no usable CUDA device", device));
    if (d->has_index() && d->index() >= static_cast<int>(torch::cuda::device_count()))
      throw ConfigError(fmt::format("device = \"{}\": only {} CUDA device(s) present", device,
                                    torch::cuda::device_count()));
    return device;
  }
  throw ConfigError(fmt::format("device = \"{}\": expected \"cpu\", \"cuda\", \"cuda:N\" or \"auto\"", device));
}

// ---------------------------------------------------------------------------------------------
// building a run from its config

namespace {

struct Run {
  std::unique_ptr<Env> env;
  std::unique_ptr<Objective> objective;
  std::unique_ptr<Estimators> estimators;
  EstimatorOptions estimator_options;
  TrainerOptions trainer_options;
  torch::Device device{torch::kCPU};
  std::string device_name;
};

EstimatorOptions estimator_options(const Params& p) {
  EstimatorOptions o;
  o.hidden = p.get_int("policy.hidden");
  o.layers = p.get_int("policy.layers");
  const auto& act = p.get_string("policy.activation");
  o.activation = act == "elu" ? Activation::kElu : act == "leaky_relu" ? Activation::kLeakyRelu : Activation::kRelu;
  const auto& backward = p.get_string("policy.backward");
  o.backward = backward == "learned" ? BackwardPolicy::kLearned
               : backward == "tlm"   ? BackwardPolicy::kTlm
               : backward == "maxent" ? BackwardPolicy::kMaxEnt
                                     : BackwardPolicy::kUniform;
  o.init_log_z = p.get_float("policy.init_log_z");
  o.flow_trunk = p.get_string("policy.flow_trunk") == "separate" ? FlowTrunk::kSeparate : FlowTrunk::kShared;
  o.head.mixture_components = p.get_int("policy.mixture_components");
  o.head.initial_mixture_components = p.get_int("policy.s0_mixture_components");
  o.head.min_concentration = p.get_float("policy.min_concentration");
  o.head.max_concentration = p.get_float("policy.max_concentration");
  o.backward_min_concentration = p.get_float("policy.backward_min_concentration");
  o.head.validate();
  return o;
}

Run build_run(const Params& p, const Registry& registry) {
  Run run;
  run.device_name = resolve_device(p.get_string("device"));
  run.device = torch::Device(run.device_name);
  run.env = registry.env(p.get_string("env.kind")).make(p.section("env"));
  run.objective = registry.objective(p.get_string("objective.kind")).make(p.section("objective"));
  run.estimator_options = estimator_options(p);
  run.estimator_options.flow = run.objective->uses_flow();
  run.estimator_options.potential = p.get_string("objective.credit") == "led";
  run.estimator_options.potential_hidden = p.get_int("objective.led_hidden");
  run.estimator_options.potential_layers = p.get_int("objective.led_layers");
  auto& t = run.trainer_options;
  t.batch_size = p.get_int("train.batch_size");
  if (t.batch_size < run.objective->min_batch_size())
    throw ConfigError(fmt::format("train.batch_size = {}: objective.kind = \"{}\" needs at least {} trajectories "
                                  "per batch",
                                  t.batch_size, run.objective->name(), run.objective->min_batch_size()));
  t.lr = p.get_float("train.lr");
  t.lr_logz = p.get_float("train.lr_logz");
  t.lr_flow = p.get_float("train.lr_flow");
  t.lr_backward = p.get_float("train.lr_backward");
  t.backward_decay = p.get_float("train.backward_decay");
  t.tlm_ema = p.get_float("train.tlm_ema");
  t.lr_decay_every = p.get_int("train.lr_decay_every");
  t.lr_decay = p.get_float("train.lr_decay");
  t.sampler.epsilon = p.get_float("train.epsilon");
  t.sampler.temperature = p.get_float("train.temperature");
  t.score.log_reward_clip = p.get_float("objective.log_reward_clip");
  t.score.local_credit = p.get_string("objective.credit") == "fl";
  t.led = run.estimator_options.potential;
  t.led_drop_rate = p.get_float("objective.led_dropout");
  t.led_steps = p.get_int("train.led_steps");
  t.lr_potential = p.get_float("train.lr_potential");
  const auto& tab = p.get_string("train.tabular");
  t.tabular = tab == "on" ? TabularMode::kOn : tab == "off" ? TabularMode::kOff : TabularMode::kAuto;
  t.validate();
  // parameters come from their own stream of the seed, sampling from another
  auto init_gen = make_generator(static_cast<uint64_t>(p.get_int("seed")) * 2 + 1, torch::kCPU);
  run.estimators = std::make_unique<Estimators>(*run.env, run.estimator_options, init_gen, run.device);
  return run;
}

// Appends a tensor (moved to host, contiguous) as rows of /<group>/<name>.
void append_tensor(Hdf5Log& log, const std::string& group, const std::string& name, torch::Tensor t) {
  t = t.to(torch::kCPU).contiguous();
  LogDType dtype;
  switch (t.scalar_type()) {
    case torch::kFloat64: dtype = LogDType::kFloat64; break;
    case torch::kFloat32: dtype = LogDType::kFloat32; break;
    case torch::kInt64: dtype = LogDType::kInt64; break;
    case torch::kBool: dtype = LogDType::kBool; break;
    default: t = t.to(torch::kFloat64); dtype = LogDType::kFloat64;
  }
  std::vector<int64_t> row_shape(t.sizes().begin() + 1, t.sizes().end());
  for (auto d : row_shape)
    if (d == 0) return;  // zero-width coordinates (e.g. no continuous part) are not stored
  log.append(group, name, dtype, row_shape, t.data_ptr(), t.size(0));
}

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
    auto tr = rollout(env, *est.policy, n, SamplerOptions{}, gen, device);
    append_tensor(log, "samples", "states_discrete", tr.terminal_discrete);
    append_tensor(log, "samples", "states_continuous", tr.terminal_continuous);
    append_tensor(log, "samples", "log_reward", tr.log_reward);
    append_tensor(log, "samples", "length", tr.length);
    append_tensor(log, "samples", "trajectory_log_pf", tr.log_pf_sampled.sum(0));
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

RunSummary train(const RunConfig& config, const TrainOptions& options, const Registry& registry) {
  const Params& p = config.params;
  // everything that can be wrong with the config fails here, before anything is written
  Run run = build_run(p, registry);
  const fs::path dir = options.out_dir;
  if (dir.empty()) throw ConfigError("--out: the output directory must not be empty");
  if (fs::exists(dir / "log.h5") || fs::exists(dir / "model.pt"))
    throw ConfigError(fmt::format("--out {}: the directory already holds a run (log.h5); choose another", dir.string()));
  if (fs::exists(dir) && !fs::is_directory(dir))
    throw ConfigError(fmt::format("--out {}: exists and is not a directory", dir.string()));
  const int64_t iterations = p.get_int("train.iterations");
  const int64_t eval_every = p.get_int("eval.every");
  const int64_t log_every = p.get_int("log.every");
  const int64_t traj_every = p.get_int("log.trajectories_every");
  const int64_t traj_count = p.get_int("log.trajectories_count");
  const int64_t seed = p.get_int("seed");
  const int64_t is_samples = p.get_int("eval.is_samples");
  auto eval_gen = make_generator(static_cast<uint64_t>(seed) * 2 + 5, run.device);
  const int64_t density_samples = p.get_int("eval.density_samples");
  // continuous envs with a terminal grid: the terminating density against R/Z on it
  std::optional<TerminalGrid> grid;
  if (const int64_t points = p.get_int("eval.grid"); points > 0 && !run.env->enumerable())
    grid = run.env->terminal_grid(points, run.device);
  set_cpu_threads(static_cast<int>(p.get_int("threads")));

  Trainer trainer(*run.env, *run.estimators, *run.objective, run.trainer_options, static_cast<uint64_t>(seed) * 2,
                  run.device);
  const StateTable* table = trainer.table();
  std::optional<TopK> top;
  if (const int64_t k = p.get_int("eval.top_k"); k > 0 && run.env->continuous_dim() == 0) top.emplace(k);
  const int64_t env_samples = p.get_int("eval.env_samples");
  std::vector<double> target;
  std::optional<EmpiricalL1> l1;
  if (table != nullptr) {
    target = target_distribution(*table);
    l1.emplace(table->size(), p.get_int("eval.l1_window"));
  }

  // the run directory: resolved config first, then the log
  fs::create_directories(dir);
  {
    std::ofstream cfg(dir / "config.toml");
    cfg << config.resolved_toml;
    if (!cfg) throw std::runtime_error("cannot write " + (dir / "config.toml").string());
  }
  LogAttributes attrs;
  attrs.gfn_version = GFN_VERSION;
  attrs.created_utc = utc_now_iso8601();
  attrs.config_toml = config.resolved_toml;
  attrs.env = run.env->name();
  attrs.objective = run.objective->name();
  attrs.device = run.device_name;
  attrs.seed = seed;
  auto log = Hdf5Log::create((dir / "log.h5").string(), attrs);

  std::ostream& out = options.progress_stream ? *options.progress_stream : std::cerr;
  Progress progress(options.progress, out, iterations);
  progress.line(fmt::format("gfn train: env {}{}, objective {}, batch {}, {} iterations, device {}", run.env->name(),
                            run.env->enumerable() ? fmt::format(" ({} states{})", run.env->num_states(),
                                                                trainer.tabular() ? ", tabular" : "")
                                                  : std::string(),
                            run.objective->name(), run.trainer_options.batch_size, iterations, run.device_name));

  RunSummary summary;
  summary.out_dir = dir.string();
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  int64_t trajectories = 0;
  double last_tv = std::nan("");
  double loss = 0;
  for (int64_t it = 1; it <= iterations; ++it) {
    const bool last = it == iterations;
    const bool log_row = it % log_every == 0 || last;
    IterationResult r = trainer.step(/*with_grad_norm=*/log_row);
    trajectories += run.trainer_options.batch_size;
    if (l1) l1->add(r.terminal_index);
    if (top) top->add(r.trajectories.terminal_discrete, r.trajectories.log_reward);

    // a /train row
    if (log_row) {
      loss = r.loss.item<double>();
      const auto& tr = r.trajectories;
      std::vector<std::pair<std::string, double>> row = {{"iteration", static_cast<double>(it)},
                                                         {"trajectories", static_cast<double>(trajectories)},
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

    // exact evaluation, a checkpoint of the model, a flush
    if ((eval_every > 0 && it % eval_every == 0) || last) {
      std::vector<std::pair<std::string, double>> row = {{"iteration", static_cast<double>(it)},
                                                         {"trajectories", static_cast<double>(trajectories)},
                                                         {"wall_s", elapsed()},
                                                         {"log_z", run.estimators->log_z.item<double>()}};
      std::string text = fmt::format("iter {:>7}  loss {:.4g}  log Z {:+.4f}", it, r.loss.item<double>(),
                                     run.estimators->log_z.item<double>());
      if (table != nullptr) {
        ExactMetrics m = exact_metrics(*table, *run.estimators);
        double l1v = l1->l1(target);
        row.insert(row.end(), {{"tv", m.tv}, {"jsd", m.jsd}, {"kl", m.kl}, {"log_z_error", m.log_z_error},
                               {"log_z_exact", m.log_z_exact}, {"l1", l1v}});
        text += fmt::format("  TV {:.3e}  JSD {:.2e}  |dlogZ| {:.2e}  L1 {:.3e}", m.tv, m.jsd, m.log_z_error, l1v);
        last_tv = m.tv;
        if (last) {
          summary.exact = m;
          summary.l1 = l1v;
        }
      }
      if (is_samples > 0 && table == nullptr) {  // enumerable envs have the exact metrics above
        ImportanceEstimate e = importance_log_z(*run.env, *run.estimators, is_samples, 4096, eval_gen, run.device);
        row.insert(row.end(), {{"log_z_is", e.log_z}, {"elbo", e.elbo}, {"ess", e.ess}});
        if (auto exact = run.env->log_partition()) row.push_back({"log_z_is_error", std::fabs(e.log_z - *exact)});
        text += fmt::format("  log Z_IS {:+.4f}  ELBO {:+.4f}", e.log_z, e.elbo);
        if (last) summary.importance = e;
      }
      if (grid) {
        GridMetrics g = grid_metrics(*run.env, *run.estimators, *grid, density_samples, 1 << 15, eval_gen);
        row.insert(row.end(), {{"grid_jsd", g.jsd}, {"grid_kl", g.kl}, {"grid_tv", g.tv}, {"grid_mass", g.mass}});
        text += fmt::format("  grid JSD {:.3e}  mass {:.3f}", g.jsd, g.mass);
        if (last) summary.grid = g;
      }
      if (top) {
        row.insert(row.end(), {{"top_k_mean_reward", top->mean_reward()}, {"top_k_found", static_cast<double>(top->size())}});
        text += fmt::format("  top-{} mean R {:.4g}", top->size(), top->mean_reward());
      }
      if (run.env->has_sample_metrics()) {
        auto sampled = rollout(*run.env, *run.estimators->policy, env_samples, SamplerOptions{}, eval_gen, run.device);
        for (const auto& [name, value] : run.env->sample_metrics(sampled.terminal_states())) {
          row.push_back({name, value});
          text += fmt::format("  {} {:.3e}", name, value);
        }
      }
      log->append_row("eval", row);
      run.estimators->save((dir / "model.pt").string(), it);
      log->flush();
      progress.line(text);
    }
    if (progress.due(last))
      progress.update(it, r.loss.item<double>(), run.estimators->log_z.item<double>(), last_tv,
                      1e3 * elapsed() / static_cast<double>(it));
    if (last) loss = r.loss.item<double>();
  }
  summary.wall_s = elapsed();
  progress.finish();

  // terminal samples of the final policy
  const int64_t samples = p.get_int("eval.samples");
  if (samples > 0) log_samples(*log, *run.env, *run.estimators, samples, static_cast<uint64_t>(seed) * 2 + 7,
                               run.device);
  log->flush();

  summary.iterations = iterations;
  summary.trajectories = trajectories;
  summary.final_loss = loss;
  summary.log_z = run.estimators->log_z.item<double>();
  return summary;
}

// ---------------------------------------------------------------------------------------------
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

EvalResult evaluate_run(const std::string& dir_str, const Registry& registry) {
  const fs::path dir = dir_str;
  if (!fs::is_directory(dir)) throw ConfigError(fmt::format("{}: not a run directory", dir_str));
  for (const char* f : {"config.toml", "model.pt"})
    if (!fs::exists(dir / f)) throw ConfigError(fmt::format("{}: no {} (not a finished or checkpointed run)", dir_str, f));
  RunConfig config = load_config_file((dir / "config.toml").string(), {}, run_schema(registry));
  set_cpu_threads(static_cast<int>(config.params.get_int("threads")));
  Run run = build_run(config.params, registry);
  EvalResult result;
  result.env = run.env->name();
  result.iteration = run.estimators->load((dir / "model.pt").string());
  if (run.env->enumerable()) {
    StateTable table(*run.env, run.device);
    result.exact = exact_metrics(table, *run.estimators);
  } else if (const int64_t n = config.params.get_int("eval.is_samples"); n > 0) {
    auto gen = make_generator(static_cast<uint64_t>(config.params.get_int("seed")) * 2 + 5, run.device);
    result.importance = importance_log_z(*run.env, *run.estimators, n, 4096, gen, run.device);
    result.log_z_exact = run.env->log_partition();
    if (const int64_t points = config.params.get_int("eval.grid"); points > 0) {
      if (auto grid = run.env->terminal_grid(points, run.device))
        result.grid = grid_metrics(*run.env, *run.estimators, *grid, config.params.get_int("eval.density_samples"),
                                   1 << 15, gen);
    }
  }
  return result;
}

}  // namespace gfn

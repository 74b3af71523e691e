// The built-in environments and objectives, the config schema built from them, and the device
// a config names.
#include "apps/run.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "envs/box.h"
#include "envs/hypergrid.h"
#include "envs/labelled_box.h"
#include "envs/line.h"
#include "envs/sets.h"
#include "losses/db.h"
#include "losses/fm.h"
#include "losses/modified_db.h"
#include "losses/subtb.h"
#include "losses/tb.h"
#include "losses/vargrad.h"

namespace gfn {

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
      string_param("policy.trunk_precision", "fp32",
                   "mixed precision: the trunk's matrix products in bf16 (float32 master weights; heads, "
                   "log-softmax, densities and losses in float32), or all in fp32",
                   {"fp32", "bf16"}),
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
      bool_param("train.cuda_graph", false,
                 "CUDA only: capture one whole iteration as a CUDA graph after 3 eager ones and replay it"),
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
      float_param("log.flush_seconds", 10.0,
                  "the log is flushed at every evaluation and checkpoint, and at a /train row when this many seconds "
                  "passed since the last flush (what a killed run loses at most)",
                  0.0, 1e9),
      int_param("checkpoint.every", 0,
                "write DIR/checkpoint.pt (for gfn train --resume) every N iterations (0: by time only, "
                "checkpoint.seconds)",
                0),
      float_param("checkpoint.seconds", 60.0,
                  "write DIR/checkpoint.pt when this many seconds of training passed since the last one (0: not by "
                  "time); a checkpoint is also written at the end and when a signal stops the run",
                  0.0, 1e9),
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

}  // namespace gfn

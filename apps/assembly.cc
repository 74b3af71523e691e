#include "apps/assembly.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "core/condition.h"
#include "core/seeds.h"

namespace gfn {

namespace {

// The longest run name: runs/<name> and its suffixes (-2, -3, ...) stay far below the 255 bytes a
// file name may have on Linux file systems.
constexpr size_t kMaxRunName = 100;

// "" when `name` can be the directory runs/<name>: one path component (no '/', neither "." nor
// ".."), 1 to kMaxRunName characters, no control characters; else the message.
std::string run_name_problem(const std::string& name) {
  const std::string shown = name.size() > 40
                                ? fmt::format("{} ({} characters)", to_toml(name.substr(0, 40) + "..."), name.size())
                                : to_toml(name);
  std::string expected;
  if (name.empty() || name == "." || name == "..")
    expected = "a directory name (runs/<name> must be a directory inside runs/)";
  else if (name.find('/') != std::string::npos)
    expected = "a single directory name, without '/' (runs/<name> must be a directory inside runs/; give --out "
               "DIR for another place)";
  else if (name.size() > kMaxRunName)
    expected = fmt::format("at most {} characters", kMaxRunName);
  else if (std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    expected = "no control characters (tabs, newlines, ...)";
  return expected.empty() ? std::string() : fmt::format("name = {}: expected {}", shown, expected);
}

}  // namespace

const OptionTable<RunOptions>& RunOptions::keys() {
  using O = RunOptions;
  static const auto table =
      OptionTable<O>()
          .add("name", &O::name,
               "run name: the default output directory is runs/<name> (1 to 100 characters, no '/', not . or ..)")
          .add("seed", &O::seed, "seed of every random draw (initialisation, sampling, evaluation)", at_least(0))
          .add("device", &O::device, "\"cpu\", \"cuda\", \"cuda:N\" or \"auto\" (CUDA when available)")
          .add("train.iterations", &O::iterations, "number of training iterations", at_least(1))
          .resumable()
          .add("threads", &O::threads, "intra-op CPU threads (1 is fastest for small networks on 2 cores)",
               in(1, 1024))
          .resumable()
          .add("distributed.timeout", &O::distributed_timeout,
               "multi-process runs (WORLD_SIZE > 1): seconds to wait for the rendezvous and for every "
               "all-reduce (rank 0's evaluations must fit in it) before a rank gives up on its peers",
               in(1, 86400))
          .resumable()
          .add("distributed.transport", &O::distributed_transport,
               "multi-process runs: \"auto\" (gradients through shared memory when every rank is on one machine, "
               "else Gloo) or \"gloo\" (Gloo's all-reduce over TCP always)")
          .resumable()
          .rule([](const O& o) { return run_name_problem(o.name); });
  return table;
}

namespace {

// Parameters of layers of widths in -> h -> h ... (`layers` of them, with biases).
double mlp_parameters(double in, double h, double layers) { return in * h + h + (layers - 1) * (h * h + h); }

// "1,234,567" for a count (the limits are in the hundreds of millions).
std::string count_text(double n) {
  std::string digits = fmt::format("{:.0f}", n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

RunFootprint run_footprint(const Env& env, const EstimatorOptions& o, const TrainerOptions& trainer,
                           const EvalOptions& eval, int64_t conditions) {
  RunFootprint f;
  const ActionSpec& spec = env.action_spec();
  const double in = static_cast<double>(env.feature_dim()), h = static_cast<double>(o.hidden),
               layers = static_cast<double>(o.layers);
  // the trunk (core/estimator.cc, core/time_policy.cc, core/transformer.cc) and its activations per row
  double trunk = 0, row_floats = in + layers * h;
  if (o.architecture == Architecture::kTime) {
    const double m = in - 1, harmonics = static_cast<double>(o.time_harmonics), e = static_cast<double>(o.embedding);
    trunk = (2 * harmonics * e + e) + (e * e + e) + (m * e + e) + mlp_parameters(2 * e, h, layers);
    if (o.langevin) trunk += (2 * harmonics * e + e) + (e * m + m);
    row_floats = in + 2 * e + layers * h;
  } else if (o.architecture == Architecture::kTransformer && env.token_layout()) {
    const double length = static_cast<double>(env.token_layout()->length),
                 vocabulary = static_cast<double>(env.token_layout()->vocabulary);
    trunk = vocabulary * h + h + length * h + layers * (12 * h * h + 13 * h) + 2 * h;
    row_floats = in + length * layers * h;  // the residual stream of every token at every layer
  } else {
    trunk = mlp_parameters(in, h, layers);
  }
  // the heads: forward always, backward where P_B is the policy's own learned head
  const double forward_out = static_cast<double>(KernelHead(spec.forward, spec.coord_dim, o.head).output_size());
  double heads = h * forward_out + forward_out;
  if (o.backward == BackwardPolicy::kLearned) {
    const double backward_out =
        static_cast<double>(KernelHead(spec.backward, spec.coord_dim, o.backward_head_options()).output_size());
    heads += h * backward_out + backward_out;
  }
  f.policy_parameters = trunk + heads;
  f.batch_floats = static_cast<double>(trainer.batch_size) * (static_cast<double>(env.max_length()) + 1) * row_floats;
  // core/tabular.h's StateTable: features (float32), masks (bool), child, backward-component,
  // parent and parent-component indices (int64), the max-entropy P_B (float64), rewards and the states
  if (has_state_table(env)) {
    const double states = static_cast<double>(env.num_states()), cf = static_cast<double>(spec.forward.size()),
                 cb = static_cast<double>(spec.backward.size());
    const double per_state = 4 * in + 17 * cf + 33 * cb +
                             8 * static_cast<double>(env.discrete_dim() + env.continuous_dim()) + 16;
    f.table_bytes = states * per_state * static_cast<double>(1 + conditions);
  }
  // the terminal grid's cells: the cells at 1 point per dimension times points^d
  if (eval.grid > 0 && !env.enumerable()) {
    if (auto one = env.terminal_grid(1, torch::kCPU)) {
      const double cells = static_cast<double>(one->states.batch_size()) *
                           std::pow(static_cast<double>(eval.grid), static_cast<double>(one->states.continuous.size(1)));
      f.grid_trajectories = cells * static_cast<double>(eval.density_samples);
    }
  }
  return f;
}

namespace {

// The env's integer keys with their values ("env.ndim = 2, env.height = 1048576"): the keys that
// size its states, its input and its trajectories.
std::string env_size_keys(const Params& p) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : p.values())
    if (key.rfind("env.", 0) == 0 && std::holds_alternative<int64_t>(value))
      keys.push_back(fmt::format("{} = {}", key, value_text(value)));
  return keys.empty() ? "the env's keys" : fmt::format("{}", fmt::join(keys, ", "));
}

// ConfigError for the first limit of RunFootprint that `run`'s config passes.
void check_footprint(const Run& run, const Params& p, const EvalOptions& eval, int64_t conditions) {
  const RunFootprint f =
      run_footprint(*run.env, run.estimator_options, run.trainer_options, eval, conditions);
  const EstimatorOptions& o = run.estimator_options;
  const std::string env = fmt::format("env.kind = \"{}\" with {}", run.env->name(), env_size_keys(p));
  if (f.policy_parameters > RunFootprint::kMaxPolicyParameters)
    throw ConfigError(fmt::format(
        "the policy network would have {} parameters (input width {} from {}; policy.hidden = {}, policy.layers = "
        "{}): expected at most {}; lower policy.hidden or policy.layers, or the env's size",
        count_text(f.policy_parameters), run.env->feature_dim(), env, o.hidden, o.layers,
        count_text(RunFootprint::kMaxPolicyParameters)));
  if (f.batch_floats > RunFootprint::kMaxBatchFloats)
    throw ConfigError(fmt::format(
        "one batch's network inputs and activations would hold {} floats (train.batch_size = {} trajectories of up "
        "to {} states, input width {}, from {}; policy.hidden = {}, policy.layers = {}): expected at most {} (4 GiB); "
        "lower train.batch_size, the policy's size or the env's",
        count_text(f.batch_floats), run.trainer_options.batch_size, run.env->max_length() + 1, run.env->feature_dim(),
        env, o.hidden, o.layers, count_text(RunFootprint::kMaxBatchFloats)));
  if (f.table_bytes > RunFootprint::kMaxTableBytes)
    throw ConfigError(fmt::format(
        "the exact state tables would take {:.1f} GiB ({} states{}, from {}): expected at most 4 GiB; lower the "
        "env's size",
        f.table_bytes / 1073741824.0, count_text(static_cast<double>(run.env->num_states())),
        conditions > 0 ? fmt::format(", {} tables: one per condition of condition.eval and the run's", conditions + 1)
                       : "",
        env));
  if (f.grid_trajectories > RunFootprint::kMaxGridTrajectories)
    throw ConfigError(fmt::format(
        "eval.grid = {}: an evaluation of the terminating density would run {} backward trajectories (eval.grid^d "
        "cells, d = {}, times eval.density_samples = {}): expected at most {}; lower eval.grid or "
        "eval.density_samples",
        eval.grid, count_text(f.grid_trajectories), run.env->terminal_grid(1, torch::kCPU)->states.continuous.size(1),
        eval.density_samples, count_text(RunFootprint::kMaxGridTrajectories)));
}

// The smallest policy.max_concentration for a P_B with Beta pieces of its own (learned, tlm,
// fixed). Below 1 every Beta the heads can give is unbounded at both faces of its chart: the
// forward draws pile up within float64's resolution of the faces, the env recovers the backward
// coordinates of such steps on a face (clamped to the smallest normal, 2.2e-308), and P_B scores
// them at log-densities up to (1 - a) 708, ~700: the loss and the importance weights overflow.
// Measured on the Box (policy.min_concentration = 0.01, backward floor 0.02, learned P_B, 1,000
// to 3,000 iterations): log Z_IS off by 660, 622, 545 at max 0.05, 0.1, 0.2, by 472 at 0.3 (one
// seed of two), sane at 0.5 (grid mass 0.6-0.9) and at 1 (|log Z_IS error| 0.02, grid mass 0.99).
// A uniform P_B draws no Beta: small concentrations there fit poorly but stay finite.
constexpr double kMinBackwardBetaMaxConcentration = 1.0;

// ConfigError for a P_B with Beta pieces of its own whose concentrations cannot reach 1.
void check_backward_betas(const Run& run) {
  const EstimatorOptions& o = run.estimator_options;
  if (!o.backward_has_concentrations() || o.head.max_concentration >= kMinBackwardBetaMaxConcentration) return;
  for (const Component& c : run.env->action_spec().backward.components) {
    if (c.kind != ComponentKind::kPiece || (c.domain != Domain::kUnitCube && c.domain != Domain::kInterval)) continue;
    throw ConfigError(fmt::format(
        "policy.max_concentration = {} with policy.backward = \"{}\": expected at least {} where P_B has Beta "
        "pieces (env.kind = \"{}\"): below it every Beta is unbounded at the faces of its chart, and P_B scores "
        "the coordinates of steps that end on a face at log-densities up to ~700 (the loss and the importance "
        "weights overflow); raise policy.max_concentration or use policy.backward = \"uniform\"",
        o.head.max_concentration, enum_name(o.backward), kMinBackwardBetaMaxConcentration, run.env->name()));
  }
}

}  // namespace

Run build_run(const Params& p, const Registry& registry) {
  Run run;
  run.options = RunOptions::keys().read(p);
  run.device_name = resolve_device(run.options.device);
  run.device = torch::Device(run.device_name);
  const KindOptions kinds = KindOptions::keys(registry).read(p);
  run.env = registry.make_env(kinds.env, p.section("env"));
  const ConditionOptions condition = ConditionOptions::keys().read(p);
  if (condition.enabled()) {  // a conditional GFlowNet: the env's states carry c (core/condition.h)
    ConditionSpec spec = parse_condition(condition, *run.env);
    run.env = std::make_unique<ConditionedEnv>(std::shared_ptr<const Env>(std::move(run.env)), std::move(spec));
  }
  run.objective = registry.objective(kinds.objective).make(p.section("objective"));
  run.estimator_options = EstimatorOptions::keys().read(p);
  run.trainer_options = TrainerOptions::keys().read(p);
  run.execution = resolve_execution(run.trainer_options.execution, run.device);
  check_backward_betas(run);
  // the sizes the config commits the run to, before anything of that size is allocated
  const auto* conditioned = dynamic_cast<const ConditionedEnv*>(run.env.get());
  check_footprint(run, p, EvalOptions::keys().read(p),
                  conditioned != nullptr ? static_cast<int64_t>(conditioned->spec().eval.size()) : 0);
  // parameters come from their own stream of the seed: the policy's first, then each component's
  auto init = make_generator(stream_seed(run.options.seed, SeedStream::kInitialisation), torch::kCPU);
  run.estimators = std::make_unique<Estimators>(*run.env, run.estimator_options, init, run.device);
  const Requirements requirements = run.objective->requirements();
  if (condition.enabled()) {
    // log Z(c) is a network the loss trains; objectives that estimate log Z from a batch would
    // mix the batch's conditions
    if (!requirements.log_z)
      throw ConfigError(fmt::format("condition.parameters = \"{}\": a conditional GFlowNet learns log Z(c) as a "
                                    "network, which objective.kind = \"{}\" does not train (use tb, subtb with "
                                    "objective.s0 = \"log_z\", or an HVI objective with objective.baseline = "
                                    "\"log_z\")",
                                    condition.parameters, run.objective->name()));
    run.estimators->log_z_net = LogZNet(run.env->condition_dim(), condition.hidden, condition.layers,
                                        run.estimator_options.activation, run.estimator_options.dtype, init);
    run.estimators->log_z_net->to(run.device);
  }
  const ComponentSetup setup{*run.env,          *run.estimators, run.estimator_options, run.trainer_options,
                             requirements,      init,            run.device};
  run.components = make_components(registry, setup, p);
  return run;
}

LogAttributes log_attributes(const RunConfig& config, const Run& run) {
  LogAttributes attrs;
  attrs.gfn_version = GFN_VERSION;
  attrs.created_utc = utc_now_iso8601();
  attrs.config_toml = config.resolved_toml;
  attrs.env = run.env->name();
  attrs.objective = run.objective->name();
  attrs.device = run.device_name;
  attrs.seed = run.options.seed;
  return attrs;
}

}  // namespace gfn

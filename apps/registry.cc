// The built-in environments, objectives and components, the config schema built from them, and
// the device a config names.
#include "apps/registry.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "apps/assembly.h"
#include "apps/evaluator.h"
#include "components/exploration.h"
#include "components/flow_head.h"
#include "components/led.h"
#include "components/replay.h"
#include "components/target_sampler.h"
#include "components/tlm.h"
#include "core/condition.h"
#include "core/trainer.h"
#include "envs/bayesnet.h"
#include "envs/bitseq.h"
#include "envs/box.h"
#include "envs/diffusion.h"
#include "envs/hypergrid.h"
#include "envs/labelled_box.h"
#include "envs/line.h"
#include "envs/sets.h"
#include "envs/torus.h"
#include "io/checkpoint.h"
#include "io/run_log.h"
#include "losses/db.h"
#include "losses/fm.h"
#include "losses/hvi.h"
#include "losses/modified_db.h"
#include "losses/subtb.h"
#include "losses/tb.h"
#include "losses/vargrad.h"

namespace gfn {

// ---------------------------------------------------------------------------------------------
// registry

Registry Registry::builtin() {
  Registry r;
  r.add_env(env_entry<HypergridEnv, HypergridOptions>("hypergrid",
                                                      "n-dimensional grid of side H with the TB paper's reward"));
  r.add_env(env_entry<LineEnv, LineOptions>(
      "line", "1-D Gaussian mixture reached by a fixed number of Gaussian increments"));
  r.add_env(env_entry<BoxEnv, BoxOptions>(
      "box", "[0,1]^d reached by a ball then sphere steps (polar) or minimum-step increments (cartesian)"));
  r.add_env(env_entry<LabelledBoxEnv, LabelledBoxOptions>(
      "labelled_box", "a discrete label chosen first, then box moves; reward label_ratio^label R_box(x)"));
  r.add_env(env_entry<TorusEnv, TorusOptions>(
      "torus", "two von Mises modes on the k-torus reached by a fixed number of rotations (circle pieces of dim k)"));
  r.add_env(env_entry<DiffusionEnv, DiffusionOptions>(
      "diffusion", "a diffusion sampler on R^d: T Euler-Maruyama steps towards a target density, Brownian-bridge P_B"));
  r.add_env(env_entry<BayesNetEnv, BayesNetOptions>(
      "bayesnet", "a linear-Gaussian Bayesian network: a DAG and its edge weights, added one edge at a time; exact "
                  "posterior for d <= 5"));
  r.add_env(env_entry<BitSeqEnv, BitSeqOptions>(
      "bitseq", "binary strings of n bits built from k-bit words, appended or placed in any slot; reward by the "
                "distance to a set of modes (the TB paper's bit sequences)"));
  r.add_env(env_entry<SetsEnv, SetsOptions>(
      "sets", "subsets of exactly k of n elements with fixed energies, one element per step; R = exp(-energy)"));
  r.add_objective(objective_entry<TrajectoryBalance>("tb", "trajectory balance"));
  r.add_objective(objective_entry<DetailedBalance>(
      "db", "detailed balance: one residual per transition, with a flow head log F(s)"));
  r.add_objective(objective_entry<SubTrajectoryBalance, SubTbOptions>(
      "subtb", "sub-trajectory balance SubTB(lambda), every sub-trajectory at once, with a flow head"));
  r.add_objective(objective_entry<FlowMatching>("fm", "flow matching over edge flows (the forward logits); discrete envs"));
  r.add_objective(objective_entry<ModifiedDetailedBalance>(
      "modified_db", "modified detailed balance: F(s) = R(s) / P_F(exit | s), envs where every state may exit"));
  r.add_objective(objective_entry<VarGrad>(
      "vargrad", "log-partition variance (VarGrad): TB with log Z the batch mean, none learned"));
  for (auto [kind, doc] : {std::pair{HviKind::kReverseKl, "reverse KL D_KL(P_F || P_B), score-function gradients with a "
                                                          "baseline (hierarchical variational inference)"},
                           std::pair{HviKind::kForwardKl, "forward KL D_KL(P_B || P_F), on exact target samples or "
                                                          "importance-weighted batches of P_F"},
                           std::pair{HviKind::kWakeSleep, "wake-sleep: P_F by forward KL, a learned P_B by reverse KL"},
                           std::pair{HviKind::kReverseWakeSleep,
                                     "reverse wake-sleep: P_F by reverse KL, a learned P_B by forward KL"}}) {
    r.add_objective({HierarchicalVariational::kind_name(kind), doc, HviOptions::keys().specs(),
                     [kind = kind](const Params& p) {
                       return std::make_unique<HierarchicalVariational>(kind, HviOptions::keys().read(p));
                     }});
  }
  // components, in the order that draws their parameters
  r.add_component(component_entry<FlowHeadComponent, FlowOptions>(
      "flow", "the flow head log F(s) of objectives that read flows (db, subtb)"));
  r.add_component(component_entry<TlmComponent, TlmOptions>(
      "tlm", "P_B trained by trajectory likelihood maximisation, scored through an EMA target (policy.backward = tlm)"));
  r.add_component(component_entry<LedComponent, LedOptions>(
      "led", "a potential regressed on log R whose values are the local credits (objective.credit = led)"));
  r.add_component({"explore", "extra forward noise of Gaussian steps, decaying to 0 (explore.noise > 0)",
                   ExplorationOptions::keys().specs(), [](const ComponentSetup&) { return true; },
                   [](const Params& p, const ComponentSetup& s) -> std::unique_ptr<TrainingComponent> {
                     auto o = ExplorationOptions::keys().read(p);
                     if (o.noise == 0.0) return nullptr;
                     return std::make_unique<ExplorationComponent>(s, o);
                   }});
  r.add_component({"replay", "a replay buffer of terminal states trained on by backward sampling, and MALA local "
                             "search feeding it (replay.capacity > 0)",
                   ReplayOptions::keys().specs(), [](const ComponentSetup&) { return true; },
                   [](const Params& p, const ComponentSetup& s) -> std::unique_ptr<TrainingComponent> {
                     auto o = ReplayOptions::keys().read(p);
                     if (o.capacity == 0) return nullptr;
                     return std::make_unique<ReplayComponent>(s, o);
                   }});
  r.add_component({"target", "exact target samples walked back through P_B, the batches of objective.samples = target",
                   {}, &TargetSamplerComponent::wanted,
                   [](const Params&, const ComponentSetup& s) -> std::unique_ptr<TrainingComponent> {
                     return std::make_unique<TargetSamplerComponent>(s);
                   }});
  return r;
}

void Registry::add_component(ComponentEntry entry) {
  for (const auto& c : components_)
    if (c.name == entry.name) throw std::invalid_argument("component '" + entry.name + "' is already registered");
  components_.push_back(std::move(entry));
}

Components make_components(const Registry& registry, const ComponentSetup& setup, const Params& params) {
  Components out;
  for (const auto& entry : registry.components()) {
    if (!entry.wanted(setup)) continue;
    Params given;
    for (const auto& spec : entry.params)
      if (params.has(spec.key)) given.set(spec.key, params.values().at(spec.key));
    auto made = entry.make(resolve_params(entry.params, given, entry.name), setup);
    if (made) out.push_back(std::move(made));  // null: its own keys switch it off
  }
  return out;
}

std::unique_ptr<Env> Registry::make_env(const std::string& name, const Params& params) const {
  auto made = env(name).make(params);
  validate_action_spec(made->action_spec(), name);
  return made;
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

OptionTable<KindOptions> KindOptions::keys(const Registry& registry) {
  using O = KindOptions;
  return OptionTable<O>()
      .add("env.kind", &O::env, "environment (its own keys follow under [env])", registry.env_names())
      .add("objective.kind", &O::objective, "training objective (its own keys follow under [objective])",
           registry.objective_names());
}

ConfigSchema run_schema(const Registry& registry) {
  ConfigSchema s;
  auto add = [&](const std::vector<ParamSpec>& specs) { s.common.insert(s.common.end(), specs.begin(), specs.end()); };
  const auto kinds = KindOptions::keys(registry).specs();
  s.common.push_back(kinds[0]);
  add(EstimatorOptions::keys().specs());
  s.common.push_back(kinds[1]);
  add(TrainerOptions::keys().specs());
  add(RunOptions::keys().specs());
  for (const auto& c : registry.components()) add(c.params);
  add(EvalOptions::keys().specs());
  add(ConditionOptions::keys().specs());
  add(LogOptions::keys().specs());
  add(CheckpointOptions::keys().specs());
  for (const auto& n : registry.env_names()) s.env_kinds[n] = registry.env(n).params;
  for (const auto& n : registry.objective_names()) s.objective_kinds[n] = registry.objective(n).params;
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

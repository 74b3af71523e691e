// The registries a run is assembled from: environments, objectives and training components by
// name, each with its config keys, and the config schema built from them.
//
// `Registry::builtin()` holds what ships with gfn. An out-of-tree program adds its own kinds to it
// (one line each: `registry.add_env(env_entry<RingEnv, RingOptions>("ring", "..."))`) and hands it
// to every command through cli_main (apps/cli.h) or to train() directly.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/component.h"
#include "core/env.h"
#include "core/objective.h"
#include "core/options.h"
#include "io/config.h"

namespace gfn {

// A named environment kind: its config keys (under [env], without the prefix) and how to build it.
struct EnvEntry {
  std::string name;
  std::string doc;
  std::vector<ParamSpec> params;
  std::function<std::unique_ptr<Env>(const Params&)> make;  // receives the [env] keys, prefix removed
};

// A named objective kind: its config keys (under [objective], without the prefix) and how to build it.
struct ObjectiveEntry {
  std::string name;
  std::string doc;
  std::vector<ParamSpec> params;
  std::function<std::unique_ptr<Objective>(const Params&)> make;
};

// A named training component (core/component.h): its config keys (full dotted keys, e.g.
// "train.lr_flow"), when a run needs it, and how to build it from its keys.
struct ComponentEntry {
  std::string name;
  std::string doc;
  std::vector<ParamSpec> params;
  std::function<bool(const ComponentSetup&)> wanted;
  // null when the component's own keys switch it off (explore.noise = 0)
  std::function<std::unique_ptr<TrainingComponent>(const Params&, const ComponentSetup&)> make;
};

// The entry of an env class E built from its options O (O::keys(), E(const O&)).
template <typename E, typename O>
EnvEntry env_entry(std::string name, std::string doc) {
  return {std::move(name), std::move(doc), O::keys().specs(),
          [](const Params& p) { return std::make_unique<E>(O::keys().read(p)); }};
}
// The entry of an objective class without keys of its own.
template <typename T>
ObjectiveEntry objective_entry(std::string name, std::string doc) {
  return {std::move(name), std::move(doc), {}, [](const Params&) { return std::make_unique<T>(); }};
}
// The entry of an objective class T built from its options O.
template <typename T, typename O>
ObjectiveEntry objective_entry(std::string name, std::string doc) {
  return {std::move(name), std::move(doc), O::keys().specs(),
          [](const Params& p) { return std::make_unique<T>(O::keys().read(p)); }};
}
// The entry of a component class C built from its options O (C(const ComponentSetup&, const O&),
// static bool C::wanted(const ComponentSetup&)).
template <typename C, typename O>
ComponentEntry component_entry(std::string name, std::string doc) {
  return {std::move(name), std::move(doc), O::keys().specs(), &C::wanted,
          [](const Params& p, const ComponentSetup& s) { return std::make_unique<C>(s, O::keys().read(p)); }};
}

// Environments, objectives and components by name. `builtin()` holds what ships with gfn; users
// add theirs.
class Registry {
 public:
  static Registry builtin();
  // Throws std::invalid_argument if the name is taken.
  void add_env(EnvEntry entry);
  void add_objective(ObjectiveEntry entry);
  // Components are created in the order they are added (each draws its parameters from the
  // run's initialisation generator in turn).
  void add_component(ComponentEntry entry);
  // Throws ConfigError listing the known names.
  const EnvEntry& env(const std::string& name) const;
  const ObjectiveEntry& objective(const std::string& name) const;
  std::vector<std::string> env_names() const;
  std::vector<std::string> objective_names() const;
  const std::vector<ComponentEntry>& components() const { return components_; }
  // The env `name` built from its [env] keys (prefix removed), its action spec validated
  // (validate_action_spec): ConfigError naming the kind for a bad spec.
  std::unique_ptr<Env> make_env(const std::string& name, const Params& params) const;

 private:
  std::map<std::string, EnvEntry> envs_;
  std::map<std::string, ObjectiveEntry> objectives_;
  std::vector<ComponentEntry> components_;
};

// The components a run with `setup` needs (ComponentEntry::wanted), in registration order, each
// built from its keys in `params` (a whole config; keys it lacks take their defaults). ConfigError
// for a bad value.
Components make_components(const Registry& registry, const ComponentSetup& setup, const Params& params = {});

// The kind keys of a run: which env and which objective (their choices: the registered names).
struct KindOptions {
  std::string env = "hypergrid";
  std::string objective = "tb";
  // The config keys (env.kind, objective.kind), whose choices are `registry`'s names.
  static OptionTable<KindOptions> keys(const Registry& registry);
};

// Every key a run accepts: the common sections (run, policy, trainer, the registered components,
// evaluation, log, checkpoints) and each registered env and objective kind's keys.
ConfigSchema run_schema(const Registry& registry);

// Parses a device string ("cpu", "cuda", "cuda:N", "auto"); ConfigError when it is malformed
// or names a device this build cannot use.
std::string resolve_device(const std::string& device);

}  // namespace gfn

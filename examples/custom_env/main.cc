// An environment defined outside gfn: check it, register it, train it from a TOML config.
//
//     custom_env [CONFIG [OUT_DIR]]      (defaults: ring.toml beside the sources, runs/ring)
//
// Exit codes: 0 success; 1 the environment check failed or the run failed; 2 a config error.
#include <iostream>
#include <memory>
#include <string>

#include "apps/run.h"
#include "core/checker.h"
#include "ring_env.h"

#ifndef CUSTOM_ENV_DEFAULT_CONFIG
#define CUSTOM_ENV_DEFAULT_CONFIG "ring.toml"
#endif

int main(int argc, char** argv) {
  const std::string config_path = argc > 1 ? argv[1] : CUSTOM_ENV_DEFAULT_CONFIG;
  const std::string out_dir = argc > 2 ? argv[2] : "runs/ring";
  try {
    // register the new kind next to the built-in ones: its [env] keys and how to build it
    gfn::Registry registry = gfn::Registry::builtin();
    registry.add_env({"ring", "2-D annulus entered by a polar chart, then rotations", example::RingOptions::specs(),
                      [](const gfn::Params& p) {
                        return std::make_unique<example::RingEnv>(example::RingOptions::from_params(p));
                      }});
    // the config is validated against every registered kind's keys before anything runs
    gfn::RunConfig config = gfn::load_config_file(config_path, {}, gfn::run_schema(registry));

    // check the environment exactly as configured: inverses, Jacobians, normalisation, Z, termination
    auto env = registry.env("ring").make(config.params.section("env"));
    gfn::CheckReport report = gfn::check_env(*env);
    std::cout << report.text();
    if (!report.passed()) {
      std::cout << "ring: environment check FAILED\n";
      return 1;
    }
    std::cout << "ring: environment check passed (exact log Z " << *env->log_partition() << ")\n";

    // train; the run directory gets config.toml, model.pt and log.h5
    gfn::TrainOptions options;
    options.out_dir = out_dir;
    gfn::RunSummary summary = gfn::train(config, options, registry);
    std::cout << summary.report();
    return 0;
  } catch (const gfn::ConfigError& e) {
    std::cerr << "custom_env: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "custom_env: " << e.what() << "\n";
    return 1;
  }
}

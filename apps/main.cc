// The `gfn` command line.
//
//   gfn train CONFIG [--set key=value ...] [--out DIR]   train, writing DIR/{config.toml,model.pt,checkpoint.pt,log.h5}
//   gfn train --resume DIR [--set train.iterations=N]    continue a stopped, killed or finished run
//   gfn eval DIR [--json]                                exact metrics of the policy saved in DIR
//   gfn sample DIR -n N [--out FILE.h5] [--seed S]       terminal samples of the policy saved in DIR
//   gfn keys                                             every config key with its default and rule
//   gfn analyse LOG.h5|DIR ... [--json] [--csv DIR] [--plot DIR]
//                                                        summary, CSV tables and PNG plots of run logs
//   gfn check-env NAME [--set env.key=value ...] [--seed N] [--samples N]
//                                                        run the environment checker (core/checker.h)
//
// Exit codes: 0 success, 2 usage or config error or a bad input file (message on stderr,
// nothing written), 1 failure while running (for check-env: a check failed), 130 / 143 when
// SIGINT / SIGTERM stopped training (after the current iteration, with a flushed log and a
// checkpoint; a second signal ends the process at once).
#include <signal.h>
#include <unistd.h>

#include <atomic>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include "apps/run.h"
#include "core/checker.h"
#include "io/analyse.h"
#include "io/config.h"
#include "io/hdf5_log.h"

namespace {

namespace fs = std::filesystem;

// runs/<name>, or runs/<name>-2, -3, ... when that already holds a run
std::string default_out_dir(const std::string& name) {
  fs::path base = fs::path("runs") / name;
  fs::path dir = base;
  for (int i = 2; fs::exists(dir / "log.h5") || fs::exists(dir / "model.pt"); ++i)
    dir = fs::path(base.string() + "-" + std::to_string(i));
  return dir.string();
}

// The signal that asked training to stop (0: none).
std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int signal) {
  g_stop_signal.store(signal);
  static const char kMessage[] = "\ngfn: stopping after this iteration (a second signal aborts)\n";
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
}

// SIGINT and SIGTERM stop training after the current iteration; the handler is reset after the
// first signal, so a second one ends the process (the log stays readable: SWMR).
void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int cmd_train(const std::string& config_path, const std::vector<std::string>& sets, const std::string& out,
              const std::string& resume) {
  auto registry = gfn::Registry::builtin();
  if (resume.empty() == config_path.empty())
    throw gfn::ConfigError("gfn train: give a CONFIG file or --resume DIR (exactly one)");
  if (!resume.empty() && !out.empty())
    throw gfn::ConfigError("--out: a resumed run stays in its directory (--resume " + resume + ")");
  auto config = resume.empty() ? gfn::load_config_file(config_path, sets, gfn::run_schema(registry))
                               : gfn::resume_config(resume, sets, registry);
  gfn::TrainOptions options;
  options.resume = !resume.empty();
  options.out_dir = !resume.empty() ? resume : out.empty() ? default_out_dir(config.params.get_string("name")) : out;
  options.progress = isatty(STDERR_FILENO) ? gfn::ProgressStyle::kBar : gfn::ProgressStyle::kLines;
  options.stop_requested = [] { return g_stop_signal.load(); };
  install_stop_handlers();
  auto summary = gfn::train(config, options, registry);
  if (summary.stopped_by_signal != 0) return 128 + summary.stopped_by_signal;
  std::cout << summary.report();
  return 0;
}

int cmd_sample(const std::string& dir, int64_t count, const std::string& out, uint64_t seed) {
  auto result = gfn::sample_run(dir, count, out, seed, gfn::Registry::builtin());
  std::cout << result.report();
  return 0;
}

int cmd_eval(const std::string& dir, bool json) {
  auto result = gfn::evaluate_run(dir, gfn::Registry::builtin());
  std::cout << (json ? result.json() + "\n" : result.report());
  return 0;
}

// The env NAME with its [env] keys from `sets` ("env.key=value"), validated by the run schema as
// `gfn train` validates them; then the checker's report and a verdict line.
int cmd_check_env(const std::string& name, const std::vector<std::string>& sets, uint64_t seed, int64_t samples) {
  auto registry = gfn::Registry::builtin();
  const auto& entry = registry.env(name);  // an unknown name lists the known ones
  for (const auto& s : sets) {
    const auto key = gfn::override_key(s);
    if (key.rfind("env.", 0) != 0 || key == "env.kind")
      throw gfn::ConfigError(fmt::format("--set {}: check-env takes the env's own keys, as env.KEY=VALUE (keys of "
                                         "env.kind = \"{}\": see 'gfn keys')",
                                         s, name));
  }
  auto config = gfn::load_config(fmt::format("[env]\nkind = \"{}\"\n", name), sets, gfn::run_schema(registry),
                                 "check-env");
  auto env = entry.make(config.params.section("env"));
  gfn::CheckOptions options;
  options.seed = seed;
  options.is_samples = samples;
  options.validate();
  std::cout << fmt::format("gfn check-env {}: seed {}, {} trajectories, {} importance samples\n", name, seed,
                           options.trajectories, options.is_samples);
  auto report = gfn::check_env(*env, options);
  std::cout << report.text();
  int failed = 0, skipped = 0;
  for (const auto& c : report.checks) {
    failed += !c.skipped && !c.passed;
    skipped += c.skipped;
  }
  const int checks = static_cast<int>(report.checks.size());
  if (failed == 0) {
    std::cout << fmt::format("{}: passed {} of {} checks ({} skipped)\n", name, checks - skipped, checks, skipped);
    return 0;
  }
  std::cout << fmt::format("{}: FAILED {} of {} checks\n", name, failed, checks);
  return 1;
}

int cmd_keys() {
  std::cout << gfn::describe_schema(gfn::run_schema(gfn::Registry::builtin()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gfn: generative flow networks on discrete, continuous and hybrid spaces"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(GFN_VERSION));

  std::string config_path, out, dir;
  std::vector<std::string> sets;
  bool json = false;
  auto* train = app.add_subcommand("train", "train a GFlowNet from a TOML config");
  std::string resume;
  train->add_option("config", config_path, "TOML config file");
  train->add_option("--set", sets, "override a config key: key=value (repeatable)")->take_all();
  train->add_option("--out", out, "run directory (default runs/<name>, suffixed -2, -3, ... if taken)");
  train->add_option("--resume", resume, "continue the run in this directory from its checkpoint");
  auto* eval = app.add_subcommand("eval", "exact metrics of the policy saved in a run directory");
  eval->add_option("dir", dir, "run directory written by gfn train")->required();
  eval->add_flag("--json", json, "print one JSON object");
  auto* keys = app.add_subcommand("keys", "list every config key with its default and rule");
  std::string sample_dir, sample_out;
  int64_t sample_count = 1000;
  uint64_t sample_seed = 0;
  auto* sample = app.add_subcommand("sample", "terminal samples of the policy saved in a run directory, with their "
                                              "log-rewards and log-probabilities, into an HDF5 file");
  sample->add_option("dir", sample_dir, "run directory written by gfn train")->required();
  sample->add_option("-n", sample_count, "number of samples (default 1000)");
  sample->add_option("--out", sample_out, "output file (default DIR/samples.h5, DIR/samples-2.h5, ... if taken)");
  sample->add_option("--seed", sample_seed, "seed of the draws (default 0)");
  std::string env_name;
  std::vector<std::string> env_sets;
  uint64_t check_seed = 0;
  int64_t check_samples = gfn::CheckOptions{}.is_samples;
  auto* check = app.add_subcommand("check-env", "check an environment's invariants (inverse, Jacobians, "
                                                "normalisation, log Z, termination)");
  check->add_option("name", env_name, "environment kind (see 'gfn keys')")->required();
  check->add_option("--set", env_sets, "override an env key: env.key=value (repeatable)")->take_all();
  check->add_option("--seed", check_seed, "seed of the reference policy and every draw");
  check->add_option("--samples", check_samples, "trajectories of the importance-sampling estimate of Z (>= 2)");

  std::vector<std::string> analyse_paths;
  gfn::AnalyseOptions analyse_options;
  auto* analyse = app.add_subcommand("analyse", "summary table, CSV tables and PNG plots of run logs");
  analyse->add_option("logs", analyse_paths, "run logs (log.h5) or run directories")->required();
  analyse->add_flag("--json", analyse_options.json, "print one JSON object instead of the table");
  analyse->add_option("--csv", analyse_options.csv_dir, "write CSV tables into this directory");
  analyse->add_option("--plot", analyse_options.plot_dir, "write PNG plots (through gnuplot) into this directory");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "gfn: " << e.what() << "\n" << "run 'gfn --help' for usage\n";
    return 2;
  }

  try {
    if (train->parsed()) return cmd_train(config_path, sets, out, resume);
    if (sample->parsed()) return cmd_sample(sample_dir, sample_count, sample_out, sample_seed);
    if (eval->parsed()) return cmd_eval(dir, json);
    if (keys->parsed()) return cmd_keys();
    if (analyse->parsed()) {
      gfn::analyse(analyse_paths, analyse_options, std::cout);
      return 0;
    }
    if (check->parsed()) return cmd_check_env(env_name, env_sets, check_seed, check_samples);
  } catch (const gfn::ConfigError& e) {
    std::cerr << "gfn: error: " << e.what() << "\n";
    return 2;
  } catch (const gfn::LogError& e) {
    std::cerr << "gfn: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    // LibTorch's messages carry a C++ backtrace that helps nobody running the command
    std::cerr << "gfn: failed: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "gfn: failed: " << e.what() << "\n";
    return 1;
  }
  return 2;
}

// The `gfn` command line over a registry (apps/cli.h).
#include "apps/cli.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <cstdlib>

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "apps/assembly.h"
#include "apps/launch.h"
#include "apps/run.h"
#include "core/checker.h"
#include "core/threads.h"
#include "io/analyse.h"
#include "io/config.h"
#include "io/hdf5_log.h"

namespace gfn {

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
// Whether the run has begun writing (TrainOptions::on_writing): before, building it (a large
// model, state tables) can take long and has written nothing, so a signal ends the process at once.
std::atomic<bool> g_writing{false};

// What the first signal says it does (async-signal-safe: a pointer to a constant).
std::atomic<const char*> g_stop_message{"\ngfn: stopping after this iteration (a second signal aborts)\n"};

extern "C" void on_stop_signal(int signal) {
  if (!g_writing.load()) {
    static const char kNow[] = "\ngfn: interrupted while building the run; nothing was written\n";
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, kNow, sizeof kNow - 1);
    _exit(128 + signal);
  }
  g_stop_signal.store(signal);
  const char* message = g_stop_message.load();
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, message, std::strlen(message));
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

// The context of one command line: the registry and the program's name for messages.
struct Cli {
  const Registry& registry;
  std::string program;
};

int cmd_train(const Cli& cli, const std::string& config_path, const std::vector<std::string>& sets,
              const std::string& out, const std::string& resume) {
  if (resume.empty() == config_path.empty())
    throw ConfigError(cli.program + " train: give a CONFIG file or --resume DIR (exactly one)");
  if (!resume.empty() && !out.empty())
    throw ConfigError("--out: a resumed run stays in its directory (--resume " + resume + ")");
  auto config = resume.empty() ? load_config_file(config_path, sets, run_schema(cli.registry))
                               : resume_config(resume, sets, cli.registry);
  TrainOptions options;
  options.distributed = distributed_from_environment();  // the torchrun variables: checked before any work
  options.resume = !resume.empty();
  options.out_dir = !resume.empty() ? resume
                    : out.empty()   ? default_out_dir(RunOptions::keys().read(config.params).name)
                                    : out;
  options.progress = isatty(STDERR_FILENO) ? ProgressStyle::kBar : ProgressStyle::kLines;
  options.stop_requested = [] { return g_stop_signal.load(); };
  options.on_writing = [] { g_writing.store(true); };
  options.program = cli.program;
  install_stop_handlers();
  auto summary = train(config, options, cli.registry);
  if (summary.stopped_by_signal != 0) return 128 + summary.stopped_by_signal;
  if (summary.rank == 0) std::cout << summary.report();  // rank 0 reports for every rank
  return 0;
}

// `gfn launch -n N`: the config checked here (a bad one fails once, before any process starts),
// the run directory chosen once for every rank, then N ranks of `gfn train`.
int cmd_launch(const Cli& cli, int64_t processes, const std::string& config_path, const std::vector<std::string>& sets,
               const std::string& out, const std::string& resume) {
  if (resume.empty() == config_path.empty())
    throw ConfigError(cli.program + " launch: give a CONFIG file or --resume DIR (exactly one)");
  if (!resume.empty() && !out.empty())
    throw ConfigError("--out: a resumed run stays in its directory (--resume " + resume + ")");
  if (std::getenv("WORLD_SIZE") != nullptr)
    throw ConfigError(fmt::format("{} launch: WORLD_SIZE is already set ({}): under torchrun, run {} train", cli.program,
                                  std::getenv("WORLD_SIZE"), cli.program));
  auto config = resume.empty() ? load_config_file(config_path, sets, run_schema(cli.registry))
                               : resume_config(resume, sets, cli.registry);
  std::vector<std::string> args{"train"};
  if (resume.empty()) {
    args.push_back(config_path);
    args.push_back("--out");
    args.push_back(out.empty() ? default_out_dir(RunOptions::keys().read(config.params).name) : out);
  } else {
    args.push_back("--resume");
    args.push_back(resume);
  }
  for (const auto& s : sets) args.insert(args.end(), {"--set", s});
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("gfn launch: cannot find this program (/proc/self/exe): " + ec.message());
  return gfn::launch(processes, self.string(), args);
}

// The env NAME with its [env] keys from `sets` ("env.key=value"), validated by the run schema as
// `gfn train` validates them; then the checker's report and a verdict line.
int cmd_check_env(const Cli& cli, const std::string& name, const std::vector<std::string>& sets,
                  CheckOptions options) {
  cli.registry.env(name);  // an unknown name lists the known ones
  const std::string kind_key = KindOptions::keys(cli.registry).specs().front().key;  // env.kind
  const std::string prefix = kind_key.substr(0, kind_key.find('.') + 1);              // env.
  std::vector<std::string> overrides{kind_key + "=" + name};
  for (const auto& s : sets) {
    const auto key = override_key(s);
    if (key.rfind(prefix, 0) != 0 || key == kind_key)
      throw ConfigError(fmt::format("--set {}: check-env takes the env's own keys, as {}KEY=VALUE (keys of {} = "
                                    "\"{}\": see '{} keys')",
                                    s, prefix, kind_key, name, cli.program));
    overrides.push_back(s);
  }
  auto config = load_config("", overrides, run_schema(cli.registry), "check-env");
  auto env = cli.registry.make_env(name, config.params.section(prefix.substr(0, prefix.size() - 1)));
  if (!(options.reference_concentration >= 0.01 && options.reference_concentration <= 5.0))
    throw ConfigError(fmt::format("--reference-concentration {}: expected a float in [0.01, 5]",
                                  options.reference_concentration));
  // 2^24 importance samples: ~80 times the default, minutes on the largest envs
  constexpr int64_t kMaxCheckSamples = int64_t{1} << 24;
  if (options.is_samples < 2 || options.is_samples > kMaxCheckSamples)
    throw ConfigError(fmt::format("--samples {}: expected an integer in [2, {}]", options.is_samples, kMaxCheckSamples));
  options.validate();
  std::cout << fmt::format("{} check-env {}: seed {}, {} trajectories, {} importance samples, reference Beta "
                           "concentration {:g}\n",
                           cli.program, name, options.seed, options.trajectories, options.is_samples,
                           options.reference_concentration);
  auto report = check_env(*env, options);
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

// Every subcommand with its arguments, bound to the command line's parser.
struct Commands {
  CLI::App* train = nullptr;
  CLI::App* eval = nullptr;
  CLI::App* keys = nullptr;
  CLI::App* sample = nullptr;
  CLI::App* check = nullptr;
  CLI::App* analyse = nullptr;
  CLI::App* launch = nullptr;
  int64_t launch_processes = 0;
  std::string config_path, out, resume, dir, sample_dir, sample_out, env_name, eval_condition, sample_condition;
  std::vector<std::string> sets, env_sets, eval_sets, analyse_paths;
  bool json = false, markdown = false;
  int64_t sample_count = 1000;
  uint64_t sample_seed = 0;
  CheckOptions check_options;
  AnalyseOptions analyse_options;

  explicit Commands(CLI::App& app);
  // Runs the subcommand that was parsed; its exit code.
  int run(const Cli& cli);
};

Commands::Commands(CLI::App& app) {
  train = app.add_subcommand("train", "train a GFlowNet from a TOML config");
  train->add_option("config", config_path, "TOML config file");
  train->add_option("--set", sets, "override a config key: key=value (repeatable)")->take_all();
  train->add_option("--out", out, "run directory (default runs/<name>, suffixed -2, -3, ... if taken)");
  train->add_option("--resume", resume, "continue the run in this directory from its checkpoint");
  launch = app.add_subcommand("launch", "train on N local processes (data-parallel, as torchrun would start them)");
  launch->add_option("-n", launch_processes, "number of processes")->required();
  launch->add_option("config", config_path, "TOML config file");
  launch->add_option("--set", sets, "override a config key: key=value (repeatable)")->take_all();
  launch->add_option("--out", out, "run directory (default runs/<name>, suffixed -2, -3, ... if taken)");
  launch->add_option("--resume", resume, "continue the run in this directory from its checkpoint");
  eval = app.add_subcommand("eval", "exact metrics of the policy saved in a run directory");
  eval->add_option("dir", dir, "run directory written by gfn train")->required();
  eval->add_flag("--json", json, "print one JSON object");
  eval->add_option("--set", eval_sets,
                   "override an evaluation key for this call: eval.key=value (repeatable), e.g. "
                   "eval.density_samples=128")
      ->take_all();
  eval->add_option("--condition", eval_condition,
                   "a conditional run: the condition to evaluate at, its parameters comma-separated (e.g. 1.5)");
  keys = app.add_subcommand("keys", "list every config key with its default and rule");
  keys->add_flag("--markdown", markdown, "as the README's Markdown tables");
  sample = app.add_subcommand("sample", "terminal samples of the policy saved in a run directory, with their "
                                        "log-rewards and log-probabilities, into an HDF5 file");
  sample->add_option("dir", sample_dir, "run directory written by gfn train")->required();
  sample->add_option("-n", sample_count, "number of samples, 1 to 100000000 (default 1000)");
  sample->add_option("--out", sample_out, "output file (default DIR/samples.h5, DIR/samples-2.h5, ... if taken)");
  sample->add_option("--seed", sample_seed, "seed of the draws (default 0)");
  sample->add_option("--condition", sample_condition,
                     "a conditional run: the condition to sample at, its parameters comma-separated (e.g. 1.5; "
                     "default: a condition drawn per sample)");
  check = app.add_subcommand("check-env", "check an environment's invariants (inverse, Jacobians, "
                                          "normalisation, log Z, termination)");
  check->add_option("name", env_name, "environment kind (see 'gfn keys')")->required();
  check->add_option("--set", env_sets, "override an env key: env.key=value (repeatable)")->take_all();
  check->add_option("--seed", check_options.seed, "seed of the reference policy and every draw");
  check->add_option("--samples", check_options.is_samples,
                    "trajectories of the importance-sampling estimate of Z (2 to 16777216)");
  check->add_option("--reference-concentration", check_options.reference_concentration,
                    "Beta concentration of the reference P_F's pieces, in [0.01, 5] (default 0.5; 0.05-0.2 probe the "
                    "boundary numerics)");
  analyse = app.add_subcommand("analyse", "summary table, CSV tables and PNG plots of run logs");
  analyse->add_option("logs", analyse_paths, "run logs (log.h5) or run directories")->required();
  analyse->add_flag("--json", analyse_options.json, "print one JSON object instead of the table");
  analyse->add_option("--csv", analyse_options.csv_dir, "write CSV tables into this directory");
  analyse->add_option("--plot", analyse_options.plot_dir, "write PNG plots (through gnuplot) into this directory");
}

int Commands::run(const Cli& cli) {
  if (train->parsed()) return cmd_train(cli, config_path, sets, out, resume);
  if (launch->parsed()) return cmd_launch(cli, launch_processes, config_path, sets, out, resume);
  if (sample->parsed()) {
    // a signal stops between chunks and removes the partial file: the name stays free
    g_writing.store(true);
    g_stop_message.store("\ngfn: stopping; the partial samples file is removed (a second signal aborts)\n");
    install_stop_handlers();
    auto result = sample_run(sample_dir, sample_count, sample_out, sample_seed, cli.registry, sample_condition,
                             [] { return g_stop_signal.load(); });
    if (result.stopped_by_signal != 0) return 128 + result.stopped_by_signal;
    std::cout << result.report();
    return 0;
  }
  if (eval->parsed()) {
    auto result = evaluate_run(dir, cli.registry, eval_sets, eval_condition);
    std::cout << (json ? result.json() + "\n" : result.report());
    return 0;
  }
  if (keys->parsed()) {
    const ConfigSchema schema = run_schema(cli.registry);
    std::cout << (markdown ? describe_schema_markdown(schema) : describe_schema(schema));
    return 0;
  }
  if (analyse->parsed()) {
    gfn::analyse(analyse_paths, analyse_options, std::cout);
    return 0;
  }
  if (check->parsed()) return cmd_check_env(cli, env_name, env_sets, check_options);
  return 2;
}

}  // namespace

int cli_main(int argc, char** argv, const Registry& registry) {
  // past a file-size limit (ulimit -f) a write fails with EFBIG, which the writers report with
  // the file's name; SIGXFSZ's default would end the process with no message instead
  signal(SIGXFSZ, SIG_IGN);
  tune_allocator();
  const Cli cli{registry, argc > 0 ? fs::path(argv[0]).filename().string() : std::string("gfn")};
  CLI::App app{"gfn: generative flow networks on discrete, continuous and hybrid spaces", cli.program};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(GFN_VERSION));
  Commands commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // the first argument names the command (the program itself takes only --help and --version):
    // a misspelt one is named, with the commands there are, rather than "a subcommand is required"
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
      names.push_back(sub->get_name());
    const std::string first = argc > 1 ? argv[1] : "";
    const bool known = std::find(names.begin(), names.end(), first) != names.end();
    if (first.empty() || (first[0] != '-' && !known)) {
      std::cerr << fmt::format("{}: error: {}: expected one of {} (run '{} --help' for usage)\n", cli.program,
                               first.empty() ? "no command" : "unknown command '" + first + "'",
                               fmt::join(names, ", "), cli.program);
      return 2;
    }
    std::cerr << cli.program << ": " << e.what() << "\n"
              << "run '" << cli.program << " --help' for usage\n";
    return 2;
  }
  // errors: one line on stderr; LibTorch's messages carry a C++ backtrace that helps nobody
  try {
    return commands.run(cli);
  } catch (const ConfigError& e) {
    std::cerr << cli.program << ": error: " << e.what() << "\n";
    return 2;
  } catch (const LogError& e) {
    std::cerr << cli.program << ": error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << cli.program << ": failed: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << cli.program << ": failed: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace gfn

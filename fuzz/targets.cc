// The fuzz targets of fuzz/targets.h.
#include "fuzz/targets.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>

#include "apps/assembly.h"
#include "apps/evaluator.h"
#include "apps/registry.h"
#include "core/component.h"
#include "core/params.h"
#include "core/seeds.h"
#include "core/trainer.h"
#include "io/analyse.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/hdf5_log.h"
#include "io/run_log.h"

#ifndef GFN_FUZZ_SOURCE_DIR
#error "GFN_FUZZ_SOURCE_DIR must be the repository root (fuzz/CMakeLists.txt and tests/CMakeLists.txt set it)"
#endif

namespace gfn::fuzz {

namespace {

namespace fs = std::filesystem;

// What every target shares, made once per process (libFuzzer calls a target millions of times).
struct Shared {
  Registry registry = Registry::builtin();
  ConfigSchema schema = run_schema(registry);
  std::vector<std::string> keys;    // every key of the schema, dotted: what a message may name
  std::string base_source;          // configs/hypergrid.toml: the overrides' base
  std::string base_text;
  RunConfig checkpoint_run;         // the run the checkpoints are read into (checkpoint_run_overrides)
  fs::path temp_dir;                // this process's files

  Shared() {
    for (const ParamSpec& s : schema.common) keys.push_back(s.key);
    for (const auto& [kind, specs] : schema.env_kinds)
      for (const ParamSpec& s : specs) keys.push_back("env." + s.key);
    for (const auto& [kind, specs] : schema.objective_kinds)
      for (const ParamSpec& s : specs) keys.push_back("objective." + s.key);
    base_source = std::string(GFN_FUZZ_SOURCE_DIR) + "/configs/hypergrid.toml";
    std::ifstream in(base_source);
    base_text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (base_text.empty()) {
      std::fprintf(stderr, "fuzz: cannot read %s\n", base_source.c_str());
      std::abort();
    }
    checkpoint_run = load_config(base_text, checkpoint_run_overrides(), schema, base_source);
    // tmpfs when there is one: a target writes a file per input
    const fs::path shm = "/dev/shm";
    std::error_code ec;
    const fs::path root = fs::is_directory(shm, ec) ? shm : fs::temp_directory_path();
    temp_dir = root / fmt::format("gfn-fuzz-{}", static_cast<long>(getpid()));
    fs::create_directories(temp_dir);
    // the directories of fuzzing processes that died on a finding (libFuzzer's fork mode starts
    // many), whose destructor never ran
    for (const auto& entry : fs::directory_iterator(root, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("gfn-fuzz-", 0) != 0) continue;
      const long pid = std::strtol(name.c_str() + 9, nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove_all(entry.path(), ec);
    }
  }
  ~Shared() {
    std::error_code ec;
    fs::remove_all(temp_dir, ec);
  }
};

Shared& shared() {
  static Shared s;  // the harness's one piece of process state: libFuzzer's entry is a C function
  return s;
}

// Writes `bytes` to `name` in the process's temporary directory; its path.
std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = (shared().temp_dir / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

// `text` on one line, at most 400 characters, for a finding's report.
std::string shown(const std::string& text) {
  std::string out;
  for (const char c : text.substr(0, 400)) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return '"' + out + '"';
}

// The rule of a rejection's message: one non-empty line that names one of `names` (anywhere, or
// at its start with `prefix_only`). "" when it holds. A carriage return is not a line break
// here: messages echo the user's text, and an override from a script with CRLF line ends
// carries one (reported, not enforced: io/config.cc would have to escape control characters).
std::string message_problem(const std::string& message, const std::vector<std::string>& names,
                            bool prefix_only) {
  if (message.empty()) return "an empty error message";
  if (message.find('\n') != std::string::npos) return "an error message of several lines: " + shown(message);
  for (const std::string& n : names) {
    if (n.empty()) continue;
    if (prefix_only ? message.rfind(n + ": ", 0) == 0 : message.find(n) != std::string::npos) return "";
  }
  return "an error message naming neither the source nor a key: " + shown(message);
}

// An outcome rejected with `message`, checked against `names`.
Outcome rejected(const std::string& message, const std::vector<std::string>& names, bool prefix_only) {
  Outcome o;
  o.error = message;
  o.problem = message_problem(message, names, prefix_only);
  return o;
}

// ---------------------------------------------------------------------------------------------
// configs

// Whether two parameter sets are equal value by value (NaN equal to NaN); "" or the first key
// that differs.
std::string first_difference(const Params& a, const Params& b) {
  for (const auto& [key, value] : a.values()) {
    const auto it = b.values().find(key);
    if (it == b.values().end()) return key;
    const ParamValue& other = it->second;
    if (value.index() != other.index()) return key;
    if (const double* x = std::get_if<double>(&value)) {
      const double y = std::get<double>(other);
      if (!(*x == y || (std::isnan(*x) && std::isnan(y))) || std::signbit(*x) != std::signbit(y)) return key;
    } else if (!(value == other)) {
      return key;
    }
  }
  for (const auto& [key, value] : b.values())
    if (a.values().count(key) == 0) return key;
  return "";
}

double param_number(const Params& p, const std::string& key, double otherwise) {
  if (!p.has(key)) return otherwise;
  const ParamValue& v = p.values().at(key);
  if (const int64_t* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const double* d = std::get_if<double>(&v)) return *d;
  return otherwise;
}

std::string param_string(const Params& p, const std::string& key) {
  if (!p.has(key)) return "";
  const std::string* s = std::get_if<std::string>(&p.values().at(key));
  return s != nullptr ? *s : "";
}

// An upper estimate of the bytes the env of `p` allocates when it is built (its data, modes and
// test set), before it is built: the keys that scale them.
double env_size_estimate(const Params& p) {
  const std::string kind = param_string(p, "env.kind");
  if (kind == "bayesnet")  // n rows of d columns, generated (or read) and centred
    return 4.0 * 8.0 * param_number(p, "env.samples", 0) * param_number(p, "env.variables", 0);
  if (kind == "bitseq")  // |M| modes and |M| * test_per_mode test sequences of n bits
    return 8.0 * param_number(p, "env.length", 0) * param_number(p, "env.modes", 0) *
           (2.0 + param_number(p, "env.test_per_mode", 0));
  return 0;
}

// An upper estimate of the bytes building the run of `p` on `env` allocates: the networks with
// their gradients and Adam's two moments, the replay buffer, and an enumerable env's state
// tables (the states, their features when training is tabular, and the evaluator's target).
double run_size_estimate(const Params& p, const Env& env) {
  const double features = static_cast<double>(env.feature_dim());
  const double outputs = std::max(features, 64.0);  // a head per action: at most as wide as a one-hot state
  const double width = static_cast<double>(env.discrete_dim() + env.continuous_dim()) + 4.0;
  const std::string architecture = param_string(p, "policy.architecture");
  const double h = param_number(p, "policy.hidden", 256), layers = param_number(p, "policy.layers", 2);
  const double e = param_number(p, "policy.embedding", 64), harmonics = param_number(p, "policy.time_harmonics", 64);
  double net = features * h + layers * h * h * (architecture == "transformer" ? 12.0 : 1.0) + h * outputs;
  if (architecture == "time") net += 4.0 * e * e + 2.0 * harmonics * e + e * h;
  double networks = 1.0;
  if (param_string(p, "policy.flow_trunk") == "separate") networks += 1.0;
  if (param_string(p, "policy.backward") == "tlm") networks += 2.0;  // its network and the EMA target
  double params = networks * net;
  if (param_string(p, "objective.credit") == "led") {
    const double lh = param_number(p, "objective.led_hidden", 64);
    params += features * lh + param_number(p, "objective.led_layers", 2) * lh * lh;
  }
  if (!param_string(p, "condition.parameters").empty()) {
    const double ch = param_number(p, "condition.hidden", 64);
    params += param_number(p, "condition.layers", 2) * ch * ch;
  }
  double bytes = 4.0 * 4.0 * params;  // float32 weights, gradients, two moments
  bytes += 8.0 * width * param_number(p, "replay.capacity", 0);
  if (env.enumerable()) {
    const double states = static_cast<double>(env.num_states());
    bytes += 8.0 * 8.0 * width * states + 4.0 * features * states;
  }
  return bytes;
}

// Enumerable envs past this many states are not built: their exact tables take seconds under
// the sanitizers (configs/hypergrid_tlm.toml's 160,000 states: ~3 s of CPU, past libFuzzer's
// 10 s timeout on a busy 2-core machine), though their memory may fit.
constexpr double kBuildMaxStates = 1 << 16;

// load_config, its resolved TOML read back, then `gfn train`'s checks before any work.
Outcome check_config(const std::string& text, const std::vector<std::string>& overrides, const std::string& source,
                     const std::vector<std::string>& names) {
  Shared& s = shared();
  RunConfig config;
  try {
    config = load_config(text, overrides, s.schema, source);
  } catch (const ConfigError& e) {
    return rejected(e.what(), names, false);
  }

  // the resolved TOML (config.toml of the run directory, the checkpoint's config) loads back
  // to the same parameters
  Outcome o;
  try {
    const RunConfig again = load_config(config.resolved_toml, {}, s.schema, "resolved");
    const std::string key = first_difference(config.params, again.params);
    if (!key.empty()) {
      o.problem = fmt::format("the resolved TOML loads back to another value of {}", key);
      return o;
    }
  } catch (const ConfigError& e) {
    o.problem = fmt::format("the resolved TOML does not load back: {}", e.what());
    return o;
  }

  // the run, when its size fits the budget
  const Params& p = config.params;
  const double env_bytes = env_size_estimate(p);
  if (env_bytes > kBuildBudgetBytes) {
    o.accepted = true;
    o.note = fmt::format("not built: its env would take ~{:.3g} GB", env_bytes / 1e9);
    return o;
  }
  try {
    const KindOptions kinds = KindOptions::keys(s.registry).read(p);
    const std::unique_ptr<Env> env = s.registry.make_env(kinds.env, p.section("env"));
    const double run_bytes = run_size_estimate(p, *env);
    if (run_bytes > kBuildBudgetBytes || (env->enumerable() && static_cast<double>(env->num_states()) > kBuildMaxStates)) {
      o.accepted = true;
      o.note = fmt::format("not built: its run would take ~{:.3g} GB{}", run_bytes / 1e9,
                           env->enumerable() ? fmt::format(" ({} states)", env->num_states()) : "");
      return o;
    }
    // what TrainingRun's constructor (apps/run.cc) checks, in its order
    Run run = build_run(p, s.registry);
    LogOptions::keys().read(p);
    const EvalOptions eval_options = EvalOptions::keys().read(p);
    CheckpointOptions::keys().read(p);
    const uint64_t seed = static_cast<uint64_t>(run.options.seed);
    Trainer trainer(*run.env, *run.estimators, *run.objective, run.trainer_options,
                    stream_seed(seed, SeedStream::kSampling), run.device, component_pointers(run.components));
    Evaluator evaluator(*run.env, *run.estimators, trainer.table(), eval_options,
                        stream_seed(seed, SeedStream::kEvaluation), run.device, run.execution);
  } catch (const ConfigError& e) {
    return rejected(e.what(), names, false);
  }
  o.accepted = true;
  return o;
}

// The names a config message may name: the source, the overrides' flag, every key.
std::vector<std::string> config_names(const std::string& source) {
  std::vector<std::string> names = shared().keys;
  names.push_back(source);
  names.push_back("--set");
  return names;
}

// ---------------------------------------------------------------------------------------------
// logs

// Reads `path` as `gfn eval`, `gfn analyse` and tests do: each step's LogError checked, the
// others escaping.
Outcome check_log(const std::string& path) {
  const std::vector<std::string> names{path};
  Outcome o;
  bool all_read = true;
  // a step: either it reads, or it throws a LogError that must keep the rule
  auto step = [&](auto&& read) {
    try {
      read();
    } catch (const LogError& e) {
      all_read = false;
      if (o.error.empty()) o.error = e.what();
      const std::string problem = message_problem(e.what(), names, /*prefix_only=*/true);
      if (o.problem.empty()) o.problem = problem;
    }
  };

  // the reader's interface
  step([&] {
    const Hdf5LogReader log(path);
    if (log.schema_version() < kLogSchemaVersionMin || log.schema_version() > kLogSchemaVersion)
      o.problem = fmt::format("schema_version {} was accepted", log.schema_version());
    for (const char* name : {"gfn_version", "created_utc", "config", "env", "objective", "device"})
      step([&] { log.attribute_string(name); });
    step([&] { log.attribute_int("seed"); });
    for (const char* group : {"", "train", "eval", "trajectories", "samples", "grid", "matrices", "conditions"}) {
      step([&] {
        for (const std::string& name : log.list(group)) {
          const std::string dataset = std::string(group).empty() ? name : std::string(group) + "/" + name;
          if (!log.has(dataset)) o.problem = fmt::format("list(\"{}\") holds {}, which has() denies", group, dataset);
          std::vector<int64_t> dims;
          step([&] { dims = log.shape(dataset); });
          step([&] {
            const std::vector<double> values = log.read_double(dataset);
            double elements = 1;
            for (int64_t d : dims) elements *= static_cast<double>(d);
            if (!dims.empty() && static_cast<double>(values.size()) != elements)
              o.problem = fmt::format("{} holds {} values for its shape of {} elements", dataset, values.size(), elements);
          });
          // as integers too: a float dataset's refusal is the documented answer, not a rejection
          try {
            log.read_int64(dataset);
          } catch (const LogError& e) {
            const std::string message = e.what();
            if (o.problem.empty()) o.problem = message_problem(message, names, /*prefix_only=*/true);
            if (message != path + ": " + dataset + " is not an integer dataset") {
              all_read = false;
              if (o.error.empty()) o.error = message;
            }
          }
        }
      });
    }
  });

  // `gfn analyse`: the summary as JSON and as the table
  step([&] {
    std::ostringstream out;
    AnalyseOptions json;
    json.json = true;
    analyse({path}, json, out);
    analyse({path}, AnalyseOptions{}, out);
  });
  o.accepted = all_read;
  return o;
}

// ---------------------------------------------------------------------------------------------
// checkpoints

constexpr size_t kTrailerSize = 20;  // io/checkpoint.h: magic (8), length (8), CRC-32 (4)

// Reads `path` as `gfn train --resume` reads a checkpoint into its run (checkpoint_run_overrides).
Outcome check_checkpoint(const std::string& path) {
  Shared& s = shared();
  const std::vector<std::string> names{path};
  try {
    CheckpointReader checkpoint(path);
    // its config, as check_resumable (apps/run.cc) reads it
    try {
      load_config(checkpoint.config_toml(), {}, s.schema, checkpoint.path());
    } catch (const ConfigError& e) {
      Outcome o = rejected(e.what(), names, /*prefix_only=*/false);
      if (!o.problem.empty()) return o;
    }
    // every part of a run, as TrainingRun::read_checkpoint (apps/run.cc) reads them
    Run run = build_run(s.checkpoint_run.params, s.registry);
    const EvalOptions eval_options = EvalOptions::keys().read(s.checkpoint_run.params);
    const uint64_t seed = static_cast<uint64_t>(run.options.seed);
    Trainer trainer(*run.env, *run.estimators, *run.objective, run.trainer_options,
                    stream_seed(seed, SeedStream::kSampling), run.device, component_pointers(run.components));
    Evaluator evaluator(*run.env, *run.estimators, trainer.table(), eval_options,
                        stream_seed(seed, SeedStream::kEvaluation), run.device, run.execution);
    checkpoint.read_parts([&](CheckpointReader& c) {
      run.estimators->read(c.archive(), c.path());
      for (const auto& component : run.components) component->read_model(c.archive(), c.path());
      trainer.load_state(c.archive(), c.path());
      evaluator.read_state(c);
      c.read("run.iteration").item<int64_t>();
      c.read("run.trajectories").item<int64_t>();
      c.read("run.wall_s").item<double>();
    });
  } catch (const ConfigError& e) {
    return rejected(e.what(), names, /*prefix_only=*/true);
  }
  Outcome o;
  o.accepted = true;
  return o;
}

// Aborts with the outcome's problem: a finding.
int enforce(const Outcome& o, const char* target) {
  if (o.problem.empty()) return 0;
  std::fprintf(stderr, "\n%s: contract broken: %s\n", target, o.problem.c_str());
  std::abort();
}

}  // namespace

std::vector<std::string> checkpoint_run_overrides() { return {"policy.hidden=16", "policy.layers=1"}; }

void initialise() {
  torch::set_num_threads(1);
  shared();
}

Outcome run_config(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return check_config(text, {}, "fuzz", config_names("fuzz"));
}

Outcome run_overrides(const uint8_t* data, size_t size) {
  // one override per line (a NUL ends one too), as many `--set` as the shell would pass
  constexpr size_t kMaxOverrides = 64;
  std::vector<std::string> overrides;
  std::string current;
  for (size_t i = 0; i < size && overrides.size() < kMaxOverrides; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\n' || c == '\0') {
      overrides.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty() && overrides.size() < kMaxOverrides) overrides.push_back(current);
  const Shared& s = shared();
  return check_config(s.base_text, overrides, s.base_source, config_names(s.base_source));
}

Outcome run_log(const uint8_t* data, size_t size) {
  const std::string path = write_temp("log.h5", std::string(reinterpret_cast<const char*>(data), size));
  return check_log(path);
}

Outcome run_checkpoint(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  // the file as given: its checksum trailer (or its absence) decides first
  Outcome as_given = check_checkpoint(write_temp("checkpoint.pt", bytes));
  if (!as_given.problem.empty()) return as_given;
  // its archive behind a valid trailer: what a damaged zip or tensor reads as in a file whose
  // checksum was forged (or of a writer that computed it over damaged bytes)
  std::string archive = bytes;
  if (archive.size() >= kTrailerSize && archive.compare(archive.size() - kTrailerSize, 8, std::string("gfnckpt\0", 8)) == 0)
    archive.resize(archive.size() - kTrailerSize);
  Outcome behind = check_checkpoint(write_temp("checkpoint-forged.pt", checkpoint_with_trailer(std::move(archive))));
  if (!behind.problem.empty()) return behind;
  as_given.note = behind.accepted ? "its archive reads" : "its archive is rejected: " + behind.error;
  return as_given;
}

int fuzz_config(const uint8_t* data, size_t size) { return enforce(run_config(data, size), "fuzz_config"); }
int fuzz_overrides(const uint8_t* data, size_t size) { return enforce(run_overrides(data, size), "fuzz_overrides"); }
int fuzz_log(const uint8_t* data, size_t size) { return enforce(run_log(data, size), "fuzz_log"); }
int fuzz_checkpoint(const uint8_t* data, size_t size) {
  return enforce(run_checkpoint(data, size), "fuzz_checkpoint");
}

}  // namespace gfn::fuzz

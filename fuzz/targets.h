// Fuzz targets: the readers of untrusted input, each held to its documented contract. They are
// the entry points of the libFuzzer binaries (fuzz/fuzzer_main.cc; clang builds with
// GFN_BUILD_FUZZERS=ON, run by scripts/fuzz.sh) and of tests/io/fuzz_replay_test.cc, which
// replays the inputs kept in tests/fuzz/<target>/ (seeds, and every input that found a bug) in
// every build.
//
// The contract: an input is accepted, or rejected with the documented exception — ConfigError
// for configs, `--set` overrides and checkpoints, LogError for logs — whose message is one
// non-empty line naming its source (the file, the config's source or key, the override).
// Anything else is a finding:
//   - another exception type escaping the reader (it escapes the target too: libFuzzer reports
//     an uncaught exception as a crash, GoogleTest as a failure);
//   - a message breaking the rule (Outcome::problem; the libFuzzer entry aborts with it);
//   - a sanitizer report, a hang (libFuzzer's -timeout) or a memory blow-up (-rss_limit_mb,
//     and -malloc_limit_mb for a single allocation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gfn::fuzz {

// What one input did.
struct Outcome {
  bool accepted = false;  // the reader took it (and everything it read checked out)
  std::string error;      // the documented exception's message when it was rejected
  std::string problem;    // "" when the contract holds, else what broke it
  std::string note;       // accepted without the expensive part of the target, and why
};

// Once per process: one LibTorch thread, the base config read, the temporary directory made.
void initialise();

// The `--set` overrides of configs/hypergrid.toml that make the run run_checkpoint reads
// checkpoints into (a small policy: checkpoints of ~35 KB rather than ~900 KB). Seeds must come
// from a run of the same config (scripts/fuzz.sh, tests/io/fuzz_replay_test.cc).
std::vector<std::string> checkpoint_run_overrides();

// 1. A run config: the bytes as TOML text through load_config(text, {}, run_schema(builtin),
//    "fuzz"), then what `gfn train` checks before any work (build_run; the log, evaluation and
//    checkpoint options; the trainer and the evaluator), when the config's size estimate fits
//    in kBuildBudgetBytes (otherwise accepted with a note: such configs are findings of their
//    own, see the report in bench/RESULTS.md). An accepted config's resolved TOML must load back
//    to the same parameters.
Outcome run_config(const uint8_t* data, size_t size);
// 2. `--set` overrides: the bytes split at newlines (and NULs) into override strings, applied
//    to configs/hypergrid.toml; then as run_config.
Outcome run_overrides(const uint8_t* data, size_t size);
// 3. A run log: the bytes as a file, read through Hdf5LogReader (every root attribute, every
//    dataset's shape and values) and through `gfn analyse` (the summary, as a table and JSON).
Outcome run_log(const uint8_t* data, size_t size);
// 4. A checkpoint: the bytes as a file, read by CheckpointReader, its config loaded, and every
//    part of a hypergrid run (configs/hypergrid.toml with checkpoint_run_overrides()) read from
//    it as `gfn train --resume` does; then the same with the bytes given a valid checksum trailer (io/checkpoint.h), so
//    that mutations reach LibTorch's archive reader and gfn's part readers behind the checksum.
Outcome run_checkpoint(const uint8_t* data, size_t size);

// The libFuzzer entries: run_*, then abort with Outcome::problem when the contract broke.
int fuzz_config(const uint8_t* data, size_t size);
int fuzz_overrides(const uint8_t* data, size_t size);
int fuzz_log(const uint8_t* data, size_t size);
int fuzz_checkpoint(const uint8_t* data, size_t size);

// Estimated bytes a config may allocate while its run is built, above which run_config skips
// building it (see config_size_estimate in targets.cc).
inline constexpr double kBuildBudgetBytes = 512.0 * 1024 * 1024;

}  // namespace gfn::fuzz

// Checkpoints: DIR/checkpoint.pt, what an exact resume needs.
//
// Format 2: a LibTorch archive holding "checkpoint.format" (int64 = 2), "checkpoint.config" (the
// run's resolved TOML), then every part's own entries: the estimators and the components' modules
// and state, the trainer's ("trainer.*"), the evaluation's ("eval.*") and the run loop's
// ("run.*"); then a 20-byte trailer: the magic "gfnckpt\0", the archive's length (uint64) and
// its CRC-32 (uint32), little-endian. LibTorch's zip records carry CRCs that its reader does not
// check, so a flipped byte in a tensor would load as a wrong number: the trailer is verified
// before anything is read. Format 1 (no trailer) is still read, unverified. A checkpoint is
// written atomically and synced (core/file_io.h), so a reader, a crash or a power loss never
// sees half of one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <torch/types.h>

#include "core/archive.h"
#include "core/options.h"

namespace gfn {

inline constexpr int64_t kCheckpointFormat = 2;
inline constexpr int64_t kCheckpointFormatMin = 1;  // format 1: no checksum trailer

struct CheckpointOptions : KeyedOptions<CheckpointOptions> {
  int64_t every = 0;       // a checkpoint every N iterations (0: by time only)
  double seconds = 60.0;   // a checkpoint when this many seconds passed since the last one (0: not by time)

  // The config keys (checkpoint.every, checkpoint.seconds; both may change on resume).
  static const OptionTable<CheckpointOptions>& keys();
};

// `archive` (a LibTorch archive's bytes) followed by its checksum trailer: the bytes of a
// format-2 checkpoint file.
std::string checkpoint_with_trailer(std::string archive);

// When and where a run writes its checkpoints.
class Checkpointer {
 public:
  Checkpointer(std::string path, const CheckpointOptions& options);
  // Whether a checkpoint is due after iteration `iteration` (every N iterations, or `seconds`
  // since the last one was written or the run started).
  bool due(int64_t iteration) const;
  // Writes the checkpoint: the format, `config_toml`, then what `parts` writes, and the checksum
  // trailer; restarts the clock. WriteError (core/file_io.h) when the file cannot be written:
  // the previous checkpoint then stays as it was.
  void write(const std::string& config_toml,
             const std::function<void(torch::serialize::OutputArchive&)>& parts);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  CheckpointOptions options_;
  std::chrono::steady_clock::time_point last_;
};

// A checkpoint opened for reading: its config text, then its parts. The constructor throws
// ConfigError naming the file when it is not a gfn checkpoint, is truncated or damaged (its
// checksum differs), or is of a format this gfn does not read.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path);
  ~CheckpointReader();
  const std::string& config_toml() const { return config_toml_; }
  const std::string& path() const { return path_; }
  torch::serialize::InputArchive& archive() { return *archive_; }
  // The buffer entry `key`; ConfigError naming the file when it is missing.
  torch::Tensor read(const std::string& key);
  // Runs `read_parts`, turning what it throws into a ConfigError naming the file ("cannot read
  // the checkpoint (...)"); ConfigErrors pass unchanged.
  void read_parts(const std::function<void(CheckpointReader&)>& read_parts);

 private:
  std::string path_;
  std::string config_toml_;
  std::unique_ptr<torch::serialize::InputArchive> archive_;
};

}  // namespace gfn

#include "io/checkpoint.h"

#include <fmt/format.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "core/estimator.h"

namespace gfn {

const OptionTable<CheckpointOptions>& CheckpointOptions::keys() {
  using O = CheckpointOptions;
  static const auto table =
      OptionTable<O>()
          .add("checkpoint.every", &O::every,
               "write DIR/checkpoint.pt (for gfn train --resume) every N iterations (0: by time only, "
               "checkpoint.seconds)",
               at_least(0))
          .resumable()
          .add("checkpoint.seconds", &O::seconds,
               "write DIR/checkpoint.pt when this many seconds of training passed since the last one (0: not by "
               "time); a checkpoint is also written at the end and when a signal stops the run",
               in(0, 1e9))
          .resumable();
  return table;
}

Checkpointer::Checkpointer(std::string path, const CheckpointOptions& options)
    : path_(std::move(path)), options_(options), last_(std::chrono::steady_clock::now()) {
  options_.validate();
}

bool Checkpointer::due(int64_t iteration) const {
  if (options_.every > 0 && iteration % options_.every == 0) return true;
  const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_).count();
  return options_.seconds > 0 && since >= options_.seconds;
}

void Checkpointer::write(const std::string& config_toml,
                         const std::function<void(torch::serialize::OutputArchive&)>& parts) {
  torch::serialize::OutputArchive a;
  a.write("checkpoint.format", torch::tensor(kCheckpointFormat), /*is_buffer=*/true);
  a.write("checkpoint.config", c10::IValue(config_toml));
  parts(a);
  save_archive(a, path_);
  last_ = std::chrono::steady_clock::now();
}

CheckpointReader::CheckpointReader(const std::string& path)
    : path_(path), archive_(std::make_unique<torch::serialize::InputArchive>()) {
  try {
    archive_->load_from(path);
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{}: not a gfn checkpoint, or truncated ({})", path, first_line(e)));
  }
  read_parts([&](CheckpointReader&) {
    torch::Tensor format;
    if (!archive_->try_read("checkpoint.format", format, true))
      throw ConfigError(fmt::format("{}: not a gfn checkpoint", path));
    if (format.item<int64_t>() != kCheckpointFormat)
      throw ConfigError(fmt::format("{}: checkpoint format {} is not supported (this gfn reads {})", path,
                                    format.item<int64_t>(), kCheckpointFormat));
    c10::IValue text;
    archive_->read("checkpoint.config", text);
    config_toml_ = text.toStringRef();
  });
}

CheckpointReader::~CheckpointReader() = default;

torch::Tensor CheckpointReader::read(const std::string& key) {
  torch::Tensor t;  // fresh: try_read into a defined tensor resizes it in place
  if (!archive_->try_read(key, t, true))
    throw ConfigError(fmt::format("{}: no entry '{}' (not a checkpoint of this config)", path_, key));
  return t;
}

void CheckpointReader::read_parts(const std::function<void(CheckpointReader&)>& read_parts) {
  try {
    read_parts(*this);
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{}: cannot read the checkpoint ({})", path_, first_line(e)));
  }
}

}  // namespace gfn

#include "io/checkpoint.h"

#include <fmt/format.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "core/estimator.h"
#include "core/archive_check.h"
#include "core/file_io.h"

namespace gfn {

namespace {

constexpr char kTrailerMagic[8] = {'g', 'f', 'n', 'c', 'k', 'p', 't', '\0'};
constexpr size_t kTrailerSize = sizeof kTrailerMagic + sizeof(uint64_t) + sizeof(uint32_t);

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// Whether `bytes` ends with a checksum trailer.
bool has_trailer(const std::string& bytes) {
  return bytes.size() >= kTrailerSize &&
         bytes.compare(bytes.size() - kTrailerSize, sizeof kTrailerMagic, kTrailerMagic, sizeof kTrailerMagic) == 0;
}

}  // namespace

std::string checkpoint_with_trailer(std::string archive) {
  const uint32_t crc = crc32(archive);
  const uint64_t length = archive.size();
  archive.append(kTrailerMagic, sizeof kTrailerMagic);
  put_le(archive, length, 8);
  put_le(archive, crc, 4);
  return archive;
}

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
  write_file_atomic(path_, checkpoint_with_trailer(archive_bytes(a)), /*sync=*/true);
  last_ = std::chrono::steady_clock::now();
}

CheckpointReader::CheckpointReader(const std::string& path)
    : path_(path), archive_(std::make_unique<torch::serialize::InputArchive>()) {
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const std::exception& e) {
    throw ConfigError(first_line(e));
  }
  // the trailer first: a damaged archive must not be read at all
  const bool verified = has_trailer(bytes);
  if (verified) {
    const char* t = bytes.data() + bytes.size() - kTrailerSize + sizeof kTrailerMagic;
    const uint64_t length = get_le(t, 8);
    const uint32_t crc = static_cast<uint32_t>(get_le(t + 8, 4));
    if (length != bytes.size() - kTrailerSize || crc32(std::string_view(bytes.data(), length)) != crc)
      throw ConfigError(fmt::format("{}: damaged (its checksum does not match: the file changed after gfn wrote it); "
                                    "restore a copy, or start the run again",
                                    path));
    bytes.resize(length);
  }
  // the sizes the archive declares, before LibTorch allocates them (a forged checksum, or a
  // format-1 file, reaches this far)
  if (const std::string problem = torch_archive_problem(bytes); !problem.empty())
    throw ConfigError(fmt::format("{}: damaged ({})", path, problem));
  try {
    archive_->load_from(bytes.data(), bytes.size());
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{}: not a gfn checkpoint, or truncated ({})", path, first_line(e)));
  }
  read_parts([&](CheckpointReader&) {
    torch::Tensor format;
    if (!archive_->try_read("checkpoint.format", format, true))
      throw ConfigError(fmt::format("{}: not a gfn checkpoint", path));
    const int64_t f = format.item<int64_t>();
    if (f < kCheckpointFormatMin || f > kCheckpointFormat)
      throw ConfigError(fmt::format("{}: checkpoint format {} is not supported (this gfn reads {} to {})", path, f,
                                    kCheckpointFormatMin, kCheckpointFormat));
    if (f >= 2 && !verified)
      throw ConfigError(fmt::format("{}: damaged or truncated (a format-{} checkpoint without its checksum trailer)",
                                    path, f));
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

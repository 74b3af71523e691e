// Durable, checked file writes: what a run writes beside its HDF5 log (checkpoint.pt, model.pt,
// config.toml) goes through here, so that a full disk, a file-size limit or a read-only
// directory is one line naming the file and the system's reason, never a half-written file
// under the final name, and never a stray temporary file.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace gfn {

// A file could not be written: "<path>: cannot write (<the system's reason>)". `gfn` reports it
// as one line and exits 1 (the run's earlier files stay as they were).
class WriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes `bytes` to `path` through `path`.tmp renamed over it: a reader, or a crash at any
// moment, sees the old file or the new one, whole. With `sync`, the file's data is on the disk
// before the rename (fsync) and the rename is on the disk before this returns (fsync of the
// directory), so a power loss cannot leave an empty or partial file under `path` either. On
// any failure the temporary file is removed, `path` is untouched, and WriteError names the file
// and the reason (errno's text: "No space left on device", "File too large", ...).
void write_file_atomic(const std::string& path, std::string_view bytes, bool sync);

// Reads the whole file; WriteError's sibling for reads is std::runtime_error naming the file.
std::string read_file(const std::string& path);

// CRC-32 (IEEE 802.3, the zlib/PNG polynomial 0xEDB88320, reflected) of `bytes`, continuing
// from `crc` (0 to start). Detects every burst error of up to 32 bits and any other random
// damage with probability 1 - 2^-32.
uint32_t crc32(std::string_view bytes, uint32_t crc = 0);

}  // namespace gfn

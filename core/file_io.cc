#include "core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/fault.h"

namespace gfn {

namespace {

std::string reason(int err) { return std::strerror(err); }

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw WriteError(fmt::format("{}: {} ({})", path, what, reason(err)));
}

// fsync of the directory holding `path`: makes a rename (or a creation) in it durable.
void sync_directory(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(dir, "cannot open the directory to sync it", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // EINVAL: a file system without fsync on directories (some FUSE and network ones); the
  // rename itself has happened
  if (rc != 0 && err != EINVAL) fail(dir, "cannot sync the directory", err);
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes, bool sync) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(tmp, "cannot create", errno);
  // every failure from here removes the temporary file before it reports
  auto abandon = [&](const std::string& what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(tmp, what, err);
  };
  const char* p = bytes.data();
  size_t left = bytes.size();
  const std::string fault = "write:" + std::filesystem::path(path).filename().string();
  bool halfway = false;
  while (left > 0) {
    if (!halfway && left <= bytes.size() / 2) {
      halfway = true;
      fault_point(fault.c_str());  // the crash tests' kill in the middle of a write
    }
    const ssize_t n = ::write(fd, p, std::min(left, halfway ? left : bytes.size() / 2 + 1));
    if (n < 0) {
      if (errno == EINTR) continue;
      abandon("cannot write", errno);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (sync && ::fsync(fd) != 0) abandon("cannot sync", errno);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(tmp, "cannot write", err);  // NFS and some quotas report write errors only at close
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail(path, "cannot rename " + tmp + " to it", err);
  }
  if (sync) sync_directory(path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open ({})", path, reason(errno)));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw std::runtime_error(fmt::format("{}: cannot read ({})", path, reason(errno)));
  return std::move(s).str();
}

uint32_t crc32(std::string_view bytes, uint32_t crc) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (const char ch : bytes) crc = table[(crc ^ static_cast<uint8_t>(ch)) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

}  // namespace gfn

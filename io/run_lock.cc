#include "io/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/params.h"

namespace gfn {

long flock_holder(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  // /proc/locks: "1: FLOCK  ADVISORY  WRITE 17226 fe:00:10969573 0 EOF" (major and minor in
  // hex, the inode in decimal)
  const std::string id = fmt::format("{:02x}:{:02x}:{}", major(st.st_dev), minor(st.st_dev), st.st_ino);
  std::ifstream locks("/proc/locks");
  std::string line;
  while (std::getline(locks, line)) {
    std::istringstream fields(line);
    std::string number, kind, mode, access, device;
    long pid = 0;
    if (fields >> number >> kind >> mode >> access >> pid >> device && kind == "FLOCK" && device == id) return pid;
  }
  return 0;
}

RunDirLock::RunDirLock(const std::string& dir, const std::string& flag) {
  fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0)
    throw ConfigError(fmt::format("{} {}: cannot open the run directory ({})", flag, dir, std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  const int err = errno;
  ::close(fd_);
  fd_ = -1;
  if (err != EWOULDBLOCK)
    throw ConfigError(fmt::format("{} {}: cannot lock the run directory ({})", flag, dir, std::strerror(err)));
  const long pid = flock_holder(dir);
  throw ConfigError(fmt::format("{} {}: another gfn process{} is writing this run directory; wait for it to end{}",
                                flag, dir, pid > 0 ? fmt::format(" (pid {})", pid) : std::string(),
                                flag == "--out" ? ", or choose another --out" : ""));
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace gfn

// The advisory lock of a run directory: one writer at a time. `gfn train` (a new run or a
// resumed one) holds it from before its first write to the end of the process; a second writer
// of the same directory fails before it touches anything, naming the holder's pid. The lock is
// flock(2) on the directory itself, so no lock file is left behind and a killed holder (even by
// SIGKILL) releases it with its last file descriptor. Readers (gfn eval, sample, analyse) take
// no lock: the log is SWMR and the other files are replaced atomically.
#pragma once

#include <string>

namespace gfn {

class RunDirLock {
 public:
  // Locks the directory `dir` (which must exist). ConfigError when another process holds it:
  // "<flag> DIR: another gfn process (pid N) is writing this run directory; ..."; `flag` is the
  // argument that named the directory (--out, --resume).
  RunDirLock(const std::string& dir, const std::string& flag);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  int fd_ = -1;
};

// The pid of the process holding a flock(2) lock on `path` (from /proc/locks), or 0 when none
// is found.
long flock_holder(const std::string& path);

}  // namespace gfn

#include "io/internal/analyse_gnuplot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

extern char** environ;

namespace gfn::analysis {

namespace {

namespace fs = std::filesystem;

// A gnuplot process drawing `script`, its stderr readable from `err_fd`.
struct Job {
  pid_t pid;
  int err_fd;
  fs::path script;
};

// Starts `gnuplot script` with stdin and stdout on /dev/null and stderr into a pipe.
Job start_job(const std::string& gnuplot, const fs::path& script) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("--plot: cannot create a pipe for gnuplot");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  std::string arg0 = gnuplot, arg1 = script.string();
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, gnuplot.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error(fmt::format("--plot: cannot run {}: {}", gnuplot, std::strerror(rc)));
  }
  return Job{pid, fds[0], script};
}

// Reads the job's stderr to its end and reaps it; throws when it failed or wrote no PNG.
void finish_job(const Job& job) {
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(job.err_fd, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    err.append(buf, static_cast<size_t>(n));
  }
  ::close(job.err_fd);
  int status = 0;
  while (::waitpid(job.pid, &status, 0) < 0 && errno == EINTR) {
  }
  const fs::path png = job.script.parent_path() / (job.script.stem().string() + ".png");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !fs::exists(png)) {
    // gnuplot's own message, on one line
    std::replace(err.begin(), err.end(), '\n', ' ');
    throw std::runtime_error(
        fmt::format("--plot: gnuplot failed on {}: {}", job.script.string(), err.empty() ? "no PNG written" : err));
  }
}

}  // namespace

std::optional<std::string> find_program(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos)
    return ::access(name.c_str(), X_OK) == 0 ? std::optional<std::string>(name) : std::nullopt;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string d; std::getline(dirs, d, ':');) {
    const fs::path candidate = fs::path(d.empty() ? "." : d) / name;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return std::nullopt;
}

void run_gnuplot(const std::string& gnuplot, const std::vector<fs::path>& scripts) {
  constexpr size_t kParallel = 4;
  std::vector<Job> jobs;
  size_t next = 0;
  try {
    while (next < scripts.size() || !jobs.empty()) {
      while (next < scripts.size() && jobs.size() < kParallel) jobs.push_back(start_job(gnuplot, scripts[next++]));
      const Job job = jobs.front();
      jobs.erase(jobs.begin());
      finish_job(job);
    }
  } catch (...) {
    // no zombies: reap what is still running
    for (const Job& job : jobs) {
      ::close(job.err_fd);
      int status = 0;
      ::waitpid(job.pid, &status, 0);
    }
    throw;
  }
}

}  // namespace gfn::analysis

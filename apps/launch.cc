#include "apps/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "core/params.h"

namespace gfn {

namespace {

std::atomic<int> g_forward_signal{0};

void on_signal(int signal) { g_forward_signal.store(signal); }

}  // namespace

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(fmt::format("gfn launch: cannot open a socket: {}", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("gfn launch: cannot find a free port: " + why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

namespace {

// "exited with code 1" or "was killed by signal 9" for a waitpid status; `code` the process's
// exit code in the shell's convention.
std::string describe(int status, int* code) {
  if (WIFEXITED(status)) {
    *code = WEXITSTATUS(status);
    return fmt::format("exited with code {}", *code);
  }
  const int signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  *code = 128 + signal;
  return fmt::format("was killed by signal {} ({})", signal, strsignal(signal));
}

}  // namespace

int launch(int64_t processes, const std::string& executable, const std::vector<std::string>& train_args,
           double grace_s) {
  if (processes < 1 || processes > 4096)
    throw ConfigError(fmt::format("-n {}: expected a number of processes in [1, 4096]", processes));
  const int port = free_loopback_port();
  std::vector<pid_t> pids(processes, -1);
  std::vector<bool> running(processes, false);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  for (int64_t r = 0; r < processes; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(fmt::format("gfn launch: cannot start rank {}: {}", r, std::strerror(errno)));
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(processes).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(executable.c_str()));
      for (const auto& a : train_args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(executable.c_str(), argv.data());
      std::fprintf(stderr, "gfn launch: rank %lld: cannot run %s: %s\n", static_cast<long long>(r), executable.c_str(),
                   std::strerror(errno));
      ::_exit(127);
    }
    pids[r] = pid;
    running[r] = true;
  }
  std::string started;
  for (int64_t r = 0; r < processes; ++r) started += fmt::format("{}rank {} pid {}", r ? ", " : "", r, pids[r]);
  std::fprintf(stderr, "gfn launch: %lld processes, master 127.0.0.1:%d (%s)\n", static_cast<long long>(processes),
               port, started.c_str());

  int result = 0, forwarded = 0;
  int64_t live = processes;
  std::optional<std::chrono::steady_clock::time_point> failed_at;
  bool terminated = false;
  while (live > 0) {
    if (const int s = g_forward_signal.exchange(0); s != 0) {  // pass a signal on to every rank
      forwarded = s;
      for (int64_t r = 0; r < processes; ++r)
        if (running[r]) ::kill(pids[r], s);
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (int64_t r = 0; r < processes; ++r) {
        if (pids[r] != pid) continue;
        running[r] = false;
        --live;
        int code = 0;
        const std::string how = describe(status, &code);
        if (forwarded != 0) {
          if (r == 0) result = code;  // a stopped run: rank 0's code (130 / 143, resumable)
        } else if (code != 0) {
          std::fprintf(stderr, "gfn launch: rank %lld (pid %d) %s\n", static_cast<long long>(r), pid, how.c_str());
          if (result == 0) result = code;
          if (!failed_at) failed_at = std::chrono::steady_clock::now();
        }
      }
      continue;
    }
    // a failed rank: the others notice the lost peer; those that do not are terminated
    if (failed_at && !terminated &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - *failed_at).count() > grace_s) {
      for (int64_t r = 0; r < processes; ++r) {
        if (!running[r]) continue;
        std::fprintf(stderr, "gfn launch: rank %lld (pid %d) still running %.0f s after a failure: terminating it\n",
                     static_cast<long long>(r), pids[r], grace_s);
        ::kill(pids[r], SIGKILL);
      }
      terminated = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return result;
}

}  // namespace gfn

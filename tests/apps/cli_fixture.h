// A test fixture for end-to-end tests of the `gfn` binary: each test gets a fresh temporary
// directory and runs the binary (its path from ctest's GFN_BIN) with stdout and stderr captured.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "io/hdf5_log.h"

namespace gfn::testing {

struct Result {
  int code = -1;  // exit status, -1 when the process did not exit normally
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// How CliFixture::spawn starts a process: extra environment variables ("NAME=value") and a
// file-size limit in bytes (RLIMIT_FSIZE; 0: none).
struct SpawnOptions {
  std::vector<std::string> env;
  long file_size_limit = 0;
};

class CliFixture : public ::testing::Test {
 protected:
  explicit CliFixture(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    const char* bin = std::getenv("GFN_BIN");
    bin_ = bin ? bin : "build/bin/gfn";
    ASSERT_TRUE(std::filesystem::exists(bin_)) << "gfn binary not found at " << bin_;
    dir_ = std::filesystem::temp_directory_path() /
           (prefix_ + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `gfn ARGS` (ARGS already quoted for the shell) with stdin closed, in `cwd` when given.
  Result run(const std::string& args, const std::filesystem::path& cwd = {}) {
    Result r;
    auto out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    std::string cmd = "'" + std::filesystem::absolute(bin_).string() + "' " + args + " >'" + out.string() + "' 2>'" +
                      err.string() + "' </dev/null";
    if (!cwd.empty()) cmd = "cd '" + cwd.string() + "' && " + cmd;
    int status = std::system(cmd.c_str());
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  // Starts `gfn ARGS...` with stdout and stderr in DIR/<tag>.out and DIR/<tag>.err.
  pid_t spawn(const std::vector<std::string>& args, const std::string& tag, const SpawnOptions& options = SpawnOptions()) {
    const std::string out = (dir_ / (tag + ".out")).string(), err = (dir_ / (tag + ".err")).string();
    const pid_t pid = fork();
    if (pid == 0) {
      const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(o, STDOUT_FILENO);
      dup2(e, STDERR_FILENO);
      for (const auto& v : options.env) putenv(const_cast<char*>(v.c_str()));
      if (options.file_size_limit > 0) {
        const rlimit limit{static_cast<rlim_t>(options.file_size_limit), static_cast<rlim_t>(options.file_size_limit)};
        setrlimit(RLIMIT_FSIZE, &limit);
      }
      std::vector<char*> argv{const_cast<char*>(bin_.c_str())};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(bin_.c_str(), argv.data());
      _exit(127);
    }
    return pid;
  }

  // The exit status (or 128 + signal) of `pid`.
  static int wait_exit(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // Waits until the log in `run` holds at least `rows` /train rows (read live, as another
  // process would), at most 60 s.
  void wait_for_rows(const std::filesystem::path& run, size_t rows) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::filesystem::exists(run / "log.h5")) {
        try {
          Hdf5LogReader log((run / "log.h5").string());
          if (log.has("train/iteration") && log.shape("train/iteration")[0] >= static_cast<int64_t>(rows)) return;
        } catch (const LogError&) {
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "the run wrote fewer than " << rows << " rows within 60 s";
  }

  std::string prefix_;
  std::string bin_;
  std::filesystem::path dir_;
};

}  // namespace gfn::testing

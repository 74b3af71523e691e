// A test fixture for end-to-end tests of the `gfn` binary: each test gets a fresh temporary
// directory and runs the binary (its path from ctest's GFN_BIN) with stdout and stderr captured.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

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

  // Runs `gfn ARGS` (ARGS already quoted for the shell) with stdin closed.
  Result run(const std::string& args) {
    Result r;
    auto out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    std::string cmd = "'" + bin_ + "' " + args + " >'" + out.string() + "' 2>'" + err.string() + "' </dev/null";
    int status = std::system(cmd.c_str());
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  std::string prefix_;
  std::string bin_;
  std::filesystem::path dir_;
};

}  // namespace gfn::testing

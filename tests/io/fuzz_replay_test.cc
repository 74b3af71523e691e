// Replays the inputs kept in tests/fuzz/<target>/ through the fuzz targets (fuzz/targets.h) in
// every build, gcc's included: the seeds of each fuzzer and every input that once broke a
// reader's contract. Each input must be accepted, or rejected with the documented exception
// (ConfigError, LogError) in one line naming its file or key; nothing else may escape. A file
// named accept-* must be accepted, reject-* rejected.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/targets.h"

namespace gfn::fuzz {
namespace {

namespace fs = std::filesystem;

struct Target {
  const char* name;  // the directory under tests/fuzz/ (or a run directory's file)
  Outcome (*run)(const uint8_t*, size_t);
};

std::ostream& operator<<(std::ostream& out, const Target& t) { return out << t.name; }

class FuzzReplayTest : public ::testing::TestWithParam<Target> {
 protected:
  static void SetUpTestSuite() { initialise(); }
};

TEST_P(FuzzReplayTest, EveryKeptInputKeepsTheContract) {
  const Target target = GetParam();
  const fs::path dir = fs::path("tests/fuzz") / target.name;
  ASSERT_TRUE(fs::is_directory(dir)) << dir << " (tests run from the repository root)";
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty()) << dir << " holds no input";

  int accepted = 0;
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Outcome o;
    try {
      o = target.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "an exception outside the contract escaped: " << e.what();
      continue;
    }
    EXPECT_EQ(o.problem, "");
    const std::string name = file.filename().string();
    if (name.rfind("accept-", 0) == 0) {
      EXPECT_TRUE(o.accepted) << o.error;
    }
    if (name.rfind("reject-", 0) == 0) {
      EXPECT_FALSE(o.accepted);
      EXPECT_FALSE(o.error.empty());
    }
    accepted += o.accepted;
    if (!o.note.empty()) std::printf("  %s: %s\n", name.c_str(), o.note.c_str());
  }
  std::printf("%s: %zu inputs, %d accepted\n", target.name, files.size(), accepted);
}

// The happy path of the log and checkpoint targets, which the kept inputs (small, mostly
// rejected) do not cover: a real run's log.h5 and checkpoint.pt (of the run run_checkpoint reads
// into) are accepted, everything in them read. scripts/fuzz.sh seeds its fuzzers with such a run.
TEST(FuzzReplay, ARealRunsLogAndCheckpointAreAccepted) {
  const char* gfn = std::getenv("GFN_BIN");
  if (gfn == nullptr) GTEST_SKIP() << "GFN_BIN is not set (ctest sets it)";
  initialise();
  const fs::path dir = fs::temp_directory_path() / ("gfn_fuzz_replay_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  std::string command = std::string(gfn) + " train configs/hypergrid.toml --out '" + dir.string() +
                        "' --set train.iterations=4 --set eval.every=2 --set log.every=1 --set eval.samples=8";
  for (const std::string& s : checkpoint_run_overrides()) command += " --set " + s;
  command += " >/dev/null 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  for (const Target& file : {Target{"log.h5", run_log}, Target{"checkpoint.pt", run_checkpoint}}) {
    std::ifstream in(dir / file.name, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(bytes.empty()) << file.name;
    const Outcome o = file.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    EXPECT_TRUE(o.accepted) << file.name << ": " << o.error;
    EXPECT_EQ(o.problem, "") << file.name;
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplayTest,
                         ::testing::Values(Target{"config", run_config}, Target{"overrides", run_overrides},
                                           Target{"log", run_log}, Target{"checkpoint", run_checkpoint}),
                         [](const ::testing::TestParamInfo<Target>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace gfn::fuzz

// Tests of the HDF5 run log: attributes, scalar tables, N-D datasets, visibility after flush,
// a killed writer, rejected files, and reading by h5py.
#include "io/hdf5_log.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace gfn {
namespace {

namespace fs = std::filesystem;

const char* kConfig = "# run config, with UTF-8: \xce\xbb\n[train]\nlr = 0.001\nsteps = 10\nname = \"a 'b'\"\n";

// The attributes every test writes.
LogAttributes test_attributes() {
  LogAttributes attrs;
  attrs.gfn_version = "0.1.0";
  attrs.created_utc = "2026-11-22T13:00:00Z";
  attrs.config_toml = kConfig;
  attrs.env = "hypergrid";
  attrs.objective = "tb";
  attrs.device = "cpu";
  attrs.seed = 42;
  return attrs;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// Runs `body` and returns the LogError message it throws (fails the test if none is thrown).
template <class F>
std::string log_error_of(F&& body) {
  try {
    body();
  } catch (const LogError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "message is not one line: " << message;
    return message;
  }
  ADD_FAILURE() << "no LogError thrown";
  return "";
}

// Runs `body` in a child process that dies by SIGKILL, as a killed run does (body raises it,
// while its log is open); fails the test unless the child died so.
template <class F>
void run_killed(F&& body) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      body();
    } catch (...) {
    }
    _exit(1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;
}

// Every test works in its own fresh directory.
class Hdf5LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / ("gfn_hdf5_log_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST(Hdf5LogUtc, Iso8601Format) {
  const std::string now = utc_now_iso8601();
  ASSERT_EQ(now.size(), 20u) << now;
  EXPECT_EQ(now[4], '-');
  EXPECT_EQ(now[7], '-');
  EXPECT_EQ(now[10], 'T');
  EXPECT_EQ(now[13], ':');
  EXPECT_EQ(now[16], ':');
  EXPECT_EQ(now[19], 'Z');
  EXPECT_GE(std::stoi(now.substr(0, 4)), 2024);
}

TEST_F(Hdf5LogTest, CreateWritesAttributes) {
  const std::string path = file("log.h5");
  {
    auto log = Hdf5Log::create(path, test_attributes());
    EXPECT_EQ(log->path(), path);
  }
  Hdf5LogReader reader(path);
  EXPECT_EQ(reader.schema_version(), 2);
  EXPECT_EQ(reader.attribute_int("schema_version"), kLogSchemaVersion);
  EXPECT_EQ(reader.attribute_int("seed"), 42);
  EXPECT_EQ(reader.attribute_string("config"), kConfig);
  EXPECT_EQ(reader.attribute_string("gfn_version"), "0.1.0");
  EXPECT_EQ(reader.attribute_string("created_utc"), "2026-11-22T13:00:00Z");
  EXPECT_EQ(reader.attribute_string("env"), "hypergrid");
  EXPECT_EQ(reader.attribute_string("objective"), "tb");
  EXPECT_EQ(reader.attribute_string("device"), "cpu");
  // wrong kinds and missing names
  EXPECT_NE(log_error_of([&] { reader.attribute_string("seed"); }).find("not a string"), std::string::npos);
  EXPECT_NE(log_error_of([&] { reader.attribute_int("config"); }).find("not an integer"), std::string::npos);
  EXPECT_NE(log_error_of([&] { reader.attribute_string("nope"); }).find("nope"), std::string::npos);
  // no data yet
  EXPECT_FALSE(reader.has("train/loss"));
  EXPECT_TRUE(reader.list("train").empty());
  EXPECT_NE(log_error_of([&] { reader.read_double("train/loss"); }).find(path), std::string::npos);
}

// An attribute is stored as a C string: a value with a NUL keeps what precedes it, and the
// length and checksum the reader verifies are those of the part kept, so the log is not
// reported as damaged.
TEST_F(Hdf5LogTest, StringWithANulKeepsItsPrefixAndReadsAsUndamaged) {
  const std::string path = file("log.h5");
  {
    LogAttributes attrs = test_attributes();
    attrs.device = std::string("cuda:0\0 and what follows", 25);
    Hdf5Log::create(path, attrs);
  }
  Hdf5LogReader reader(path);
  EXPECT_EQ(reader.attribute_string("device"), "cuda:0");
  EXPECT_EQ(reader.attribute_string("config"), kConfig);
}

TEST_F(Hdf5LogTest, CreateNeverOverwrites) {
  // an existing log
  const std::string path = file("log.h5");
  {
    auto log = Hdf5Log::create(path, test_attributes());
    log->append_row("train", {{"iteration", 0}, {"loss", 2.0}});
  }
  const std::string before = read_bytes(path);
  ASSERT_FALSE(before.empty());
  const std::string message = log_error_of([&] { Hdf5Log::create(path, test_attributes()); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("already exists"), std::string::npos) << message;
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(Hdf5LogReader(path).read_double("train/loss"), std::vector<double>{2.0});

  // any other existing file
  const std::string text = file("notes.txt");
  write_bytes(text, "keep me\n");
  log_error_of([&] { Hdf5Log::create(text, test_attributes()); });
  EXPECT_EQ(read_bytes(text), "keep me\n");

  // a missing directory
  const std::string nowhere = file("missing/log.h5");
  EXPECT_NE(log_error_of([&] { Hdf5Log::create(nowhere, test_attributes()); }).find(nowhere), std::string::npos);
  EXPECT_FALSE(fs::exists(nowhere));
}

TEST_F(Hdf5LogTest, AppendRowOverSeveralFlushes) {
  const std::string path = file("log.h5");
  const double nan = std::nan("");
  {
    auto log = Hdf5Log::create(path, test_attributes());
    log->append_row("train", {{"iteration", 0}, {"loss", 1.5}, {"trajectories", 16}});
    log->flush();
    log->append_row("train", {{"loss", 1.25}, {"iteration", 1}, {"trajectories", 32}});
    // a new column after a flush; trajectories missing in this row
    log->append_row("train", {{"iteration", 2}, {"loss", 1.0}, {"logZ", 0.5}});
    log->flush();
    log->append_row("train", {{"iteration", 3}, {"loss", 0.75}, {"logZ", 0.25}, {"trajectories", 64}});
    log->append_row("eval", {{"iteration", 0}, {"l1", 0.3}});
    log->append_row("eval", {{"iteration", 2}, {"l1", 0.1}});

    // rejected rows buffer nothing
    log_error_of([&] { log->append_row("train", {{"loss", 1.0}, {"loss", 2.0}}); });
    log_error_of([&] { log->append_row("train", {{"iteration", nan}, {"loss", 2.0}}); });
    log_error_of([&] { log->append_row("train", {{"a/b", 1.0}}); });
    log_error_of([&] { log->append_row("", {{"loss", 1.0}}); });
    // the destructor flushes the last rows
  }

  Hdf5LogReader reader(path);
  EXPECT_EQ(reader.list("train"), (std::vector<std::string>{"iteration", "logZ", "loss", "trajectories"}));
  EXPECT_EQ(reader.list("/eval"), (std::vector<std::string>{"iteration", "l1"}));
  EXPECT_TRUE(reader.list("nothing").empty());
  EXPECT_TRUE(reader.has("train/loss"));
  EXPECT_TRUE(reader.has("/train/loss"));
  EXPECT_FALSE(reader.has("train"));
  EXPECT_FALSE(reader.has("train/nope"));
  EXPECT_FALSE(reader.has("nope/loss"));

  EXPECT_EQ(reader.shape("train/loss"), std::vector<int64_t>{4});
  EXPECT_EQ(reader.read_double("train/loss"), (std::vector<double>{1.5, 1.25, 1.0, 0.75}));
  EXPECT_EQ(reader.read_int64("train/iteration"), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(reader.read_double("train/iteration"), (std::vector<double>{0, 1, 2, 3}));
  EXPECT_EQ(reader.read_int64("train/trajectories"), (std::vector<int64_t>{16, 32, 0, 64}));
  const std::vector<double> log_z = reader.read_double("train/logZ");
  ASSERT_EQ(log_z.size(), 4u);
  EXPECT_TRUE(std::isnan(log_z[0]));
  EXPECT_TRUE(std::isnan(log_z[1]));
  EXPECT_EQ(log_z[2], 0.5);
  EXPECT_EQ(log_z[3], 0.25);
  EXPECT_EQ(reader.read_double("eval/l1"), (std::vector<double>{0.3, 0.1}));
  EXPECT_EQ(reader.read_int64("eval/iteration"), (std::vector<int64_t>{0, 2}));
  // float columns are not integers
  EXPECT_NE(log_error_of([&] { reader.read_int64("train/loss"); }).find("not an integer"), std::string::npos);
}

TEST_F(Hdf5LogTest, AppendNdAcrossFlushes) {
  const std::string path = file("log.h5");
  std::vector<int64_t> actions(5 * 5 * 2);
  std::vector<float> states(5 * 5 * 2);
  for (size_t i = 0; i < actions.size(); ++i) {
    actions[i] = static_cast<int64_t>(i) - 7;
    states[i] = 0.5f * static_cast<float>(i);
  }
  // bools: any nonzero byte is true
  const std::vector<uint8_t> done = {0, 1, 7, 0, 1, 1, 0, 0, 255, 0};  // 5 rows of [2]
  const std::vector<double> reward = {0.1, 0.2, 0.3, 0.4, 0.5};
  // rows bigger than a chunk: [300, 100] float64 = 240 KB each
  std::vector<double> big(2 * 300 * 100);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<double>(i) * 0.25;
  {
    auto log = Hdf5Log::create(path, test_attributes());
    log->append("trajectories", "actions", LogDType::kInt64, {5, 2}, actions.data(), 3);
    log->append("trajectories", "states", LogDType::kFloat32, {5, 2}, states.data(), 3);
    log->append("trajectories", "done", LogDType::kBool, {2}, done.data(), 3);
    log->append("samples", "reward", LogDType::kFloat64, {}, reward.data(), 3);
    log->append("samples", "big", LogDType::kFloat64, {300, 100}, big.data(), 1);
    log->flush();
    log->append("trajectories", "actions", LogDType::kInt64, {5, 2}, actions.data() + 30, 2);
    log->append("trajectories", "states", LogDType::kFloat32, {5, 2}, states.data() + 30, 2);
    log->append("trajectories", "done", LogDType::kBool, {2}, done.data() + 6, 2);
    log->append("samples", "reward", LogDType::kFloat64, {}, reward.data() + 3, 2);
    log->append("samples", "big", LogDType::kFloat64, {300, 100}, big.data() + 30000, 1);
    log->append("samples", "reward", LogDType::kFloat64, {}, nullptr, 0);  // no-op

    // mismatches and bad arguments
    const std::string m = log_error_of(
        [&] { log->append("trajectories", "actions", LogDType::kInt64, {5, 3}, actions.data(), 1); });
    EXPECT_NE(m.find("/trajectories/actions"), std::string::npos) << m;
    EXPECT_NE(m.find("[5, 3]"), std::string::npos) << m;
    log_error_of([&] { log->append("trajectories", "actions", LogDType::kFloat64, {5, 2}, states.data(), 1); });
    log_error_of([&] { log->append("trajectories", "zero", LogDType::kInt64, {0, 2}, actions.data(), 1); });
    log_error_of([&] { log->append("trajectories", "neg", LogDType::kInt64, {2}, actions.data(), -1); });
    log_error_of([&] { log->append("trajectories", "null", LogDType::kInt64, {2}, nullptr, 1); });
    // a name cannot be both a column and an N-D dataset
    log->append_row("train", {{"loss", 1.0}});
    log_error_of([&] { log->append("train", "loss", LogDType::kFloat64, {}, reward.data(), 1); });
    log_error_of([&] { log->append_row("samples", {{"reward", 1.0}}); });
    log->flush();
  }

  Hdf5LogReader reader(path);
  EXPECT_EQ(reader.list("trajectories"), (std::vector<std::string>{"actions", "done", "states"}));
  EXPECT_EQ(reader.shape("trajectories/actions"), (std::vector<int64_t>{5, 5, 2}));
  EXPECT_EQ(reader.read_int64("trajectories/actions"), actions);
  EXPECT_EQ(reader.shape("trajectories/states"), (std::vector<int64_t>{5, 5, 2}));
  const std::vector<double> states_read = reader.read_double("trajectories/states");
  EXPECT_EQ(states_read, std::vector<double>(states.begin(), states.end()));
  EXPECT_NE(log_error_of([&] { reader.read_int64("trajectories/states"); }).find("not an integer"),
            std::string::npos);
  EXPECT_EQ(reader.shape("trajectories/done"), (std::vector<int64_t>{5, 2}));
  EXPECT_EQ(reader.read_int64("trajectories/done"), (std::vector<int64_t>{0, 1, 1, 0, 1, 1, 0, 0, 1, 0}));
  EXPECT_EQ(reader.read_double("trajectories/done"), (std::vector<double>{0, 1, 1, 0, 1, 1, 0, 0, 1, 0}));
  EXPECT_EQ(reader.shape("samples/reward"), std::vector<int64_t>{5});
  EXPECT_EQ(reader.read_double("samples/reward"), reward);
  EXPECT_EQ(reader.shape("samples/big"), (std::vector<int64_t>{2, 300, 100}));
  EXPECT_EQ(reader.read_double("samples/big"), big);
  EXPECT_FALSE(reader.has("trajectories/zero"));
  EXPECT_EQ(reader.read_double("train/loss"), std::vector<double>{1.0});
}

TEST_F(Hdf5LogTest, FlushedRowsVisibleWhileWriterOpen) {
  const std::string path = file("log.h5");
  auto log = Hdf5Log::create(path, test_attributes());
  log->append_row("train", {{"iteration", 0}, {"loss", 1.5}});
  log->append_row("train", {{"iteration", 1}, {"loss", 1.25}});
  const int64_t ids[4] = {1, 2, 3, 4};
  log->append("samples", "x", LogDType::kInt64, {2}, ids, 2);
  log->flush();
  {
    Hdf5LogReader reader(path);
    EXPECT_EQ(reader.read_double("train/loss"), (std::vector<double>{1.5, 1.25}));
    EXPECT_EQ(reader.read_int64("samples/x"), (std::vector<int64_t>{1, 2, 3, 4}));
  }

  // another process sees the flushed rows too, live, through SWMR (h5py, where installed)
  if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") == 0) {
    const std::string command = "/usr/bin/python3 -c \"import sys, h5py; f = h5py.File(sys.argv[1], 'r', swmr=True); "
                                "assert list(f['train/loss'][:]) == [1.5, 1.25]\" '" + path + "'";
    EXPECT_EQ(std::system(command.c_str()), 0);
  }

  // more rows after a second flush
  log->append_row("train", {{"iteration", 2}, {"loss", 1.0}});
  log->flush();
  Hdf5LogReader reader(path);
  EXPECT_EQ(reader.read_double("train/loss"), (std::vector<double>{1.5, 1.25, 1.0}));
  EXPECT_EQ(reader.read_int64("train/iteration"), (std::vector<int64_t>{0, 1, 2}));
}

TEST_F(Hdf5LogTest, KilledWriterKeepsFlushedRows) {
  const std::string path = file("log.h5");
  // the child writes, flushes, buffers more, and dies without closing
  ASSERT_NO_FATAL_FAILURE(run_killed([&] {
    auto log = Hdf5Log::create(path, test_attributes());
    for (int i = 0; i < 3; ++i) log->append_row("train", {{"iteration", i}, {"loss", 0.5 * i}});
    const double x[6] = {1, 2, 3, 4, 5, 6};
    log->append("samples", "x", LogDType::kFloat64, {3}, x, 2);
    log->flush();
    log->append_row("train", {{"iteration", 3}, {"loss", 9.0}});
    log->append("samples", "x", LogDType::kFloat64, {3}, x, 1);
    raise(SIGKILL);  // with the log open: its destructor would flush
  }));

  Hdf5LogReader reader(path);
  EXPECT_EQ(reader.attribute_string("config"), kConfig);
  EXPECT_EQ(reader.read_double("train/loss"), (std::vector<double>{0.0, 0.5, 1.0}));
  EXPECT_EQ(reader.read_int64("train/iteration"), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(reader.shape("samples/x"), (std::vector<int64_t>{2, 3}));
}

TEST_F(Hdf5LogTest, DatasetsFirstSeenAfterSwmrStartedAreCreated) {
  // the first flush starts SWMR; later datasets make a flush leave and re-enter it
  const std::string path = file("log.h5");
  auto log = Hdf5Log::create(path, test_attributes());
  log->declare_columns("train", {"iteration", "loss"});
  log->declare("trajectories", "x", LogDType::kFloat32, {2});
  const double grid[6] = {0, 1, 2, 3, 4, 5};
  log->write_fixed("grid", "log_reward", LogDType::kFloat64, {2, 3}, grid);
  log->flush();
  {
    Hdf5LogReader reader(path);
    EXPECT_EQ(reader.shape("train/loss"), (std::vector<int64_t>{0}));
    EXPECT_EQ(reader.shape("trajectories/x"), (std::vector<int64_t>{0, 2}));
    EXPECT_EQ(reader.read_double("grid/log_reward"), std::vector<double>(grid, grid + 6));
  }
  log->append_row("train", {{"iteration", 1}, {"loss", 2.0}});
  log->append_row("eval", {{"iteration", 1}, {"tv", 0.5}});  // a new group while in SWMR mode
  const int64_t s[2] = {7, 8};
  log->append("samples", "s", LogDType::kInt64, {}, s, 2);
  log->flush();
  log->append_row("eval", {{"iteration", 2}, {"tv", 0.25}, {"jsd", 0.125}});  // and a new column
  log->flush();
  Hdf5LogReader reader(path);
  EXPECT_EQ(reader.read_double("train/loss"), std::vector<double>{2.0});
  EXPECT_EQ(reader.read_double("eval/tv"), (std::vector<double>{0.5, 0.25}));
  const auto jsd = reader.read_double("eval/jsd");
  ASSERT_EQ(jsd.size(), 2u);
  EXPECT_TRUE(std::isnan(jsd[0]));
  EXPECT_EQ(jsd[1], 0.125);
  EXPECT_EQ(reader.read_int64("samples/s"), (std::vector<int64_t>{7, 8}));
  EXPECT_NE(log_error_of([&] { log->write_fixed("grid", "log_reward", LogDType::kFloat64, {1}, grid); })
                .find("/grid/log_reward is already written"),
            std::string::npos);
}

TEST_F(Hdf5LogTest, OpenAppendDropsRowsAfterTheCheckpointAndContinues) {
  const std::string path = file("log.h5");
  const double grid[2] = {1, 2};
  // a run that logged iterations 1..6, was checkpointed at 4 and killed
  ASSERT_NO_FATAL_FAILURE(run_killed([&] {
    auto log = Hdf5Log::create(path, test_attributes());
    log->write_fixed("grid", "x", LogDType::kFloat64, {2}, grid);
    for (int it = 1; it <= 6; ++it) {
      log->append_row("train", {{"iteration", it}, {"loss", 1.0 / it}});
      const float traj[2] = {static_cast<float>(it), 0.f};
      const int64_t iteration[2] = {it, it};
      log->append("trajectories", "iteration", LogDType::kInt64, {}, iteration, 2);
      log->append("trajectories", "x", LogDType::kFloat32, {}, traj, 2);
      if (it % 2 == 0) log->append_row("eval", {{"iteration", it}, {"tv", 0.1 * it}});
      log->flush();
    }
    const double samples[3] = {1, 2, 3};
    log->append("samples", "log_reward", LogDType::kFloat64, {}, samples, 3);
    log->flush();
    raise(SIGKILL);  // with the log open
  }));

  {
    auto log = Hdf5Log::open_append(path, 4);
    {
      Hdf5LogReader reader(path);
      EXPECT_EQ(reader.read_int64("train/iteration"), (std::vector<int64_t>{1, 2, 3, 4}));
      EXPECT_EQ(reader.read_int64("eval/iteration"), (std::vector<int64_t>{2, 4}));
      EXPECT_EQ(reader.read_int64("trajectories/iteration"), (std::vector<int64_t>{1, 1, 2, 2, 3, 3, 4, 4}));
      EXPECT_EQ(reader.shape("trajectories/x"), (std::vector<int64_t>{8}));
      EXPECT_EQ(reader.shape("samples/log_reward"), (std::vector<int64_t>{0}));
      EXPECT_EQ(reader.read_double("grid/x"), (std::vector<double>{1, 2}));
    }
    // the resumed run writes on: old and new columns, the fixed grid again (kept as it is)
    log->write_fixed("grid", "x", LogDType::kFloat64, {2}, grid);
    log->append_row("train", {{"iteration", 5}, {"loss", 0.5}, {"lr", 0.1}});
    const float traj[1] = {5.f};
    const int64_t iteration[1] = {5};
    log->append("trajectories", "iteration", LogDType::kInt64, {}, iteration, 1);
    log->append("trajectories", "x", LogDType::kFloat32, {}, traj, 1);
    EXPECT_NE(log_error_of([&] { log->append("trajectories", "x", LogDType::kFloat64, {}, grid, 1); })
                  .find("dtype float64 does not match earlier rows (float32)"),
              std::string::npos);
    log->flush();
  }
  Hdf5LogReader reader(path);
  EXPECT_EQ(reader.read_int64("train/iteration"), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(reader.read_double("train/loss"), (std::vector<double>{1.0, 0.5, 1.0 / 3, 0.25, 0.5}));
  const auto lr = reader.read_double("train/lr");
  ASSERT_EQ(lr.size(), 5u);
  EXPECT_TRUE(std::isnan(lr[3]));
  EXPECT_EQ(lr[4], 0.1);
  EXPECT_EQ(reader.read_double("trajectories/x"), (std::vector<double>{1, 0, 2, 0, 3, 0, 4, 0, 5}));
  // h5py opens a cleanly closed log without swmr=True
  if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") == 0) {
    const std::string command = "/usr/bin/python3 -c \"import sys, h5py; f = h5py.File(sys.argv[1], 'r'); "
                                "assert len(f['train/loss']) == 5\" '" + path + "'";
    EXPECT_EQ(std::system(command.c_str()), 0);
  }
}

TEST_F(Hdf5LogTest, RejectsFilesThatAreNotLogs) {
  // missing
  const std::string missing = file("missing.h5");
  EXPECT_NE(log_error_of([&] { Hdf5LogReader r(missing); }).find(missing + ": cannot open"), std::string::npos);

  // text
  const std::string text = file("x.h5");
  write_bytes(text, "this is not an HDF5 file\n");
  EXPECT_EQ(log_error_of([&] { Hdf5LogReader r(text); }), text + ": cannot open: not an HDF5 file or truncated");

  // the first half of a valid log
  const std::string good = file("good.h5");
  {
    auto log = Hdf5Log::create(good, test_attributes());
    std::vector<double> values(4000, 1.0);
    log->append("samples", "v", LogDType::kFloat64, {4}, values.data(), 1000);
    for (int i = 0; i < 100; ++i) log->append_row("train", {{"iteration", i}, {"loss", 1.0 / (i + 1)}});
  }
  const std::string bytes = read_bytes(good);
  ASSERT_GT(bytes.size(), 1000u);
  const std::string truncated = file("truncated.h5");
  write_bytes(truncated, bytes.substr(0, bytes.size() / 2));
  EXPECT_NE(log_error_of([&] { Hdf5LogReader r(truncated); }).find(truncated + ": "), std::string::npos);

  // HDF5 but not a gfn log, or of another schema version
  const std::string plain = file("plain.h5");
  const std::string future = file("future.h5");
  const std::string past = file("past.h5");
  {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    const hid_t f = H5Fcreate(plain.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    H5Fclose(f);
    for (const auto& [name, version] : {std::pair{future, int64_t{3}}, std::pair{past, int64_t{0}}}) {
      const hid_t g = H5Fcreate(name.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
      ASSERT_GE(g, 0);
      const hid_t space = H5Screate(H5S_SCALAR);
      const hid_t attr = H5Acreate2(g, "schema_version", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
      H5Awrite(attr, H5T_NATIVE_INT64, &version);
      H5Aclose(attr);
      H5Sclose(space);
      H5Fclose(g);
    }
  }
  EXPECT_EQ(log_error_of([&] { Hdf5LogReader r(plain); }), plain + ": not a gfn log (no schema_version attribute)");
  EXPECT_EQ(log_error_of([&] { Hdf5LogReader r(future); }),
            future + ": schema_version 3 is newer than this gfn reads (1 to 2): use a newer gfn");
  EXPECT_EQ(log_error_of([&] { Hdf5LogReader r(past); }),
            past + ": schema_version 0 is older than this gfn reads (1 to 2)");
  // appending (gfn train --resume) takes only the current version
  EXPECT_EQ(log_error_of([&] { Hdf5Log::open_append(future, 0); }),
            future + ": schema_version 3: only logs of schema_version 2 can be appended to");
  EXPECT_EQ(log_error_of([&] { Hdf5Log::open_append(text, 0); }),
            text + ": cannot open for appending: not an HDF5 file, truncated or read-only");

  // a directory
  EXPECT_NE(log_error_of([&] { Hdf5LogReader r(dir_.string()); }).find(dir_.string()), std::string::npos);
}

TEST_F(Hdf5LogTest, ReadableByH5py) {
  if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "/usr/bin/python3 cannot import h5py";
  const std::string path = file("log.h5");
  {
    auto log = Hdf5Log::create(path, test_attributes());
    log->append_row("train", {{"iteration", 0}, {"loss", 1.5}});
    log->append_row("train", {{"iteration", 1}, {"loss", 0.25}});
    const uint8_t flags[4] = {1, 0, 0, 1};
    log->append("trajectories", "done", LogDType::kBool, {2}, flags, 2);
    const float states[6] = {1, 2, 3, 4, 5, 6};
    log->append("trajectories", "states", LogDType::kFloat32, {3}, states, 2);
  }
  // the expected config goes through a file: no quoting of newlines in the command line
  const std::string expected = file("config.toml");
  write_bytes(expected, kConfig);
  const std::string script =
      "import sys, h5py, numpy as np\n"
      "f = h5py.File(sys.argv[1], 'r')\n"
      "loss = f['train/loss'][:]\n"
      "print(list(loss))\n"
      "assert list(loss) == [1.5, 0.25], loss\n"
      "assert f['train/iteration'].dtype == np.int64\n"
      "assert list(f['train/iteration'][:]) == [0, 1]\n"
      "c = f.attrs['config']\n"
      "c = c.decode('utf-8') if isinstance(c, bytes) else c\n"
      "assert c == open(sys.argv[2], encoding='utf-8').read(), repr(c)\n"
      "assert int(f.attrs['schema_version']) == 2 and int(f.attrs['seed']) == 42\n"
      "assert f['trajectories/done'].dtype == np.bool_, f['trajectories/done'].dtype\n"
      "assert f['trajectories/done'][:].tolist() == [[True, False], [False, True]]\n"
      "assert f['trajectories/states'].dtype == np.float32\n"
      "assert f['trajectories/states'].shape == (2, 3)\n"
      "assert f['trajectories/states'].maxshape == (None, 3)\n";
  const std::string script_path = file("check.py");
  write_bytes(script_path, script);
  const std::string command = "/usr/bin/python3 '" + script_path + "' '" + path + "' '" + expected + "'";
  EXPECT_EQ(std::system(command.c_str()), 0);
}

}  // namespace
}  // namespace gfn

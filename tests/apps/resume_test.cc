// Checkpoints and resume (apps/run.h): a run stopped at iteration k and resumed from its
// checkpoint ends with the same parameters, optimiser states and logged rows as the run that
// was never interrupted (every dataset but the wall-clock column, bit for bit on the CPU), for
// TB and SubTB with the state a run carries: learning-rate decay, a TLM backward network and
// its EMA target, an LED potential, importance-sampled and grid evaluation, the L1 window and
// the top-K states. Then the errors of resuming what cannot be resumed.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "apps/run.h"
#include "io/hdf5_log.h"
#include "tests/apps/cli_fixture.h"
#include "tests/testing/runs.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::expect_same_run;
using testing::slurp;

// The message of the exception of type E that `body` throws ("" when none is).
template <class E, class F>
std::string error_of(F&& body) {
  try {
    body();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

class Resume : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("gfn_resume_" + std::string(info->name()) + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  RunConfig config(const std::string& toml) {
    return load_config(toml, {}, run_schema(Registry::builtin()), "<test>");
  }

  // Trains `toml` into `dir`; with stop_after > 0 the run is stopped after that many
  // iterations (as by SIGTERM) and resumed, twice when stop_again > 0.
  RunSummary train_into(const fs::path& dir, const std::string& toml, int64_t stop_after, int64_t stop_again = 0) {
    const auto registry = Registry::builtin();
    TrainOptions options;
    options.out_dir = dir.string();
    options.progress = ProgressStyle::kNone;
    if (stop_after <= 0) return train(config(toml), options, registry);
    int64_t calls = 0;
    options.stop_requested = [&] { return ++calls == stop_after ? SIGTERM : 0; };
    RunSummary first = train(config(toml), options, registry);
    EXPECT_EQ(first.stopped_by_signal, SIGTERM);
    EXPECT_EQ(first.iterations, stop_after);
    EXPECT_TRUE(fs::exists(dir / "checkpoint.pt"));
    options.resume = true;
    calls = 0;
    if (stop_again > 0) {
      options.stop_requested = [&] { return ++calls == stop_again ? SIGINT : 0; };
      RunSummary second = train(resume_config(dir.string(), {}, registry), options, registry);
      EXPECT_EQ(second.stopped_by_signal, SIGINT);
      EXPECT_EQ(second.resumed_from, stop_after);
    }
    options.stop_requested = nullptr;
    RunSummary last = train(resume_config(dir.string(), {}, registry), options, registry);
    EXPECT_EQ(last.stopped_by_signal, 0);
    return last;
  }

  // Resumes the run in `dir` with `sets`.
  RunSummary resume(const fs::path& dir, const std::vector<std::string>& sets) {
    const auto registry = Registry::builtin();
    TrainOptions options;
    options.out_dir = dir.string();
    options.progress = ProgressStyle::kNone;
    options.resume = true;
    return train(resume_config(dir.string(), sets, registry), options, registry);
  }

  // The run of `toml` straight, and stopped and resumed; expect_same_run checks that they end
  // in the same state.
  struct Pair {
    RunSummary straight, resumed;
  };
  Pair straight_and_resumed(const std::string& toml, int64_t stop_after, int64_t stop_again = 0) {
    const fs::path a = dir_ / "straight", b = dir_ / "resumed";
    Pair r{train_into(a, toml, 0), train_into(b, toml, stop_after, stop_again)};
    expect_same_run(a, b);
    return r;
  }

  fs::path dir_;
};

constexpr const char* kHypergrid = R"(
[env]
kind = "hypergrid"
ndim = 2
height = 5
[policy]
hidden = 32
[train]
iterations = 60
batch_size = 8
lr_decay_every = 20
[eval]
every = 15
samples = 20
[log]
every = 4
trajectories_every = 10
trajectories_count = 2
[checkpoint]
every = 25
)";

// TB with learning-rate decay, stopped between checkpoints, logged rows and evaluations
TEST_F(Resume, TrajectoryBalanceIsIdentical) {
  const auto r = straight_and_resumed(std::string(kHypergrid) + "[objective]\nkind = \"tb\"\n", 23);
  EXPECT_EQ(r.resumed.resumed_from, 23);
  EXPECT_EQ(r.resumed.iterations, 60);
  EXPECT_EQ(r.resumed.trajectories, 480);
  EXPECT_EQ(r.resumed.final_loss, r.straight.final_loss);
  ASSERT_TRUE(r.resumed.exact && r.straight.exact);
  EXPECT_EQ(r.resumed.exact->tv, r.straight.exact->tv);
  // the hypergrid 2-D logs its reward grid and the terminating distribution per evaluation
  Hdf5LogReader log((dir_ / "straight" / "log.h5").string());
  EXPECT_EQ(log.shape("grid/log_reward"), (std::vector<int64_t>{5, 5}));
  EXPECT_EQ(log.shape("grid/terminating"), (std::vector<int64_t>{4, 5, 5}));
  double mass = 0;
  const auto p = log.read_double("grid/terminating");
  for (size_t i = 75; i < 100; ++i) mass += p[i];
  EXPECT_NEAR(mass, 1.0, 1e-9);
}

// TB with a TLM backward network: its optimiser, learning-rate decay and EMA target
TEST_F(Resume, TrajectoryBalanceWithTlmIsIdentical) {
  std::string toml = kHypergrid;
  toml.replace(toml.find("[policy]\n"), 9, "[policy]\nbackward = \"tlm\"\n");
  const auto r = straight_and_resumed(toml + "[objective]\nkind = \"tb\"\n", 31);
  EXPECT_EQ(r.resumed.resumed_from, 31);
  EXPECT_EQ(r.resumed.log_z, r.straight.log_z);
  ASSERT_TRUE(r.resumed.exact && r.straight.exact);
  EXPECT_EQ(r.resumed.exact->tv, r.straight.exact->tv);
}

// SubTB with an LED potential, stopped twice (SIGTERM, then SIGINT after the resume)
TEST_F(Resume, SubTrajectoryBalanceWithLedIsIdentical) {
  const auto r =
      straight_and_resumed(std::string(kHypergrid) + "[objective]\nkind = \"subtb\"\ncredit = \"led\"\n", 17, 21);
  EXPECT_EQ(r.resumed.resumed_from, 17 + 21);
  EXPECT_EQ(r.resumed.final_loss, r.straight.final_loss);
  ASSERT_TRUE(r.resumed.exact && r.straight.exact);
  EXPECT_EQ(r.resumed.exact->tv, r.straight.exact->tv);
}

// continuous env: importance-sampled log Z and the grid density draw from the evaluation
// generator, which the checkpoint carries too
TEST_F(Resume, BoxWithImportanceSampledEvaluationIsIdentical) {
  const auto r = straight_and_resumed(R"(
[env]
kind = "box"
dim = 2
[policy]
hidden = 32
[objective]
kind = "subtb"
[train]
iterations = 30
batch_size = 8
[eval]
every = 10
is_samples = 64
grid = 6
density_samples = 2
samples = 10
[log]
every = 2
[checkpoint]
every = 0
)",
                                      13);
  EXPECT_EQ(r.resumed.resumed_from, 13);
  ASSERT_TRUE(r.resumed.importance && r.resumed.grid);
  EXPECT_EQ(r.resumed.importance->log_z, r.straight.importance->log_z);
  EXPECT_EQ(r.resumed.grid->jsd, r.straight.grid->jsd);
}

// the Box with a replay buffer and local search: the buffer, its order and the MALA step size
// carried over (a buffer batch and a search fall on both sides of the stop)
TEST_F(Resume, BoxWithReplayAndLocalSearchIsIdentical) {
  const auto r = straight_and_resumed(R"(
[env]
kind = "box"
dim = 2
[policy]
hidden = 16
[train]
iterations = 24
batch_size = 8
[replay]
capacity = 50
prioritization = "rank"
[local_search]
every = 6
steps = 8
burn_in = 2
[eval]
every = 12
is_samples = 32
grid = 0
samples = 4
[log]
every = 2
[checkpoint]
every = 0
)",
                                      9);
  EXPECT_EQ(r.resumed.resumed_from, 9);
  ASSERT_TRUE(r.resumed.importance.has_value());
  EXPECT_EQ(r.resumed.importance->log_z, r.straight.importance->log_z);
}

// the diffusion env with exploration, replay and local search, evaluated with EUBO and W2
TEST_F(Resume, DiffusionWithExplorationAndReplayIsIdentical) {
  const auto r = straight_and_resumed(R"(
[env]
kind = "diffusion"
target = "9gmm"
steps = 5
sigma2 = 4.0
[policy]
architecture = "time"
hidden = 16
embedding = 8
time_harmonics = 4
activation = "gelu"
backward = "fixed"
langevin = true
[train]
iterations = 16
batch_size = 8
execution = "fixed"
[explore]
noise = 0.3
decay = 10
[replay]
capacity = 64
[local_search]
every = 4
steps = 6
burn_in = 2
[eval]
every = 8
is_samples = 32
exact_samples = 16
grid = 8
density_samples = 2
samples = 4
[log]
every = 2
[checkpoint]
every = 0
)",
                                      7);
  ASSERT_TRUE(r.resumed.eubo && r.straight.eubo && r.resumed.w2);
  EXPECT_EQ(*r.resumed.eubo, *r.straight.eubo);
  EXPECT_EQ(*r.resumed.w2, *r.straight.w2);
}

// sets: top-K states carried over
TEST_F(Resume, SetsWithTopKIsIdentical) {
  const auto r = straight_and_resumed(R"(
[env]
kind = "sets"
universe = 8
size = 4
[policy]
hidden = 32
[objective]
kind = "tb"
[train]
iterations = 40
batch_size = 8
[eval]
every = 10
top_k = 5
env_samples = 16
samples = 10
[log]
every = 5
)",
                                      19);
  EXPECT_EQ(r.resumed.resumed_from, 19);
  EXPECT_EQ(r.resumed.trajectories, 320);
  EXPECT_EQ(r.resumed.log_z, r.straight.log_z);
}

TEST_F(Resume, RefusesWhatCannotBeResumed) {
  const std::string toml = std::string(kHypergrid) + "[objective]\nkind = \"tb\"\n";
  const fs::path run = dir_ / "run";
  train_into(run, toml, 0);
  // complete
  std::string e = error_of<ConfigError>([&] { resume(run, {}); });
  EXPECT_TRUE(contains(e, "the run is complete (60 of 60 iterations)") && contains(e, "train.iterations")) << e;
  // a key that changes what was trained, on the command line or in config.toml
  e = error_of<ConfigError>([&] { resume(run, {"train.lr=0.5"}); });
  EXPECT_TRUE(contains(e, "--set train.lr=0.5: a resumed run may change only train.on_nonfinite, train.iterations")) << e;
  {
    std::string text = slurp(run / "config.toml");
    text.replace(text.find("lr = 0.001"), 10, "lr = 0.002");
    std::ofstream((run / "config.toml").string()) << text;
  }
  e = error_of<ConfigError>([&] { resume(run, {"train.iterations=80"}); });
  EXPECT_TRUE(contains(e, "config.toml's train.lr differs from the checkpoint's")) << e;
  // a damaged checkpoint
  const fs::path other = dir_ / "other";
  train_into(other, toml, 0);
  std::ofstream((other / "checkpoint.pt").string()) << "garbage";
  e = error_of<ConfigError>([&] { resume(other, {"train.iterations=80"}); });
  EXPECT_TRUE(contains(e, (other / "checkpoint.pt").string() + ": not a gfn checkpoint, or truncated")) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  // a truncated log
  const fs::path third = dir_ / "third";
  train_into(third, toml, 0);
  const std::string log = (third / "log.h5").string();
  fs::resize_file(log, fs::file_size(log) / 2);
  e = error_of<LogError>([&] { resume(third, {"train.iterations=80"}); });
  EXPECT_TRUE(contains(e, log + ": ")) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST_F(Resume, ExtendingAFinishedRunContinuesIt) {
  const fs::path run = dir_ / "run";
  train_into(run, std::string(kHypergrid) + "[objective]\nkind = \"tb\"\n", 0);
  RunSummary s = resume(run, {"train.iterations=80"});
  EXPECT_EQ(s.resumed_from, 60);
  EXPECT_EQ(s.iterations, 80);
  Hdf5LogReader log((run / "log.h5").string());
  EXPECT_EQ(log.read_int64("train/iteration").back(), 80);
  EXPECT_EQ(log.read_int64("eval/iteration"), (std::vector<int64_t>{15, 30, 45, 60, 75, 80}));
  EXPECT_EQ(log.shape("samples/log_reward"), (std::vector<int64_t>{20}));  // rewritten, not doubled
  EXPECT_NE(slurp(run / "config.toml").find("iterations = 80"), std::string::npos);
}

}  // namespace
}  // namespace gfn

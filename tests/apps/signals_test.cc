// A real `gfn train` process stopped by SIGTERM / SIGINT, or killed by SIGKILL at a moment the
// test does not choose, then resumed: the stopped run exits 143 / 130 with a checkpoint; the
// killed run leaves a log that opens (also with h5py) and holds consistent rows; both finish,
// after `gfn train --resume`, in the state of the run never interrupted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "io/hdf5_log.h"
#include "tests/apps/cli_fixture.h"
#include "tests/testing/runs.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;
using testing::contains;

class Signals : public testing::CliFixture {
 protected:
  Signals() : CliFixture("gfn_signals_") {}
  void SetUp() override {
    CliFixture::SetUp();
    config_ = dir_ / "run.toml";
    // ~3 s of training; the log flushed at every row, a checkpoint every 150 iterations
    std::ofstream(config_) << "[env]\nkind = \"hypergrid\"\nndim = 2\nheight = 6\n[policy]\nhidden = 64\n"
                              "[train]\niterations = 2500\nbatch_size = 16\nlr_decay_every = 1000\n"
                              "[eval]\nevery = 250\nsamples = 100\n"
                              "[log]\nevery = 5\nflush_seconds = 0\ntrajectories_every = 100\n"
                              "[checkpoint]\nevery = 150\n";
  }

  fs::path straight_run() {
    const fs::path a = dir_ / "straight";
    auto r = run("train '" + config_.string() + "' --out '" + a.string() + "'");
    EXPECT_EQ(r.code, 0) << r.err;
    return a;
  }

  fs::path config_;
};

// SIGTERM and SIGINT: exit 143 / 130 after a checkpoint; the resumed run ends as the straight one
TEST_F(Signals, StopResumeEqualsStraightRun) {
  const fs::path straight = straight_run();
  for (const auto& [signal, code] : {std::pair{SIGTERM, 143}, std::pair{SIGINT, 130}}) {
    const fs::path b = dir_ / ("stopped_" + std::to_string(signal));
    const pid_t pid = spawn({"train", config_.string(), "--out", b.string()}, "stop");
    ASSERT_NO_FATAL_FAILURE(wait_for_rows(b, 60));
    kill(pid, signal);
    ASSERT_EQ(wait_exit(pid), code) << testing::slurp(dir_ / "stop.err");
    const std::string err = testing::slurp(dir_ / "stop.err");
    EXPECT_TRUE(contains(err, "stopped by signal " + std::to_string(signal))) << err;
    EXPECT_TRUE(contains(err, "gfn train --resume " + b.string())) << err;
    ASSERT_TRUE(fs::exists(b / "checkpoint.pt"));
    auto r = run("train --resume '" + b.string() + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(contains(r.err, "resuming " + b.string() + " at iteration")) << r.err;
    testing::expect_same_run(straight, b);
  }
}

// SIGKILL at two moments, mid-run and before the first checkpoint, chosen exactly (the run kills
// itself at the end of iteration 1200, or 100: core/fault.h) so that every run of the test sees
// the same log: it opens and holds every row up to the last flush, consistent across columns;
// resumed from the last checkpoint (or from the start when there is none yet, with a warning),
// the run ends as the straight one
TEST_F(Signals, KilledRunKeepsItsLogAndResumes) {
  const fs::path straight = straight_run();
  for (const int64_t at : {int64_t{1200}, int64_t{100}}) {
    const fs::path b = dir_ / ("killed_" + std::to_string(at));
    const pid_t pid = spawn({"train", config_.string(), "--out", b.string()}, "kill",
                            testing::SpawnOptions{{"GFN_FAULT_KILL=iteration:" + std::to_string(at)}});
    ASSERT_EQ(wait_exit(pid), 128 + SIGKILL) << testing::slurp(dir_ / "kill.err");

    // the rows up to the last flush (every row is flushed: log.flush_seconds = 0), the row of
    // the killed iteration itself not yet (the reader closed before the resumed run writes: a
    // reader kept open would not see the datasets created later)
    const size_t rows = static_cast<size_t>(at / 5 - 1);
    {
    Hdf5LogReader log((b / "log.h5").string());
    const auto iteration = log.read_int64("train/iteration");
    ASSERT_EQ(iteration.size(), rows);
    for (size_t i = 0; i < iteration.size(); ++i) ASSERT_EQ(iteration[i], static_cast<int64_t>(5 * (i + 1)));
    for (const auto& column : log.list("train"))
      EXPECT_EQ(log.shape("train/" + column)[0], static_cast<int64_t>(iteration.size())) << column;
    const auto trajectories = log.read_int64("train/trajectories");
    EXPECT_EQ(trajectories.back(), 16 * iteration.back());
    if (std::system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") == 0) {
      const std::string check = "/usr/bin/python3 -c \"import sys, h5py; f = h5py.File(sys.argv[1], 'r', swmr=True); "
                                "assert len(f['train/loss']) == " + std::to_string(rows) + "\" '" +
                                (b / "log.h5").string() + "'";
      EXPECT_EQ(std::system(check.c_str()), 0);
    }
    }

    auto r = run("train --resume '" + b.string() + "'");
    ASSERT_EQ(r.code, 0) << r.err;
    if (at < 150) {  // before the first checkpoint
      EXPECT_TRUE(contains(r.err, "has no checkpoint.pt: starting again at iteration 0, the log's " +
                                      std::to_string(rows) + " /train rows written before are dropped"))
          << r.err;
    } else {
      EXPECT_TRUE(contains(r.err, "resuming " + b.string() + " at iteration 1050")) << r.err;  // its last checkpoint
    }
    testing::expect_same_run(straight, b);
  }
}

// what cannot be resumed is a one-line error and exit 2
TEST_F(Signals, ResumeErrorsExitTwo) {
  auto none = run("train --resume '" + (dir_ / "nothing").string() + "'");
  EXPECT_EQ(none.code, 2);
  EXPECT_TRUE(contains(none.err, "not a run directory")) << none.err;
  auto both = run("train '" + config_.string() + "' --resume '" + dir_.string() + "'");
  EXPECT_EQ(both.code, 2);
  EXPECT_TRUE(contains(both.err, "give a CONFIG file or --resume DIR (exactly one)")) << both.err;
  const fs::path a = dir_ / "a";
  ASSERT_EQ(run("train '" + config_.string() + "' --out '" + a.string() + "' --set train.iterations=20").code, 0);
  std::ofstream((a / "log.h5").string(), std::ios::trunc) << "not an HDF5 file";
  auto bad = run("train --resume '" + a.string() + "' --set train.iterations=40");
  EXPECT_EQ(bad.code, 2);
  // the log is checked before any work, by the reader
  EXPECT_TRUE(contains(bad.err, (a / "log.h5").string() + ": cannot open: not an HDF5 file")) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
}

}  // namespace
}  // namespace gfn

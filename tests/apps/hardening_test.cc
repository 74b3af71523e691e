// A run directory under attack, end to end through the `gfn` binary: a second writer, damaged
// checkpoints and logs, non-finite training, a file-size limit, and SIGKILL at twenty moments
// chosen exactly (core/fault.h). Each case: the documented exit code, one line naming the file
// or the quantity, and nothing already written lost or changed.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "io/checkpoint.h"
#include "io/hdf5_log.h"
#include "tests/apps/cli_fixture.h"
#include "tests/testing/runs.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;
using testing::contains;
using testing::slurp;

class Hardening : public testing::CliFixture {
 protected:
  Hardening() : CliFixture("gfn_hardening_") {}

  // A small hypergrid run: `iterations` at ~1 ms each, a checkpoint every 50, an evaluation
  // every 100, every row flushed, trajectories stored every `trajectories_every` iterations.
  fs::path config(int64_t iterations, int64_t trajectories_every = 50, int64_t hidden = 32) {
    const fs::path c = dir_ / fmt::format("run_{}_{}_{}.toml", iterations, trajectories_every, hidden);
    std::ofstream(c) << fmt::format(
        "[env]\nkind = \"hypergrid\"\nndim = 2\nheight = 6\n[policy]\nhidden = {}\n"
        "[train]\niterations = {}\nbatch_size = 16\n[eval]\nevery = 100\nsamples = 50\n"
        "[log]\nevery = 5\nflush_seconds = 0\ntrajectories_every = {}\n[checkpoint]\nevery = 50\n",
        hidden, iterations, trajectories_every);
    return c;
  }

  static std::string quote(const fs::path& p) { return "'" + p.string() + "'"; }
  // Whether `err` ends with exactly one line that starts with `start` (progress lines before it).
  static bool ends_with_one_line(const std::string& err, const std::string& start) {
    const size_t at = err.rfind(start);
    return at != std::string::npos && (at == 0 || err[at - 1] == '\n') && err.find('\n', at) == err.size() - 1;
  }
  testing::Result run_cmd(const std::string& args) { return CliFixture::run(args); }

  // The files of a run directory with their bytes.
  static std::map<std::string, std::string> snapshot(const fs::path& run) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::directory_iterator(run)) files[e.path().filename().string()] = slurp(e.path());
    return files;
  }

  // Every tensor of a LibTorch archive file is finite.
  static void expect_finite_archive(const fs::path& path) {
    for (const auto& [key, t] : testing::tensors_of(path))
      if (t.is_floating_point()) {
        EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << path << " " << key;
      }
  }
};

// Two writers of one directory: the second (a new run or a resume) exits 2 naming the first's
// pid before it touches anything; once the first has ended, the directory is free again
TEST_F(Hardening, SecondWriterOfARunDirectoryExitsTwo) {
  const fs::path run = dir_ / "run";
  const pid_t first = spawn({"train", config(200000).string(), "--out", run.string()}, "first");
  ASSERT_NO_FATAL_FAILURE(wait_for_rows(run, 2));
  const std::string config_toml = slurp(run / "config.toml");
  const std::string holder = "another gfn process (pid " + std::to_string(first) + ") is writing this run directory";

  auto again = run_cmd("train " + quote(config(300)) + " --out " + quote(run) + " --set seed=7");
  EXPECT_EQ(again.code, 2);
  EXPECT_TRUE(contains(again.err, "--out " + run.string() + ": " + holder)) << again.err;
  auto resume = run_cmd("train --resume " + quote(run));
  EXPECT_EQ(resume.code, 2);
  EXPECT_TRUE(contains(resume.err, "--resume " + run.string() + ": " + holder)) << resume.err;
  EXPECT_EQ(slurp(run / "config.toml"), config_toml);  // the first run's, untouched

  kill(first, SIGTERM);
  ASSERT_EQ(wait_exit(first), 128 + SIGTERM) << slurp(dir_ / "first.err");
  auto later = run_cmd("train --resume " + quote(run) + " --set train.iterations=1");
  EXPECT_EQ(later.code, 2);  // refused for what it asks, no longer for the lock
  EXPECT_FALSE(contains(later.err, "another gfn process")) << later.err;
  EXPECT_TRUE(contains(later.err, "the run is complete")) << later.err;
}

// A checkpoint with flipped bytes, or cut short: exit 2 naming it, before any work; every file
// of the directory unchanged
TEST_F(Hardening, DamagedCheckpointIsRefusedBeforeAnyWork) {
  const fs::path run = dir_ / "run";
  ASSERT_EQ(run_cmd("train " + quote(config(120)) + " --out " + quote(run)).code, 0);
  const std::string good = slurp(run / "checkpoint.pt");
  ASSERT_GT(good.size(), 4096u);

  std::string flipped = good;
  for (size_t i = 0; i < 64; ++i) flipped[good.size() / 2 + i] = static_cast<char>(flipped[good.size() / 2 + i] ^ 0x5A);
  std::string cut = good.substr(0, good.size() - 100);
  for (const auto& [damage, bytes] : {std::pair{"flipped", flipped}, std::pair{"cut", cut}}) {
    std::ofstream(run / "checkpoint.pt", std::ios::binary) << bytes;
    const auto before = snapshot(run);
    auto r = run_cmd("train --resume " + quote(run) + " --set train.iterations=200");
    EXPECT_EQ(r.code, 2) << damage << ": " << r.err;
    // flipped bytes fail the checksum; a cut file loses the trailer and LibTorch's zip directory
    const std::string problem = std::string(damage) == "flipped" ? ": damaged" : ": not a gfn checkpoint, or truncated";
    EXPECT_TRUE(contains(r.err, (run / "checkpoint.pt").string() + problem)) << damage << ": " << r.err;
    EXPECT_TRUE(ends_with_one_line(r.err, "gfn: error: ")) << r.err;
    EXPECT_EQ(snapshot(run), before) << damage;
  }
  // the reader itself: the intact file loads, and its trailer is what makes the damage visible
  std::ofstream(run / "checkpoint.pt", std::ios::binary) << good;
  EXPECT_NO_THROW(CheckpointReader((run / "checkpoint.pt").string()));
}

// The log is checked before any work: an empty or damaged log.h5 is exit 2 naming it, with
// config.toml, model.pt and the checkpoint untouched; a finished run whose checkpoint was deleted
// is not silently started again
TEST_F(Hardening, ResumeChecksTheLogFirst) {
  const fs::path run = dir_ / "run";
  ASSERT_EQ(run_cmd("train " + quote(config(120)) + " --out " + quote(run)).code, 0);
  const std::string log = slurp(run / "log.h5");

  std::ofstream(run / "log.h5", std::ios::trunc);  // 0 bytes
  auto before = snapshot(run);
  auto empty = run_cmd("train --resume " + quote(run) + " --set train.iterations=200");
  EXPECT_EQ(empty.code, 2) << empty.err;
  EXPECT_TRUE(contains(empty.err, (run / "log.h5").string() + ": ")) << empty.err;
  EXPECT_EQ(snapshot(run), before);

  std::ofstream(run / "log.h5", std::ios::binary) << log;
  fs::remove(run / "checkpoint.pt");
  before = snapshot(run);
  auto finished = run_cmd("train --resume " + quote(run) + " --set train.iterations=200");
  EXPECT_EQ(finished.code, 2) << finished.err;
  EXPECT_TRUE(contains(finished.err, "no checkpoint.pt, but the log holds a finished run (24 /train rows"))
      << finished.err;
  EXPECT_EQ(snapshot(run), before);
}

// A learning rate that blows up the line's TB loss: the run stops at the first non-finite
// iteration (exit 1, one line naming it), every logged loss is finite, and model.pt and the
// checkpoint hold finite numbers; with train.on_nonfinite = "skip" the run ends, counting skips
TEST_F(Hardening, NonFiniteTrainingStopsOrSkips) {
  const std::string base = "train configs/line.toml --set train.iterations=300 --set train.lr=10 --set "
                           "train.lr_logz=100 --set eval.every=50 --set checkpoint.every=25 --set log.every=1";
  const fs::path stop = dir_ / "stop";
  auto r = run_cmd(base + " --out " + quote(stop));
  ASSERT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "gfn: failed: iteration ")) << r.err;
  EXPECT_TRUE(contains(r.err, "the run stops (train.on_nonfinite = \"stop\")")) << r.err;
  EXPECT_TRUE(ends_with_one_line(r.err, "gfn: failed: iteration ")) << r.err;
  {
    Hdf5LogReader log((stop / "log.h5").string());
    const auto loss = log.read_double("train/loss");
    ASSERT_FALSE(loss.empty());
    for (const double l : loss) EXPECT_TRUE(std::isfinite(l));
    EXPECT_LT(loss.size(), 300u);
  }
  if (fs::exists(stop / "model.pt")) expect_finite_archive(stop / "model.pt");
  if (fs::exists(stop / "checkpoint.pt")) {
    EXPECT_NO_THROW(CheckpointReader((stop / "checkpoint.pt").string()));
  }

  const fs::path skip = dir_ / "skip";
  auto s = run_cmd(base + " --set train.on_nonfinite=\"skip\" --out " + quote(skip));
  ASSERT_EQ(s.code, 0) << s.err;
  Hdf5LogReader log((skip / "log.h5").string());
  const auto skips = log.read_double("train/nonfinite_skips");
  ASSERT_EQ(skips.size(), 300u);
  EXPECT_GT(skips.back(), 0.0);
  for (size_t i = 1; i < skips.size(); ++i) EXPECT_GE(skips[i], skips[i - 1]);
  expect_finite_archive(skip / "model.pt");
}

// A file-size limit (EFBIG: to the writer what a full disk is, ENOSPC) reached by the log, then
// by a checkpoint: one line naming the file and the system's reason, exit 1, no temporary file
// left, the log readable and the last checkpoint intact; without the limit the run resumes to
// its end
TEST_F(Hardening, FileSizeLimitIsOneLineAndLosesNothing) {
  const struct {
    fs::path config;
    long limit;
    std::string file;  // the one whose write fails
  } cases[] = {{config(600, 0), 200 * 1024, "log.h5"}, {config(600, 0, 256), 400 * 1024, "checkpoint.pt.tmp"}};
  for (const auto& c : cases) {
    const fs::path run = dir_ / ("run_" + c.file);
    const pid_t pid = spawn({"train", c.config.string(), "--out", run.string()}, "limited", testing::SpawnOptions{{}, c.limit});
    ASSERT_EQ(wait_exit(pid), 1) << slurp(dir_ / "limited.err");
    const std::string err = slurp(dir_ / "limited.err");
    EXPECT_TRUE(contains(err, "gfn: failed: " + (run / c.file).string() + ": cannot write (File too large)\n")) << err;
    for (const auto& e : fs::directory_iterator(run)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();
    if (fs::exists(run / "checkpoint.pt")) {
      EXPECT_NO_THROW(CheckpointReader((run / "checkpoint.pt").string()));
    }
    // the log's last flush failed halfway, so the file is shorter than its superblock says: the
    // resume pads it back (a size limit leaves no room to do so earlier) and continues
    auto resumed = run_cmd("train --resume " + quote(run));
    ASSERT_EQ(resumed.code, 0) << resumed.err;
    const auto iteration = Hdf5LogReader((run / "log.h5").string()).read_int64("train/iteration");
    ASSERT_EQ(iteration.size(), 120u);
    for (size_t i = 0; i < iteration.size(); ++i) EXPECT_EQ(iteration[i], static_cast<int64_t>(5 * (i + 1)));
  }
}

// `gfn sample` writes DIR/samples.h5.<pid>.partial and links it into place once complete:
// SIGTERM stops it between chunks and removes the partial file (exit 143), and SIGKILL leaves
// a partial file that does not block the name, so the next sample takes samples.h5
TEST_F(Hardening, StoppedOrKilledSampleLeavesItsNameFree) {
  const fs::path run = dir_ / "run";
  ASSERT_EQ(run_cmd("train " + quote(config(60)) + " --out " + quote(run)).code, 0);
  auto partials = [&] {
    std::vector<fs::path> found;
    for (const auto& e : fs::directory_iterator(run))
      if (contains(e.path().filename().string(), ".partial")) found.push_back(e.path());
    return found;
  };
  auto wait_for_partial = [&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (partials().empty() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_FALSE(partials().empty()) << "no partial samples file within 60 s";
  };
  const std::vector<std::string> endless{"sample", run.string(), "-n", "100000000"};

  pid_t pid = spawn(endless, "term");
  ASSERT_NO_FATAL_FAILURE(wait_for_partial());
  kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid), 128 + SIGTERM);
  EXPECT_TRUE(contains(slurp(dir_ / "term.err"), "the partial samples file is removed")) << slurp(dir_ / "term.err");
  EXPECT_FALSE(fs::exists(run / "samples.h5"));
  EXPECT_TRUE(partials().empty());

  pid = spawn(endless, "kill");
  ASSERT_NO_FATAL_FAILURE(wait_for_partial());
  kill(pid, SIGKILL);
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL);
  EXPECT_FALSE(fs::exists(run / "samples.h5"));
  EXPECT_EQ(partials().size(), 1u);

  const testing::Result done = run_cmd("sample " + quote(run) + " -n 1000");
  ASSERT_EQ(done.code, 0) << done.err;
  EXPECT_TRUE(contains(done.out, "written to " + (run / "samples.h5").string())) << done.out;
  Hdf5LogReader samples((run / "samples.h5").string());
  EXPECT_EQ(samples.shape("samples/log_reward")[0], 1000);
}

// SIGKILL at twenty moments drawn from a seeded stream (at the end of an iteration, inside an
// evaluation, inside a log flush, halfway through writing checkpoint.pt or model.pt): every log
// opens, and every run, resumed, ends bit for bit as the run never interrupted
TEST_F(Hardening, KilledAtTwentyMomentsResumesToTheSameEnd) {
  const fs::path cfg = config(300);
  const fs::path straight = dir_ / "straight";
  ASSERT_EQ(run_cmd("train " + quote(cfg) + " --out " + quote(straight)).code, 0);
  // the passes of each point over the run: 300 iterations, 3 evaluations (100, 200, 300),
  // 60 rows flushed, 5 checkpoints (50 ... 250) before the final one, model.pt at each evaluation
  const std::vector<std::pair<std::string, int>> points = {
      {"iteration", 299}, {"eval", 3}, {"log.flush", 60}, {"write:checkpoint.pt", 5}, {"write:model.pt", 3}};
  std::mt19937 rng(22);
  for (int k = 0; k < 20; ++k) {
    const auto& [point, passes] = points[k % points.size()];
    const int n = std::uniform_int_distribution<int>(1, passes)(rng);
    const std::string fault = point + ":" + std::to_string(n);
    const fs::path run = dir_ / ("killed_" + std::to_string(k));
    const pid_t pid = spawn({"train", cfg.string(), "--out", run.string()}, "killed", testing::SpawnOptions{{"GFN_FAULT_KILL=" + fault}});
    ASSERT_EQ(wait_exit(pid), 128 + SIGKILL) << fault << ": " << slurp(dir_ / "killed.err");
    EXPECT_NO_THROW(Hdf5LogReader((run / "log.h5").string()).read_int64("train/iteration")) << fault;
    auto r = run_cmd("train --resume " + quote(run));
    ASSERT_EQ(r.code, 0) << fault << ": " << r.err;
    for (const auto& e : fs::directory_iterator(run)) EXPECT_NE(e.path().extension(), ".tmp") << fault << e.path();
    testing::expect_same_run(straight, run);
    fs::remove_all(run);
  }
}

}  // namespace
}  // namespace gfn

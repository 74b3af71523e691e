// Data-parallel training over c10d's Gloo (core/distributed.h, `gfn launch`), on localhost with
// free ports: ranks keep identical parameters; two ranks with b/2 trajectories each average to the
// gradient of one process with b (TB and SubTB; float tolerance, the sums run in another order);
// `gfn launch -n 2` writes one log and one checkpoint; a killed rank makes the run exit nonzero
// within seconds, naming it; bad torchrun variables are one-line errors with exit 2 before any
// work.
#include <gtest/gtest.h>

#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "apps/launch.h"
#include "core/distributed.h"
#include "core/internal/shared_reduce.h"
#include "core/estimator.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/seeds.h"
#include "core/threads.h"
#include "core/trainer.h"
#include "components/flow_head.h"
#include "envs/box.h"
#include "io/hdf5_log.h"
#include "losses/subtb.h"
#include "losses/tb.h"
#include "tests/apps/cli_fixture.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;
using testing::contains;

// Runs `body(collective)` on `world` ranks, one thread each, joined to one process group whose
// gradients travel by `transport`.
void on_ranks(int64_t world, const std::function<void(Collective&)>& body, Transport transport = Transport::kAuto) {
  const int port = free_loopback_port();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(world);
  for (int64_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        DistributedOptions o;
        o.rank = r;
        o.world_size = world;
        o.master_port = port;
        o.timeout_s = 60;
        o.transport = transport;
        Collective c(o);
        body(c);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int64_t r = 0; r < world; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
}

BoxEnv box2() {
  BoxOptions o;
  o.dim = 2;
  return BoxEnv(o);
}

EstimatorOptions small_policy() {
  EstimatorOptions eo;
  eo.hidden = 64;
  eo.layers = 2;
  eo.dtype = torch::kFloat64;  // the comparisons below are of the reduction, not of float32 rounding
  return eo;
}

}  // namespace

// gtest's name for a Transport parameter ("auto", "gloo"), found by argument-dependent lookup.
void PrintTo(Transport t, std::ostream* os) { *os << enum_name(t); }

namespace {

// Both transports: shared memory between ranks of this machine ("auto"), Gloo over TCP.
class DistributedTransport : public ::testing::TestWithParam<Transport> {
 protected:
  void SetUp() override {
    if (!distributed_available()) GTEST_SKIP() << "built without c10d's Gloo";
  }
  // What Collective::transport() says after the first all-reduce.
  static std::string expected_transport() {
    return GetParam() == Transport::kAuto ? "shared memory" : "Gloo (distributed.transport = \"gloo\")";
  }
};

INSTANTIATE_TEST_SUITE_P(Transports, DistributedTransport, ::testing::Values(Transport::kAuto, Transport::kGloo),
                         [](const auto& info) { return enum_name(info.param) == "auto" ? "SharedMemory" : "Gloo"; });

TEST_P(DistributedTransport, RanksKeepIdenticalParameters) {
  set_cpu_threads(1);
  auto env = box2();
  std::vector<std::vector<torch::Tensor>> params(2);
  std::vector<std::string> transport(2);
  on_ranks(
      2,
      [&](Collective& c) {
        auto init = make_generator(stream_seed(0, SeedStream::kInitialisation), torch::kCPU);
        Estimators est(env, small_policy(), init, torch::kCPU);
        TrajectoryBalance tb;
        TrainerOptions opts;
        opts.batch_size = 8;
        Trainer trainer(env, est, tb, opts, rank_seed(stream_seed(0, SeedStream::kSampling), c.rank()), torch::kCPU);
        trainer.set_gradient_reducer([&c](std::vector<torch::Tensor>& p) { c.average_gradients(p); });
        c.barrier();
        for (int i = 0; i < 20; ++i) trainer.step();
        for (const auto& p : est.policy->parameters()) params[c.rank()].push_back(p.detach().clone());
        params[c.rank()].push_back(est.log_z.detach().clone());
        transport[c.rank()] = c.transport();
      },
      GetParam());
  ASSERT_EQ(params[0].size(), params[1].size());
  ASSERT_GT(params[0].size(), 4u);
  for (size_t i = 0; i < params[0].size(); ++i) EXPECT_TRUE(torch::equal(params[0][i], params[1][i])) << i;
  EXPECT_EQ(transport[0], expected_transport());
  EXPECT_EQ(transport[1], expected_transport());
}

// A second parameter set larger than the first (a component's optimiser after the policy's)
// gets a larger segment on every rank; a smaller one after it reuses it. Every sum is exact
// (integers), the stop request travels with each, and no segment name is left in /dev/shm.
TEST_P(DistributedTransport, SetsOfEverySizeAreAveraged) {
  std::vector<std::vector<double>> means(2);
  std::vector<int> stops(2);
  on_ranks(
      2,
      [&](Collective& c) {
        const double r = static_cast<double>(c.rank());
        for (int64_t n : {10, 5000, 3, 5000}) {
          auto p = torch::zeros({n}, torch::kFloat32).requires_grad_(true);
          p.mutable_grad() = torch::arange(n, torch::kFloat32) * (r + 1.0);  // mean over ranks: 1.5 k
          std::vector<torch::Tensor> set{p};
          c.request_stop(n == 3 && c.rank() == 1);
          c.average_gradients(set);
          means[c.rank()].push_back((p.grad() - torch::arange(n, torch::kFloat32) * 1.5).abs().max().item<double>());
          stops[c.rank()] += c.stop_agreed() ? 1 : 0;
        }
        EXPECT_EQ(c.transport(), expected_transport());
        EXPECT_EQ(c.reductions(), 4);
      },
      GetParam());
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(means[r], (std::vector<double>{0, 0, 0, 0})) << "rank " << r;
    EXPECT_EQ(stops[r], 2) << "rank " << r;  // requested at the third, kept for the fourth
  }
  const std::string prefix = "gfn-" + std::to_string(::getpid()) + "-";
  for (const auto& e : fs::directory_iterator("/dev/shm"))
    EXPECT_NE(e.path().filename().string().rfind(prefix, 0), 0u) << e.path();
}

// Rows `start` .. start + n - 1 of every per-trajectory field.
Trajectories narrow_batch(const Trajectories& t, int64_t start, int64_t n) {
  Trajectories out = t;
  for (auto* f : {&out.states_discrete, &out.states_continuous, &out.is_initial, &out.is_sink, &out.action_component,
                  &out.action_coords, &out.log_jacobian, &out.mask, &out.log_pf_sampled})
    if (f->defined()) *f = f->narrow(1, start, n);
  for (auto* f : {&out.length, &out.log_reward, &out.terminal_discrete, &out.terminal_continuous})
    if (f->defined()) *f = f->narrow(0, start, n);
  return out;
}

// The gradient of `objective` on a batch of 16 Box trajectories, against the mean over two
// ranks of its gradients on each half: the largest difference relative to the gradient's scale
// (checked entry by entry as well), over every parameter the objective reads.
double halves_against_whole(Objective& objective, bool flow, Transport transport) {
  set_cpu_threads(1);
  auto env = box2();
  auto make = [&] {
    auto init = make_generator(stream_seed(3, SeedStream::kInitialisation), torch::kCPU);
    auto est = std::make_unique<Estimators>(env, small_policy(), init, torch::kCPU);
    if (flow) est->flow = std::make_shared<FlowHeadImpl>(env.feature_dim(), small_policy(), FlowTrunk::kShared, init);
    return est;
  };
  // every trained parameter: the policy's, log Z, the flow head's
  auto parameters = [&](Estimators& est) {
    std::vector<torch::Tensor> p = est.policy->parameters();
    p.push_back(est.log_z);
    if (flow) {
      auto f = std::dynamic_pointer_cast<FlowHeadImpl>(est.flow)->parameters();
      p.insert(p.end(), f.begin(), f.end());
    }
    return p;
  };
  auto whole_est = make();
  auto gen = make_generator(11, torch::kCPU);
  const Trajectories batch =
      rollout(env, *whole_est->policy, 16, SamplerOptions{}, gen, torch::kCPU, Execution::kCompact);
  auto grads = [&](Estimators& est, const Trajectories& t) {
    auto loss = objective.loss(score_trajectories(env, est, t, ScoreOptions{}, Execution::kCompact));
    loss.backward();
  };
  grads(*whole_est, batch);
  std::vector<torch::Tensor> whole;
  auto grad_of = [](const torch::Tensor& p) { return p.grad().defined() ? p.grad().clone() : torch::Tensor(); };
  for (const auto& p : parameters(*whole_est)) whole.push_back(grad_of(p));

  std::vector<std::vector<torch::Tensor>> averaged(2);
  on_ranks(2, [&](Collective& c) {
    auto est = make();
    grads(*est, narrow_batch(batch, 8 * c.rank(), 8));
    std::vector<torch::Tensor> params = parameters(*est);
    c.average_gradients(params);
    for (const auto& p : params) averaged[c.rank()].push_back(grad_of(p));
  }, transport);
  double worst = std::numeric_limits<double>::infinity();
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(averaged[r].size(), whole.size());
    if (averaged[r].size() != whole.size()) return worst;
  }
  worst = 0.0;
  for (int r = 0; r < 2; ++r) {
    for (size_t i = 0; i < whole.size(); ++i) {
      if (whole[i].defined() && averaged[r][i].defined())
        worst = std::max(worst, ((averaged[r][i] - whole[i]).abs().max() / (whole[i].abs().max() + 1e-300)).item<double>());
      if (!whole[i].defined())  // a parameter the objective does not read (SubTB's log Z)
        EXPECT_FALSE(averaged[r][i].defined()) << i;
      else
        EXPECT_TRUE(torch::allclose(averaged[r][i], whole[i], 1e-9, 1e-12))
            << "rank " << r << " parameter " << i << ": " << (averaged[r][i] - whole[i]).abs().max().item<double>();
    }
  }
  return worst;
}

TEST_P(DistributedTransport, HalfBatchesOnTwoRanksMatchOneBatchTb) {
  TrajectoryBalance tb;
  EXPECT_LT(halves_against_whole(tb, false, GetParam()), 1e-9);
}

TEST_P(DistributedTransport, HalfBatchesOnTwoRanksMatchOneBatchSubTb) {
  SubTrajectoryBalance subtb(SubTbOptions{});  // lambda 0.9, geometric, log F(s0) from the flow head
  EXPECT_LT(halves_against_whole(subtb, true, GetParam()), 1e-9);
}

// The shared-memory segment alone (core/internal/shared_reduce.h): what stops a rank from using
// it, and a peer that exited or never arrives, named without waiting for distributed.timeout.
class SharedSegment : public ::testing::Test {
 protected:
  ~SharedSegment() override { internal::SharedReduceSegment::unlink(name_); }
  const std::string name_ = "/gfn-test-" + std::to_string(::getpid());
};

TEST_F(SharedSegment, ANameOrLayoutThatDoesNotMatchIsRefusedWithItsReason) {
  std::string why;
  EXPECT_EQ(internal::SharedReduceSegment::open(name_, 1, 2, 1024, &why), nullptr);
  EXPECT_TRUE(contains(why, "shm_open(" + name_ + "): No such file or directory")) << why;
  auto rank0 = internal::SharedReduceSegment::create(name_, 2, 1000, &why);
  ASSERT_NE(rank0, nullptr) << why;
  EXPECT_EQ(rank0->capacity(), 1024);  // whole cache lines
  why.clear();
  EXPECT_EQ(internal::SharedReduceSegment::open(name_, 1, 3, 1000, &why), nullptr);
  EXPECT_TRUE(contains(why, "holds ")) << why;  // three slots do not fit two
  EXPECT_NE(internal::SharedReduceSegment::open(name_, 1, 2, 1000, &why), nullptr) << why;
  EXPECT_EQ(internal::SharedReduceSegment::create(name_, 2, 1000, &why), nullptr);  // never two of one name
  EXPECT_TRUE(contains(why, "File exists")) << why;
}

TEST_F(SharedSegment, ASegmentLargerThanDevShmIsRefusedNotWrittenInto) {
  struct statvfs shm {};
  ASSERT_EQ(::statvfs("/dev/shm", &shm), 0);
  if (shm.f_blocks == 0) GTEST_SKIP() << "/dev/shm has no size limit";
  // two ranks' slots in two sets: four times the whole of /dev/shm
  const auto capacity = static_cast<int64_t>(shm.f_blocks * shm.f_frsize);
  std::string why;
  EXPECT_EQ(internal::SharedReduceSegment::create(name_, 2, capacity, &why), nullptr);
  EXPECT_TRUE(contains(why, "No space left on device")) << why;
  EXPECT_TRUE(contains(why, "reserving ")) << why;
  EXPECT_FALSE(fs::exists("/dev/shm" + name_));  // removed again
}

TEST_F(SharedSegment, AnExitedRankIsNamedWithinAFractionOfASecond) {
  std::string why;
  auto rank0 = internal::SharedReduceSegment::create(name_, 2, 64, &why);
  ASSERT_NE(rank0, nullptr) << why;
  const pid_t child = ::fork();
  if (child == 0) {  // rank 1 maps the segment and exits without arriving
    std::string w;
    _exit(internal::SharedReduceSegment::open(name_, 1, 2, 64, &w) ? 0 : 1);
  }
  ASSERT_GT(child, 0);
  rank0->arrive(1);
  const auto t0 = std::chrono::steady_clock::now();
  std::string error;
  try {
    rank0->wait_all(1, 60.0);  // the child is a zombie until reaped: exited all the same
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child could not map the segment";
  EXPECT_EQ(error, "rank 0 of 2: the process group failed: rank 1 (pid " + std::to_string(child) + ") exited");
  EXPECT_LT(seconds, 2.0);
}

TEST_F(SharedSegment, ARankThatNeverArrivesTimesOut) {
  std::string why;
  auto rank0 = internal::SharedReduceSegment::create(name_, 2, 64, &why);
  ASSERT_NE(rank0, nullptr) << why;
  rank0->arrive(1);
  try {
    rank0->wait_all(1, 0.3);
    ADD_FAILURE() << "rank 1 never arrived";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "rank 0 of 2: the process group failed: rank 1 did not reach the all-reduce within 0.3 s "
                           "(distributed.timeout)");
  }
}

class DistributedCli : public testing::CliFixture {
 protected:
  DistributedCli() : CliFixture("gfn_distributed_") {}

  // `gfn ARGS` with environment assignments `env` ("A=1 B=2") before it.
  testing::Result run_env(const std::string& env, const std::string& args) {
    return run_shell(env + " '" + bin_ + "' " + args);
  }
  testing::Result kill_rank_one(const std::string& args);
  // A shell command line, its output captured.
  testing::Result run_shell(const std::string& line) {
    testing::Result r;
    auto out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    std::ofstream(dir_ / "cmd.sh") << line << "\n";
    const std::string cmd = "bash '" + (dir_ / "cmd.sh").string() + "' >'" + out.string() + "' 2>'" + err.string() +
                            "' </dev/null";
    const int status = std::system(cmd.c_str());
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = testing::slurp(out);
    r.err = testing::slurp(err);
    return r;
  }
};

TEST_F(DistributedCli, LaunchWritesOneLogAndOneCheckpoint) {
  if (!distributed_available()) GTEST_SKIP() << "built without c10d's Gloo";
  const fs::path out = dir_ / "run";
  auto r = run("launch -n 2 configs/hypergrid.toml --out '" + out.string() +
               "' --set train.iterations=40 --set eval.every=20 --set train.tabular=off");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "gfn launch: 2 processes, master 127.0.0.1:")) << r.err;
  EXPECT_TRUE(contains(r.err, "batch 16 (8 per rank on 2 processes)")) << r.err;
  EXPECT_TRUE(contains(r.out, "2 processes; gradient all-reduce")) << r.out;
  EXPECT_TRUE(contains(r.out, "through shared memory: ")) << r.out;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(out)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"checkpoint.pt", "config.toml", "log.h5", "model.pt"}));
  {
    Hdf5LogReader log((out / "log.h5").string());  // closed before the resumed run reopens it
    EXPECT_EQ(log.read_double("train/trajectories").back(), 40 * 16);
    EXPECT_EQ(log.read_double("eval/iteration"), (std::vector<double>{20, 40}));
  }
  // a resume needs the world size the run was trained with
  auto more = run("train --resume '" + out.string() + "' --set train.iterations=60");
  EXPECT_EQ(more.code, 2);
  EXPECT_TRUE(contains(more.err, "the run was trained by 2 processes (WORLD_SIZE), this resume has 1")) << more.err;
  auto again = run("launch -n 2 --resume '" + out.string() + "' --set train.iterations=60");
  ASSERT_EQ(again.code, 0) << again.err;
  Hdf5LogReader resumed((out / "log.h5").string());
  EXPECT_EQ(resumed.read_double("train/trajectories").back(), 60 * 16);
}

// Rank 1 of `gfn launch -n 2 configs/box.toml ARGS` killed once rank 0 trains: both exit nonzero
// within seconds, rank 0 naming the failure (its stderr and launch's are returned).
testing::Result DistributedCli::kill_rank_one(const std::string& args) {
  const fs::path out = dir_ / "run", err = dir_ / "launch.err";
  const auto t0 = std::chrono::steady_clock::now();
  // launch a long run, wait until it trains (rank 0 opened its log after the rendezvous), kill
  // rank 1
  auto r = run_shell("'" + bin_ + "' launch -n 2 configs/box.toml --out '" + out.string() +
                     "' --set train.iterations=1000000 " + args + " 2>'" + err.string() + "' & L=$!\n"
                     "for i in $(seq 600); do [ -f '" + (out / "log.h5").string() + "' ] && break; sleep 0.1; done\n"
                     "P=$(sed -n 's/.*rank 1 pid \\([0-9]*\\).*/\\1/p' '" + err.string() + "')\n"
                     "sleep 1; kill -9 $P; wait $L; echo \"launch exit $?\"; cat '" + err.string() + "' >&2");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 60.0);
  EXPECT_FALSE(contains(r.out, "launch exit 0")) << r.out;
  EXPECT_TRUE(contains(r.out, "launch exit 137")) << r.out;  // the first failure: rank 1, SIGKILL
  EXPECT_TRUE(contains(r.err, "gfn launch: rank 1 (pid ")) << r.err;
  EXPECT_TRUE(contains(r.err, "was killed by signal 9")) << r.err;
  EXPECT_TRUE(contains(r.err, "rank 0 of 2: the process group failed")) << r.err;
  EXPECT_TRUE(contains(r.err, "gfn launch: rank 0 (pid ")) << r.err;
  // rank 0's log stays readable
  Hdf5LogReader log((out / "log.h5").string());
  EXPECT_EQ(log.attribute_string("env"), "box");
  return r;
}

TEST_F(DistributedCli, AKilledRankEndsTheRunNamingIt) {
  if (!distributed_available()) GTEST_SKIP() << "built without c10d's Gloo";
  // shared memory: rank 0 finds rank 1's process gone while it waits for it
  auto r = kill_rank_one("");
  EXPECT_TRUE(contains(r.err, "rank 0 of 2: the process group failed: rank 1 (pid ")) << r.err;
  EXPECT_TRUE(contains(r.err, ") exited")) << r.err;
}

TEST_F(DistributedCli, AKilledRankEndsTheRunNamingItOverGloo) {
  if (!distributed_available()) GTEST_SKIP() << "built without c10d's Gloo";
  // Gloo sees the closed connection
  auto r = kill_rank_one("--set distributed.transport=gloo");
  EXPECT_TRUE(contains(r.err, "rank 0 of 2: the process group failed: a peer exited")) << r.err;
}

TEST_F(DistributedCli, BadVariablesAreConfigErrorsBeforeAnyWork) {
  const fs::path out = dir_ / "run";
  const std::string args = "train configs/hypergrid.toml --out '" + out.string() + "' --set train.iterations=5";
  struct Case {
    std::string env, message;
  };
  const int port = free_loopback_port();
  const std::vector<Case> cases = {
      {"WORLD_SIZE=0", "WORLD_SIZE=0: expected an integer >= 1"},
      {"WORLD_SIZE=two", "WORLD_SIZE=two: expected an integer"},
      {"WORLD_SIZE=2 RANK=2 MASTER_ADDR=127.0.0.1", "RANK=2: expected an integer in [0, WORLD_SIZE - 1 = 1]"},
      {"WORLD_SIZE=2 MASTER_ADDR=127.0.0.1", "WORLD_SIZE=2 but RANK is not set"},
      {"WORLD_SIZE=2 RANK=1", "WORLD_SIZE=2 but MASTER_ADDR is not set"},
      {"WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=70000", "MASTER_PORT=70000: expected a port in [1, 65535]"},
      {"WORLD_SIZE=3 RANK=1 MASTER_ADDR=127.0.0.1", "train.batch_size = 16: expected a multiple of WORLD_SIZE = 3"},
  };
  for (const auto& c : cases) {
    auto r = run_env(c.env, args);
    EXPECT_EQ(r.code, 2) << c.env << ": " << r.err;
    EXPECT_TRUE(contains(r.err, c.message)) << c.env << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.env;
  }
  if (!distributed_available()) return;
  // nobody serves the master's port: a clear error after distributed.timeout, nothing written
  auto r = run_env("WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port),
                   args + " --set distributed.timeout=2");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "rank 1 of 2: cannot join the process group at MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                                  std::to_string(port) + " within 2 s"))
      << r.err;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace gfn

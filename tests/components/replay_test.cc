// Replay and local search (components/replay.h): the buffer's ring order, the prioritised draws'
// frequencies against their formulas, buffer batches walked back through P_B and scored, MALA's
// step-size adaptation, its proposals kept inside the Box, and the errors of what cannot work.
#include "components/replay.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/trainer.h"
#include "envs/box.h"
#include "envs/diffusion.h"
#include "losses/tb.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

States points(const std::vector<double>& xs) {
  const int64_t n = static_cast<int64_t>(xs.size());
  return {torch::zeros({n, 1}, torch::kInt64), torch::tensor(xs, torch::kFloat64).unsqueeze(1),
          torch::zeros({n}, torch::kBool), torch::zeros({n}, torch::kBool)};
}

TEST(ReplayTest, BufferIsARingOfTheNewestStates) {
  ReplayBuffer buffer(5, 1, 1, torch::kCPU);
  buffer.add(points({0, 1, 2}), torch::tensor({0.0, 1.0, 2.0}));
  EXPECT_EQ(buffer.size(), 3);
  buffer.add(points({3, 4, 5, 6}), torch::tensor({3.0, 4.0, 5.0, 6.0}));
  EXPECT_EQ(buffer.size(), 5);
  auto all = buffer.states(torch::arange(5));
  // slots 0, 1 were overwritten by 5, 6
  EXPECT_TRUE(torch::equal(all.continuous.squeeze(1), torch::tensor({5.0, 6.0, 2.0, 3.0, 4.0}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(buffer.log_reward(torch::arange(5)), torch::tensor({5.0, 6.0, 2.0, 3.0, 4.0}, torch::kFloat64)));
  buffer.add(points({7, 8, 9, 10, 11, 12, 13}), torch::arange(7, 14).to(torch::kFloat64));  // more than it holds
  EXPECT_EQ(buffer.size(), 5);
  auto lr = buffer.log_reward(torch::arange(5));
  EXPECT_EQ(lr.min().item<double>(), 9.0);
  EXPECT_EQ(lr.max().item<double>(), 13.0);
}

// frequencies of 200,000 draws within 5 standard errors of each prioritisation's probabilities
TEST(ReplayTest, PrioritisedDrawsFollowTheirFormulas) {
  ReplayBuffer buffer(4, 1, 1, torch::kCPU);
  const std::vector<double> log_r{-1.0, 2.0, 0.5, -3.0};
  buffer.add(points({0, 1, 2, 3}), torch::tensor(log_r, torch::kFloat64));
  auto gen = make_generator(0, torch::kCPU);
  const int64_t n = 200000;
  auto frequencies = [&](const ReplayOptions& o) {
    return torch::bincount(buffer.draw(n, o, gen), {}, 4).to(torch::kFloat64) / static_cast<double>(n);
  };
  ReplayOptions o;
  o.prioritization = Prioritization::kFifo;
  std::vector<double> fifo(4, 0.25);
  o.beta = 0.5;
  std::vector<double> reward;
  for (double l : log_r) reward.push_back(std::exp(0.5 * l));
  o.rank_weight = 0.5;  // 1 / (0.5 * 4 + rank), ranks 2, 0, 1, 3
  std::vector<double> rank{1.0 / 4, 1.0 / 2, 1.0 / 3, 1.0 / 5};
  for (auto [kind, p] : {std::pair{Prioritization::kFifo, fifo}, std::pair{Prioritization::kReward, reward},
                         std::pair{Prioritization::kRank, rank}}) {
    o.prioritization = kind;
    double total = 0;
    for (double v : p) total += v;
    auto f = frequencies(o);
    for (int64_t i = 0; i < 4; ++i) {
      const double q = p[i] / total, se = std::sqrt(q * (1 - q) / n);
      EXPECT_NEAR(f[i].item<double>(), q, 5 * se) << enum_name(kind) << " state " << i;
    }
  }
}

struct BoxRun {
  BoxEnv env;
  torch::Generator gen;
  EstimatorOptions eo;
  Estimators est;
  TrajectoryBalance tb;
  TrainerOptions to;
  BoxRun() : env(BoxOptions{}), gen(make_generator(0, torch::kCPU)), eo(testing::small_net(16)), est(env, eo, gen, torch::kCPU) {
    to.batch_size = 32;
  }
};

// every second iteration trains on buffer states walked back through P_B; the on-policy ones fill it
TEST(ReplayTest, BufferBatchesAlternateWithRollouts) {
  BoxRun r;
  ReplayOptions o;
  o.capacity = 1000;
  ReplayComponent replay({r.env, r.est, r.eo, r.to, r.tb.requirements(), r.gen, torch::kCPU}, o);
  Trainer trainer(r.env, r.est, r.tb, r.to, 0, torch::kCPU, {&replay});
  auto first = trainer.step();
  EXPECT_EQ(replay.buffer().size(), 32);
  auto second = trainer.step();  // from the buffer: its terminal states are buffer states
  EXPECT_EQ(replay.buffer().size(), 32);
  auto stored = replay.buffer().states(torch::arange(32)).continuous;
  auto x = second.trajectories.terminal_continuous;
  for (int64_t i = 0; i < x.size(0); ++i)
    EXPECT_EQ((stored - x[i]).abs().sum(1).min().item<double>(), 0.0) << "row " << i << " is not a buffer state";
  EXPECT_TRUE(torch::isfinite(second.loss).item<bool>());
  EXPECT_TRUE(second.trajectories.backward_coords.defined());  // sampled backward
  trainer.step();
  EXPECT_EQ(replay.buffer().size(), 64);
}

// MALA on the Box (grad log R = 0: a random walk between the reward's plateaus): proposals outside
// the cube are rejected, h adapts toward the target acceptance, accepted states join the buffer
TEST(ReplayTest, LocalSearchStaysInTheSupportAndAdaptsItsStep) {
  BoxRun r;
  ReplayOptions o;
  o.capacity = 100000;
  o.search_every = 2;
  o.search_steps = 60;
  o.search_burn_in = 10;
  o.search_step = 1.0;  // far too large for the unit cube: most proposals leave it
  ReplayComponent replay({r.env, r.est, r.eo, r.to, r.tb.requirements(), r.gen, torch::kCPU}, o);
  Trainer trainer(r.env, r.est, r.tb, r.to, 0, torch::kCPU, {&replay});
  trainer.step();
  const int64_t before = replay.buffer().size();
  TrainingContext ctx{r.env, r.est, nullptr, Execution::kCompact, trainer.generator(), torch::kCPU};
  const double acceptance = replay.local_search(ctx);
  EXPECT_LT(replay.step_size(), 0.1);  // shrunk by (0.9)^k toward 0.574 acceptance
  EXPECT_GT(acceptance, 0.05);
  const int64_t added = replay.buffer().size() - before;
  EXPECT_GT(added, 0);
  auto x = replay.buffer().states(torch::arange(replay.buffer().size())).continuous;
  EXPECT_GE(x.min().item<double>(), 0.0);
  EXPECT_LE(x.max().item<double>(), 1.0);
}

TEST(ReplayTest, RefusesWhatCannotWork) {
  ReplayOptions o;
  o.search_every = 10;  // local search without a buffer
  EXPECT_NE(testing::validate_error(o).find("replay.capacity"), std::string::npos) << testing::validate_error(o);
  o.capacity = 10;
  o.search_burn_in = o.search_steps;
  EXPECT_NE(testing::validate_error(o).find("local_search.burn_in"), std::string::npos);
  // the hypergrid has no continuous coordinates to search
  auto grid = testing::make_grid(2, 4);
  auto gen = make_generator(0, torch::kCPU);
  auto eo = testing::small_net(8);
  Estimators est(grid, eo, gen, torch::kCPU);
  TrainerOptions to;
  Requirements req;
  ReplayOptions search;
  search.capacity = 10;
  search.search_every = 10;
  EXPECT_THROW(ReplayComponent({grid, est, eo, to, req, gen, torch::kCPU}, search), ConfigError);
}

}  // namespace
}  // namespace gfn

// The component interface as data sources use it: an exploration schedule sets each iteration's
// behaviour policy (adjust_sampling), and a replay source adds trajectories to the batch
// (extend_batch), which the trainer scores under the training policy like its own.
#include "core/component.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/scoring.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"
#include "losses/tb.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

using testing::GridSetup;
using testing::small_net;

// Uniform exploration (epsilon = 1) on even iterations, on-policy on odd ones; records the
// iterations it was asked about.
class AlternatingExploration final : public TrainingComponent {
 public:
  std::string name() const override { return "alternating"; }
  void adjust_sampling(SamplerOptions& options, int64_t iteration) override {
    options.epsilon = iteration % 2 == 0 ? 1.0 : 0.0;
    seen.push_back(iteration);
  }
  std::vector<int64_t> seen;
};

// Each batch's trajectories, added again to the next batch: a replay buffer of one batch.
class ReplayLast final : public TrainingComponent {
 public:
  std::string name() const override { return "replay"; }
  void extend_batch(TrainingBatch& batch, const TrainingContext&) override {
    Trajectories fresh = batch.trajectories;
    if (last_.mask.defined()) batch.trajectories = concat(batch.trajectories, last_);
    last_ = fresh;
  }
  std::vector<std::string> metric_names() const override { return {"replayed"}; }
  std::vector<torch::Tensor> metric_values() const override {
    return {torch::tensor(last_.mask.defined() ? 1.0 : 0.0)};
  }
  const Trajectories& last() const { return last_; }

  // a and b side by side along the batch (dim 1 of the [T(+1), B, ...] fields, 0 of the [B, ...])
  static Trajectories concat(const Trajectories& a, const Trajectories& b) {
    Trajectories o;
    for (auto f : {&Trajectories::states_discrete, &Trajectories::states_continuous, &Trajectories::is_initial,
                   &Trajectories::is_sink, &Trajectories::action_component, &Trajectories::action_coords,
                   &Trajectories::log_jacobian, &Trajectories::mask, &Trajectories::log_pf_sampled})
      o.*f = torch::cat({a.*f, b.*f}, 1);
    for (auto f : {&Trajectories::length, &Trajectories::log_reward, &Trajectories::terminal_discrete,
                   &Trajectories::terminal_continuous})
      o.*f = torch::cat({a.*f, b.*f}, 0);
    return o;
  }

 private:
  Trajectories last_;
};

// the schedule reaches the rollout: uniform draws are recorded under the behaviour policy and
// differ from the training policy's scores; on-policy ones are the same numbers
TEST(ComponentTest, ExplorationScheduleSetsTheBehaviourPolicy) {
  GridSetup g(2, 5, 1, small_net(32));
  TrajectoryBalance tb;
  TrainerOptions opts;
  opts.tabular = TabularMode::kOff;
  AlternatingExploration schedule;
  Trainer trainer(g.env, g.est, tb, opts, 2, torch::kCPU, {&schedule});
  auto uniform = trainer.step();
  auto on_policy = trainer.step();
  EXPECT_EQ(schedule.seen, (std::vector<int64_t>{0, 1}));
  // uniform over the available moves: log p = -log(available) at every valid step
  const auto& tr = uniform.trajectories;
  const int64_t T = tr.num_steps(), B = tr.batch_size();
  auto states = States{tr.states_discrete.narrow(0, 0, T).reshape({T * B, -1}),
                       tr.states_continuous.narrow(0, 0, T).reshape({T * B, 0}), tr.is_initial.narrow(0, 0, T).reshape({-1}),
                       tr.is_sink.narrow(0, 0, T).reshape({-1})};
  auto available = g.env.forward_mask(states).sum(1).to(torch::kFloat32).view({T, B});
  auto expected = (-available.log()).masked_fill(tr.mask.logical_not(), 0.0);
  EXPECT_TRUE(torch::allclose(tr.log_pf_sampled, expected, 1e-5, 1e-6));
  EXPECT_GT((uniform.log_pf - tr.log_pf_sampled).abs().max().item<double>(), 1e-3);
  EXPECT_TRUE(torch::equal(on_policy.trajectories.log_pf_sampled, on_policy.log_pf));
}

// replayed trajectories join the batch and are scored under the current training policy
TEST(ComponentTest, ReplayedTrajectoriesAreRescored) {
  GridSetup g(2, 5, 3, small_net(32));
  TrajectoryBalance tb;
  TrainerOptions opts;
  opts.batch_size = 8;
  opts.tabular = TabularMode::kOff;
  ReplayLast replay;
  Trainer trainer(g.env, g.est, tb, opts, 4, torch::kCPU, {&replay});
  ASSERT_EQ(trainer.metric_names(), std::vector<std::string>{"replayed"});
  auto first = trainer.step();
  EXPECT_EQ(first.trajectories.batch_size(), 8);
  const Trajectories replayed = replay.last();
  // the policy has taken a step since these were sampled: their scores now differ from then
  auto now = score_trajectories(g.env, g.est, replayed, ScoreOptions{}).log_pf.detach();
  EXPECT_GT((now - first.log_pf).abs().max().item<double>(), 0.0);
  auto second = trainer.step();
  ASSERT_EQ(second.trajectories.batch_size(), 16);
  EXPECT_TRUE(torch::allclose(second.log_pf.narrow(1, 8, 8), now, 1e-6, 1e-6));
  EXPECT_TRUE(torch::equal(second.trajectories.terminal_discrete.narrow(0, 8, 8), replayed.terminal_discrete));
  ASSERT_EQ(second.metrics.size(), 1u);
  EXPECT_EQ(second.metrics[0].item<double>(), 1.0);
  EXPECT_TRUE(std::isfinite(second.loss.item<double>()));
}

}  // namespace
}  // namespace gfn

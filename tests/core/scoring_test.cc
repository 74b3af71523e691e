#include "core/scoring.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/estimator.h"
#include "core/sampler.h"
#include "core/tabular.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

using testing::GridSetup;

// Hidden-32 estimators with the given P_B.
EstimatorOptions net(BackwardPolicy backward = BackwardPolicy::kUniform) {
  return testing::small_net(32, torch::kFloat32, backward);
}

// Estimators on a grid, `batch` on-policy trajectories drawn from `sample_gen` (seeded with
// `sample_seed`, left advanced), and their scoring with the default ScoreOptions.
struct Scored : GridSetup {
  torch::Generator sample_gen;
  Trajectories tr;
  LossInputs in;

  Scored(int64_t ndim, int64_t height, uint64_t init_seed, const EstimatorOptions& options, int64_t batch,
         uint64_t sample_seed)
      : GridSetup(ndim, height, init_seed, options),
        sample_gen(make_generator(sample_seed, torch::kCPU)),
        tr(sample(batch, sample_gen)),
        in(score_trajectories(env, est, tr, ScoreOptions{})) {}
};

// The row of state (t, b) of a trajectory batch as a one-row States.
States state_at(const Trajectories& tr, int64_t t, int64_t b) {
  auto i = torch::tensor({b}, torch::kInt64);
  return tr.states_at(t).index_select(i);
}

// log_pf of each valid step equals log softmax of the policy's logits over the available
// components, recomputed by hand (exp / sum) on single states; padding holds 0.
TEST(ScoringTest, LogPfByHand) {
  Scored f(2, 4, 1, net(), 16, 2);
  ASSERT_EQ(f.in.log_pf.sizes(), f.tr.mask.sizes());
  int64_t checked = 0;
  for (int64_t b = 0; b < 16; ++b) {
    for (int64_t t = 0; t < f.tr.num_steps(); ++t) {
      if (!f.tr.mask[t][b].item<bool>()) {
        EXPECT_EQ(f.in.log_pf[t][b].item<double>(), 0.0);
        continue;
      }
      auto s = state_at(f.tr, t, b);
      auto logits = f.est.policy->forward_logits(f.est.policy->trunk(f.env.features(s)))[0].detach();
      auto mask = f.env.forward_mask(s)[0];
      const int64_t c = f.tr.action_component[t][b].item<int64_t>();
      double z = 0.0;
      for (int64_t k = 0; k < 3; ++k)
        if (mask[k].item<bool>()) z += std::exp(logits[k].item<double>());
      double expect = logits[c].item<double>() - std::log(z);
      EXPECT_NEAR(f.in.log_pf[t][b].item<double>(), expect, 1e-5) << "t=" << t << " b=" << b;
      ++checked;
    }
  }
  EXPECT_GT(checked, 16);
  EXPECT_TRUE(f.in.log_pf.requires_grad());
}

// With the uniform P_B, a move into s' has log p_B = -log(#parents of s') = -log(#nonzero
// coordinates of s'); the exit step and padding hold 0.
TEST(ScoringTest, UniformLogPb) {
  Scored f(3, 3, 3, net(), 32, 4);
  int64_t nontrivial = 0;
  for (int64_t b = 0; b < 32; ++b) {
    const int64_t len = f.tr.length[b].item<int64_t>();
    for (int64_t t = 0; t < f.tr.num_steps(); ++t) {
      double got = f.in.log_pb[t][b].item<double>();
      if (t >= len - 1) {
        EXPECT_EQ(got, 0.0) << "exit or padding, t=" << t << " b=" << b;
        continue;
      }
      int64_t parents = f.tr.states_discrete[t + 1][b].gt(0).sum().item<int64_t>();
      ASSERT_GE(parents, 1);
      EXPECT_NEAR(got, -std::log(static_cast<double>(parents)), 1e-6) << "t=" << t << " b=" << b;
      if (parents > 1) ++nontrivial;
    }
  }
  EXPECT_GT(nontrivial, 0);
}

// On-policy, the behaviour log-probability recorded at sampling equals the training log_pf.
TEST(ScoringTest, SampledLogPfMatchesOnPolicy) {
  Scored f(2, 4, 5, net(), 64, 6);
  EXPECT_TRUE(torch::allclose(f.in.log_pf.detach(), f.tr.log_pf_sampled, 1e-5, 1e-5));
  // off-policy they differ
  SamplerOptions eps;
  eps.epsilon = 0.5;
  auto tr2 = f.sample(64, f.sample_gen, eps);
  auto in2 = score_trajectories(f.env, f.est, tr2, ScoreOptions{});
  EXPECT_FALSE(torch::allclose(in2.log_pf.detach(), tr2.log_pf_sampled, 1e-3, 1e-3));
}

// The tabular path scores the same trajectories exactly as score_trajectories does, for the
// uniform and the learned P_B; the sampled log-probabilities match too.
TEST(ScoringTest, TabularMatchesGeneric) {
  for (auto backward : {BackwardPolicy::kUniform, BackwardPolicy::kLearned}) {
    for (auto [n, h] : std::vector<std::pair<int64_t, int64_t>>{{2, 4}, {3, 3}}) {
      GridSetup g(n, h, 7, net(backward));
      auto& env = g.env;
      auto& est = g.est;
      StateTable table(env, torch::kCPU);
      auto pass = evaluate_table(table, *est.policy);
      auto probs = pass.log_pf.detach().exp();
      auto sgen = make_generator(8, torch::kCPU);
      torch::Tensor path;
      auto tr = rollout_tabular(env, table, probs, 48, sgen, &path);
      auto tab = score_tabular(table, pass, tr, path, est.log_z, ScoreOptions{});
      auto gen_in = score_trajectories(env, est, tr, ScoreOptions{});
      std::string what = "n=" + std::to_string(n) + " learned=" + std::to_string(backward == BackwardPolicy::kLearned);
      EXPECT_TRUE(torch::allclose(tab.log_pf, gen_in.log_pf, 0.0, 1e-5)) << what;
      EXPECT_TRUE(torch::allclose(tab.log_pb, gen_in.log_pb, 0.0, 1e-5)) << what;
      EXPECT_TRUE(torch::allclose(tr.log_pf_sampled, gen_in.log_pf.detach(), 0.0, 1e-5)) << what;
      EXPECT_TRUE(torch::equal(tab.log_reward, gen_in.log_reward)) << what;
      // the visited indices are those of the recorded states
      auto flat = tr.states_discrete.reshape({-1, n});
      States rows{flat, torch::zeros({flat.size(0), 0}), torch::zeros({flat.size(0)}, torch::kBool),
                  torch::zeros({flat.size(0)}, torch::kBool)};
      EXPECT_TRUE(torch::equal(env.state_index(rows).view_as(path), path)) << what;
      // both carry gradients to the network
      EXPECT_TRUE(tab.log_pf.requires_grad());
      EXPECT_TRUE(gen_in.log_pf.requires_grad());
    }
  }
}

// The learned P_B is a log-softmax over the available parents: at every state reached by a
// move, the probabilities of its parents sum to 1, and the scored log_pb picks the entry of the
// component that undoes the move.
TEST(ScoringTest, LearnedBackwardIsNormalised) {
  Scored f(2, 4, 9, net(BackwardPolicy::kLearned), 32, 10);
  ASSERT_TRUE(f.est.policy->learned_backward());
  int64_t two_parents = 0;
  for (int64_t b = 0; b < 32; ++b) {
    const int64_t len = f.tr.length[b].item<int64_t>();
    for (int64_t t = 0; t + 1 < len; ++t) {
      auto child = state_at(f.tr, t + 1, b);
      auto bmask = f.env.backward_mask(child)[0];
      auto lpb = masked_log_softmax(f.est.policy->backward_logits(f.est.policy->trunk(f.env.features(child))),
                                    f.env.backward_mask(child))[0]
                     .detach();
      double total = 0.0;
      for (int64_t k = 0; k < 2; ++k)
        if (bmask[k].item<bool>()) total += std::exp(lpb[k].item<double>());
      EXPECT_NEAR(total, 1.0, 1e-6);
      const int64_t c = f.tr.action_component[t][b].item<int64_t>();
      EXPECT_NEAR(f.in.log_pb[t][b].item<double>(), lpb[c].item<double>(), 1e-6) << "t=" << t << " b=" << b;
      if (bmask.all().item<bool>()) {
        ++two_parents;
        // a learned head is not the uniform 1/2
        EXPECT_GT(std::fabs(lpb[c].item<double>() - std::log(0.5)), 1e-6);
      }
    }
  }
  EXPECT_GT(two_parents, 0);
  EXPECT_TRUE(f.in.log_pb.requires_grad());

  // the table's P_B rows sum to 1 over the parents of every state but s0
  StateTable table(f.env, torch::kCPU);
  auto pass = evaluate_table(table, *f.est.policy);
  auto sums = pass.log_pb.detach().exp().masked_fill(table.backward_mask.logical_not(), 0.0).sum(1);
  auto non_root = table.states.is_initial.logical_not();
  EXPECT_TRUE(torch::allclose(sums.masked_select(non_root), torch::ones({table.size() - 1}), 1e-6, 1e-6));
}

// The reward is clipped from below as configured, and left alone with no clip.
TEST(ScoringTest, LogRewardClip) {
  Scored f(2, 4, 11, net(), 64, 12);
  const auto& plain = f.in;
  EXPECT_TRUE(torch::equal(plain.log_reward, f.tr.log_reward));
  ScoreOptions clip;
  clip.log_reward_clip = -1.0;  // between log(0.1) and log(0.6)
  auto clipped = score_trajectories(f.env, f.est, f.tr, clip);
  EXPECT_TRUE(torch::equal(clipped.log_reward, f.tr.log_reward.clamp_min(-1.0)));
  EXPECT_TRUE(f.tr.log_reward.lt(-1.0).any().item<bool>());  // some reward was actually clipped
}

}  // namespace
}  // namespace gfn

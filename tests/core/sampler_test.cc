#include "core/sampler.h"

#include <cmath>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/estimator.h"
#include "envs/hypergrid.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

using testing::validate_error;

// The 2-D H=4 grid with hidden-32 estimators from seed 7 that every sampling test draws from.
struct Fixture : testing::GridSetup {
  Fixture() : GridSetup(2, 4, 7, testing::small_net(32)) {}
};

// Every field has the documented shape with T = max_length + 1 steps.
TEST(SamplerTest, Shapes) {
  Fixture f;
  const int64_t B = 32, T = f.env.max_length() + 1;
  ASSERT_EQ(T, 7);
  auto tr = f.sample(B, 1);
  EXPECT_EQ(tr.states_discrete.sizes(), (std::vector<int64_t>{T + 1, B, 2}));
  EXPECT_EQ(tr.states_continuous.sizes(), (std::vector<int64_t>{T + 1, B, 0}));
  EXPECT_EQ(tr.is_initial.sizes(), (std::vector<int64_t>{T + 1, B}));
  EXPECT_EQ(tr.is_sink.sizes(), (std::vector<int64_t>{T + 1, B}));
  EXPECT_EQ(tr.action_component.sizes(), (std::vector<int64_t>{T, B}));
  EXPECT_EQ(tr.action_coords.sizes(), (std::vector<int64_t>{T, B, 0}));
  EXPECT_EQ(tr.log_jacobian.sizes(), (std::vector<int64_t>{T, B}));
  EXPECT_EQ(tr.mask.sizes(), (std::vector<int64_t>{T, B}));
  EXPECT_EQ(tr.length.sizes(), (std::vector<int64_t>{B}));
  EXPECT_EQ(tr.log_reward.sizes(), (std::vector<int64_t>{B}));
  EXPECT_EQ(tr.log_pf_sampled.sizes(), (std::vector<int64_t>{T, B}));
  EXPECT_EQ(tr.terminal_discrete.sizes(), (std::vector<int64_t>{B, 2}));
  EXPECT_EQ(tr.num_steps(), T);
  EXPECT_EQ(tr.batch_size(), B);
  EXPECT_EQ(tr.action_component.scalar_type(), torch::kInt64);
  EXPECT_EQ(tr.mask.scalar_type(), torch::kBool);
}

// The mask is a prefix of each trajectory, its sum is the length, the last valid action is the
// exit and padding holds -1; the states follow the actions and the terminal state is x.
TEST(SamplerTest, TrajectoryStructure) {
  Fixture f;
  const int64_t B = 64, n = 2, exit = f.env.action_spec().forward.exit;
  ASSERT_EQ(exit, n);
  auto tr = f.sample(B, 3);
  const int64_t T = tr.num_steps();
  auto x = tr.states_discrete;
  int64_t moves = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = tr.length[b].item<int64_t>();
    ASSERT_GE(len, 1);
    ASSERT_LE(len, T);
    for (int64_t t = 0; t < T; ++t) {
      const bool valid = tr.mask[t][b].item<bool>();
      const int64_t c = tr.action_component[t][b].item<int64_t>();
      ASSERT_EQ(valid, t < len) << "b=" << b << " t=" << t;
      if (!valid) {
        ASSERT_EQ(c, -1);
        ASSERT_EQ(tr.log_pf_sampled[t][b].item<double>(), 0.0);
        ASSERT_TRUE(torch::equal(x[t + 1][b], x[t][b]));  // padding does not move
        ASSERT_TRUE(tr.is_sink[t + 1][b].item<bool>());
        continue;
      }
      // a behaviour log-probability, 0 exactly for a forced move (only the exit at H-1, H-1)
      const bool forced = f.env.forward_mask(tr.states_at(t)).select(0, b).sum().item<int64_t>() == 1;
      if (forced) {
        ASSERT_EQ(tr.log_pf_sampled[t][b].item<double>(), 0.0);
      } else {
        ASSERT_LT(tr.log_pf_sampled[t][b].item<double>(), 0.0);
      }
      if (t == len - 1) {
        ASSERT_EQ(c, exit) << "b=" << b;
        ASSERT_TRUE(torch::equal(x[t + 1][b], x[t][b]));  // the sink keeps x's coordinates
        ASSERT_TRUE(tr.is_sink[t + 1][b].item<bool>());
      } else {
        ASSERT_GE(c, 0);
        ASSERT_LT(c, n);
        auto expect = x[t][b].clone();
        expect[c] += 1;
        ASSERT_TRUE(torch::equal(x[t + 1][b], expect)) << "b=" << b << " t=" << t;
        ASSERT_FALSE(tr.is_sink[t + 1][b].item<bool>());
        ++moves;
      }
    }
    // the number of moves is the coordinate sum of x
    ASSERT_EQ(tr.terminal_discrete[b].sum().item<int64_t>(), len - 1);
    ASSERT_TRUE(torch::equal(tr.terminal_discrete[b], x[len - 1][b]));
  }
  EXPECT_GT(moves, 0);
  EXPECT_EQ(tr.mask.sum(0).to(torch::kInt64).equal(tr.length), true);
  EXPECT_TRUE(tr.is_initial[0].all().item<bool>());
  EXPECT_FALSE(tr.is_sink[0].any().item<bool>());
  EXPECT_TRUE(torch::equal(x[0], torch::zeros({B, n}, torch::kInt64)));
  EXPECT_TRUE(torch::allclose(tr.log_reward, f.env.log_reward(tr.terminal_states())));
  // the terminal state is s0 exactly for immediate exits
  EXPECT_TRUE(torch::equal(tr.terminal_states().is_initial, tr.length.eq(1)));
}

// A seed fixes the trajectories; another seed changes them.
TEST(SamplerTest, SeedDeterminism) {
  Fixture f;
  auto a = f.sample(64, 11), b = f.sample(64, 11), c = f.sample(64, 12);
  EXPECT_TRUE(torch::equal(a.action_component, b.action_component));
  EXPECT_TRUE(torch::equal(a.states_discrete, b.states_discrete));
  EXPECT_TRUE(torch::equal(a.log_pf_sampled, b.log_pf_sampled));
  EXPECT_FALSE(torch::equal(a.action_component, c.action_component));
}

// epsilon = 1 makes the choices uniform over the available components: at s0 of the 2-D grid
// each of +0, +1, exit has probability 1/3, whatever the network.
TEST(SamplerTest, EpsilonOneIsUniform) {
  Fixture f;
  SamplerOptions so;
  so.epsilon = 1.0;
  const int64_t B = 6000;
  auto tr = f.sample(B, 5, so);
  auto first = tr.action_component[0];
  // std of each frequency is sqrt(2/9 / 6000) ~ 0.006; 0.03 is 5 sigma
  for (int64_t c = 0; c < 3; ++c) {
    double freq = first.eq(c).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(freq, 1.0 / 3.0, 0.03) << "component " << c;
  }
  EXPECT_NEAR(tr.length.eq(1).to(torch::kFloat64).mean().item<double>(), 1.0 / 3.0, 0.03);
  // the recorded behaviour probability at s0 is exactly 1/3
  EXPECT_TRUE(torch::allclose(tr.log_pf_sampled[0], torch::full({B}, std::log(1.0 / 3.0))));
  // and the policy itself is not uniform there (so the test would notice epsilon being ignored)
  auto s0 = f.env.initial_states(1, torch::kCPU);
  auto p = behaviour_probs(f.est.policy->forward_logits(f.est.policy->trunk(f.env.features(s0))),
                           f.env.forward_mask(s0), SamplerOptions{});
  EXPECT_GT((p - 1.0 / 3.0).abs().max().item<double>(), 1e-3);
}

// behaviour_probs mixes softmax(logits / temperature) with the uniform distribution on the mask.
TEST(SamplerTest, BehaviourProbsByHand) {
  auto logits = torch::tensor({{0.0, std::log(3.0), 5.0}});
  auto mask = torch::tensor({{true, true, false}});
  SamplerOptions so;
  auto p = behaviour_probs(logits, mask, so);
  EXPECT_TRUE(torch::allclose(p, torch::tensor({{0.25, 0.75, 0.0}})));
  so.temperature = 2.0;  // softmax of (0, log 3 / 2): 1 : sqrt 3
  p = behaviour_probs(logits, mask, so);
  double s3 = std::sqrt(3.0);
  EXPECT_NEAR(p[0][0].item<double>(), 1.0 / (1.0 + s3), 1e-6);
  so.temperature = 1.0;
  so.epsilon = 0.5;
  p = behaviour_probs(logits, mask, so);
  EXPECT_TRUE(torch::allclose(p, torch::tensor({{0.375, 0.625, 0.0}})));
}

// validate names the config key and the rule.
TEST(SamplerTest, ValidateNamesKey) {
  SamplerOptions o;
  EXPECT_EQ(validate_error(o), "");
  EXPECT_TRUE(o.on_policy());
  o.epsilon = 1.5;
  auto msg = validate_error(o);
  EXPECT_NE(msg.find("train.epsilon"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[0, 1]"), std::string::npos) << msg;
  o.epsilon = -0.1;
  EXPECT_NE(validate_error(o).find("train.epsilon"), std::string::npos);
  o.epsilon = std::nan("");
  EXPECT_NE(validate_error(o).find("train.epsilon"), std::string::npos);
  o = SamplerOptions{};
  o.temperature = 0.0;
  msg = validate_error(o);
  EXPECT_NE(msg.find("train.temperature"), std::string::npos) << msg;
  o.temperature = std::numeric_limits<double>::infinity();
  EXPECT_NE(validate_error(o).find("train.temperature"), std::string::npos);
  o.temperature = 0.5;
  EXPECT_EQ(validate_error(o), "");
  EXPECT_FALSE(o.on_policy());
}

}  // namespace
}  // namespace gfn

// The sets environment: exact log Z and inclusion probabilities against brute-force enumeration,
// the kernel masks, forward-looking credits, the checker, enumeration and config errors.
#include "envs/sets.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/checker.h"
#include "core/evaluation.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/tabular.h"
#include "core/trainer.h"
#include "measures/categorical.h"

namespace gfn {
namespace {

SetsEnv make(int64_t n, int64_t k, int64_t seed = 0) {
  SetsOptions o;
  o.universe = n;
  o.size = k;
  o.energy_seed = seed;
  return SetsEnv(o);
}

// every subset of k elements summed by brute force: Z and P(a in x), in float64
TEST(SetsTest, ExactLogZAndInclusionMatchEnumeration) {
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{8, 3}, {10, 7}, {6, 6}, {5, 1}, {12, 6}}) {
    auto env = make(n, k, n + k);
    auto e = env.energies();
    double z = 0.0;
    std::vector<double> member(n, 0.0);
    for (int64_t mask = 0; mask < (int64_t{1} << n); ++mask) {
      if (__builtin_popcountll(mask) != k) continue;
      double energy = 0.0;
      for (int64_t a = 0; a < n; ++a)
        if (mask >> a & 1) energy += e[a].item<double>();
      const double r = std::exp(-energy);
      z += r;
      for (int64_t a = 0; a < n; ++a)
        if (mask >> a & 1) member[a] += r;
    }
    ASSERT_TRUE(env.log_partition().has_value());
    EXPECT_NEAR(*env.log_partition(), std::log(z), 1e-12) << n << " " << k;
    double total = 0.0;
    for (int64_t a = 0; a < n; ++a) {
      EXPECT_NEAR(env.inclusion_probabilities()[a], member[a] / z, 1e-12) << n << " " << k << " element " << a;
      total += env.inclusion_probabilities()[a];
    }
    EXPECT_NEAR(total, static_cast<double>(k), 1e-10);  // E|x| = k
  }
}

// the energies are fixed by the seed, in [0, 1); the papers' sizes build
TEST(SetsTest, EnergiesAndSizes) {
  auto a = make(30, 20, 3), b = make(30, 20, 3), c = make(30, 20, 4);
  EXPECT_TRUE(torch::equal(a.energies(), b.energies()));
  EXPECT_FALSE(torch::equal(a.energies(), c.energies()));
  EXPECT_GE(a.energies().min().item<double>(), 0.0);
  EXPECT_LT(a.energies().max().item<double>(), 1.0);
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{30, 20}, {80, 60}, {100, 80}}) {
    auto env = make(n, k);
    EXPECT_EQ(env.max_length(), k);
    EXPECT_FALSE(env.enumerable());
    EXPECT_TRUE(std::isfinite(*env.log_partition()));
    // log Z lies between the best and worst single set's log R plus log C(n, k)
    EXPECT_LT(*env.log_partition(), std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0));
  }
}

// masks: add any absent element until k are in, then only the exit; remove any present one
TEST(SetsTest, Masks) {
  auto env = make(4, 2);
  States s = env.initial_states(1, torch::kCPU);
  auto f = env.forward_mask(s);
  EXPECT_TRUE(torch::equal(f, torch::tensor({true, true, true, true, false}).unsqueeze(0)));
  EXPECT_FALSE(env.backward_mask(s).any().item<bool>());
  auto one = env.step(s, Actions{torch::tensor({2}), torch::zeros({1, 0})}).next;
  EXPECT_TRUE(torch::equal(env.forward_mask(one), torch::tensor({true, true, false, true, false}).unsqueeze(0)));
  auto two = env.step(one, Actions{torch::tensor({0}), torch::zeros({1, 0})}).next;
  EXPECT_TRUE(torch::equal(env.forward_mask(two), torch::tensor({false, false, false, false, true}).unsqueeze(0)));
  EXPECT_TRUE(torch::equal(env.backward_mask(two), torch::tensor({true, false, true, false}).unsqueeze(0)));
  EXPECT_NEAR(env.log_reward(two).item<double>(),
              -(env.energies()[0].item<double>() + env.energies()[2].item<double>()), 1e-6);
  auto back = env.backward_step(two, Actions{torch::tensor({0}), torch::zeros({1, 0})}).next;
  EXPECT_TRUE(torch::equal(back.discrete, one.discrete));
}

// forward-looking credits are -E(a) for each element added and 0 for the exit; they sum to log R
TEST(SetsTest, ForwardLookingCreditsAreElementEnergies) {
  auto env = make(10, 4);
  EstimatorOptions eo;
  eo.hidden = 16;
  auto gen = make_generator(1, torch::kCPU);
  Estimators est(env, eo, gen, torch::kCPU);
  auto sgen = make_generator(2, torch::kCPU);
  auto tr = rollout(env, *est.policy, 8, SamplerOptions{}, sgen, torch::kCPU);
  ScoreOptions o;
  o.credit = Credit::kForwardLooking;
  auto in = score_trajectories(env, est, tr, o);
  auto energies = env.energies().to(torch::kFloat32);
  for (int64_t b = 0; b < 8; ++b) {
    for (int64_t t = 0; t < 4; ++t) {
      const int64_t a = tr.action_component[t][b].item<int64_t>();
      EXPECT_NEAR(in.local_credit[t][b].item<double>(), -energies[a].item<double>(), 1e-6);
    }
    EXPECT_NEAR(in.local_credit[4][b].item<double>(), 0.0, 1e-6);  // the exit
    EXPECT_NEAR(in.local_credit.select(1, b).sum().item<double>(), tr.log_reward[b].item<double>(), 1e-5);
  }
}

// small universes enumerate every subset in a topological order: exact evaluation works, and
// the uniform policy's exact log Z error is that of the uniform sampler
TEST(SetsTest, SmallUniverseEnumerates) {
  auto env = make(6, 3);
  ASSERT_TRUE(env.enumerable());
  EXPECT_EQ(env.num_states(), 1 + 6 + 15 + 20);  // the subsets of at most 3 elements
  auto all = env.enumerate_states(torch::kCPU);
  EXPECT_TRUE(torch::equal(env.state_index(all), torch::arange(42)));
  EXPECT_TRUE(all.discrete.sum(1).le(3).all().item<bool>());
  StateTable table(env, torch::kCPU);
  EXPECT_TRUE(table.child.ge(torch::arange(42).unsqueeze(1)).all().item<bool>());  // children come later
  EXPECT_TRUE(table.forward_mask.any(1).all().item<bool>());                       // every state can move
  // the uniform policy's terminating distribution sums to 1 over the sets of exactly 3
  auto lp = masked_log_softmax(torch::zeros({42, 7}, torch::kFloat64), table.forward_mask);
  auto p = terminating_distribution(table, lp);
  double total = 0.0;
  for (int64_t s = 0; s < 42; ++s) {
    if (all.discrete[s].sum().item<int64_t>() != 3) {
      EXPECT_EQ(p[s], 0.0) << s;
    }
    total += p[s];
  }
  EXPECT_NEAR(total, 1.0, 1e-12);
  EstimatorOptions eo;
  eo.hidden = 8;
  auto gen = make_generator(1, torch::kCPU);
  Estimators est(env, eo, gen, torch::kCPU);
  auto m = exact_metrics(table, est);
  EXPECT_GT(m.tv, 0.0);
  EXPECT_LT(m.tv, 1.0);
}

// 20,000 importance samples suffice here: the uniform reference sampler's weights over sets
// are light-tailed
// the inclusion error of a batch of samples: mean and max |frequency - P(a in x)| by hand
TEST(SetsTest, SampleMetrics) {
  auto env = make(6, 3);
  ASSERT_TRUE(env.has_sample_metrics());
  auto x = torch::tensor({1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0}, torch::kInt64).view({2, 6});
  States terminal{x, torch::zeros({2, 0}), torch::zeros({2}, torch::kBool), torch::zeros({2}, torch::kBool)};
  const std::vector<double> freq{1, 1, 0.5, 0.5, 0, 0};
  double sum = 0.0, max = 0.0;
  for (int64_t a = 0; a < 6; ++a) {
    const double d = std::fabs(freq[a] - env.inclusion_probabilities()[a]);
    sum += d;
    max = std::max(max, d);
  }
  auto m = env.sample_metrics(terminal);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].first, "inclusion_error");
  EXPECT_NEAR(m[0].second, sum / 6, 1e-12);
  EXPECT_EQ(m[1].first, "inclusion_max_error");
  EXPECT_NEAR(m[1].second, max, 1e-12);
}

// the K best distinct terminal states: duplicates count once, the worst is evicted
TEST(SetsTest, TopKKeepsTheBestDistinctStates) {
  TopK top(2);
  EXPECT_TRUE(std::isnan(top.mean_reward()));
  auto x = torch::tensor({0, 1, 1, 0, 0, 1, 1, 1}, torch::kInt64).view({4, 2});
  top.add(x, torch::tensor({std::log(0.5), std::log(0.25), std::log(0.5), std::log(1.0)}, torch::kFloat64));
  EXPECT_EQ(top.size(), 2);
  EXPECT_NEAR(top.mean_reward(), 0.75, 1e-12);  // {1,1}: 1 and {0,1}: 0.5
  top.add(torch::tensor({1, 0}, torch::kInt64).view({1, 2}), torch::tensor({std::log(0.75)}, torch::kFloat64));
  EXPECT_NEAR(top.mean_reward(), 0.875, 1e-12);  // {0,1} evicted
  top.add(torch::tensor({0, 0}, torch::kInt64).view({1, 2}), torch::tensor({std::log(0.1)}, torch::kFloat64));
  EXPECT_NEAR(top.mean_reward(), 0.875, 1e-12);  // too small to enter
}

TEST(SetsTest, PassesTheChecker) {
  CheckOptions o;
  o.is_samples = 20000;
  for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{8, 3}, {30, 20}}) {
    auto report = check_env(make(n, k), o);
    EXPECT_TRUE(report.passed()) << report.text();
  }
}

TEST(SetsTest, SizeAboveUniverseIsAConfigError) {
  SetsOptions o;
  o.universe = 5;
  o.size = 6;
  try {
    SetsEnv env(o);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "env.size = 6: expected at most env.universe = 5");
  }
}

}  // namespace
}  // namespace gfn

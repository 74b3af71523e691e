#include "core/evaluation.h"

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/tabular.h"
#include "envs/hypergrid.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

using testing::GridSetup;
using testing::make_grid;
using testing::small_net;

// Brute force: walks every trajectory s0 -> ... -> x -> sf recursively on host coordinates,
// multiplying p_F along the path, and adds the path probability to p(x) at the exit.
struct BruteForce {
  int64_t n, h;
  const double* lpf;  // [S, n+1] row-major
  std::vector<double> p;

  int64_t index(const std::vector<int64_t>& x) const {
    int64_t i = 0;
    for (auto v : x) i = i * h + v;
    return i;
  }
  void walk(std::vector<int64_t>& x, double prob) {
    const int64_t s = index(x);
    p[s] += prob * std::exp(lpf[s * (n + 1) + n]);  // the exit, always available
    for (int64_t d = 0; d < n; ++d) {
      if (x[d] == h - 1) continue;
      const double q = prob * std::exp(lpf[s * (n + 1) + d]);
      ++x[d];
      walk(x, q);
      --x[d];
    }
  }
};

// The DP terminating distribution equals the brute-force sum over all paths (float64, 1e-12).
TEST(EvaluationTest, DpMatchesBruteForce) {
  for (auto [n, h] : std::vector<std::pair<int64_t, int64_t>>{{2, 3}, {3, 2}, {1, 5}, {2, 4}}) {
    GridSetup g(n, h, static_cast<uint64_t>(10 * n + h), small_net(16, torch::kFloat64));
    StateTable table(g.env, torch::kCPU);
    auto log_pf = evaluate_table(table, *g.est.policy).log_pf.detach().contiguous();
    ASSERT_EQ(log_pf.scalar_type(), torch::kFloat64);
    auto dp = terminating_distribution(table, log_pf);

    BruteForce bf{n, h, log_pf.data_ptr<double>(), std::vector<double>(table.size(), 0.0)};
    std::vector<int64_t> x(n, 0);
    bf.walk(x, 1.0);
    ASSERT_EQ(dp.size(), bf.p.size());
    double total = 0.0;
    for (size_t s = 0; s < dp.size(); ++s) {
      EXPECT_NEAR(dp[s], bf.p[s], 1e-12) << "n=" << n << " H=" << h << " s=" << s;
      EXPECT_GT(dp[s], 0.0);
      total += dp[s];
    }
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
}

// The DP distribution sums to 1 on a larger grid too, and exact_metrics reports its distances.
TEST(EvaluationTest, DpSumsToOneAndMetrics) {
  GridSetup g(2, 8, 3, small_net(16, torch::kFloat64));
  StateTable table(g.env, torch::kCPU);
  auto p = terminating_distribution(table, evaluate_table(table, *g.est.policy).log_pf);
  EXPECT_NEAR(std::accumulate(p.begin(), p.end(), 0.0), 1.0, 1e-12);
  auto m = exact_metrics(table, g.est);
  double log_z = 0.0;
  auto pi = target_distribution(table, &log_z);
  EXPECT_NEAR(m.tv, total_variation(p, pi), 1e-12);
  EXPECT_NEAR(m.jsd, jensen_shannon(p, pi), 1e-12);
  EXPECT_NEAR(m.kl, kl_divergence(pi, p), 1e-12);
  EXPECT_GT(m.tv, 0.01);  // an untrained policy is far from pi
  EXPECT_EQ(m.log_z, 0.0);  // init_log_z
  EXPECT_DOUBLE_EQ(m.log_z_exact, log_z);
  EXPECT_DOUBLE_EQ(m.log_z_error, std::fabs(log_z));
}

// Distances on hand-computed examples, including an infinite KL when q misses p's support.
TEST(EvaluationTest, DistancesByHand) {
  std::vector<double> p{0.5, 0.5, 0.0}, q{0.25, 0.25, 0.5};
  EXPECT_NEAR(total_variation(p, q), 0.5, 1e-15);
  EXPECT_NEAR(total_variation(p, p), 0.0, 1e-15);
  EXPECT_NEAR(kl_divergence(p, q), std::log(2.0), 1e-15);
  EXPECT_EQ(kl_divergence(q, p), std::numeric_limits<double>::infinity());
  EXPECT_NEAR(kl_divergence(q, q), 0.0, 1e-15);
  // m = (3/8, 3/8, 1/4): KL(p||m) = log(4/3), KL(q||m) = 1/2 log(4/3)
  EXPECT_NEAR(jensen_shannon(p, q), 0.75 * std::log(4.0 / 3.0), 1e-15);
  EXPECT_NEAR(jensen_shannon(q, p), 0.75 * std::log(4.0 / 3.0), 1e-15);
  // disjoint supports: TV 1, JSD log 2
  std::vector<double> a{1.0, 0.0}, b{0.0, 1.0};
  EXPECT_NEAR(total_variation(a, b), 1.0, 1e-15);
  EXPECT_NEAR(jensen_shannon(a, b), std::log(2.0), 1e-15);
  EXPECT_EQ(kl_divergence(a, b), std::numeric_limits<double>::infinity());
  // KL(p||q) on a full-support pair
  std::vector<double> u{0.2, 0.8}, v{0.5, 0.5};
  EXPECT_NEAR(kl_divergence(u, v), 0.2 * std::log(0.4) + 0.8 * std::log(1.6), 1e-15);
}

// target_distribution is R/Z over the states, and its log Z is the env's closed form.
TEST(EvaluationTest, TargetDistribution) {
  for (auto [n, h] : std::vector<std::pair<int64_t, int64_t>>{{2, 8}, {3, 5}}) {
    auto env = make_grid(n, h);
    StateTable table(env, torch::kCPU);
    double log_z = 0.0;
    auto pi = target_distribution(table, &log_z);
    EXPECT_NEAR(log_z, *env.log_partition(), 1e-5);  // log R is stored in float32
    const double z = std::exp(*env.log_partition());
    auto x = table.states.discrete;
    double total = 0.0;
    for (int64_t s = 0; s < table.size(); ++s) {
      std::vector<int64_t> coords(n);
      for (int64_t d = 0; d < n; ++d) coords[d] = x[s][d].item<int64_t>();
      EXPECT_NEAR(pi[s], env.reward(coords) / z, 1e-6 * pi[s]) << "s=" << s;
      total += pi[s];
    }
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
}

// EmpiricalL1 keeps only the last `window` indices; its L1 is the mean over states of |p_hat - pi|.
TEST(EvaluationTest, EmpiricalL1Window) {
  EmpiricalL1 l1(4, 3);
  std::vector<double> uniform(4, 0.25), pi{0.1, 0.2, 0.3, 0.4};
  EXPECT_EQ(l1.count(), 0);
  EXPECT_NEAR(l1.l1(pi), 0.25, 1e-15);  // no visits: the mean of pi
  l1.add(torch::tensor({0, 1, 2}, torch::kInt64));
  EXPECT_EQ(l1.count(), 3);
  // p_hat = (1/3, 1/3, 1/3, 0): |.1-1/3| + |.2-1/3| + |.3-1/3| + .4 = 0.8
  EXPECT_NEAR(l1.l1(pi), 0.8 / 4, 1e-12);
  l1.add(torch::tensor({3, 3}, torch::kInt64));
  EXPECT_EQ(l1.count(), 3);
  // the last three are {2, 3, 3}: p_hat = (0, 0, 1/3, 2/3); L1 = (.1 + .2 + 1/30 + 4/15) / 4
  EXPECT_NEAR(l1.l1(pi), 0.6 / 4, 1e-12);
  // each count through a one-hot target: sum |p_hat - e_i| = 2 (1 - p_hat_i)
  std::vector<double> expect{0.0, 0.0, 1.0 / 3.0, 2.0 / 3.0};
  for (int64_t i = 0; i < 4; ++i) {
    std::vector<double> e(4, 0.0);
    e[i] = 1.0;
    EXPECT_NEAR(1.0 - l1.l1(e) * 4 / 2, expect[i], 1e-12) << "state " << i;
  }
  // a batch longer than the window keeps its tail
  EmpiricalL1 w(4, 3);
  w.add(torch::tensor({0, 0, 1, 2, 3}, torch::kInt64));
  EXPECT_EQ(w.count(), 3);
  EXPECT_NEAR(w.l1(uniform), (0.25 + 3 * (1.0 / 3.0 - 0.25)) / 4, 1e-12);
}

}  // namespace
}  // namespace gfn

// Exact optimal transport: solve_assignment against brute force over all permutations (n <= 7)
// and against a textbook O(n^3) Hungarian method (n up to 300, random, integer and tied costs);
// W2^2 of identical and shuffled clouds (0), of 1-D clouds (the sorted matching), of a translated
// cloud (|shift|^2); float32 and float64 inputs agree; invalid inputs throw.
#include "measures/transport.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace gfn {
namespace {

// The minimum of sum_i cost[i][p(i)] over all permutations p, by enumeration.
double brute_force_minimum(const std::vector<double>& cost, int64_t n) {
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += cost[i * n + perm[i]];
    best = std::min(best, sum);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

// A reference solver written independently of the library's: the Hungarian method with row
// potentials u and column potentials v (1-based, column 0 the virtual start), O(n^3).
double reference_minimum(const std::vector<double>& cost, int64_t n) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0), v(n + 1, 0);
  std::vector<int64_t> match(n + 1, 0), way(n + 1, 0);  // match[j]: the row of column j
  for (int64_t row = 1; row <= n; ++row) {
    match[0] = row;
    int64_t j0 = 0;
    std::vector<double> minv(n + 1, inf);
    std::vector<char> used(n + 1, 0);
    do {
      used[j0] = 1;
      const int64_t i0 = match[j0];
      double delta = inf;
      int64_t j1 = 0;
      for (int64_t j = 1; j <= n; ++j) {
        if (used[j]) continue;
        const double cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int64_t j = 0; j <= n; ++j) {
        if (used[j]) {
          u[match[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (match[j0] != 0);
    do {
      const int64_t j1 = way[j0];
      match[j0] = match[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  double sum = 0;
  for (int64_t j = 1; j <= n; ++j) sum += cost[(match[j] - 1) * n + (j - 1)];
  return sum;
}

// Checks that `cols` is a permutation of 0..n-1 and returns its cost.
double assignment_cost(const std::vector<double>& cost, int64_t n, const std::vector<int64_t>& cols) {
  EXPECT_EQ(static_cast<int64_t>(cols.size()), n);
  std::vector<char> seen(n, 0);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_GE(cols[i], 0);
    EXPECT_LT(cols[i], n);
    if (cols[i] < 0 || cols[i] >= n) return std::numeric_limits<double>::quiet_NaN();
    EXPECT_FALSE(seen[cols[i]]) << "column " << cols[i] << " assigned twice";
    seen[cols[i]] = 1;
    sum += cost[i * n + cols[i]];
  }
  return sum;
}

// n x n costs: uniform reals, small integers (many ties), or one constant.
std::vector<double> random_costs(int64_t n, int kind, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> uniform(-5.0, 20.0);
  std::uniform_int_distribution<int> small(0, 3);
  std::vector<double> cost(n * n);
  for (auto& c : cost) c = kind == 0 ? uniform(rng) : kind == 1 ? small(rng) : 2.5;
  return cost;
}

TEST(TransportTest, AssignmentMatchesBruteForce) {
  std::mt19937_64 rng(12345);
  for (int64_t n = 1; n <= 7; ++n) {
    for (int seed = 0; seed < 60; ++seed) {
      const int kind = seed % 3;
      const auto cost = random_costs(n, kind, rng);
      double total = -1;
      const auto cols = solve_assignment(cost, n, &total);
      const double best = brute_force_minimum(cost, n);
      EXPECT_NEAR(total, best, 1e-12) << "n = " << n << ", seed " << seed;
      EXPECT_NEAR(assignment_cost(cost, n, cols), best, 1e-12) << "n = " << n << ", seed " << seed;
    }
  }
}

TEST(TransportTest, AssignmentMatchesReferenceHungarian) {
  std::mt19937_64 rng(777);
  for (int64_t n : {20, 64, 150, 300}) {
    for (int kind = 0; kind < 2; ++kind) {
      const auto cost = random_costs(n, kind, rng);
      double total = -1;
      const auto cols = solve_assignment(cost, n, &total);
      const double reference = reference_minimum(cost, n);
      EXPECT_NEAR(total, reference, 1e-9 * n) << "n = " << n << ", kind " << kind;
      EXPECT_NEAR(assignment_cost(cost, n, cols), total, 1e-9 * n);
    }
  }
}

TEST(TransportTest, EmptyAndTrivialAssignments) {
  double total = -1;
  EXPECT_TRUE(solve_assignment({}, 0, &total).empty());
  EXPECT_EQ(total, 0.0);
  EXPECT_EQ(solve_assignment({4.5}, 1, &total), std::vector<int64_t>{0});
  EXPECT_EQ(total, 4.5);
}

// the point clouds of a squared-distance problem, and W2^2 against the reference solver
TEST(TransportTest, PointCloudsMatchReferenceHungarian) {
  auto gen = at::detail::createCPUGenerator(3);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  for (int64_t d : {1, 2, 5}) {
    const int64_t n = 120;
    auto a = torch::randn({n, d}, gen, f64), b = torch::randn({n, d}, gen, f64) * 1.5 + 0.3;
    auto cost_t = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(2).contiguous();  // [n, n]
    std::vector<double> cost(cost_t.data_ptr<double>(), cost_t.data_ptr<double>() + n * n);
    EXPECT_NEAR(squared_wasserstein2(a, b), reference_minimum(cost, n) / n, 1e-10) << "d = " << d;
  }
}

TEST(TransportTest, IdenticalAndShuffledCloudsAreAtZero) {
  auto gen = at::detail::createCPUGenerator(4);
  auto a = torch::randn({300, 3}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  EXPECT_EQ(squared_wasserstein2(a, a), 0.0);
  auto shuffled = a.index_select(0, torch::randperm(300, gen, torch::TensorOptions().dtype(torch::kInt64)));
  EXPECT_EQ(squared_wasserstein2(a, shuffled), 0.0);
}

// in one dimension the monotone (sorted) matching is optimal
TEST(TransportTest, OneDimensionalCloudsMatchSortedPairs) {
  auto gen = at::detail::createCPUGenerator(5);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  for (int64_t n : {1, 2, 17, 500}) {
    auto a = torch::randn({n, 1}, gen, f64);
    auto b = torch::rand({n, 1}, gen, f64) * 4 - 1;
    auto sorted_a = std::get<0>(a.squeeze(1).sort()), sorted_b = std::get<0>(b.squeeze(1).sort());
    const double expected = (sorted_a - sorted_b).pow(2).mean().item<double>();
    EXPECT_NEAR(squared_wasserstein2(a, b), expected, 1e-12 * std::max(1.0, expected)) << "n = " << n;
  }
}

// sum_i |a_i - a_sigma(i) - s|^2 = sum_i |a_i - a_sigma(i)|^2 + n |s|^2: the identity is optimal
TEST(TransportTest, TranslatedCloudCostsTheShift) {
  auto gen = at::detail::createCPUGenerator(6);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  for (int64_t d : {1, 2, 8, 32}) {
    auto a = torch::randn({400, d}, gen, f64);
    auto shift = torch::randn({1, d}, gen, f64) * 0.7;
    const double expected = shift.pow(2).sum().item<double>();
    EXPECT_NEAR(squared_wasserstein2(a, a + shift), expected, 1e-12 * expected) << "d = " << d;
    EXPECT_NEAR(squared_wasserstein2(a + shift, a), expected, 1e-12 * expected) << "d = " << d;
  }
}

TEST(TransportTest, FloatDtypesAgree) {
  auto gen = at::detail::createCPUGenerator(7);
  auto a = torch::randn({200, 4}, gen, torch::TensorOptions().dtype(torch::kFloat32));
  auto b = torch::randn({200, 4}, gen, torch::TensorOptions().dtype(torch::kFloat32)) + 1;
  const double w32 = squared_wasserstein2(a, b);
  EXPECT_EQ(w32, squared_wasserstein2(a.to(torch::kFloat64), b.to(torch::kFloat64)));
  // W2^2 >= |mean(a) - mean(b)|^2 (Jensen), here about |(1, 1, 1, 1)|^2 = 4
  const double mean_gap = (a.to(torch::kFloat64).mean(0) - b.to(torch::kFloat64).mean(0)).pow(2).sum().item<double>();
  EXPECT_GE(w32, mean_gap);
  EXPECT_GT(mean_gap, 3.0);
}

TEST(TransportTest, InvalidInputsThrow) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto a = torch::zeros({5, 2}, f64);
  EXPECT_THROW(squared_wasserstein2(a, torch::zeros({4, 2}, f64)), std::invalid_argument);
  EXPECT_THROW(squared_wasserstein2(a, torch::zeros({5, 3}, f64)), std::invalid_argument);
  EXPECT_THROW(squared_wasserstein2(torch::zeros({0, 2}, f64), torch::zeros({0, 2}, f64)), std::invalid_argument);
  EXPECT_THROW(squared_wasserstein2(torch::zeros({5}, f64), torch::zeros({5}, f64)), std::invalid_argument);
  EXPECT_THROW(squared_wasserstein2(a.to(torch::kInt64), a.to(torch::kInt64)), std::invalid_argument);
  auto bad = a.clone();
  bad[2][1] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(squared_wasserstein2(a, bad), std::invalid_argument);
  EXPECT_THROW(solve_assignment({1, 2, 3}, 2), std::invalid_argument);
  EXPECT_THROW(solve_assignment({}, -1), std::invalid_argument);
  EXPECT_THROW(solve_assignment({1, std::numeric_limits<double>::infinity(), 3, 4}, 2), std::invalid_argument);
  try {
    squared_wasserstein2(a, torch::zeros({4, 2}, f64));
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("5 x 2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gfn

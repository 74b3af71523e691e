// The exact linear-Gaussian DAG posterior: DAG counts (Robinson 1977) and the enumeration against
// brute-force filtering; is_acyclic against depth-first search; the closed-form marginal
// likelihoods and weight posteriors against quadrature of log_joint (d = 2, one weight; d = 3,
// two weights into one node; the trapezoid rule is exact to rounding for these Gaussians),
// against the direct n x n Gaussian density, and against finite differences of log_joint (the
// posterior mean is its stationary point, the precision its negated Hessian); log Z, p(G | D),
// edge marginals and top graphs against sums over the graphs; edge_log_odds against the exact
// prior-only posterior; invalid arguments throw naming the argument and value.
#include "measures/dag_posterior.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <gtest/gtest.h>

namespace gfn {
namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;

// Data X [n, d] from a seeded chain-like linear-Gaussian network (X_j = 0.8 X_{j-1} + noise)
// and its model with the given variances.
struct Data {
  Eigen::MatrixXd x;
  LinearGaussianModel model;
};

Data make_data(int64_t d, int64_t n, uint64_t seed, double noise_variance, double weight_variance) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Data out;
  out.x.resize(n, d);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < d; ++j) out.x(r, j) = (j > 0 ? 0.8 * out.x(r, j - 1) : 0.0) + normal(gen);
  const Eigen::MatrixXd s = out.x.transpose() * out.x;  // symmetric: either storage order
  out.model = {d, n, std::vector<double>(s.data(), s.data() + d * d), noise_variance, weight_variance, 0.0};
  return out;
}

// Whether a directed graph (bit i*d + j for i -> j, diagonal included) has a cycle, by DFS.
bool has_cycle_dfs(uint64_t adjacency, int64_t d) {
  std::vector<int> color(d, 0);  // 0 unvisited, 1 on the stack, 2 done
  std::function<bool(int64_t)> visit = [&](int64_t i) {
    color[i] = 1;
    for (int64_t j = 0; j < d; ++j) {
      if (!((adjacency >> (i * d + j)) & 1)) continue;
      if (color[j] == 1 || (color[j] == 0 && visit(j))) return true;
    }
    color[i] = 2;
    return false;
  };
  for (int64_t i = 0; i < d; ++i)
    if (color[i] == 0 && visit(i)) return true;
  return false;
}

// The parent set of node j in an adjacency bitmask.
uint32_t parents_of(uint64_t adjacency, int64_t d, int64_t j) {
  uint32_t pa = 0;
  for (int64_t i = 0; i < d; ++i)
    if ((adjacency >> (i * d + j)) & 1) pa |= 1u << i;
  return pa;
}

// log_joint at a bitmask graph with the given weights (d*d).
double log_joint_at(const LinearGaussianModel& model, uint64_t adjacency, const std::vector<double>& weights) {
  std::vector<uint8_t> a(model.d * model.d);
  for (int64_t c = 0; c < model.d * model.d; ++c) a[c] = (adjacency >> c) & 1;
  return log_joint(model, a, weights);
}

// Expects f to throw std::invalid_argument with a message holding both parts.
template <typename F>
void expect_invalid(F f, const std::string& part1, const std::string& part2) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one naming " << part1 << " and " << part2;
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(part1), std::string::npos) << what;
    EXPECT_NE(what.find(part2), std::string::npos) << what;
  }
}

TEST(DagPosteriorTest, DagCountsFollowRobinson) {
  const std::vector<size_t> counts = {1, 1, 3, 25, 543, 29281, 3781503};
  for (int64_t d = 0; d <= 6; ++d) EXPECT_EQ(enumerate_dags(d).size(), counts[d]) << "d = " << d;
}

TEST(DagPosteriorTest, EnumerationEqualsFilteredMasks) {
  for (int64_t d = 1; d <= 5; ++d) {
    // every off-diagonal mask, kept if DFS finds no cycle, in (edge count, mask) order
    std::vector<int64_t> cells;
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = 0; j < d; ++j)
        if (i != j) cells.push_back(i * d + j);
    std::vector<uint64_t> expected;
    for (uint64_t m = 0; m < (uint64_t{1} << cells.size()); ++m) {
      uint64_t a = 0;
      for (size_t c = 0; c < cells.size(); ++c)
        if ((m >> c) & 1) a |= uint64_t{1} << cells[c];
      if (!has_cycle_dfs(a, d)) expected.push_back(a);
    }
    std::sort(expected.begin(), expected.end(), [](uint64_t a, uint64_t b) {
      const int ca = __builtin_popcountll(a), cb = __builtin_popcountll(b);
      return ca < cb || (ca == cb && a < b);
    });
    EXPECT_EQ(enumerate_dags(d), expected) << "d = " << d;
  }
}

TEST(DagPosteriorTest, IsAcyclicMatchesDepthFirstSearch) {
  // every mask at d = 3, self-loops included
  for (uint64_t a = 0; a < 512; ++a) EXPECT_EQ(is_acyclic(a, 3), !has_cycle_dfs(a, 3)) << "mask " << a;
  // random masks at d = 5 of several densities, and d = 8 (all 64 bits used)
  std::mt19937_64 gen(7);
  int64_t acyclic = 0;
  for (double density : {0.05, 0.1, 0.2, 0.4}) {
    std::bernoulli_distribution bit(density);
    for (int trial = 0; trial < 5000; ++trial) {
      uint64_t a5 = 0, a8 = 0;
      for (int c = 0; c < 25; ++c) a5 |= static_cast<uint64_t>(bit(gen)) << c;
      for (int c = 0; c < 64; ++c) a8 |= static_cast<uint64_t>(bit(gen)) << c;
      EXPECT_EQ(is_acyclic(a5, 5), !has_cycle_dfs(a5, 5)) << "mask " << a5;
      EXPECT_EQ(is_acyclic(a8, 8), !has_cycle_dfs(a8, 8)) << "mask " << a8;
      acyclic += is_acyclic(a5, 5);
    }
  }
  EXPECT_GT(acyclic, 2000);  // both outcomes well represented
  EXPECT_LT(acyclic, 18000);
}

TEST(DagPosteriorTest, ClosedFormsMatchQuadratureAtTwoNodes) {
  Data data = make_data(2, 5, 11, 0.6, 1.7);
  data.model.edge_log_odds = 0.3;
  const LinearGaussianModel& model = data.model;
  const DagPosterior exact(model);
  ASSERT_EQ(exact.num_graphs(), 3);
  for (int64_t i : {0, 1}) {
    const int64_t j = 1 - i;
    const uint64_t edge = uint64_t{1} << (i * 2 + j);
    // trapezoid rule on exp(log_joint) over theta_ij in [-30, 30], step 1e-3
    const double h = 1e-3;
    std::vector<double> theta, log_r;
    for (int64_t t = -30000; t <= 30000; ++t) {
      std::vector<double> w(4, 0.0);
      w[i * 2 + j] = t * h;
      theta.push_back(t * h);
      log_r.push_back(log_joint_at(model, edge, w));
    }
    const double top = *std::max_element(log_r.begin(), log_r.end());
    EXPECT_LT(std::max(log_r.front(), log_r.back()) - top, -50.0);  // the tails are negligible
    double z = 0, m1 = 0, m2 = 0;
    for (size_t t = 0; t < theta.size(); ++t) {
      const double f = std::exp(log_r[t] - top) * h;
      z += f;
      m1 += f * theta[t];
      m2 += f * theta[t] * theta[t];
    }
    const double mean = m1 / z, variance = m2 / z - mean * mean;
    const int64_t k = exact.index_of(edge);
    ASSERT_GE(k, 0);
    EXPECT_NEAR(exact.log_marginal(k), top + std::log(z), 1e-9) << i << " -> " << j;
    // the weight posterior, from both entry points
    const WeightPosterior post = node_weight_posterior(model, j, 1u << i);
    ASSERT_EQ(post.parents, std::vector<int64_t>{i});
    EXPECT_NEAR(post.mean[0], mean, 1e-9);
    EXPECT_NEAR(post.covariance[0], variance, 1e-9);
    std::vector<double> mean_k, variance_k;
    exact.weight_moments(k, &mean_k, &variance_k);
    EXPECT_NEAR(mean_k[i * 2 + j], mean, 1e-9);
    EXPECT_NEAR(variance_k[i * 2 + j], variance, 1e-9);
    EXPECT_EQ(mean_k[j * 2 + i], 0.0);
    EXPECT_EQ(variance_k[j * 2 + i], 0.0);
  }
  // the empty graph: the plain Gaussian likelihood of every entry, no prior term
  double direct = 0;
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 2; ++c) direct += -0.5 * (kLog2Pi + std::log(0.6)) - 0.5 * data.x(r, c) * data.x(r, c) / 0.6;
  EXPECT_NEAR(exact.log_marginal(exact.index_of(0)), direct, 1e-10);
  EXPECT_NEAR(log_joint_at(model, 0, std::vector<double>(4, 5.0)), direct, 1e-10);  // weights off edges ignored
}

TEST(DagPosteriorTest, TwoParentsMatchQuadrature) {
  // the v-structure 0 -> 2 <- 1 at d = 3: two weights into one node, a 2-D trapezoid rule
  const Data data = make_data(3, 6, 5, 0.8, 1.3);
  const LinearGaussianModel& model = data.model;
  const uint64_t graph = (uint64_t{1} << 2) | (uint64_t{1} << 5);
  const double h = 0.02;
  const int64_t half = 350;  // [-7, 7]^2
  std::vector<double> log_r;
  std::vector<double> w(9, 0.0);
  for (int64_t a = -half; a <= half; ++a) {
    for (int64_t b = -half; b <= half; ++b) {
      w[2] = a * h;
      w[5] = b * h;
      log_r.push_back(log_joint_at(model, graph, w));
    }
  }
  const double top = *std::max_element(log_r.begin(), log_r.end());
  double z = 0, ma = 0, mb = 0, maa = 0, mbb = 0, mab = 0, edge_max = -1e300;
  int64_t t = 0;
  for (int64_t a = -half; a <= half; ++a) {
    for (int64_t b = -half; b <= half; ++b, ++t) {
      if (std::abs(a) == half || std::abs(b) == half) edge_max = std::max(edge_max, log_r[t]);
      const double f = std::exp(log_r[t] - top) * h * h, x = a * h, y = b * h;
      z += f;
      ma += f * x;
      mb += f * y;
      maa += f * x * x;
      mbb += f * y * y;
      mab += f * x * y;
    }
  }
  EXPECT_LT(edge_max - top, -40.0);
  ma /= z;
  mb /= z;
  const DagPosterior exact(model);
  EXPECT_NEAR(exact.log_marginal(exact.index_of(graph)), top + std::log(z), 1e-9);
  const WeightPosterior post = node_weight_posterior(model, 2, 0b011u);
  ASSERT_EQ(post.parents, (std::vector<int64_t>{0, 1}));
  EXPECT_NEAR(post.mean[0], ma, 1e-9);
  EXPECT_NEAR(post.mean[1], mb, 1e-9);
  EXPECT_NEAR(post.covariance[0], maa / z - ma * ma, 1e-9);
  EXPECT_NEAR(post.covariance[3], mbb / z - mb * mb, 1e-9);
  EXPECT_NEAR(post.covariance[1], mab / z - ma * mb, 1e-9);
  EXPECT_EQ(post.covariance[1], post.covariance[2]);
}

TEST(DagPosteriorTest, NodeLogMarginalEqualsDirectDensity) {
  const double noise = 0.7, prior = 1.9;
  const Data data = make_data(4, 7, 3, noise, prior);
  const int64_t n = 7;
  int64_t checked = 0;
  for (int64_t j = 0; j < 4; ++j) {
    for (uint32_t pa = 0; pa < 16; ++pa) {
      if ((pa >> j) & 1) continue;
      // log N(x_j; 0, sigma^2 I + sigma_t^2 X_P X_P^T), n x n
      Eigen::MatrixXd cov = noise * Eigen::MatrixXd::Identity(n, n);
      for (int64_t i = 0; i < 4; ++i)
        if ((pa >> i) & 1) cov += prior * data.x.col(i) * data.x.col(i).transpose();
      const Eigen::LLT<Eigen::MatrixXd> llt(cov);
      const Eigen::VectorXd xj = data.x.col(j);
      const double log_det = 2.0 * llt.matrixL().toDenseMatrix().diagonal().array().log().sum();
      const double direct = -0.5 * (n * kLog2Pi + log_det + xj.dot(llt.solve(xj)));
      EXPECT_NEAR(node_log_marginal(data.model, j, pa), direct, 1e-10) << "j = " << j << ", parents " << pa;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 32);
}

TEST(DagPosteriorTest, WeightPosteriorIsTheStationaryPointOfLogJoint) {
  // log_joint is quadratic in theta_j: zero gradient at the posterior mean, Hessian -Lambda
  const Data data = make_data(4, 7, 9, 0.7, 1.9);
  const LinearGaussianModel& model = data.model;
  struct Case { uint64_t graph; int64_t j; };
  // {0, 1, 2} -> 3 with 0 -> 1; {0, 3} -> 2 with 1 -> 0
  const std::vector<Case> cases = {{(1u << 3) | (1u << 7) | (1u << 11) | (1u << 1), 3},
                                   {(1u << 2) | (1u << 14) | (1u << 4), 2}};
  for (const Case& c : cases) {
    ASSERT_TRUE(is_acyclic(c.graph, 4));
    const WeightPosterior post = node_weight_posterior(model, c.j, parents_of(c.graph, 4, c.j));
    const int64_t k = static_cast<int64_t>(post.parents.size());
    std::vector<double> w(16, 0.0);
    for (int64_t cell = 0; cell < 16; ++cell)
      if ((c.graph >> cell) & 1) w[cell] = 0.37;  // other nodes' weights: arbitrary
    for (int64_t a = 0; a < k; ++a) w[post.parents[a] * 4 + c.j] = post.mean[a];
    const double step = 0.05;
    const auto f = [&](int64_t a, double da, int64_t b, double db) {
      std::vector<double> v = w;
      v[post.parents[a] * 4 + c.j] += da;
      v[post.parents[b] * 4 + c.j] += db;
      return log_joint_at(model, c.graph, v);
    };
    const Eigen::Map<const Eigen::MatrixXd> cov(post.covariance.data(), k, k);
    const Eigen::MatrixXd precision = cov.inverse();
    for (int64_t a = 0; a < k; ++a) {
      EXPECT_NEAR((f(a, step, a, 0) - f(a, -step, a, 0)) / (2 * step), 0.0, 1e-8);
      for (int64_t b = 0; b < k; ++b) {
        const double hessian =
            a == b ? (f(a, step, a, 0) - 2 * f(a, 0, a, 0) + f(a, -step, a, 0)) / (step * step)
                   : (f(a, step, b, step) - f(a, step, b, -step) - f(a, -step, b, step) + f(a, -step, b, -step)) /
                         (4 * step * step);
        EXPECT_NEAR(hessian, -precision(a, b), 1e-8) << a << ", " << b;
      }
    }
  }
}

TEST(DagPosteriorTest, PartitionPosteriorsAndEdgeMarginalsAreConsistent) {
  Data data = make_data(4, 20, 21, 1.0, 1.0);
  data.model.edge_log_odds = -0.4;
  const DagPosterior exact(data.model);
  const int64_t graphs = exact.num_graphs(), d = 4;
  ASSERT_EQ(graphs, 543);
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t k = 0; k < graphs; ++k) top = std::max(top, exact.log_marginal(k));
  double sum = 0, total = 0;
  std::vector<double> edges(d * d, 0.0);
  for (int64_t k = 0; k < graphs; ++k) {
    const uint64_t g = exact.graph(k);
    // the graph's score is its nodes' scores plus the prior
    double expected = __builtin_popcountll(g) * -0.4;
    for (int64_t j = 0; j < d; ++j) expected += node_log_marginal(data.model, j, parents_of(g, d, j));
    EXPECT_NEAR(exact.log_marginal(k), expected, 1e-9);
    EXPECT_EQ(exact.index_of(g), k);
    if (k > 0) {
      const uint64_t prev = exact.graph(k - 1);
      EXPECT_TRUE(__builtin_popcountll(prev) < __builtin_popcountll(g) ||
                  (__builtin_popcountll(prev) == __builtin_popcountll(g) && prev < g));
    }
    sum += std::exp(exact.log_marginal(k) - top);
    const double p = std::exp(exact.log_posterior(k));
    total += p;
    for (int64_t c = 0; c < d * d; ++c)
      if ((g >> c) & 1) edges[c] += p;
  }
  EXPECT_EQ(exact.graph(0), 0u);
  EXPECT_NEAR(exact.log_partition(), top + std::log(sum), 1e-12);
  EXPECT_NEAR(total, 1.0, 1e-12);
  for (int64_t c = 0; c < d * d; ++c) EXPECT_NEAR(exact.edge_marginals()[c], edges[c], 1e-12);
  for (int64_t i = 0; i < d; ++i) EXPECT_EQ(exact.edge_marginals()[i * d + i], 0.0);
  EXPECT_GT(exact.edge_marginals()[0 * d + 1] + exact.edge_marginals()[1 * d + 0], 0.5);  // the data's 0 - 1 link
  // not DAGs: a 2-cycle, a self-loop, a bit beyond d*d
  EXPECT_EQ(exact.index_of((1u << 1) | (1u << 4)), -1);
  EXPECT_EQ(exact.index_of(1u << 5), -1);
  EXPECT_EQ(exact.index_of(uint64_t{1} << 16), -1);
  // the top graphs: the most probable, in order
  const std::vector<int64_t> best = exact.top_graphs(5);
  ASSERT_EQ(best.size(), 5u);
  std::vector<double> sorted;
  for (int64_t k = 0; k < graphs; ++k) sorted.push_back(exact.log_marginal(k));
  std::sort(sorted.rbegin(), sorted.rend());
  for (int64_t r = 0; r < 5; ++r) EXPECT_EQ(exact.log_marginal(best[r]), sorted[r]);
  EXPECT_EQ(static_cast<int64_t>(exact.top_graphs(1000).size()), graphs);
  EXPECT_TRUE(exact.top_graphs(0).empty());
  // the weight moments of the best graph are its nodes' posteriors
  std::vector<double> mean, variance;
  exact.weight_moments(best[0], &mean, &variance);
  const uint64_t g = exact.graph(best[0]);
  for (int64_t j = 0; j < d; ++j) {
    const WeightPosterior post = node_weight_posterior(data.model, j, parents_of(g, d, j));
    for (size_t a = 0; a < post.parents.size(); ++a) {
      EXPECT_NEAR(mean[post.parents[a] * d + j], post.mean[a], 1e-14);
      EXPECT_NEAR(variance[post.parents[a] * d + j], post.covariance[a * post.parents.size() + a], 1e-14);
    }
  }
  for (int64_t c = 0; c < d * d; ++c) EXPECT_TRUE(((g >> c) & 1) || (mean[c] == 0.0 && variance[c] == 0.0)) << c;
}

TEST(DagPosteriorTest, EdgeLogOddsShiftsThePosterior) {
  // without data (n = 0, S = 0) the posterior is the prior: weights 1, e^a, e^a on d = 2
  const double a = 1.3;
  LinearGaussianModel empty{2, 0, {0, 0, 0, 0}, 1.0, 1.0, a};
  const DagPosterior prior_only(empty);
  const double z = 1 + 2 * std::exp(a);
  EXPECT_NEAR(prior_only.log_partition(), std::log(z), 1e-14);
  EXPECT_NEAR(std::exp(prior_only.log_posterior(0)), 1 / z, 1e-14);
  EXPECT_NEAR(std::exp(prior_only.log_posterior(1)), std::exp(a) / z, 1e-14);
  EXPECT_NEAR(prior_only.edge_marginals()[1], std::exp(a) / z, 1e-14);
  EXPECT_NEAR(prior_only.edge_marginals()[2], std::exp(a) / z, 1e-14);
  // with data: log_marginal shifts by |E| a, the posterior odds of an edge by a
  Data data = make_data(2, 5, 4, 1.0, 1.0);
  const DagPosterior flat(data.model);
  data.model.edge_log_odds = a;
  const DagPosterior tilted(data.model);
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(tilted.log_marginal(k) - flat.log_marginal(k), __builtin_popcountll(flat.graph(k)) * a, 1e-12);
    EXPECT_NEAR((tilted.log_posterior(k) - tilted.log_posterior(0)) - (flat.log_posterior(k) - flat.log_posterior(0)),
                __builtin_popcountll(flat.graph(k)) * a, 1e-12);
  }
}

TEST(DagPosteriorTest, FiveNodesIsNormalised) {
  const DagPosterior exact(make_data(5, 50, 8, 1.0, 1.0).model);
  double total = 0;
  for (int64_t k = 0; k < exact.num_graphs(); ++k) total += std::exp(exact.log_posterior(k));
  EXPECT_NEAR(total, 1.0, 1e-10);
  EXPECT_EQ(exact.index_of(exact.graph(12345)), 12345);
}

TEST(DagPosteriorTest, InvalidArgumentsThrow) {
  const Data data = make_data(3, 4, 1, 1.0, 1.0);
  // the model, through the constructor
  const auto bad = [&](const std::function<void(LinearGaussianModel&)>& edit, const char* part1, const char* part2) {
    LinearGaussianModel m = data.model;
    edit(m);
    expect_invalid([&] { DagPosterior p(m); }, part1, part2);
  };
  bad([](auto& m) { m.d = 0; }, "DagPosterior: model.d = 0", "[1, 6]");
  bad([](auto& m) { m.d = 7; }, "model.d = 7", "[1, 6]");
  bad([](auto& m) { m.gram.pop_back(); }, "model.gram.size() = 8", "9");
  bad([](auto& m) { m.noise_variance = -1; }, "model.noise_variance = -1", "> 0");
  bad([](auto& m) { m.weight_variance = 0; }, "model.weight_variance = 0", "> 0");
  bad([](auto& m) { m.gram[4] = NAN; }, "model.gram[4] = nan", "finite");
  bad([](auto& m) { m.edge_log_odds = INFINITY; }, "model.edge_log_odds = inf", "finite");
  bad([](auto& m) { m.n = -2; }, "model.n = -2", ">= 0");
  bad([](auto& m) { m.gram[1] += 1; }, "model.gram[1] - model.gram[3] = 1", "symmetric");
  bad([](auto& m) { m.gram = {1, 5, 0, 5, 1, 0, 0, 0, 1}; }, "model.gram", "positive semi-definite");
  // node functions
  expect_invalid([&] { node_log_marginal(data.model, 3, 0); }, "node_log_marginal: j = 3", "[0, 3)");
  expect_invalid([&] { node_weight_posterior(data.model, 1, 0b010); }, "node_weight_posterior: parents = 2",
                 "without bit j");
  expect_invalid([&] { node_log_marginal(data.model, 0, 0b1000); }, "parents = 8", "bitmask over [0, d)");
  // log_joint
  const std::vector<double> w(9, 0.5);
  expect_invalid([&] { log_joint(data.model, {0, 1, 0, 1, 0, 0, 0, 0, 0}, w); }, "log_joint: adjacency", "a DAG");
  expect_invalid([&] { log_joint(data.model, {1, 0, 0, 0, 0, 0, 0, 0, 0}, w); }, "adjacency[0] = 1", "self-loop");
  expect_invalid([&] { log_joint(data.model, {0, 0}, w); }, "adjacency.size() = 2", "d*d = 9");
  expect_invalid([&] { log_joint(data.model, std::vector<uint8_t>(9, 0), {1.0}); }, "weights.size() = 1", "d*d = 9");
  expect_invalid([&] { log_joint(data.model, {0, 1, 0, 0, 0, 0, 0, 0, 0}, {0, NAN, 0, 0, 0, 0, 0, 0, 0}); },
                 "weights[1] = nan", "finite");
  // enumeration and acyclicity
  expect_invalid([] { enumerate_dags(7); }, "enumerate_dags: d = 7", "[0, 6]");
  expect_invalid([] { enumerate_dags(-1); }, "d = -1", "[0, 6]");
  expect_invalid([] { is_acyclic(0, 9); }, "is_acyclic: d = 9", "[0, 8]");
  expect_invalid([] { is_acyclic(uint64_t{1} << 9, 3); }, "adjacency = 512", "d*d");
  // the posterior's accessors
  const DagPosterior exact(data.model);
  expect_invalid([&] { exact.top_graphs(-1); }, "top_graphs: k = -1", ">= 0");
  std::vector<double> v;
  expect_invalid([&] { exact.weight_moments(0, nullptr, &v); }, "weight_moments: mean = null", "output");
  EXPECT_THROW(exact.graph(25), std::out_of_range);
  EXPECT_THROW(exact.log_posterior(-1), std::out_of_range);
  EXPECT_THROW(exact.weight_moments(25, &v, &v), std::out_of_range);
}

}  // namespace
}  // namespace gfn

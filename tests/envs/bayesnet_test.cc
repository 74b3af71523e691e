// The Bayesian-network env (envs/bayesnet.h): the acyclicity mask against a brute-force search on
// random graphs, steps and their inverses, log R against the joint density computed row by row
// from the data, the exact log Z against numerical integration of R over the weights (d = 2),
// the sample metrics on exact posterior samples and on a degenerate sampler, the checker, and
// the errors of bad data files.
#include "envs/bayesnet.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/checker.h"
#include "core/params.h"
#include "measures/dag_posterior.h"

namespace gfn {
namespace {

BayesNetOptions small(int64_t d, int64_t n) {
  BayesNetOptions o;
  o.variables = d;
  o.samples = n;
  return o;
}

// does j reach i in the d x d adjacency `a` (row-major)? depth-first
bool reaches(const std::vector<int64_t>& a, int64_t d, int64_t from, int64_t to) {
  std::vector<int64_t> stack{from};
  std::vector<bool> seen(d, false);
  while (!stack.empty()) {
    const int64_t v = stack.back();
    stack.pop_back();
    for (int64_t w = 0; w < d; ++w) {
      if (!a[v * d + w] || seen[w]) continue;
      if (w == to) return true;
      seen[w] = true;
      stack.push_back(w);
    }
  }
  return false;
}

// `steps` random forward moves from s0 (each row an available edge with a N(0, 1) coordinate,
// or staying put when only the exit is left)
States random_states(const BayesNetEnv& env, int64_t batch, int64_t steps, torch::Generator& gen) {
  States s = env.initial_states(batch, torch::kCPU);
  const int64_t exit = env.action_spec().forward.exit;
  for (int64_t t = 0; t < steps; ++t) {
    auto mask = env.forward_mask(s).to(torch::kFloat64);
    mask.narrow(1, exit, 1).fill_(1e-9);  // the exit only where nothing else is left
    auto c = torch::multinomial(mask, 1, false, gen).squeeze(1);
    Actions a{c, torch::randn({batch, 1}, gen, torch::kFloat64)};
    auto moved = env.step(s, a).next;
    s = States::where(c.lt(exit), moved, s);
  }
  return s;
}

TEST(BayesNetTest, SpecNamesEveryCandidateEdge) {
  const BayesNetEnv env(small(4, 20));
  const auto& spec = env.action_spec();
  ASSERT_EQ(spec.forward.size(), 13);
  EXPECT_EQ(spec.forward.exit, 12);
  EXPECT_EQ(spec.forward.components[0].name, "0->1");
  EXPECT_EQ(spec.forward.components[3].name, "1->0");
  EXPECT_EQ(spec.forward.components[11].name, "3->2");
  EXPECT_EQ(spec.forward.components[5].kind, ComponentKind::kPiece);
  EXPECT_EQ(spec.forward.components[5].domain, Domain::kReal);
  ASSERT_EQ(spec.backward.size(), 12);
  EXPECT_EQ(spec.backward.components[3].name, "-1->0");
  EXPECT_EQ(env.max_length(), 6);
  EXPECT_EQ(env.feature_dim(), 44);
}

TEST(BayesNetTest, AcyclicityMaskMatchesBruteForce) {
  for (int64_t d : {3, 6}) {
    const BayesNetEnv env(small(d, 10));
    auto gen = torch::make_generator<torch::CPUGeneratorImpl>(7);
    for (int64_t steps : {0, 1, 3, 6, 20}) {
      States s = random_states(env, 64, steps, gen);
      auto mask = env.forward_mask(s);
      auto a = s.discrete.contiguous();
      for (int64_t b = 0; b < 64; ++b) {
        std::vector<int64_t> adj(a[b].data_ptr<int64_t>(), a[b].data_ptr<int64_t>() + d * d);
        for (int64_t v = 0; v < d; ++v) ASSERT_FALSE(reaches(adj, d, v, v)) << "a cycle through " << v;
        int64_t e = 0;
        for (int64_t i = 0; i < d; ++i)
          for (int64_t j = 0; j < d; ++j) {
            if (i == j) continue;
            const bool expected = !adj[i * d + j] && !reaches(adj, d, j, i);
            ASSERT_EQ(mask[b][e].item<bool>(), expected) << "d " << d << " edge " << i << "->" << j;
            ++e;
          }
        EXPECT_TRUE(mask[b][e].item<bool>());  // the exit, always
      }
    }
  }
}

// edge_order = "fixed": edges only after the last present one in the order (child, then parent),
// one backward atom (that last edge), so every graph has exactly one trajectory
TEST(BayesNetTest, FixedOrderGivesOneTrajectoryPerGraph) {
  BayesNetOptions o = small(4, 10);
  o.edge_order = "fixed";
  const BayesNetEnv env(o);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(5);
  for (int64_t steps : {1, 2, 4}) {
    States s = random_states(env, 64, steps, gen);
    auto fwd = env.forward_mask(s), bwd = env.backward_mask(s);
    for (int64_t b = 0; b < 64; ++b) {
      // ranks of the present edges: e = i * 3 + j' -> rank j * 3 + i'
      int64_t last = -1;
      std::vector<int64_t> rank(12);
      for (int64_t e = 0; e < 12; ++e) {
        const int64_t i = e / 3, jp = e % 3, j = jp < i ? jp : jp + 1;
        rank[e] = j * 3 + (i < j ? i : i - 1);
        if (s.discrete[b][i * 4 + j].item<int64_t>()) last = std::max(last, rank[e]);
      }
      EXPECT_EQ(bwd[b].sum().item<int64_t>(), last >= 0 ? 1 : 0);
      for (int64_t e = 0; e < 12; ++e) {
        if (bwd[b][e].item<bool>()) EXPECT_EQ(rank[e], last);
        if (fwd[b][e].item<bool>()) EXPECT_GT(rank[e], last);
      }
    }
  }
  CheckOptions c;
  c.is_samples = 20000;
  o.variables = 3;
  o.samples = 3;
  o.noise_variance = 4.0;
  const auto report = check_env(BayesNetEnv(o), c);
  EXPECT_TRUE(report.passed()) << report.text();
}

TEST(BayesNetTest, StepsAndTheirInverses) {
  const BayesNetEnv env(small(4, 10));
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(3);
  States s = random_states(env, 32, 2, gen);
  auto mask = env.forward_mask(s).to(torch::kFloat64);
  mask.narrow(1, env.action_spec().forward.exit, 1).zero_();
  auto c = torch::multinomial(mask, 1, false, gen).squeeze(1);
  Actions a{c, torch::randn({32, 1}, gen, torch::kFloat64)};
  auto stepped = env.step(s, a);
  auto child = stepped.next;
  EXPECT_TRUE(torch::equal(child.discrete.sum(1), s.discrete.sum(1) + 1));
  EXPECT_TRUE(env.backward_mask(child).gather(1, c.unsqueeze(1)).all().item<bool>());
  auto back = env.backward_action(s, child, a);
  auto parent = env.backward_step(child, back).next;
  EXPECT_TRUE(torch::equal(parent.discrete, s.discrete));
  EXPECT_TRUE(torch::equal(parent.continuous, s.continuous));
  torch::Tensor log_j;
  auto again = env.forward_action(child, parent, back, &log_j);
  EXPECT_TRUE(torch::equal(again.component, c));
  EXPECT_TRUE(torch::allclose(again.coords, a.coords, 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(log_j, stepped.log_jacobian));
  // the chart is the conditional posterior: log c = -log(S_ii / sigma^2 + 1 / t^2) / 2, at i the parent
  auto i = torch::div(c, 3, "floor");
  auto s_ii = env.gram().diagonal().index_select(0, i);
  EXPECT_TRUE(torch::allclose(log_j.to(torch::kFloat64), -0.5 * (s_ii + 1.0).log(), 1e-5, 1e-5));
  EXPECT_TRUE(env.initial_states(2, torch::kCPU).is_initial.all().item<bool>());
  EXPECT_FALSE(child.is_initial.any().item<bool>());
}

// a CSV of `rows` x `cols` standard normal values, returned as a tensor too
torch::Tensor write_csv(const std::filesystem::path& path, int64_t rows, int64_t cols, uint64_t seed) {
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(seed);
  auto x = torch::randn({rows, cols}, gen, torch::kFloat64);
  std::ofstream out(path);
  out.precision(17);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out << x[r][c].item<double>() << (c + 1 < cols ? "," : "\n");
  return x;
}

TEST(BayesNetTest, LogRewardIsTheJointDensityOfTheDataFile) {
  const auto dir = std::filesystem::temp_directory_path() / "gfn_bayesnet_test";
  std::filesystem::create_directories(dir);
  auto x = write_csv(dir / "x.csv", 9, 3, 11);
  BayesNetOptions o = small(3, 100);  // n comes from the file
  o.data = (dir / "x.csv").string();
  o.noise_variance = 0.7;
  o.weight_variance = 2.0;
  o.graph_prior = "edges";
  o.edge_probability = 0.2;
  const BayesNetEnv env(o);
  EXPECT_EQ(env.rows(), 9);
  EXPECT_FALSE(env.truth().defined());
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(5);
  States s = random_states(env, 16, 3, gen);
  auto got = env.log_reward(s).to(torch::kFloat64);
  for (int64_t b = 0; b < 16; ++b) {
    auto w = s.continuous[b].view({3, 3});
    auto mean = x.matmul(w);  // [n, d]: sum_i x_i W_ij
    double expected = (-(x - mean).square() / (2 * 0.7) - 0.5 * std::log(2 * M_PI * 0.7)).sum().item<double>();
    const double edges = s.discrete[b].sum().item<double>();
    expected += (-w.square() / (2 * 2.0)).sum().item<double>() - 0.5 * edges * std::log(2 * M_PI * 2.0);
    expected += edges * std::log(0.2 / 0.8);
    EXPECT_NEAR(got[b].item<double>(), expected, 1e-5 * std::abs(expected) + 1e-4) << "row " << b;
  }
}

TEST(BayesNetTest, ExactLogZIsTheIntegralOfTheReward) {
  BayesNetOptions o = small(2, 6);
  o.data_seed = 4;
  o.parents = 1.0;
  const BayesNetEnv env(o);
  ASSERT_TRUE(env.log_partition().has_value());
  // Z = R(empty) + the integrals over w of R(0 -> 1, w) and R(1 -> 0, w) (midpoint rule)
  const int64_t points = 200001;
  const double lo = -12.0, h = 24.0 / static_cast<double>(points);
  auto w = torch::arange(points, torch::kFloat64) * h + (lo + h / 2);
  double z = std::exp(env.log_reward(env.initial_states(1, torch::kCPU))[0].item<double>());
  for (int64_t cell : {1, 2}) {  // 0 -> 1 and 1 -> 0
    States s = env.initial_states(points, torch::kCPU);
    s.discrete.select(1, cell).fill_(1);
    s.continuous.select(1, cell).copy_(w);
    s.is_initial.fill_(false);
    z += env.log_reward(s).to(torch::kFloat64).exp().sum().item<double>() * h;
  }
  EXPECT_NEAR(std::log(z), *env.log_partition(), 1e-4);
}

// n exact samples of (G, theta) from the posterior: G ~ p(G | D), each node's weights from their
// Gaussian posterior
States exact_posterior_samples(const BayesNetEnv& env, int64_t n, torch::Generator& gen) {
  const DagPosterior& post = *env.exact();
  const int64_t d = env.variables(), graphs = post.num_graphs();
  std::vector<double> p(graphs);
  for (int64_t k = 0; k < graphs; ++k) p[k] = std::exp(post.log_posterior(k));
  auto picks = torch::multinomial(torch::tensor(p, torch::kFloat64), n, true, gen);
  States s = env.initial_states(n, torch::kCPU);
  LinearGaussianModel model;
  model.d = d;
  model.n = env.rows();
  model.gram.assign(env.gram().data_ptr<double>(), env.gram().data_ptr<double>() + d * d);
  for (int64_t b = 0; b < n; ++b) {
    const uint64_t g = post.graph(picks[b].item<int64_t>());
    for (int64_t j = 0; j < d; ++j) {
      uint32_t parents = 0;
      for (int64_t i = 0; i < d; ++i)
        if ((g >> (i * d + j)) & 1) parents |= 1u << i;
      if (!parents) continue;
      const WeightPosterior wp = node_weight_posterior(model, j, parents);
      const int64_t k = static_cast<int64_t>(wp.parents.size());
      auto cov = torch::tensor(wp.covariance, torch::kFloat64).view({k, k});
      auto draw = torch::tensor(wp.mean, torch::kFloat64) +
                  torch::linalg_cholesky(cov).matmul(torch::randn({k}, gen, torch::kFloat64));
      for (int64_t q = 0; q < k; ++q) {
        s.discrete[b][wp.parents[q] * d + j] = 1;
        s.continuous[b][wp.parents[q] * d + j] = draw[q].item<double>();
      }
    }
  }
  s.is_initial = s.discrete.eq(0).all(1);
  return s;
}

double metric(const std::vector<std::pair<std::string, double>>& m, const std::string& name) {
  for (const auto& [k, v] : m)
    if (k == name) return v;
  ADD_FAILURE() << "no metric " << name;
  return NAN;
}

TEST(BayesNetTest, SampleMetricsOfExactSamplesAreSmall) {
  BayesNetOptions o = small(3, 20);
  o.data_seed = 2;
  const BayesNetEnv env(o);
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(9);
  auto m = env.sample_metrics(exact_posterior_samples(env, 20000, gen));
  EXPECT_LT(metric(m, "graph_jsd"), 2e-3);
  EXPECT_LT(metric(m, "edge_marginal_error"), 0.01);
  EXPECT_LT(metric(m, "edge_marginal_max_error"), 0.02);
  EXPECT_LT(metric(m, "weight_mean_error"), 0.02);
  EXPECT_LT(metric(m, "weight_variance_error"), 0.01);
  EXPECT_GE(metric(m, "expected_shd"), 0.0);
  const double auroc = metric(m, "edge_auroc");
  EXPECT_TRUE(std::isnan(auroc) || (auroc >= 0.0 && auroc <= 1.0));

  // a sampler that always returns the empty graph: JSD(delta, p) in closed form, SHD = |E_true|
  auto m0 = env.sample_metrics(env.initial_states(100, torch::kCPU));
  const DagPosterior& post = *env.exact();
  const double p0 = std::exp(post.log_posterior(post.index_of(0)));
  double expected = 0.5 * std::log(2.0 / (1.0 + p0));  // the delta's half
  for (int64_t k = 0; k < post.num_graphs(); ++k) {
    const double p = std::exp(post.log_posterior(k));
    const double mid = 0.5 * (p + (post.graph(k) == 0 ? 1.0 : 0.0));
    expected += 0.5 * p * std::log(p / mid);
  }
  EXPECT_NEAR(metric(m0, "graph_jsd"), expected, 1e-9);
  EXPECT_NEAR(metric(m0, "expected_shd"), env.truth().ne(0).sum().item<double>(), 1e-12);
  auto marginals = env.exact_edge_marginals();
  EXPECT_NEAR(metric(m0, "edge_marginal_max_error"), marginals.max().item<double>(), 1e-12);
  EXPECT_TRUE(std::isnan(metric(m0, "weight_mean_error")));  // no samples on the top graphs but the empty one
}

TEST(BayesNetTest, GeneratedDataDependOnTheDataSeedOnly) {
  BayesNetOptions o = small(5, 50);
  o.data_seed = 1;
  const BayesNetEnv a(o), b(o);
  EXPECT_TRUE(torch::equal(a.gram(), b.gram()));
  EXPECT_TRUE(torch::equal(a.truth(), b.truth()));
  o.data_seed = 2;
  const BayesNetEnv c(o);
  EXPECT_FALSE(torch::equal(a.gram(), c.gram()));
  // the generating graph is a DAG
  auto t = a.truth().ne(0).to(torch::kInt64).contiguous();
  std::vector<int64_t> adj(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + 25);
  for (int64_t v = 0; v < 5; ++v) EXPECT_FALSE(reaches(adj, 5, v, v));
  // d <= exact_max: exact; beyond: none
  EXPECT_TRUE(a.log_partition().has_value());
  o.exact_max = 4;
  EXPECT_FALSE(BayesNetEnv(o).log_partition().has_value());
}

TEST(BayesNetTest, CheckerPasses) {
  BayesNetOptions o = small(3, 3);
  o.noise_variance = 4.0;  // a flat likelihood: importance sampling from the reference P_F can decide
  const BayesNetEnv env(o);
  CheckOptions c;
  c.is_samples = 50000;
  const auto report = check_env(env, c);
  EXPECT_TRUE(report.passed()) << report.text();
}

TEST(BayesNetTest, BadDataAreConfigErrorsNamingTheFile) {
  const auto dir = std::filesystem::temp_directory_path() / "gfn_bayesnet_test";
  std::filesystem::create_directories(dir);
  write_csv(dir / "two.csv", 5, 2, 1);
  BayesNetOptions o = small(3, 100);  // n comes from the file
  o.data = (dir / "two.csv").string();
  try {
    BayesNetEnv env(o);
    FAIL() << "accepted a 2-column file for 3 variables";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("env.data"), std::string::npos) << what;
    EXPECT_NE(what.find("two.csv"), std::string::npos) << what;
  }
  o.data = (dir / "missing.csv").string();
  EXPECT_THROW(BayesNetEnv env(o), ConfigError);
  o = small(1, 10);
  try {
    BayesNetEnv env(o);
    FAIL() << "accepted d = 1";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("variables"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gfn

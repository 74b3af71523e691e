#include "measures/dag_posterior.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>

#include <Eigen/Dense>

namespace gfn {

namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;
constexpr int64_t kMaxEnumerated = 6;   // d of enumerate_dags and DagPosterior
constexpr int64_t kMaxModel = 32;       // d of the free functions (uint32_t parent sets)

// Formats a value for an error message.
template <typename T>
std::string show(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// Throws std::invalid_argument "<where>: <what> = <value>, expected <rule>".
template <typename T>
[[noreturn]] void fail(const std::string& where, const std::string& what, const T& value, const std::string& rule) {
  throw std::invalid_argument(where + ": " + what + " = " + show(value) + ", expected " + rule);
}

// The gram matrix as an Eigen matrix (row-major storage; symmetric, so either order reads it).
Eigen::Map<const Eigen::MatrixXd> gram_of(const LinearGaussianModel& model) {
  return Eigen::Map<const Eigen::MatrixXd>(model.gram.data(), model.d, model.d);
}

// Rejects an invalid model (see LinearGaussianModel), naming the caller, field and value.
void check_model(const LinearGaussianModel& model, const std::string& where, int64_t max_d) {
  const int64_t d = model.d;
  if (d < 1 || d > max_d) fail(where, "model.d", d, "in [1, " + std::to_string(max_d) + "]");
  if (model.n < 0) fail(where, "model.n", model.n, ">= 0");
  if (static_cast<int64_t>(model.gram.size()) != d * d)
    fail(where, "model.gram.size()", model.gram.size(), "d*d = " + std::to_string(d * d));
  if (!(model.noise_variance > 0) || !std::isfinite(model.noise_variance))
    fail(where, "model.noise_variance", model.noise_variance, "finite and > 0");
  if (!(model.weight_variance > 0) || !std::isfinite(model.weight_variance))
    fail(where, "model.weight_variance", model.weight_variance, "finite and > 0");
  if (!std::isfinite(model.edge_log_odds)) fail(where, "model.edge_log_odds", model.edge_log_odds, "finite");
  // finite, symmetric, non-negative diagonal
  double largest = 0.0;
  for (int64_t c = 0; c < d * d; ++c) {
    const double s = model.gram[c];
    if (!std::isfinite(s)) fail(where, "model.gram[" + std::to_string(c) + "]", s, "finite");
    if (c % (d + 1) == 0) {
      if (s < 0) fail(where, "model.gram[" + std::to_string(c) + "]", s, ">= 0 on the diagonal");
      largest = std::max(largest, s);
    }
  }
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = i + 1; j < d; ++j)
      if (std::abs(model.gram[i * d + j] - model.gram[j * d + i]) > 1e-9 * largest)
        fail(where, "model.gram[" + std::to_string(i * d + j) + "] - model.gram[" + std::to_string(j * d + i) + "]",
             model.gram[i * d + j] - model.gram[j * d + i], "0 (a symmetric X^T X)");
  // (sigma^2 / sigma_t^2) I + S positive definite: then so is each principal submatrix M
  Eigen::MatrixXd m = gram_of(model);
  m.diagonal().array() += model.noise_variance / model.weight_variance;
  if (Eigen::LLT<Eigen::MatrixXd>(m).info() != Eigen::Success)
    fail(where, "model.gram", "(not positive semi-definite)", "X^T X");
}

// Rejects a node index or parent set that does not fit the model.
void check_node(const LinearGaussianModel& model, int64_t j, uint32_t parents, const std::string& where) {
  if (j < 0 || j >= model.d) fail(where, "j", j, "in [0, " + std::to_string(model.d) + ")");
  const uint64_t valid = ((uint64_t{1} << model.d) - 1) & ~(uint64_t{1} << j);
  if ((parents & ~valid) != 0) fail(where, "parents", parents, "a bitmask over [0, d) without bit j");
}

// The pieces shared by the score and the weight posterior: the parent list, S_Pj and the Cholesky
// factor of M = (sigma^2 / sigma_t^2) I + S_PP.
struct NodeSystem {
  std::vector<int64_t> parents;         // [k]
  Eigen::VectorXd s_pj;                 // [k]
  Eigen::LLT<Eigen::MatrixXd> chol_m;   // of M [k, k]
};

NodeSystem node_system(const LinearGaussianModel& model, int64_t j, uint32_t parents) {
  const auto s = gram_of(model);
  NodeSystem out;
  for (int64_t i = 0; i < model.d; ++i)
    if ((parents >> i) & 1u) out.parents.push_back(i);
  const int64_t k = static_cast<int64_t>(out.parents.size());
  Eigen::MatrixXd m(k, k);
  out.s_pj.resize(k);
  for (int64_t a = 0; a < k; ++a) {
    out.s_pj(a) = s(out.parents[a], j);
    for (int64_t b = 0; b < k; ++b) m(a, b) = s(out.parents[a], out.parents[b]);
  }
  m.diagonal().array() += model.noise_variance / model.weight_variance;
  out.chol_m.compute(m);
  return out;
}

// node_log_marginal without the checks.
double node_score(const LinearGaussianModel& model, int64_t j, uint32_t parents) {
  const double noise = model.noise_variance;
  const NodeSystem sys = node_system(model, j, parents);
  const int64_t k = static_cast<int64_t>(sys.parents.size());
  // log det(I + (sigma_t^2 / sigma^2) S_PP) = k log(sigma_t^2 / sigma^2) + log det M
  const auto l = sys.chol_m.matrixL();
  double log_det = static_cast<double>(k) * std::log(model.weight_variance / noise);
  for (int64_t a = 0; a < k; ++a) log_det += 2.0 * std::log(l(a, a));
  // Woodbury: x_j^T C^{-1} x_j = (S_jj - S_Pj^T M^{-1} S_Pj) / sigma^2, via |L^{-1} S_Pj|^2
  double quad = model.gram[j * model.d + j];
  if (k > 0) quad -= sys.chol_m.matrixL().solve(sys.s_pj).squaredNorm();
  quad = std::max(quad, 0.0);  // the residual sum of squares is >= 0; rounding may cross it
  return -0.5 * (static_cast<double>(model.n) * (kLog2Pi + std::log(noise)) + log_det + quad / noise);
}

// node_weight_posterior without the checks.
WeightPosterior weight_posterior(const LinearGaussianModel& model, int64_t j, uint32_t parents) {
  const NodeSystem sys = node_system(model, j, parents);
  const int64_t k = static_cast<int64_t>(sys.parents.size());
  WeightPosterior out;
  out.parents = sys.parents;
  const Eigen::VectorXd mean = sys.chol_m.solve(sys.s_pj);
  const Eigen::MatrixXd cov = model.noise_variance * sys.chol_m.solve(Eigen::MatrixXd::Identity(k, k));
  out.mean.assign(mean.data(), mean.data() + k);
  out.covariance.resize(k * k);
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) out.covariance[a * k + b] = 0.5 * (cov(a, b) + cov(b, a));
  return out;
}

// The parent sets of an adjacency bitmask on d nodes: pa[j] has bit i for each edge i -> j.
void parent_sets(uint64_t adjacency, int64_t d, uint32_t* pa) {
  std::fill(pa, pa + d, 0u);
  for (uint64_t rest = adjacency; rest != 0; rest &= rest - 1) {
    const int64_t bit = __builtin_ctzll(rest);
    pa[bit % d] |= 1u << (bit / d);
  }
}

// Kahn's test on parent bitmasks: removes parentless nodes until none is left (acyclic) or
// every remaining node has a remaining parent (a cycle).
bool acyclic_parents(const uint64_t* pa, int64_t d) {
  uint64_t remaining = d >= 64 ? ~uint64_t{0} : (uint64_t{1} << d) - 1;
  while (remaining != 0) {
    uint64_t removable = 0;
    for (uint64_t rest = remaining; rest != 0; rest &= rest - 1) {
      const int64_t j = __builtin_ctzll(rest);
      if ((pa[j] & remaining) == 0) removable |= uint64_t{1} << j;
    }
    if (removable == 0) return false;
    remaining &= ~removable;
  }
  return true;
}

// Robinson's step: appends every graph made of `sub` (a DAG on the nodes of `rest`) plus, for
// each of those nodes from position idx on, a subset of `sources` as extra parents, nonempty for
// the parentless nodes of sub (so that the sources of the whole graph are exactly `sources`).
// spread[u][P]: the edge bits i -> u for i in P; into[u]: every edge bit into u.
void add_source_edges(const std::vector<int64_t>& rest, size_t idx, uint64_t sub, uint64_t acc, uint32_t sources,
                      const std::vector<std::vector<uint64_t>>& spread, const std::vector<uint64_t>& into,
                      std::vector<uint64_t>* out) {
  if (idx == rest.size()) {
    out->push_back(acc);
    return;
  }
  const int64_t u = rest[idx];
  const bool needs_parent = (sub & into[u]) == 0;
  for (uint32_t p = sources;; p = (p - 1) & sources) {
    if (p != 0 || !needs_parent) add_source_edges(rest, idx + 1, sub, acc | spread[u][p], sources, spread, into, out);
    if (p == 0) break;
  }
}

}  // namespace

double node_log_marginal(const LinearGaussianModel& model, int64_t j, uint32_t parents) {
  check_model(model, "node_log_marginal", kMaxModel);
  check_node(model, j, parents, "node_log_marginal");
  return node_score(model, j, parents);
}

WeightPosterior node_weight_posterior(const LinearGaussianModel& model, int64_t j, uint32_t parents) {
  check_model(model, "node_weight_posterior", kMaxModel);
  check_node(model, j, parents, "node_weight_posterior");
  return weight_posterior(model, j, parents);
}

double log_joint(const LinearGaussianModel& model, const std::vector<uint8_t>& adjacency,
                 const std::vector<double>& weights) {
  const std::string where = "log_joint";
  check_model(model, where, kMaxModel);
  const int64_t d = model.d;
  if (static_cast<int64_t>(adjacency.size()) != d * d)
    fail(where, "adjacency.size()", adjacency.size(), "d*d = " + std::to_string(d * d));
  if (static_cast<int64_t>(weights.size()) != d * d)
    fail(where, "weights.size()", weights.size(), "d*d = " + std::to_string(d * d));
  // the graph: no self-loop, no cycle, finite weights on its edges
  std::vector<uint64_t> pa(d, 0);
  Eigen::MatrixXd w = Eigen::MatrixXd::Zero(d, d);
  int64_t edges = 0;
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      if (!adjacency[i * d + j]) continue;
      const std::string cell = "[" + std::to_string(i * d + j) + "]";
      if (i == j) fail(where, "adjacency" + cell, 1, "0 on the diagonal (no self-loop)");
      if (!std::isfinite(weights[i * d + j])) fail(where, "weights" + cell, weights[i * d + j], "finite on an edge");
      pa[j] |= uint64_t{1} << i;
      w(i, j) = weights[i * d + j];
      ++edges;
    }
  }
  if (!acyclic_parents(pa.data(), d)) fail(where, "adjacency", "(a graph with a cycle)", "a DAG");
  // log p(D | G, theta) = -(n d / 2) log(2 pi sigma^2) - tr((I - W)^T S (I - W)) / (2 sigma^2)
  const double noise = model.noise_variance, prior = model.weight_variance;
  const Eigen::MatrixXd b = Eigen::MatrixXd::Identity(d, d) - w;
  const double trace = (b.transpose() * gram_of(model) * b).trace();
  double out = -0.5 * static_cast<double>(model.n * d) * (kLog2Pi + std::log(noise)) - 0.5 * trace / noise;
  // log p(theta | G) = sum_e log N(theta_e; 0, sigma_t^2); log p(G) = |E| edge_log_odds
  out += -0.5 * static_cast<double>(edges) * (kLog2Pi + std::log(prior)) - 0.5 * w.squaredNorm() / prior;
  return out + static_cast<double>(edges) * model.edge_log_odds;
}

bool is_acyclic(uint64_t adjacency, int64_t d) {
  if (d < 0 || d > 8) fail("is_acyclic", "d", d, "in [0, 8]");
  if (d < 8 && (adjacency >> (d * d)) != 0) fail("is_acyclic", "adjacency", adjacency, "no bit at or above d*d");
  uint32_t pa32[8];
  parent_sets(adjacency, d, pa32);
  uint64_t pa[8];
  std::copy(pa32, pa32 + d, pa);
  return acyclic_parents(pa, d);
}

std::vector<uint64_t> enumerate_dags(int64_t d) {
  if (d < 0 || d > kMaxEnumerated) fail("enumerate_dags", "d", d, "in [0, " + std::to_string(kMaxEnumerated) + "]");
  const uint32_t all = (1u << d) - 1;
  // spread[u][P]: the edge bits i -> u for the nodes i of P; into[u]: every edge bit into u
  std::vector<std::vector<uint64_t>> spread(d, std::vector<uint64_t>(all + 1, 0));
  std::vector<uint64_t> into(d, 0);
  for (int64_t u = 0; u < d; ++u) {
    for (uint32_t p = 0; p <= all; ++p)
      for (int64_t i = 0; i < d; ++i)
        if ((p >> i) & 1u) spread[u][p] |= uint64_t{1} << (i * d + u);
    into[u] = spread[u][all];
  }
  // the DAGs on each node subset, smaller subsets first (Robinson's decomposition by sources)
  std::vector<std::vector<uint64_t>> on(all + 1);
  on[0] = {0};
  std::vector<uint32_t> order(all + 1);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [](uint32_t a, uint32_t b) { return __builtin_popcount(a) < __builtin_popcount(b); });
  std::vector<int64_t> rest_nodes;
  for (uint32_t v : order) {
    if (v == 0) continue;
    for (uint32_t sources = v; sources != 0; sources = (sources - 1) & v) {
      const uint32_t rest = v & ~sources;
      rest_nodes.clear();
      for (int64_t u = 0; u < d; ++u)
        if ((rest >> u) & 1u) rest_nodes.push_back(u);
      for (uint64_t sub : on[rest]) add_source_edges(rest_nodes, 0, sub, sub, sources, spread, into, &on[v]);
    }
  }
  // order by edge count, then bitmask (a counting sort on the edge count)
  std::vector<uint64_t> graphs = std::move(on[all]);
  const int64_t max_edges = d * (d - 1) / 2;
  std::vector<int64_t> start(max_edges + 2, 0);
  for (uint64_t g : graphs) ++start[__builtin_popcountll(g) + 1];
  for (int64_t e = 0; e <= max_edges; ++e) start[e + 1] += start[e];
  std::vector<uint64_t> sorted(graphs.size());
  std::vector<int64_t> next(start.begin(), start.end() - 1);
  for (uint64_t g : graphs) sorted[next[__builtin_popcountll(g)]++] = g;
  for (int64_t e = 0; e <= max_edges; ++e) std::sort(sorted.begin() + start[e], sorted.begin() + start[e + 1]);
  return sorted;
}

DagPosterior::DagPosterior(const LinearGaussianModel& model) : model_(model) {
  check_model(model, "DagPosterior", kMaxEnumerated);
  const int64_t d = model_.d;
  // use the symmetric part of S
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = i + 1; j < d; ++j)
      model_.gram[i * d + j] = model_.gram[j * d + i] = 0.5 * (model.gram[i * d + j] + model.gram[j * d + i]);

  // the graphs, and where each edge count starts
  graphs_ = enumerate_dags(d);
  const int64_t max_edges = d * (d - 1) / 2;
  first_with_edges_.assign(max_edges + 2, 0);
  for (uint64_t g : graphs_) ++first_with_edges_[__builtin_popcountll(g) + 1];
  for (int64_t e = 0; e <= max_edges; ++e) first_with_edges_[e + 1] += first_with_edges_[e];

  // the node scores of every parent set
  const int64_t sets = int64_t{1} << d;
  node_scores_.assign(d * sets, 0.0);
  for (int64_t j = 0; j < d; ++j)
    for (int64_t p = 0; p < sets; ++p)
      if (!((p >> j) & 1)) node_scores_[j * sets + p] = node_score(model_, j, static_cast<uint32_t>(p));

  // log p(G) p(D | G) of every graph and their logsumexp
  const int64_t graphs = num_graphs();
  log_marginals_.resize(graphs);
  double largest = -std::numeric_limits<double>::infinity();
  uint32_t pa[kMaxEnumerated];
  for (int64_t k = 0; k < graphs; ++k) {
    parent_sets(graphs_[k], d, pa);
    double total = static_cast<double>(__builtin_popcountll(graphs_[k])) * model_.edge_log_odds;
    for (int64_t j = 0; j < d; ++j) total += node_scores_[j * sets + pa[j]];
    log_marginals_[k] = total;
    largest = std::max(largest, total);
  }
  double sum = 0.0;
  for (double lm : log_marginals_) sum += std::exp(lm - largest);
  log_partition_ = largest + std::log(sum);

  // the edge marginals: the posterior mass of the graphs holding each edge
  edge_marginals_.assign(d * d, 0.0);
  for (int64_t k = 0; k < graphs; ++k) {
    const double p = std::exp(log_marginals_[k] - log_partition_);
    for (uint64_t rest = graphs_[k]; rest != 0; rest &= rest - 1) edge_marginals_[__builtin_ctzll(rest)] += p;
  }
}

uint64_t DagPosterior::graph(int64_t k) const {
  if (k < 0 || k >= num_graphs())
    throw std::out_of_range("DagPosterior::graph: k = " + std::to_string(k) + ", expected in [0, " +
                            std::to_string(num_graphs()) + ")");
  return graphs_[k];
}

double DagPosterior::log_marginal(int64_t k) const {
  if (k < 0 || k >= num_graphs())
    throw std::out_of_range("DagPosterior::log_marginal: k = " + std::to_string(k) + ", expected in [0, " +
                            std::to_string(num_graphs()) + ")");
  return log_marginals_[k];
}

double DagPosterior::log_posterior(int64_t k) const {
  if (k < 0 || k >= num_graphs())
    throw std::out_of_range("DagPosterior::log_posterior: k = " + std::to_string(k) + ", expected in [0, " +
                            std::to_string(num_graphs()) + ")");
  return log_marginals_[k] - log_partition_;
}

int64_t DagPosterior::index_of(uint64_t adjacency) const {
  const int64_t d = model_.d;
  if (d < 8 && (adjacency >> (d * d)) != 0) return -1;
  const int64_t edges = __builtin_popcountll(adjacency);
  if (edges > d * (d - 1) / 2) return -1;
  const auto first = graphs_.begin() + first_with_edges_[edges], last = graphs_.begin() + first_with_edges_[edges + 1];
  const auto it = std::lower_bound(first, last, adjacency);
  return it != last && *it == adjacency ? static_cast<int64_t>(it - graphs_.begin()) : -1;
}

std::vector<int64_t> DagPosterior::top_graphs(int64_t k) const {
  if (k < 0) fail("DagPosterior::top_graphs", "k", k, ">= 0");
  std::vector<int64_t> order(num_graphs());
  std::iota(order.begin(), order.end(), int64_t{0});
  const int64_t take = std::min(k, num_graphs());
  std::partial_sort(order.begin(), order.begin() + take, order.end(), [this](int64_t a, int64_t b) {
    return log_marginals_[a] > log_marginals_[b] || (log_marginals_[a] == log_marginals_[b] && a < b);
  });
  order.resize(take);
  return order;
}

void DagPosterior::weight_moments(int64_t k, std::vector<double>* mean, std::vector<double>* variance) const {
  if (mean == nullptr || variance == nullptr)
    fail("DagPosterior::weight_moments", mean == nullptr ? "mean" : "variance", "null", "an output vector");
  const int64_t d = model_.d;
  uint32_t pa[kMaxEnumerated];
  parent_sets(graph(k), d, pa);
  mean->assign(d * d, 0.0);
  variance->assign(d * d, 0.0);
  for (int64_t j = 0; j < d; ++j) {
    if (pa[j] == 0) continue;
    const WeightPosterior post = weight_posterior(model_, j, pa[j]);
    const int64_t kj = static_cast<int64_t>(post.parents.size());
    for (int64_t a = 0; a < kj; ++a) {
      (*mean)[post.parents[a] * d + j] = post.mean[a];
      (*variance)[post.parents[a] * d + j] = post.covariance[a * kj + a];
    }
  }
}

}  // namespace gfn

#include "envs/bayesnet.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/evaluation.h"
#include "io/data_matrix.h"
#include "measures/dag_posterior.h"

namespace gfn {

const OptionTable<BayesNetOptions>& BayesNetOptions::keys() {
  using O = BayesNetOptions;
  static const auto table =
      OptionTable<O>("BayesNetOptions")
          .add("variables", &O::variables, "d, the number of variables (nodes of the DAG)", in(2, 32))
          .add("samples", &O::samples, "n, rows of data drawn from the generating network (env.data = \"\")",
               in(1, 10000000))
          .add("parents", &O::parents, "expected parents per node of the generating Erdos-Renyi DAG",
               at_least(0).at_most(31))
          .add("data_seed", &O::data_seed, "seed of the generating network and its data (fixed across run seeds)",
               at_least(0))
          .add("data", &O::data,
               "a CSV (.csv, .tsv, .txt) or HDF5 (.h5, .hdf5) file of n rows x d columns, centred (\"\": generate)")
          .add("dataset", &O::dataset, "the 2-D dataset of an HDF5 env.data file")
          .add("noise_variance", &O::noise_variance, "sigma^2 of every node's Gaussian noise (known)",
               above(0).at_most(1e6))
          .add("weight_variance", &O::weight_variance, "prior variance of each edge weight", above(0).at_most(1e6))
          .add("graph_prior", &O::graph_prior,
               "prior over DAGs: uniform, or edges (rho^|E| (1 - rho)^(d(d-1) - |E|), unnormalised)",
               {"uniform", "edges"})
          .add("edge_probability", &O::edge_probability, "rho of graph_prior = \"edges\"", above(0).below(1))
          .add("edge_order", &O::edge_order,
               "free: any edge may be added next (uniform P_B over the edges); fixed: edges in one order (by "
               "child, then parent), one trajectory per graph",
               {"free", "fixed"})
          .add("exact_max", &O::exact_max, "evaluate against the exact posterior (every DAG enumerated) for d <= this",
               in(0, 5));
  return table;
}

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

// a random DAG and n rows of its linear-Gaussian data (options as documented in the header)
void generate(const BayesNetOptions& o, torch::Tensor* weights, torch::Tensor* x) {
  torch::NoGradGuard no_grad;
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(static_cast<uint64_t>(o.data_seed));
  const int64_t d = o.variables;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  // a random topological order, then each forward pair an edge with probability p
  auto order = torch::randperm(d, gen, torch::TensorOptions().dtype(torch::kInt64));
  const double p = std::min(1.0, 2.0 * o.parents / static_cast<double>(d - 1));
  auto coin = torch::rand({d, d}, gen, f64).lt(p);
  auto w = torch::randn({d, d}, gen, f64) * std::sqrt(o.weight_variance);
  auto rank = torch::empty_like(order).scatter_(0, order, torch::arange(d, order.options()));
  auto forward = rank.unsqueeze(1).lt(rank.unsqueeze(0));  // [d, d]: i before j
  *weights = torch::where(coin & forward, w, torch::zeros_like(w));
  // x = x W + eps, so x = eps (I - W)^{-1}
  auto eps = torch::randn({o.samples, d}, gen, f64) * std::sqrt(o.noise_variance);
  auto inv = torch::linalg_inv(torch::eye(d, f64) - *weights);
  *x = eps.matmul(inv);
}

// area under the ROC curve of scores against binary labels (ties count one half)
double auroc(const std::vector<double>& score, const std::vector<bool>& label) {
  double pairs = 0.0, wins = 0.0;
  for (size_t a = 0; a < score.size(); ++a) {
    if (!label[a]) continue;
    for (size_t b = 0; b < score.size(); ++b) {
      if (label[b]) continue;
      pairs += 1.0;
      wins += score[a] > score[b] ? 1.0 : (score[a] == score[b] ? 0.5 : 0.0);
    }
  }
  return pairs > 0 ? wins / pairs : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

BayesNetEnv::BayesNetEnv(const BayesNetOptions& options) : options_(options) {
  options_.validate();
  d_ = options_.variables;
  weight_scale_ = std::sqrt(options_.weight_variance);
  edge_log_odds_ = options_.graph_prior == "edges"
                       ? std::log(options_.edge_probability) - std::log1p(-options_.edge_probability)
                       : 0.0;
  torch::Tensor x;
  if (options_.data.empty()) {
    generate(options_, &truth_, &x);
  } else {
    DataMatrix m = read_data_matrix(options_.data, "env.data", options_.dataset, d_);
    x = torch::from_blob(m.values.data(), {m.rows, m.cols}, torch::kFloat64).clone();
  }
  n_ = x.size(0);
  gram_ = x.t().matmul(x).contiguous();
  gram_device_ = gram_;

  // candidate edges e -> cells i * d + j, and the spec
  std::vector<int64_t> cells, parent, child;
  for (int64_t i = 0; i < d_; ++i) {
    for (int64_t j = 0; j < d_; ++j) {
      if (i == j) continue;
      cells.push_back(i * d_ + j);
      parent.push_back(i);
      child.push_back(j);
      spec_.forward.components.push_back({fmt::format("{}->{}", i, j), ComponentKind::kPiece, 1, Domain::kReal});
      spec_.backward.components.push_back({fmt::format("-{}->{}", i, j), ComponentKind::kAtom, 0, Domain::kNone});
    }
  }
  spec_.forward.components.push_back({"exit", ComponentKind::kAtom, 0, Domain::kNone});
  spec_.forward.exit = static_cast<int64_t>(cells.size());
  spec_.coord_dim = 1;
  edge_cell_ = torch::tensor(cells, torch::kInt64);
  edge_parent_ = torch::tensor(parent, torch::kInt64);
  edge_child_ = torch::tensor(child, torch::kInt64);
  // the fixed order: by child, then parent
  std::vector<int64_t> rank(cells.size());
  for (size_t e = 0; e < cells.size(); ++e) rank[e] = child[e] * (d_ - 1) + (parent[e] < child[e] ? parent[e] : parent[e] - 1);
  edge_rank_ = torch::tensor(rank, torch::kInt64);
  fixed_order_ = options_.edge_order == "fixed";

  if (d_ <= options_.exact_max) {
    LinearGaussianModel model;
    model.d = d_;
    model.n = n_;
    model.gram.assign(gram_.data_ptr<double>(), gram_.data_ptr<double>() + d_ * d_);
    model.noise_variance = options_.noise_variance;
    model.weight_variance = options_.weight_variance;
    model.edge_log_odds = edge_log_odds_;
    exact_ = std::make_unique<DagPosterior>(model);
  }
}

BayesNetEnv::~BayesNetEnv() = default;

States BayesNetEnv::initial_states(int64_t batch, const torch::Device& device) const {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto b = i64.dtype(torch::kBool);
  return {torch::zeros({batch, d_ * d_}, i64), torch::zeros({batch, d_ * d_}, i64.dtype(torch::kFloat64)),
          torch::ones({batch}, b), torch::zeros({batch}, b)};
}

torch::Tensor BayesNetEnv::reachability(const torch::Tensor& adjacency) const {
  // paths of length <= 2^k after k squarings; a DAG's longest path has d - 1 edges
  auto r = adjacency.view({-1, d_, d_}).to(torch::kFloat32);
  for (int64_t len = 1; len < d_ - 1; len *= 2) r = (r + r.bmm(r)).gt(0).to(torch::kFloat32);
  return r.gt(0);
}

namespace {

// [B, d*d] bool: i -> j may be added (absent, i != j, and j does not reach i)
torch::Tensor addable_cells(const torch::Tensor& adjacency, const torch::Tensor& reach, int64_t d) {
  auto absent = adjacency.view({-1, d, d}).eq(0);
  auto no_cycle = reach.transpose(1, 2).logical_not();
  auto off_diagonal = torch::eye(d, adjacency.options().dtype(torch::kBool)).logical_not();
  return (absent & no_cycle & off_diagonal).reshape({-1, d * d});
}

}  // namespace

torch::Tensor BayesNetEnv::last_rank(const torch::Tensor& adjacency) const {
  auto present = adjacency.index_select(1, edge_cell_.on(adjacency.device()));
  return (present * (edge_rank_.on(adjacency.device()) + 1).unsqueeze(0)).amax(1) - 1;
}

torch::Tensor BayesNetEnv::addable_edges(const torch::Tensor& adjacency) const {
  auto edges = addable_cells(adjacency, reachability(adjacency), d_).index_select(1, edge_cell_.on(adjacency.device()));
  if (!fixed_order_) return edges;
  return edges & edge_rank_.on(adjacency.device()).unsqueeze(0).gt(last_rank(adjacency).unsqueeze(1));
}

torch::Tensor BayesNetEnv::features(const States& states) const {
  const auto& a = states.discrete;
  return torch::cat({a.to(torch::kFloat32), (states.continuous / weight_scale_).to(torch::kFloat32),
                     addable_edges(a).to(torch::kFloat32)},
                    1);
}

torch::Tensor BayesNetEnv::forward_mask(const States& states) const {
  auto edges = addable_edges(states.discrete);
  return torch::cat({edges, torch::ones({edges.size(0), 1}, edges.options())}, 1);
}

torch::Tensor BayesNetEnv::backward_mask(const States& states) const {
  const auto& a = states.discrete;
  auto present = a.index_select(1, edge_cell_.on(a.device())).eq(1);
  if (!fixed_order_) return present;
  return present & edge_rank_.on(a.device()).unsqueeze(0).eq(last_rank(a).unsqueeze(1));
}

void BayesNetEnv::chart(const torch::Tensor& weights, const torch::Tensor& component, torch::Tensor* location,
                        torch::Tensor* scale) const {
  const auto& w = weights;
  auto e = component.clamp(0, spec_.forward.exit - 1);
  auto i = edge_parent_.on(w.device()).index_select(0, e);
  auto j = edge_child_.on(w.device()).index_select(0, e);
  auto gram = gram_device_.on(w.device());
  auto s_i = gram.index_select(0, i);                                          // [B, d]: S[i, .]
  auto w_j = w.view({-1, d_, d_}).gather(2, j.view({-1, 1, 1}).expand({-1, d_, 1})).squeeze(2);  // [B, d]: W[., j]
  auto s_ij = s_i.gather(1, j.unsqueeze(1)).squeeze(1);
  auto s_ii = s_i.gather(1, i.unsqueeze(1)).squeeze(1);
  // the Gaussian conditional of w given the other weights: precision S_ii / s2 + 1 / t2,
  // location (S_ij - sum_k S_ik W_kj) / (s2 precision)
  auto precision = s_ii / options_.noise_variance + 1.0 / options_.weight_variance;
  *location = (s_ij - (s_i * w_j).sum(1)) / (options_.noise_variance * precision);
  *scale = precision.rsqrt();
}

StepResult BayesNetEnv::step(const States& states, const Actions& actions) const {
  const auto& a = states.discrete;
  const int64_t edges = spec_.forward.exit;
  auto move = actions.component.lt(edges);
  auto cell = edge_cell_.on(a.device()).index_select(0, actions.component.clamp(0, edges - 1)).unsqueeze(1);
  torch::Tensor location, scale;
  chart(states.continuous, actions.component, &location, &scale);
  auto w = (location + scale * actions.coords.select(1, 0).to(torch::kFloat64)).unsqueeze(1);
  auto next_a = torch::where(move.unsqueeze(1), a.scatter(1, cell, 1), a);
  auto next_w = torch::where(move.unsqueeze(1), states.continuous.scatter(1, cell, w), states.continuous);
  auto log_j = torch::where(move, scale.log(), torch::zeros_like(scale)).to(torch::kFloat32);
  return {States{next_a, next_w, next_a.eq(0).all(1), torch::zeros_like(states.is_sink)}, log_j};
}

StepResult BayesNetEnv::backward_step(const States& states, const Actions& actions) const {
  const auto& a = states.discrete;
  auto cell = edge_cell_.on(a.device()).index_select(0, actions.component.clamp(0, spec_.forward.exit - 1));
  cell = cell.unsqueeze(1);
  auto prev_a = a.scatter(1, cell, 0);
  auto prev_w = states.continuous.scatter(1, cell, 0.0);
  return {States{prev_a, prev_w, prev_a.eq(0).all(1), torch::zeros_like(states.is_sink)},
          torch::zeros({a.size(0)}, states.continuous.options().dtype(torch::kFloat32))};
}

Actions BayesNetEnv::backward_action(const States& /*parent*/, const States& /*child*/, const Actions& forward,
                                     torch::Tensor* log_jacobian) const {
  return same_index_action(forward, log_jacobian);  // the edge added is the edge removed
}

Actions BayesNetEnv::forward_action(const States& child, const States& parent, const Actions& backward,
                                    torch::Tensor* log_jacobian) const {
  const auto& w = child.continuous;
  auto cell = edge_cell_.on(w.device()).index_select(0, backward.component.clamp(0, spec_.forward.exit - 1));
  torch::Tensor location, scale;
  chart(parent.continuous, backward.component, &location, &scale);
  auto u = ((w.gather(1, cell.unsqueeze(1)).squeeze(1) - location) / scale).unsqueeze(1);
  if (log_jacobian) *log_jacobian = scale.log().to(torch::kFloat32);
  return {backward.component, u};
}

torch::Tensor BayesNetEnv::log_reward(const States& states) const {
  const auto& w = states.continuous;
  const double n = static_cast<double>(n_), d = static_cast<double>(d_);
  const double s2 = options_.noise_variance, t2 = options_.weight_variance;
  // log p(D | G, W) = -(n d / 2) log(2 pi s2) - tr((I - W)^T S (I - W)) / (2 s2)
  auto m = torch::eye(d_, w.options()).unsqueeze(0) - w.view({-1, d_, d_});
  auto quad = (m * torch::matmul(gram_device_.on(w.device()), m)).sum({1, 2});
  auto log_lik = quad * (-0.5 / s2) - 0.5 * n * d * (kLog2Pi + std::log(s2));
  // log p(W | G) + log p(G): a N(0, t2) per edge, and the graph prior's log-odds per edge
  auto edges = states.discrete.sum(1).to(torch::kFloat64);
  auto log_prior = w.square().sum(1) * (-0.5 / t2) + edges * (edge_log_odds_ - 0.5 * (kLog2Pi + std::log(t2)));
  return (log_lik + log_prior).to(torch::kFloat32);
}

std::optional<double> BayesNetEnv::log_partition() const {
  if (!exact_) return std::nullopt;
  return exact_->log_partition();
}

torch::Tensor BayesNetEnv::edge_frequencies(const States& terminal) const {
  return terminal.discrete.to(torch::kCPU, torch::kFloat64).mean(0).view({d_, d_});
}

std::vector<SampleMatrixSpec> BayesNetEnv::sample_matrix_specs() const {
  return {{"edge_marginals", d_, d_, exact_edge_marginals()}};
}

std::vector<torch::Tensor> BayesNetEnv::sample_matrices(const States& terminal) const {
  return {edge_frequencies(terminal)};
}

torch::Tensor BayesNetEnv::exact_edge_marginals() const {
  if (!exact_) return {};
  auto m = exact_->edge_marginals();
  return torch::tensor(m, torch::kFloat64).view({d_, d_});
}

std::vector<std::pair<std::string, double>> BayesNetEnv::sample_metrics(const States& terminal) const {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<std::pair<std::string, double>> out;
  auto a = terminal.discrete.to(torch::kCPU).contiguous();
  auto w = terminal.continuous.to(torch::kCPU).contiguous();
  const int64_t n = a.size(0), cells = d_ * d_;
  auto freq = edge_frequencies(terminal);
  auto off_diagonal = torch::eye(d_, torch::kBool).logical_not();

  if (exact_) {
    // the graph distribution of the samples against p(G | D)
    const int64_t graphs = exact_->num_graphs();
    std::vector<double> sampled(graphs, 0.0), exact(graphs);
    std::vector<int64_t> graph_of(n);
    const int64_t* pa = a.data_ptr<int64_t>();
    for (int64_t b = 0; b < n; ++b) {
      uint64_t mask = 0;
      for (int64_t c = 0; c < cells; ++c)
        if (pa[b * cells + c]) mask |= uint64_t{1} << c;
      graph_of[b] = exact_->index_of(mask);
      if (graph_of[b] >= 0) sampled[graph_of[b]] += 1.0 / static_cast<double>(n);
    }
    for (int64_t k = 0; k < graphs; ++k) exact[k] = std::exp(exact_->log_posterior(k));
    out.emplace_back("graph_jsd", jensen_shannon(sampled, exact));
    auto err = (freq - exact_edge_marginals()).abs().masked_select(off_diagonal);
    out.emplace_back("edge_marginal_error", err.mean().item<double>());
    out.emplace_back("edge_marginal_max_error", err.max().item<double>());

    // the weights on the three most probable graphs (those with at least 30 samples)
    double mean_err = 0.0, var_err = 0.0;
    int64_t count = 0;
    const double* pw = w.data_ptr<double>();
    for (int64_t k : exact_->top_graphs(3)) {
      std::vector<double> mean, variance, sum(cells, 0.0), sum2(cells, 0.0);
      exact_->weight_moments(k, &mean, &variance);
      int64_t m = 0;
      for (int64_t b = 0; b < n; ++b) {
        if (graph_of[b] != k) continue;
        ++m;
        for (int64_t c = 0; c < cells; ++c) {
          sum[c] += pw[b * cells + c];
          sum2[c] += pw[b * cells + c] * pw[b * cells + c];
        }
      }
      if (m < 30) continue;
      const uint64_t g = exact_->graph(k);
      for (int64_t c = 0; c < cells; ++c) {
        if (!((g >> c) & 1)) continue;
        const double mu = sum[c] / m, var = (sum2[c] - m * mu * mu) / (m - 1);
        mean_err += std::abs(mu - mean[c]);
        var_err += std::abs(var - variance[c]);
        ++count;
      }
    }
    out.emplace_back("weight_mean_error", count ? mean_err / count : nan);
    out.emplace_back("weight_variance_error", count ? var_err / count : nan);
  }

  if (truth_.defined()) {
    // expected structural Hamming distance to the generating graph: additions, deletions and
    // reversals, a reversed edge counted once
    auto t = truth_.ne(0);
    auto g = a.view({-1, d_, d_}).eq(1);
    auto diff = g.logical_xor(t.unsqueeze(0));
    auto reversed = diff & diff.transpose(1, 2) & (g.logical_xor(g.transpose(1, 2)));
    auto shd = diff.sum({1, 2}).to(torch::kFloat64) - reversed.sum({1, 2}).to(torch::kFloat64) / 2.0;
    out.emplace_back("expected_shd", shd.mean().item<double>());
    std::vector<double> score;
    std::vector<bool> label;
    for (int64_t i = 0; i < d_; ++i)
      for (int64_t j = 0; j < d_; ++j)
        if (i != j) {
          score.push_back(freq[i][j].item<double>());
          label.push_back(t[i][j].item<bool>());
        }
    out.emplace_back("edge_auroc", auroc(score, label));
  }
  return out;
}

}  // namespace gfn

// Bayesian networks with their parameters (Deleu et al. 2023, "Joint Bayesian inference of
// graphical structure and parameters with a single generative flow network"): a hybrid GFlowNet
// that samples a DAG G over d variables together with one real weight per edge,
//     (G, theta) ~ R(G, theta) / Z,   R = p(D | G, theta) p(theta | G) p(G),
// for a linear-Gaussian network: X_j = sum_{i in pa(j)} theta_ij X_i + eps_j, eps_j ~ N(0, sigma^2)
// with sigma^2 = noise_variance known, theta_ij ~ N(0, weight_variance) a priori, and
// log p(G) = |E| edge_log_odds (0: uniform over DAGs; "edges": logit(edge_probability), an
// Erdos-Renyi prior restricted to DAGs, unnormalised). The data D (n rows) are drawn from a
// seeded random network of the same model (env.data = "") or read from a CSV or HDF5 file.
// log R depends on D through S = X^T X only (measures/dag_posterior.h). For d <= 5 every DAG is
// enumerated and the exact log Z, p(G | D), the edge marginals and each graph's Gaussian weight
// posterior are known (measures/dag_posterior.h); the env's sample metrics compare with them.
//
// A state is (G, theta_G): discrete [B, d*d] int64, the adjacency A (A[i*d + j] = 1 for i -> j);
// continuous [B, d*d] float64, the weights W (0 where there is no edge). s0 is the empty graph.
// With E = d (d - 1) candidate edges, numbered e = i (d - 1) + (j < i ? j : j - 1) for i != j:
//   forward  e < E   "i->j": piece on R, the edge i -> j added with weight w = m + c u, where
//                    N(m, c^2) is the conditional posterior of w_ij given the weights already into
//                    j (precision 1/c^2 = S_ii / sigma^2 + 1 / weight_variance, m = c^2 (S_ij -
//                    sum_k S_ik W_kj) / sigma^2): an affine chart fixed by the state, so that the
//                    policy's N(0, 1) on u starts at the exact answer for a node that gets no
//                    further parent and learns only the correction; log J = log c. Available iff
//                    i -> j is absent and j does not reach i (no cycle: DAG-GFlowNet's mask
//                    through the transitive closure, Deleu et al. 2022).
//            E       "exit": atom, at every state (every DAG with weights is a terminal state).
//   backward e < E   "-i->j": atom, the edge i -> j removed with its weight; iff i -> j is present.
// With edge_order = "fixed" the edges of a graph are added in one order, by child then parent
// (rank j (d - 1) + i'): a forward edge is available only after the last one present, and the
// backward kernel removes only that last edge. Every graph then has one trajectory and P_B is 1:
// the sampler need not learn to cover the |E|! orders of the free form, which the uniform P_B
// weighs equally (and which its importance-sampled log Z misses when it does not: RESULTS).
//
// Reference measures and why the kernel pair is consistent. States are the disjoint union over
// DAGs G of R^{|E(G)|} (the weights of G's edges); nu = sum_G Lebesgue on R^{|E(G)|} (counting
// measure on G; the empty graph's R^0 is the atom s0). The forward kernel kappa((G, theta), .) =
// sum over addable edges e of the image of Lebesgue on R under w -> (G + e, theta, w); the backward
// kernel kappa_b((G', theta'), .) = sum over edges e of G' of the atom at (G' - e, theta' minus
// w_e). Both nu (x) kappa and (nu (x) kappa_b)^T are, on the pairs {(G, theta), (G + e, (theta,
// w))}, the measure "counting on (G, e) times Lebesgue on R^{|E(G)|} x R": a pair is fixed by
// the parent's weights and the added weight either way, and no other pairs carry mass. So the
// densities above (log p_F = log pi(e) + log q(u) - log c, log p_B = log pi_B(e)) are w.r.t.
// consistent measures, R is a density w.r.t. nu (theta's prior density is w.r.t. Lebesgue on
// R^{|E|}), and Z = sum_G p(G) p(D | G), the model evidence.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/options.h"

namespace gfn {

class DagPosterior;

struct BayesNetOptions : KeyedOptions<BayesNetOptions> {
  int64_t variables = 5;          // d, in [2, 32]
  int64_t samples = 100;          // n, rows of generated data (ignored when `data` names a file)
  double parents = 1.0;           // expected parents per node of the generating Erdos-Renyi DAG
  int64_t data_seed = 0;          // seed of the generating network and its data (not the run's seed)
  std::string data;               // a CSV or HDF5 file of n rows x d columns ("" generates)
  std::string dataset = "data";   // the 2-D dataset of an HDF5 `data` file
  double noise_variance = 1.0;    // sigma^2 of every node's Gaussian noise, > 0 (known)
  double weight_variance = 1.0;   // prior variance of each edge weight, > 0
  std::string graph_prior = "uniform";  // "uniform" over DAGs, or "edges": p(G) ~ rho^|E| (1 - rho)^(E - |E|)
  double edge_probability = 0.5;  // rho of the "edges" prior, in (0, 1)
  std::string edge_order = "free";  // "free" or "fixed" (see the header comment)
  int64_t exact_max = 5;          // exact evaluation by enumeration for d <= exact_max (<= 5)

  // The config keys (under [env]).
  static const OptionTable<BayesNetOptions>& keys();
};

class BayesNetEnv final : public Env {
 public:
  explicit BayesNetEnv(const BayesNetOptions& options);
  ~BayesNetEnv() override;

  std::string name() const override { return "bayesnet"; }
  const ActionSpec& action_spec() const override { return spec_; }
  int64_t max_length() const override { return d_ * (d_ - 1) / 2; }
  int64_t discrete_dim() const override { return d_ * d_; }
  int64_t continuous_dim() const override { return d_ * d_; }
  // A and W / s (each d*d), the addable edges (E)
  int64_t feature_dim() const override { return 2 * d_ * d_ + d_ * (d_ - 1); }

  States initial_states(int64_t batch, const torch::Device& device) const override;
  torch::Tensor features(const States& states) const override;       // [B, 2 d^2 + E] float32
  torch::Tensor forward_mask(const States& states) const override;    // [B, E + 1]
  torch::Tensor backward_mask(const States& states) const override;   // [B, E]
  StepResult step(const States& states, const Actions& actions) const override;
  StepResult backward_step(const States& states, const Actions& actions) const override;
  Actions backward_action(const States& parent, const States& child, const Actions& forward,
                          torch::Tensor* log_jacobian = nullptr) const override;
  Actions forward_action(const States& child, const States& parent, const Actions& backward,
                         torch::Tensor* log_jacobian = nullptr) const override;
  // log p(D | G, W) + log p(W | G) + log p(G) from S = X^T X: [B] float32.
  torch::Tensor log_reward(const States& states) const override;
  bool every_state_terminal() const override { return true; }

  // Graph JSD against p(G | D) (d <= exact_max), the mean and largest edge-marginal errors, the
  // weight posteriors' mean and variance errors on the most probable graphs; with a generating
  // network, the expected SHD to it and the AUROC of the sampled edge marginals.
  bool has_sample_metrics() const override { return true; }
  std::vector<std::pair<std::string, double>> sample_metrics(const States& terminal) const override;
  std::optional<double> log_partition() const override;
  // "edge_marginals" [d, d]: P(i -> j) among the samples, beside the exact ones for d <= exact_max.
  std::vector<SampleMatrixSpec> sample_matrix_specs() const override;
  std::vector<torch::Tensor> sample_matrices(const States& terminal) const override;

  const BayesNetOptions& options() const { return options_; }
  int64_t variables() const { return d_; }
  int64_t rows() const { return n_; }
  // S = X^T X: [d, d] float64 (CPU).
  const torch::Tensor& gram() const { return gram_; }
  // The generating network's weights ([d, d] float64, CPU) when the data were generated, else undefined.
  const torch::Tensor& truth() const { return truth_; }
  // The exact posterior (d <= exact_max), else null.
  const DagPosterior* exact() const { return exact_.get(); }
  // The edge marginals of terminal states' graphs: [d, d] float64 (CPU).
  torch::Tensor edge_frequencies(const States& terminal) const;
  // The exact edge marginals P(i -> j | D): [d, d] float64, undefined without the exact posterior.
  torch::Tensor exact_edge_marginals() const;
  // [B, d, d] bool: j reaches i (a directed path i ~> j of length >= 1) in each state's graph.
  torch::Tensor reachability(const torch::Tensor& adjacency) const;

 private:
  // The chart of forward piece e = i -> j at each row's weights ([B, d*d] float64): w =
  // location + scale u, the Gaussian conditional of w_ij given the other weights into j in the
  // graph with the edge ([B] float64 each).
  // [B] int64: the largest rank among each state's edges (-1 for the empty graph)
  torch::Tensor last_rank(const torch::Tensor& adjacency) const;
  // [B, E] bool: the edges that may be added (absent, no cycle, and after the last in the fixed order)
  torch::Tensor addable_edges(const torch::Tensor& adjacency) const;
  void chart(const torch::Tensor& weights, const torch::Tensor& component, torch::Tensor* location,
             torch::Tensor* scale) const;

  BayesNetOptions options_;
  int64_t d_, n_;
  double weight_scale_;      // s = sqrt(weight_variance)
  double edge_log_odds_;     // log p(G) per edge
  torch::Tensor gram_;       // [d, d] float64
  torch::Tensor truth_;      // [d, d] float64 or undefined
  DeviceConstant edge_cell_;    // [E] int64: i * d + j of candidate edge e
  DeviceConstant edge_parent_;  // [E] int64: i
  DeviceConstant edge_child_;   // [E] int64: j
  DeviceConstant edge_rank_;    // [E] int64: e's place in the fixed order, j (d - 1) + (i < j ? i : i - 1)
  bool fixed_order_ = false;
  DeviceConstant gram_device_;  // [d, d] float64
  std::unique_ptr<DagPosterior> exact_;
  ActionSpec spec_;
};

}  // namespace gfn

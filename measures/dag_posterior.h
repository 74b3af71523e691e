// The exact joint posterior of a linear-Gaussian Bayesian network over d <= 6 variables, the
// target of a GFlowNet that samples (G, theta) ~ R(G, theta) / Z with
//     R(G, theta) = p(D | G, theta) p(theta | G) p(G)
// (Deleu et al. 2023, "Joint Bayesian inference of graphical structure and parameters with a
// single generative flow network", JSP-GFN). The model: n rows X (n x d); for a DAG G with parent
// sets pa(j), X_j = sum_{i in pa(j)} theta_ij X_i + eps_j, eps_j ~ N(0, sigma^2) iid over rows
// (sigma^2 = noise_variance, known); a priori theta_ij ~ N(0, sigma_t^2) independently
// (sigma_t^2 = weight_variance); log p(G) = |E(G)| edge_log_odds, unnormalised over DAGs (0:
// uniform). Everything depends on the data through S = X^T X and n only:
//   log p(D | G, theta) = -(n d / 2) log(2 pi sigma^2) - tr((I - W)^T S (I - W)) / (2 sigma^2),
//   log p(theta | G)    = sum_{edges e} log N(theta_e; 0, sigma_t^2),
// with W the weighted adjacency (W_ij = theta_ij). p(theta | G) is a density w.r.t. Lebesgue
// measure on R^|E(G)|, so integrating R over the weights leaves Z = sum_G p(G) p(D | G), the
// model evidence, and p(G | D) = p(G) p(D | G) / Z. Given a DAG the likelihood factorises over
// nodes and theta_j (the weights into j) is conjugate, so each node's score is in closed form
// (the linear-Gaussian score of Geiger and Heckerman 1994, with a known noise variance): with
// P = pa(j), k = |P| and M = (sigma^2 / sigma_t^2) I_k + S_PP,
//   log p(x_j | X_P) = log N(x_j; 0, sigma^2 I_n + sigma_t^2 X_P X_P^T)
//     = -1/2 [ n log(2 pi sigma^2) + log det(I_k + (sigma_t^2 / sigma^2) S_PP)
//              + (S_jj - S_Pj^T M^{-1} S_Pj) / sigma^2 ],
// the determinant by the matrix determinant lemma and the quadratic form by Woodbury, both from
// one Cholesky factor of M (O(k^3), not O(n^3)). The weights' posterior given G is Gaussian and
// independent across nodes: theta_j | D, G ~ N(M^{-1} S_Pj, sigma^2 M^{-1}) (precision
// Lambda = S_PP / sigma^2 + I / sigma_t^2). For d <= 6 every DAG is enumerated (Robinson 1977:
// 1, 1, 3, 25, 543, 29281, 3781503 DAGs on d = 0..6 labelled nodes), giving log Z, p(G | D), the
// edge marginals and each graph's weight posterior exactly.
//
// Adjacency bitmasks: bit i*d + j set for the edge i -> j (row-major d x d, as the matrices).
// Parent sets: bitmasks over the d nodes. Matrices are std::vector<double>, d*d row-major.
// This module is torch-free (std and Eigen only).
#pragma once

#include <cstdint>
#include <vector>

namespace gfn {

// The linear-Gaussian model and its data summary. Valid: d >= 1 (<= 32 for the free functions,
// <= 6 for DagPosterior), n >= 0, gram of size d*d, finite, symmetric to 1e-9 of its largest
// diagonal entry (DagPosterior keeps its symmetric part), with (sigma^2 / sigma_t^2) I + S
// positive definite (true of any X^T X), positive finite variances, finite edge_log_odds. Each
// function checks the model and throws std::invalid_argument naming the field and its value.
struct LinearGaussianModel {
  int64_t d = 0;                // number of variables
  int64_t n = 0;                // number of data rows, >= 0
  std::vector<double> gram;     // [d*d] float64 row-major, S = X^T X
  double noise_variance = 1.0;  // sigma^2 of every node's noise, > 0 (known)
  double weight_variance = 1.0; // sigma_t^2, prior variance of each edge weight, > 0
  double edge_log_odds = 0.0;   // log p(G) per edge (0: uniform over DAGs), finite
};

// The closed-form log marginal likelihood of node j given the parent set `parents` (bitmask over
// the d nodes, bit j clear), the weights integrated out: log N(x_j; 0, sigma^2 I_n + sigma_t^2
// X_P X_P^T), by the determinant lemma and Woodbury as above. Throws std::invalid_argument for an
// invalid model, j outside [0, d), or parents with bit j or a bit >= d set.
double node_log_marginal(const LinearGaussianModel& model, int64_t j, uint32_t parents);

// The Gaussian posterior of the weights into one node given its parents.
struct WeightPosterior {
  std::vector<int64_t> parents;     // [k] the parent nodes, increasing
  std::vector<double> mean;         // [k] M^{-1} S_Pj, by parent
  std::vector<double> covariance;   // [k*k] row-major, sigma^2 M^{-1}
};

// The posterior of theta_j (the weights into node j) given the parent set: precision
// Lambda = S_PP / sigma^2 + I / sigma_t^2, mean Lambda^{-1} S_Pj / sigma^2. Throws as
// node_log_marginal.
WeightPosterior node_weight_posterior(const LinearGaussianModel& model, int64_t j, uint32_t parents);

// log p(D | G, theta) + log p(theta | G) + log p(G) at one point (the GFlowNet's log R), in
// closed form from S (formulas above). adjacency: [d*d] row-major, nonzero for i -> j; weights:
// [d*d] row-major, W[i*d + j] = theta_ij, read at the edges only (entries off the edges are
// ignored). Throws std::invalid_argument for an invalid model, wrong sizes, a self-loop or cycle,
// or a non-finite weight on an edge.
double log_joint(const LinearGaussianModel& model, const std::vector<uint8_t>& adjacency,
                 const std::vector<double>& weights);

// Every DAG on d labelled nodes as adjacency bitmasks, ordered by edge count, then bitmask (the
// empty graph first). Built by Robinson's decomposition: a DAG on V is its nonempty set of
// sources S, a DAG on V \ S, and edges from S such that every source of the latter gets at
// least one; each DAG arises once. d = 5 takes milliseconds, d = 6 (3781503 DAGs) about a
// second. Throws std::invalid_argument for d outside [0, 6].
std::vector<uint64_t> enumerate_dags(int64_t d);

// Whether the adjacency bitmask is a DAG on d nodes (a diagonal bit is a self-loop, a cycle);
// by repeatedly removing parentless nodes, O(d^2). Throws std::invalid_argument for d outside
// [0, 8] or a bit set at or above d*d.
bool is_acyclic(uint64_t adjacency, int64_t d);

// The exact posterior over DAGs and weights, by enumeration: built once, with the node scores
// cached for every (node, parent set) and log p(G) p(D | G) for every DAG. Graph indices k follow
// enumerate_dags(d). Memory: 16 bytes per DAG (60 MB at d = 6).
class DagPosterior {
 public:
  // Throws std::invalid_argument for an invalid model (d outside [1, 6], wrong gram size,
  // non-positive variances, non-finite values; the message names the field and its value).
  explicit DagPosterior(const LinearGaussianModel& model);

  const LinearGaussianModel& model() const { return model_; }
  // The number of DAGs on d nodes.
  int64_t num_graphs() const { return static_cast<int64_t>(graphs_.size()); }
  // The adjacency bitmask of graph k. Throws std::out_of_range for k outside [0, num_graphs).
  uint64_t graph(int64_t k) const;
  // log Z = log sum_G p(G) p(D | G) = log of the integral of R (a logsumexp over the DAGs).
  double log_partition() const { return log_partition_; }
  // log p(G_k) + log p(D | G_k) = |E| edge_log_odds + sum_j node_log_marginal(j, pa_j).
  double log_marginal(int64_t k) const;
  // log p(G_k | D) = log_marginal(k) - log_partition().
  double log_posterior(int64_t k) const;
  // The index of a DAG's adjacency bitmask, -1 if it is not a DAG on d nodes (O(log graphs)).
  int64_t index_of(uint64_t adjacency) const;
  // [d*d] row-major: P(i -> j | D), 0 on the diagonal.
  const std::vector<double>& edge_marginals() const { return edge_marginals_; }
  // The indices of the min(k, num_graphs) most probable graphs, most probable first (ties by
  // index). Throws std::invalid_argument for k < 0.
  std::vector<int64_t> top_graphs(int64_t k) const;
  // The posterior mean and variance of each edge weight of graph k given the graph ([d*d]
  // row-major, 0 off the edges), from node_weight_posterior. Throws std::out_of_range for a bad
  // k, std::invalid_argument for null outputs.
  void weight_moments(int64_t k, std::vector<double>* mean, std::vector<double>* variance) const;

 private:
  LinearGaussianModel model_;             // validated, gram symmetrised
  std::vector<uint64_t> graphs_;          // [graphs] adjacency bitmasks, enumerate_dags order
  std::vector<int64_t> first_with_edges_; // [d(d-1)/2 + 2] index of the first graph with e edges
  std::vector<double> node_scores_;       // [d * 2^d] node_log_marginal(j, parents) at j * 2^d + parents
  std::vector<double> log_marginals_;     // [graphs] log p(G) p(D | G)
  double log_partition_ = 0.0;            // log Z
  std::vector<double> edge_marginals_;    // [d*d] P(i -> j | D)
};

}  // namespace gfn

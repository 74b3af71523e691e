// Evaluation: exact on enumerable environments, by importance sampling on the others.
//
// The terminating distribution of P_F is computed by dynamic programming over the DAG in
// topological order, with no sampling noise:
//     reach(s0) = 1,  reach(s') = sum_{s -> s'} reach(s) p_F(s'|s),  p(x) = reach(x) p_F(sf|x).
// Against pi(x) = R(x)/Z over the states that may exit:
//     TV = 1/2 sum |p - pi|,  JSD = 1/2 KL(p||m) + 1/2 KL(pi||m) with m = (p + pi)/2,
//     KL(pi||p) = sum pi log(pi/p),  and |log Z - log Z_hat| for the learned log Z_hat.
// The papers' L1 is the mean over all states of |p_hat - pi| with p_hat the empirical
// distribution of the last `window` terminal states visited in training (EmpiricalL1).
#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <vector>

#include <torch/types.h>

#include "core/env.h"
#include "core/estimator.h"
#include "core/tabular.h"

namespace gfn {

// Terminating distribution p over the table's states (0 where the exit is unavailable), given
// log p_F on every state ([S, C_f], -inf where unavailable). Host computation in float64.
std::vector<double> terminating_distribution(const StateTable& table, const torch::Tensor& log_pf);

// pi = R/Z over the states where the exit is available; also returns log Z through `log_z`.
std::vector<double> target_distribution(const StateTable& table, double* log_z = nullptr);

// Distances between two distributions over the same states (natural logarithms).
double total_variation(const std::vector<double>& p, const std::vector<double>& q);
double jensen_shannon(const std::vector<double>& p, const std::vector<double>& q);
double kl_divergence(const std::vector<double>& p, const std::vector<double>& q);  // KL(p||q)
// Spearman's rank correlation of two samples of equal size >= 2 (ties share their mean rank; NaN
// when either is constant).
double spearman(const std::vector<double>& a, const std::vector<double>& b);

struct ExactMetrics {
  double tv = 0, jsd = 0, kl = 0;  // distances of p to pi (kl = KL(pi||p))
  double log_z = 0;                // learned log Z
  double log_z_exact = 0;          // log of the exact partition function
  double log_z_error = 0;          // |log Z - log Z_hat|
  std::vector<double> terminating;  // p over the table's states (0 where the exit is unavailable)
};

// The policy's exact metrics: one batched pass of the policy over every state (in chunks).
ExactMetrics exact_metrics(const StateTable& table, Estimators& estimators);

// Importance-sampling estimates of the partition function from trajectories of the policy
// (the checker's "partition" invariant, core/checker.h): with log w = log R(x) + log P_B(tau|x) - log P_F(tau),
//     E_{tau ~ P_F}[w] = Z  for any full-support P_F and P_B,
//     log Z_IS = log mean w,  ELBO = mean log w <= log Z.
// A missing or wrong Jacobian, or a density that does not normalise, biases Z_IS.
struct ImportanceEstimate {
  double log_z = 0;          // log Z_IS
  double relative_se = 0;    // standard error of Z_IS relative to Z_IS: sd(w) / mean(w) / sqrt(N)
  double elbo = 0;           // mean log w
  double ess = 0;            // effective sample size (sum w)^2 / sum w^2
  int64_t samples = 0;
};
// Samples `samples` on-policy trajectories in batches of `batch` and scores them; `terminal`, when
// given, receives their terminal states x ([samples] rows).
ImportanceEstimate importance_log_z(const Env& env, Estimators& estimators, int64_t samples, int64_t batch,
                                    torch::Generator& generator, const torch::Device& device,
                                    Execution execution = Execution::kAuto, States* terminal = nullptr);

// The evidence upper bound from exact samples of the target, x ~ R/Z (Env::exact_samples), each
// walked back to s0 through P_B:
//     EUBO = E_{x ~ R/Z, tau ~ P_B(.|x)}[log R(x) + log P_B(tau|x) - log P_F(tau)] >= log Z,
// with equality iff P_F(tau) R(x) P_B... = Z (the sampler is exact). `terminal` [N] rows, scored
// in batches of `batch`.
double evidence_upper_bound(const Env& env, Estimators& estimators, const States& terminal, int64_t batch,
                            torch::Generator& generator, Execution execution = Execution::kAuto);

// The terminating density of P_F at the states `terminal` ([N] rows, w.r.t. the reference
// measure nu), estimated without a kernel density estimate (no bandwidth) by importance
// sampling through P_B:
//     p_hat(x) = mean_k P_F(tau_k) / P_B(tau_k | x),   tau_k ~ P_B(. | x),  k = 1..samples,
// an unbiased estimate of p(x) = E_{P_B}[P_F(tau) / P_B(tau | x)] for any full-support P_B.
// Returns log p_hat, [N] float64 on the CPU. Trajectories are drawn in batches of about `batch`.
torch::Tensor terminating_log_density(const Env& env, Estimators& estimators, const States& terminal,
                                      int64_t samples, int64_t batch, torch::Generator& generator,
                                      Execution execution = Execution::kAuto);

// The estimated terminating distribution against pi = R/Z on the env's terminal grid
// (Env::terminal_grid): both normalised over the cells (p_i ∝ p_hat(x_i) vol_i,
// pi_i ∝ R(x_i) vol_i), then JSD and KL(pi||p) as for exact evaluation; `mass` is
// sum_i p_hat(x_i) vol_i, the share of P_F's mass the grid sees (≈ 1 when it covers the support).
struct GridMetrics {
  double jsd = 0, kl = 0, tv = 0;
  double mass = 0;
  int64_t cells = 0;
  std::vector<double> cell_probability;  // p_i over the grid's cells, normalised
};
GridMetrics grid_metrics(const Env& env, Estimators& estimators, const TerminalGrid& grid, int64_t samples,
                         int64_t batch, torch::Generator& generator, Execution execution = Execution::kAuto);

// The empirical distribution of the last `window` visited terminal states and its L1 to pi.
class EmpiricalL1 {
 public:
  EmpiricalL1(int64_t num_states, int64_t window);
  // Queues terminal state indices ([B] int64, any device): one copy to the host per query (or
  // per 256 batches), not one per training iteration.
  void add(const torch::Tensor& state_index);
  // mean over all states of |p_hat - pi| (the papers' L1); 0 visits give mean pi.
  double l1(const std::vector<double>& target);
  int64_t count();
  // The window's state indices, oldest first ([n] int64, CPU), and its restoration (checkpoints).
  torch::Tensor state();
  void restore(const torch::Tensor& state);

 private:
  void flush();  // moves the queued indices into the window, one host copy
  int64_t window_;
  std::vector<torch::Tensor> pending_;
  std::deque<int64_t> ring_;
  std::vector<int64_t> counts_;
};

// The K highest-reward distinct terminal states found so far (discrete states only), the
// papers' "mean reward of the top-100 unique objects" (sets, sequences).
class TopK {
 public:
  explicit TopK(int64_t k);
  // Queues terminal states ([B, Dd] int64) with their log-rewards ([B]), on any device: one copy
  // to the host per query (or per 256 batches), not one per training iteration.
  void add(const torch::Tensor& discrete, const torch::Tensor& log_reward);
  // mean of R = exp(log R) over the kept states (NaN when none yet)
  double mean_reward();
  int64_t size();
  // The kept states ([n, Dd] int64) and their log-rewards ([n] float64), on the CPU, and their
  // restoration (checkpoints).
  std::pair<torch::Tensor, torch::Tensor> state();
  void restore(const torch::Tensor& discrete, const torch::Tensor& log_reward);

 private:
  void flush();  // merges the queued states, one host copy
  int64_t k_;
  std::vector<torch::Tensor> pending_discrete_, pending_log_reward_;
  std::set<std::pair<double, std::vector<int64_t>>> best_;  // ascending log R
  std::set<std::vector<int64_t>> kept_;
};

}  // namespace gfn

// Exact state tables of an enumerable environment, and the tabular training path.
//
// When an environment enumerates its states and there are no more of them than the rows a
// rollout would evaluate (num_states <= batch * T), evaluating the policy once on every state
// per iteration is cheaper than evaluating it at every rollout step and again when scoring:
// the rollout becomes table look-ups and the loss reads log-probabilities from the same table.
// The maths is unchanged (the policy is a function of the state); the generic path is the
// reference it is tested against. The same tables serve exact evaluation (core/evaluation.h).
#pragma once

#include <torch/types.h>

#include "core/env.h"
#include "core/estimator.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/types.h"

namespace gfn {

// Constant tables over all S states of an enumerable env, in its topological order.
struct StateTable {
  States states;               // [S] rows
  torch::Tensor features;      // [S, F] float
  torch::Tensor forward_mask;  // [S, C_f] bool
  torch::Tensor backward_mask; // [S, C_b] bool
  torch::Tensor child;         // [S, C_f] int64: index of the child reached by each component
                               // (the state itself for the exit and unavailable components)
  torch::Tensor backward_component;  // [S, C_f] int64: backward component undoing each move (0 where none)
  torch::Tensor log_reward;    // [S] float
  torch::Tensor parent;        // [S, C_b] int64: the parent reached by each backward component (the
                               // state itself where unavailable)
  torch::Tensor max_entropy_log_pb;  // [S, C_b] float64: the max-entropy P_B (envs with path counts; -inf
                                     // where unavailable, 0 on s0's row), else undefined
  torch::Tensor parent_component;  // [S, C_b] int64: the forward component from that parent (0 where none)
  torch::Tensor intermediate_log_reward;  // [S] float: log R~(s), 0 at s0 (envs that define it, else undefined)
  int64_t initial = 0;         // index of s0
  int64_t exit = -1;           // exit component

  // Throws std::logic_error if the env does not enumerate its states or has continuous pieces.
  StateTable(const Env& env, const torch::Device& device);
  int64_t size() const { return forward_mask.size(0); }
};

// The policy on every state: log p_F [S, C_f] (-inf where unavailable) and log p_B [S, C_b],
// carrying the autograd graph.
struct TablePass {
  torch::Tensor log_pf;
  torch::Tensor log_pb;
  torch::Tensor logits;    // [S, C_f] raw forward logits (for exploration)
  torch::Tensor log_flow;  // [S] log F(s) (estimators with a flow head, else undefined)
  torch::Tensor hidden;    // [S, hidden] the policy trunk's output
};
// The forward policy on every state: log_pf, logits, hidden.
TablePass evaluate_table_forward(const StateTable& table, PolicyNetImpl& policy);
// The rest of the pass from `estimators`: log_pb of their backward policy (the policy's own kernel
// reuses the pass's trunk output; P_B's own network runs its trunk) and log_flow of their flow head.
void evaluate_table_backward(const StateTable& table, Estimators& estimators, TablePass& pass);
// Forward and backward with the policy's own backward kernel (learned, uniform or max-entropy).
TablePass evaluate_table(const StateTable& table, PolicyNetImpl& policy);
// Forward from the policy, the rest from `estimators` (evaluate_table_backward).
TablePass evaluate_table(const StateTable& table, Estimators& estimators);

// Whether StateTable can be built for `env` and is small enough to keep: an enumerable env whose
// forward kernel has no continuous pieces, with at most 2^22 states.
bool has_state_table(const Env& env);

// Whether the tabular path is worth it for this env and batch size.
bool tabular_worthwhile(const Env& env, int64_t batch);

// How rollout_tabular walks the table: tensor operations with Gumbel-max draws (any device), or
// a plain loop on the host with inverse-CDF draws (CPU tables only: ~20x fewer microseconds
// than ~8 tensor operations per step). kAuto takes the host loop on the CPU.
enum class TabularBackend { kAuto, kTensor, kHost };

// Samples trajectories by table look-up from behaviour probabilities `probs` ([S, C_f], no grad).
// `state_index` receives the state index of every time step ([T+1, B] int64).
Trajectories rollout_tabular(const Env& env, const StateTable& table, const torch::Tensor& probs, int64_t batch,
                             torch::Generator& generator, torch::Tensor* state_index,
                             TabularBackend backend = TabularBackend::kAuto);

// The tabular counterpart of score_trajectories: reads the step log-probabilities from `pass`.
// Forward-looking credits (options.credit) come from the table's intermediate rewards.
LossInputs score_tabular(const StateTable& table, const TablePass& pass, const Trajectories& traj,
                         const torch::Tensor& state_index, const torch::Tensor& log_z, const ScoreOptions& options);

// log p_B of each step ([T, B], 0 on the exit steps and padding) read from `pass.log_pb`.
torch::Tensor tabular_log_pb(const StateTable& table, const TablePass& pass, const Trajectories& traj,
                             const torch::Tensor& state_index);
// The same under `net`'s backward kernel alone: TLM's likelihood on the tabular path.
torch::Tensor score_tabular_backward(const StateTable& table, PolicyNetImpl& net, const Trajectories& traj,
                                     const torch::Tensor& state_index);

}  // namespace gfn

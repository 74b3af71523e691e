// Scoring trajectories under the training policy: one batched pass of the estimators over the
// flattened valid steps (DESIGN.md §4), whatever policy sampled them.
//
// For step t of trajectory b (t < length[b]) from s_t to s_{t+1}:
//   log_pf[t, b] = log pi(a_t | s_t) - log J_t      (the forward density w.r.t. kappa)
//   log_pb[t, b] = log p_B(s_t | s_{t+1})            (0 for the exit step, by convention)
// and 0 on padding.
#pragma once

#include <limits>

#include "core/env.h"
#include "core/estimator.h"
#include "core/types.h"

namespace gfn {

struct ScoreOptions {
  // log R is clamped from below at this value (-inf: no clipping), as some codes do at -12.
  double log_reward_clip = -std::numeric_limits<double>::infinity();
  // Optional fields of LossInputs (the trainer sets them from its objective and config):
  bool edge_flows = false;     // log_inflow/log_outflow (flow matching; parents enumerated through
                               // the env's backward atoms)
  bool state_rewards = false;  // log_pf_exit/log_reward_states (modified DB)
  bool local_credit = false;   // local_credit from the env's intermediate reward (forward-looking)
};

// log R clamped at `clip` (no-op for -inf), in the dtype of `like`.
torch::Tensor clip_log_reward(const torch::Tensor& log_reward, double clip);

// Forward-looking credits (Env::has_intermediate_reward), [T, B]: from `ell` [T, B], the
// intermediate log-reward of each step's state s_t (0 where s_t is s0 or padding), the move from
// s_t to s_{t+1} earns ell[t+1] - ell[t] and the exit from x earns log R(x) - ell[L-1]; 0 on
// padding. A trajectory's credits sum to log R(x).
torch::Tensor forward_looking_credits(const torch::Tensor& ell, const torch::Tensor& log_reward,
                                      const torch::Tensor& mask, const torch::Tensor& length);

// Scores `traj` with `estimators`; the result carries the autograd graph.
LossInputs score_trajectories(const Env& env, Estimators& estimators, const Trajectories& traj,
                              const ScoreOptions& options);

}  // namespace gfn

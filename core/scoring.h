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
};

// log R clamped at `clip` (no-op for -inf), in the dtype of `like`.
torch::Tensor clip_log_reward(const torch::Tensor& log_reward, double clip);

// Scores `traj` with `estimators`; the result carries the autograd graph.
LossInputs score_trajectories(const Env& env, Estimators& estimators, const Trajectories& traj,
                              const ScoreOptions& options);

}  // namespace gfn

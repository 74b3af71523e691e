// Scoring trajectories under the training policy: one batched pass of the estimators over the
// flattened steps, whatever policy sampled them.
//
// For step t of trajectory b (t < length[b]) from s_t to s_{t+1}:
//   log_pf[t, b] = log pi(a_t | s_t) + log q(u_t | s_t, a_t) - log J_t   (the forward density w.r.t. kappa)
//   log_pb[t, b] = log p_B(s_t | s_{t+1})                                  (0 for the exit step, by convention)
// and 0 on padding. Compact execution evaluates the valid steps only; fixed shapes evaluate all
// T*B of them with the padding made harmless and masked out (core/types.h, Execution).
#pragma once

#include <limits>

#include "core/env.h"
#include "core/estimator.h"
#include "core/options.h"
#include "core/types.h"

namespace gfn {

// Local credits of the balance residuals (losses/credit.h): none; forward-looking ("fl", Pan et
// al. 2023) from the env's intermediate reward; or learned ("led", Jang et al. 2024) by a
// potential network (components/led.h).
enum class Credit { kNone, kForwardLooking, kLearned };
template <>
const EnumNames<Credit>& enum_names<Credit>();  // "none", "fl", "led"

struct ScoreOptions : KeyedOptions<ScoreOptions> {
  // log R is clamped from below at this value (-inf: no clipping), as some codes do at -12.
  double log_reward_clip = -std::numeric_limits<double>::infinity();
  // kForwardLooking: LossInputs::local_credit from the env's intermediate reward. kLearned is
  // LED's, whose credits its component adds after scoring.
  Credit credit = Credit::kNone;
  // Optional fields of LossInputs, set by the trainer from its objective's Requirements:
  bool edge_flows = false;     // log_inflow/log_outflow (flow matching; parents enumerated through
                               // the env's backward atoms)
  bool state_rewards = false;  // log_pf_exit/log_reward_states (modified DB)

  // The config keys (objective.log_reward_clip, objective.credit).
  static const OptionTable<ScoreOptions>& keys();
};

// log R clamped at `clip` (no-op for -inf), in the dtype of `like`.
torch::Tensor clip_log_reward(const torch::Tensor& log_reward, double clip);

// Forward-looking credits (Env::has_intermediate_reward), [T, B]: from `ell` [T, B], the
// intermediate log-reward of each step's state s_t (0 where s_t is s0 or padding), the move from
// s_t to s_{t+1} earns ell[t+1] - ell[t] and the exit from x earns log R(x) - ell[L-1]; 0 on
// padding. A trajectory's credits sum to log R(x).
torch::Tensor forward_looking_credits(const torch::Tensor& ell, const torch::Tensor& log_reward,
                                      const torch::Tensor& mask, const torch::Tensor& length);

// Scores `traj` with `estimators` (P_F from the policy, P_B from Estimators::backward_policy,
// log F(s_t) from Estimators::flow when set); the result carries the autograd graph. `pass`: the
// policy's outputs at the steps' states kept by the rollout that sampled `traj` with the current
// parameters (rollout's `keep`), read instead of running the network again.
LossInputs score_trajectories(const Env& env, Estimators& estimators, const Trajectories& traj,
                              const ScoreOptions& options, Execution execution = Execution::kAuto,
                              const PolicyPass* pass = nullptr);

// log p_B of every step of `traj` under the backward head of `net` alone (its own trunk), [T, B],
// 0 on the exit steps and padding: TLM's likelihood (components/tlm.h).
torch::Tensor score_backward(const Env& env, PolicyNetImpl& net, const Trajectories& traj,
                             Execution execution = Execution::kAuto);

}  // namespace gfn

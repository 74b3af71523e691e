// The objective interface: a training loss as a pure function of LossInputs (DESIGN.md §5).
#pragma once

#include <string>

#include <torch/types.h>

#include "core/types.h"

namespace gfn {

class Objective {
 public:
  virtual ~Objective() = default;
  // Registered name ("tb").
  virtual std::string name() const = 0;
  // Whether the loss reads LossInputs::log_z (the trainer then learns log Z).
  virtual bool uses_log_z() const { return false; }
  // Whether the loss reads LossInputs::log_flow.
  virtual bool uses_flow() const { return false; }
  // Whether the loss reads LossInputs::log_inflow/log_outflow (flow matching: the env's parents
  // must be enumerable, i.e. no continuous pieces).
  virtual bool uses_edge_flows() const { return false; }
  // Whether the loss reads LossInputs::log_pf_exit/log_reward_states (the env must declare that
  // every state may exit: Env::every_state_terminal).
  virtual bool uses_state_rewards() const { return false; }
  // Whether the loss takes per-step credits LossInputs::local_credit when they are defined
  // (forward-looking residuals, DESIGN.md §5; losses/credit.h).
  virtual bool accepts_local_credit() const { return false; }
  // The scalar loss to minimise ([] float), differentiable w.r.t. the estimator outputs.
  virtual torch::Tensor loss(const LossInputs& inputs) const = 0;
  // A batch estimate of log Z from an objective that learns none (VarGrad), detached ([]), or
  // undefined. The trainer writes it into Estimators::log_z after each step.
  virtual torch::Tensor log_z_estimate(const LossInputs& /*inputs*/) const { return {}; }
  // The smallest batch the loss is defined on (train.batch_size is checked against it).
  virtual int64_t min_batch_size() const { return 1; }
  // Hook after each optimiser step (EMA targets, potential updates).
  virtual void after_step() {}
};

}  // namespace gfn

// The objective interface: a training loss as a pure function of LossInputs.
//
// An objective states what it reads in one Requirements value; the trainer checks the env can
// provide it, asks scoring for the optional fields, learns log Z when it is read, and the run
// creates the components that supply the rest (a flow head for log F(s)).
#pragma once

#include <cstdint>
#include <string>

#include <torch/types.h>

#include "core/types.h"

namespace gfn {

// What an objective reads from LossInputs.
struct Requirements {
  bool log_z = false;          // log_z: the trainer learns log Z (its own Adam group, train.lr_logz)
  bool flow = false;           // log_flow: a flow head log F(s) (components/flow_head.h)
  bool edge_flows = false;     // log_inflow/log_outflow: flow matching (the env's parents must be
                               // enumerable, i.e. no continuous pieces)
  bool state_rewards = false;  // log_pf_exit/log_reward_states: every state a candidate terminal
                               // (Env::every_state_terminal)
  bool local_credit = false;   // takes per-step credits local_credit (forward-looking or LED's;
                               // losses/credit.h)
  int64_t min_batch_size = 1;  // the smallest batch the loss is defined on (train.batch_size is
                               // checked against it)
  bool on_policy = false;      // the batches must come from the distribution the loss assumes (P_F
                               // itself, or the target): no exploration (train.epsilon,
                               // train.temperature, explore.noise), no replay
  bool target_batches = false;  // every batch is drawn from the target: x ~ R / Z exactly, then
                                // tau ~ P_B(. | x) (components/target_sampler.h; enumerable envs)
};

class Objective {
 public:
  virtual ~Objective() = default;
  // Registered name ("tb").
  virtual std::string name() const = 0;
  // What the loss reads.
  virtual Requirements requirements() const = 0;
  // The scalar loss to minimise ([] float), differentiable w.r.t. the estimator outputs.
  virtual torch::Tensor loss(const LossInputs& inputs) const = 0;
  // A batch estimate of log Z from an objective that learns none (VarGrad; DB and SubTB report
  // log F(s0)), detached ([]), or undefined. The trainer writes it into Estimators::log_z after
  // each step.
  virtual torch::Tensor log_z_estimate(const LossInputs& /*inputs*/) const { return {}; }
};

}  // namespace gfn

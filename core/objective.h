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

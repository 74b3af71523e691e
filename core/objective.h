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
  // Hook after each optimiser step (EMA targets, potential updates).
  virtual void after_step() {}
};

}  // namespace gfn

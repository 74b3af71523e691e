// VarGrad, the log-partition variance loss (Richter et al., NeurIPS 2020; Zhang et al., ICLR 2023):
// each trajectory's estimate of log Z,
//     zeta_b = log R(x_b) + sum_t [log p_B,t - log p_F,t],
// (the exit step has log p_B = 0) and the loss is their variance over the batch,
//     L = mean_b (zeta_b - mean zeta)^2,
// zero iff every trajectory of the batch gives the same estimate, which is TB with log Z set to
// the batch mean. No log Z is learned: the gradient of the mean term vanishes, so the batch mean
// needs no detaching. The trainer writes that mean (log_z_estimate) into Estimators::log_z after
// each step, so the log, the evaluations and the saved model report it. Needs batches of >= 2.
#pragma once

#include <vector>

#include "core/objective.h"

namespace gfn {

class VarGrad final : public Objective {
 public:
  std::string name() const override { return "vargrad"; }
  torch::Tensor loss(const LossInputs& inputs) const override;
  torch::Tensor log_z_estimate(const LossInputs& inputs) const override;
  Requirements requirements() const override {
    Requirements r;
    r.min_batch_size = 2;
    return r;
  }
  // The per-trajectory estimates zeta_b: [B].
  static torch::Tensor log_z_estimates(const LossInputs& inputs);
};

}  // namespace gfn

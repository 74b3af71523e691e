// Trajectory balance (Malkin et al., NeurIPS 2022), in log space:
//     delta(tau) = log Z + sum_t [log p_F,t - log p_B,t] - log R(x),   L = mean_b delta_b^2,
// where the exit step has log p_B = 0 and log R may have been clipped (ScoreOptions). Takes
// forward-looking credits (losses/credit.h).
#pragma once

#include <vector>

#include "core/objective.h"

namespace gfn {

class TrajectoryBalance final : public Objective {
 public:
  std::string name() const override { return "tb"; }
  Requirements requirements() const override {
    Requirements r;
    r.log_z = r.local_credit = true;
    return r;
  }
  torch::Tensor loss(const LossInputs& inputs) const override;
  // The residuals delta_b: [B].
  static torch::Tensor residuals(const LossInputs& inputs);
};

}  // namespace gfn

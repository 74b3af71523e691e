// Modified detailed balance (Deleu et al., UAI 2022), for environments where every state may
// exit (Env::every_state_terminal). There F(s) p_F(sf | s) = R(s) eliminates the flow head,
// and each move s -> s' of a trajectory gives
//     delta = log R(s) + log p_F(s' | s) + log p_F(sf | s') - log R(s') - log p_B(s | s')
//             - log p_F(sf | s),
// L = the mean of delta^2 over the moves of the batch (the exit steps give no residual; a batch
// of trajectories that all exit at s0 has loss 0). log Z = log R(s0) - log p_F(sf | s0).
#pragma once

#include <vector>

#include "core/objective.h"

namespace gfn {

class ModifiedDetailedBalance final : public Objective {
 public:
  std::string name() const override { return "modified_db"; }
  Requirements requirements() const override {
    Requirements r;
    r.state_rewards = true;
    return r;
  }
  torch::Tensor loss(const LossInputs& inputs) const override;
  torch::Tensor log_z_estimate(const LossInputs& inputs) const override;
  // delta of every move: [T, B], 0 on exit steps and padding.
  static torch::Tensor residuals(const LossInputs& inputs);
  // The moves (valid steps other than the exit): [T, B] bool.
  static torch::Tensor moves(const LossInputs& inputs);
};

}  // namespace gfn

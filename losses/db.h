// Detailed balance (Bengio et al., JMLR 2023), in log space, one residual per transition:
//     delta_t = log F(s_t) + log p_F(s_{t+1} | s_t) - log F(s_{t+1}) - log p_B(s_t | s_{t+1})
// for the moves, and for the exit from the terminal state x
//     delta_t = log F(x) + log p_F(exit | x) - log R(x),
// L = the mean of delta_t^2 over the valid transitions of the batch. On continuous steps F, p_F
// and p_B are densities w.r.t. the reference measures (nu, kappa, kappa_b; core/env.h), so the
// charts' log-Jacobians already in log_pf and log_pb make the residual exact. Reads log F(s_t)
// from the flow head; learns no log Z: F(s0) is Z, and log_z_estimate reports log F(s0). Takes
// forward-looking credits (losses/credit.h): the head then learns log F~(s).
#pragma once

#include <vector>

#include "core/objective.h"

namespace gfn {

class DetailedBalance final : public Objective {
 public:
  std::string name() const override { return "db"; }
  Requirements requirements() const override {
    Requirements r;
    r.flow = r.local_credit = true;
    return r;
  }
  torch::Tensor loss(const LossInputs& inputs) const override;
  torch::Tensor log_z_estimate(const LossInputs& inputs) const override;
  // The residuals delta_t: [T, B], 0 on padding.
  static torch::Tensor residuals(const LossInputs& inputs);
};

}  // namespace gfn

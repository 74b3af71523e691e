// Flow matching (Bengio et al., NeurIPS 2021), in log space, for discrete environments. The
// policy's raw forward logits are the log edge flows log F(s -> s') (the exit edge included),
// so p_F is the normalised outflow and the sampler draws from it unchanged. For every visited
// state s_t other than s0,
//     delta_t = log sum_{p -> s_t} F(p -> s_t) - log sum_{s_t -> c} F(s_t -> c),
// and for every terminal state x the exit edge carries the reward,
//     eps_b = log F(x -> sf) - log R(x),
// L = mean_t delta_t^2 + mean_b eps_b^2 (a state visited k times counts k times, as in
// reference codes). The parents' edge flows need one extra pass of the policy over every
// parent (core/scoring.cc); envs with continuous pieces cannot enumerate parents and are
// refused with a config error. log Z = log of s0's outflow.
#pragma once

#include <vector>

#include "core/objective.h"

namespace gfn {

class FlowMatching final : public Objective {
 public:
  std::string name() const override { return "fm"; }
  Requirements requirements() const override {
    Requirements r;
    r.edge_flows = true;
    return r;
  }
  torch::Tensor loss(const LossInputs& inputs) const override;
  torch::Tensor log_z_estimate(const LossInputs& inputs) const override;
  // delta_t at the visited states ([T, B], 0 at s0 and on padding) and eps_b ([B]).
  static std::pair<torch::Tensor, torch::Tensor> residuals(const LossInputs& inputs);
};

}  // namespace gfn

#include "losses/modified_db.h"

#include <torch/torch.h>

namespace gfn {

torch::Tensor ModifiedDetailedBalance::moves(const LossInputs& in) {
  auto t = torch::arange(in.log_pf.size(0), in.length.options()).unsqueeze(1);
  return in.mask.logical_and(t.lt(in.length.unsqueeze(0) - 1));
}

torch::Tensor ModifiedDetailedBalance::residuals(const LossInputs& in) {
  TORCH_CHECK(in.log_pf_exit.defined() && in.log_reward_states.defined(),
              "modified DB: LossInputs::log_pf_exit/log_reward_states are undefined (ScoreOptions::state_rewards)");
  const int64_t T = in.log_pf.size(0), B = in.log_pf.size(1);
  // log R(s) - log p_F(sf | s) = log F(s) at every state, and at the next state of each step
  auto flow = in.log_reward_states - in.log_pf_exit;
  auto next = torch::cat({flow.narrow(0, 1, T - 1), torch::zeros({1, B}, flow.options())});
  return (flow + in.log_pf - in.log_pb - next).masked_fill(moves(in).logical_not(), 0.0);
}

torch::Tensor ModifiedDetailedBalance::loss(const LossInputs& in) const {
  auto count = moves(in).sum().clamp_min(1).to(in.log_pf.scalar_type());
  return residuals(in).square().sum() / count;
}

torch::Tensor ModifiedDetailedBalance::log_z_estimate(const LossInputs& in) const {
  return (in.log_reward_states[0] - in.log_pf_exit[0]).mean().detach();
}

}  // namespace gfn

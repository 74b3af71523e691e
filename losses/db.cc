#include "losses/db.h"

#include <torch/torch.h>

#include "losses/credit.h"

namespace gfn {

torch::Tensor DetailedBalance::residuals(const LossInputs& inputs) {
  const LossInputs in = with_local_credit(inputs);
  TORCH_CHECK(in.log_flow.defined(), "detailed balance: LossInputs::log_flow is undefined (no flow head)");
  const int64_t T = in.log_pf.size(0);
  auto flow = in.log_flow.narrow(0, 0, T);  // F(s_t)
  auto next = in.log_flow.narrow(0, 1, T);  // F(s_{t+1})
  auto t = torch::arange(T, in.length.options()).unsqueeze(1);
  auto exit = t.eq(in.length.unsqueeze(0) - 1);  // [T, B]: the exit step of each trajectory
  auto target = torch::where(exit, in.log_reward.unsqueeze(0).expand_as(next), next + in.log_pb);
  return (flow + in.log_pf - target).masked_fill(in.mask.logical_not(), 0.0);
}

torch::Tensor DetailedBalance::loss(const LossInputs& in) const {
  return residuals(in).square().sum() / in.mask.sum().clamp_min(1).to(in.log_pf.scalar_type());
}

torch::Tensor DetailedBalance::log_z_estimate(const LossInputs& in) const {
  return in.log_flow[0].mean().detach();  // every trajectory starts at s0
}

}  // namespace gfn

#include "losses/vargrad.h"

#include <torch/torch.h>

namespace gfn {

torch::Tensor VarGrad::log_z_estimates(const LossInputs& in) {
  // padding holds 0 in both log_pf and log_pb, so a plain sum over time is the masked sum
  return in.log_reward + (in.log_pb - in.log_pf).sum(0);
}

torch::Tensor VarGrad::loss(const LossInputs& in) const {
  auto zeta = log_z_estimates(in);
  return (zeta - zeta.mean()).square().mean();
}

torch::Tensor VarGrad::log_z_estimate(const LossInputs& in) const { return log_z_estimates(in).mean().detach(); }

}  // namespace gfn

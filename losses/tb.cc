#include "losses/tb.h"

#include <torch/torch.h>

#include "losses/credit.h"

namespace gfn {

torch::Tensor TrajectoryBalance::residuals(const LossInputs& inputs) {
  const LossInputs in = with_local_credit(inputs);
  // padding holds 0 in both log_pf and log_pb, so a plain sum over time is the masked sum
  return in.log_z + (in.log_pf - in.log_pb).sum(0) - in.log_reward;
}

torch::Tensor TrajectoryBalance::loss(const LossInputs& in) const { return residuals(in).square().mean(); }

}  // namespace gfn

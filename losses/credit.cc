#include "losses/credit.h"

#include <torch/torch.h>

namespace gfn {

LossInputs with_local_credit(const LossInputs& in) {
  if (!in.local_credit.defined()) return in;
  LossInputs out = in;
  out.log_pf = in.log_pf - in.local_credit.to(in.log_pf.scalar_type()).masked_fill(in.mask.logical_not(), 0.0);
  out.log_reward = torch::zeros_like(in.log_reward);
  out.local_credit = torch::Tensor();
  return out;
}

}  // namespace gfn

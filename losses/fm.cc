#include "losses/fm.h"

#include <torch/torch.h>

namespace gfn {

std::pair<torch::Tensor, torch::Tensor> FlowMatching::residuals(const LossInputs& in) {
  TORCH_CHECK(in.log_inflow.defined() && in.log_outflow.defined(),
              "flow matching: LossInputs::log_inflow/log_outflow are undefined (ScoreOptions::edge_flows)");
  const int64_t T = in.log_pf.size(0);
  auto t = torch::arange(T, in.length.options()).unsqueeze(1);
  auto visited = in.mask.logical_and(t.ge(1));  // s_t for 1 <= t < L
  auto delta = (in.log_inflow - in.log_outflow).masked_fill(visited.logical_not(), 0.0);
  // the exit edge of x: log p_F(exit | x) + log outflow(x), at step L - 1
  auto last = (in.length - 1).unsqueeze(0);
  auto exit_edge = (in.log_pf + in.log_outflow).gather(0, last).squeeze(0);
  return {delta, exit_edge - in.log_reward};
}

torch::Tensor FlowMatching::loss(const LossInputs& in) const {
  auto [delta, eps] = residuals(in);
  const int64_t T = in.log_pf.size(0);
  auto t = torch::arange(T, in.length.options()).unsqueeze(1);
  auto count = in.mask.logical_and(t.ge(1)).sum().clamp_min(1).to(delta.scalar_type());
  return delta.square().sum() / count + eps.square().mean();
}

torch::Tensor FlowMatching::log_z_estimate(const LossInputs& in) const {
  return in.log_outflow[0].mean().detach();  // every trajectory starts at s0
}

}  // namespace gfn

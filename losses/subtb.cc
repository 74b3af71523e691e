#include "losses/subtb.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

namespace gfn {

std::vector<ParamSpec> SubTbOptions::specs() {
  SubTbOptions d;
  return {string_param("weighting", "geometric",
                       "weights of the sub-trajectories: lambda^(j-i), all equal, only the whole trajectory (TB) or "
                       "only single transitions (DB)",
                       {"geometric", "equal", "tb", "db"}),
          float_param("lambda", d.lambda, "lambda of the geometric weighting", 0.0,
                      std::numeric_limits<double>::infinity(), /*min_exclusive=*/true, /*max_exclusive=*/true),
          string_param("s0", "flow", "the potential at s0: the flow head's log F(s0), or the learned log Z",
                       {"flow", "log_z"})};
}

SubTbOptions SubTbOptions::from_params(const Params& p) {
  SubTbOptions o;
  const auto& w = p.get_string("weighting");
  o.weighting = w == "equal" ? SubTbWeighting::kEqual
                : w == "tb"  ? SubTbWeighting::kTb
                : w == "db"  ? SubTbWeighting::kDb
                             : SubTbWeighting::kGeometric;
  o.lambda = p.get_float("lambda");
  o.s0_log_z = p.get_string("s0") == "log_z";
  return o;
}

std::pair<torch::Tensor, torch::Tensor> SubTrajectoryBalance::residuals_and_weights(const LossInputs& in) const {
  TORCH_CHECK(in.log_flow.defined(), "subtb: LossInputs::log_flow is undefined (no flow head)");
  const int64_t T = in.log_pf.size(0), B = in.log_pf.size(1);
  auto t = torch::arange(T + 1, in.length.options()).unsqueeze(1);  // [T+1, 1]
  auto len = in.length.unsqueeze(0);                                 // [1, B]
  // potentials: log F(s_t) for t < L, log R(x) at t = L (rows past L are never paired)
  auto phi = torch::where(t.eq(len), in.log_reward.unsqueeze(0).expand({T + 1, B}), in.log_flow);
  if (options_.s0_log_z) phi = torch::where(t.eq(0), in.log_z.expand({T + 1, B}), phi);
  // prefix sums C_t, t = 0..T (padding holds 0 in log_pf and log_pb)
  auto steps = (in.log_pf - in.log_pb).cumsum(0);
  auto prefix = torch::cat({torch::zeros({1, B}, steps.options()), steps});
  auto a = phi - prefix;                             // [T+1, B]
  auto delta = a.unsqueeze(1) - a.unsqueeze(0);      // [i, j, B] = a_i - a_j
  auto i = t.view({T + 1, 1, 1}), j = t.view({1, T + 1, 1});
  auto valid = i.lt(j).logical_and(j.le(len.view({1, 1, B})));  // i < j <= L_b
  auto dtype = in.log_pf.scalar_type();
  torch::Tensor w;
  switch (options_.weighting) {
    case SubTbWeighting::kGeometric:
      // lambda^(j-i) divided by the largest weight of the trajectory (lambda^L_b for lambda >= 1,
      // lambda^1 below), which the per-trajectory normalisation cancels: no overflow at any lambda
      w = ((j - i - (options_.lambda >= 1.0 ? len.view({1, 1, B}) : torch::ones({}, len.options()))).to(dtype) *
           std::log(options_.lambda))
              .exp();
      break;
    case SubTbWeighting::kEqual: w = torch::ones({1, 1, 1}, in.log_pf.options()); break;
    case SubTbWeighting::kTb: w = i.eq(0).logical_and(j.eq(len.view({1, 1, B}))).to(dtype); break;
    case SubTbWeighting::kDb: w = (j - i).eq(1).to(dtype); break;
  }
  w = torch::where(valid, w.expand({T + 1, T + 1, B}), torch::zeros({}, in.log_pf.options()));
  return {delta.masked_fill(valid.logical_not(), 0.0), w};
}

torch::Tensor SubTrajectoryBalance::loss(const LossInputs& in) const {
  auto [delta, w] = residuals_and_weights(in);
  const std::vector<int64_t> pairs{0, 1};
  auto per_trajectory = (w * delta.square()).sum(pairs) / w.sum(pairs);
  return per_trajectory.mean();
}

torch::Tensor SubTrajectoryBalance::log_z_estimate(const LossInputs& in) const {
  if (options_.s0_log_z) return {};  // log Z is learned and already reported
  return in.log_flow[0].mean().detach();
}

}  // namespace gfn

#include "losses/subtb.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "losses/credit.h"

namespace gfn {

template <>
const EnumNames<SubTbWeighting>& enum_names<SubTbWeighting>() {
  static const EnumNames<SubTbWeighting> names{{SubTbWeighting::kGeometric, "geometric"},
                                               {SubTbWeighting::kEqual, "equal"},
                                               {SubTbWeighting::kTb, "tb"},
                                               {SubTbWeighting::kDb, "db"}};
  return names;
}

template <>
const EnumNames<SubTbStart>& enum_names<SubTbStart>() {
  static const EnumNames<SubTbStart> names{{SubTbStart::kFlow, "flow"}, {SubTbStart::kLogZ, "log_z"}};
  return names;
}

const OptionTable<SubTbOptions>& SubTbOptions::keys() {
  using O = SubTbOptions;
  static const auto table =
      OptionTable<O>("SubTbOptions")
          .add("weighting", &O::weighting,
               "weights of the sub-trajectories: lambda^(j-i), all equal, only the whole trajectory (TB) or only "
               "single transitions (DB)")
          .add("lambda", &O::lambda, "lambda of the geometric weighting", above(0).below(INFINITY))
          .add("s0", &O::s0, "the potential at s0: the flow head's log F(s0), or the learned log Z");
  return table;
}

std::pair<torch::Tensor, torch::Tensor> SubTrajectoryBalance::residuals_and_weights(
    const LossInputs& inputs) const {
  const LossInputs in = with_local_credit(inputs);
  TORCH_CHECK(in.log_flow.defined(), "subtb: LossInputs::log_flow is undefined (no flow head)");
  const int64_t T = in.log_pf.size(0), B = in.log_pf.size(1);
  auto t = torch::arange(T + 1, in.length.options()).unsqueeze(1);  // [T+1, 1]
  auto len = in.length.unsqueeze(0);                                 // [1, B]
  auto a = potentials(in);                           // [T+1, B]
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

torch::Tensor SubTrajectoryBalance::potentials(const LossInputs& in) const {
  TORCH_CHECK(in.log_flow.defined(), "subtb: LossInputs::log_flow is undefined (no flow head)");
  const int64_t T = in.log_pf.size(0), B = in.log_pf.size(1);
  auto t = torch::arange(T + 1, in.length.options()).unsqueeze(1);  // [T+1, 1]
  // log F(s_t) for t < L, log R(x) at t = L (rows past L are never paired)
  auto phi = torch::where(t.eq(in.length.unsqueeze(0)), in.log_reward.unsqueeze(0).expand({T + 1, B}), in.log_flow);
  if (options_.s0 == SubTbStart::kLogZ) phi = torch::where(t.eq(0), in.log_z.expand({T + 1, B}), phi);
  // prefix sums C_t, t = 0..T (padding holds 0 in log_pf and log_pb)
  auto steps = (in.log_pf - in.log_pb).cumsum(0);
  return phi - torch::cat({torch::zeros({1, B}, steps.options()), steps});
}

torch::Tensor SubTrajectoryBalance::pairwise_loss(const LossInputs& in) const {
  auto [delta, w] = residuals_and_weights(in);
  const std::vector<int64_t> pairs{0, 1};
  auto per_trajectory = (w * delta.square()).sum(pairs) / w.sum(pairs);
  return per_trajectory.mean();
}

torch::Tensor SubTrajectoryBalance::loss(const LossInputs& inputs) const {
  const int64_t T = inputs.log_pf.size(0);
  // lambda > 1: the weights lambda^(j-i-T) span lambda^-T .. 1, which float64 holds without
  // underflow while T log lambda < 700 (T = 100 steps at lambda = 2: 2^-100); beyond, each
  // trajectory needs its own scale lambda^-L_b: the pairs
  const bool growing = options_.weighting == SubTbWeighting::kGeometric && options_.lambda > 1.0;
  if (growing && static_cast<double>(T) * std::log(options_.lambda) >= 700.0) return pairwise_loss(inputs);
  const LossInputs in = with_local_credit(inputs);
  const auto dtype = in.log_pf.scalar_type();
  auto a = potentials(in);  // [T+1, B]
  auto t = torch::arange(T + 1, in.length.options()).unsqueeze(1);
  if (options_.weighting == SubTbWeighting::kTb)  // the one pair (0, L): TB
    return (a[0] - a.gather(0, in.length.unsqueeze(0)).squeeze(0)).square().mean();
  // the pair weights as one symmetric [T+1, T+1] matrix G with zero diagonal, shared by the
  // batch: w_ij = G_ij for i < j <= L_b. lambda^(|i-j|-1) keeps the largest weight at 1 for
  // lambda < 1; lambda^(|i-j|-T), in float64, for lambda > 1 (the per-trajectory normalisation
  // cancels the common scale).
  const auto calc = growing ? torch::kFloat64 : dtype;
  if (growing) a = a.to(calc);
  auto gap = (t - t.t()).abs().to(calc);  // |i - j|
  torch::Tensor g;
  switch (options_.weighting) {
    case SubTbWeighting::kGeometric:
      g = ((gap - (growing ? static_cast<double>(T) : 1.0)) * std::log(options_.lambda)).exp();
      break;
    case SubTbWeighting::kEqual: g = torch::ones_like(gap); break;
    case SubTbWeighting::kDb: g = gap.eq(1).to(dtype); break;
    case SubTbWeighting::kTb: break;
  }
  g = g.masked_fill(gap.eq(0), 0.0);
  // sum_{i<j} w_ij (a_i - a_j)^2 = sum_i a_i^2 m_i (G m)_i - (a m)^T G (a m), with m_t = [t <= L_b]:
  // two small GEMMs instead of [T+1, T+1, B] pairs. Each trajectory's a is first centred on its
  // mean (the differences do not change) so that float32 does not cancel large potentials.
  auto m = t.le(in.length.unsqueeze(0)).to(calc);  // [T+1, B]
  auto count = m.sum(0, /*keepdim=*/true);
  auto centred = (a - ((a * m).sum(0, /*keepdim=*/true) / count).detach()) * m;
  auto gm = torch::mm(g, m);
  auto numerator = (centred.square() * gm).sum(0) - (centred * torch::mm(g, centred)).sum(0);
  auto denominator = 0.5 * (m * gm).sum(0);
  return (numerator / denominator).mean().to(dtype);
}

torch::Tensor SubTrajectoryBalance::log_z_estimate(const LossInputs& in) const {
  if (options_.s0 == SubTbStart::kLogZ) return {};  // log Z is learned and already reported
  return in.log_flow[0].mean().detach();
}

}  // namespace gfn

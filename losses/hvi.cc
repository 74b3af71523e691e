#include "losses/hvi.h"

#include <cmath>

#include <torch/torch.h>

namespace gfn {

template <>
const EnumNames<HviBaseline>& enum_names<HviBaseline>() {
  static const EnumNames<HviBaseline> names{
      {HviBaseline::kBatch, "batch"}, {HviBaseline::kLogZ, "log_z"}, {HviBaseline::kNone, "none"}};
  return names;
}

template <>
const EnumNames<HviSamples>& enum_names<HviSamples>() {
  static const EnumNames<HviSamples> names{{HviSamples::kForward, "forward"}, {HviSamples::kTarget, "target"}};
  return names;
}

const OptionTable<HviOptions>& HviOptions::keys() {
  using O = HviOptions;
  static const auto table =
      OptionTable<O>("HviOptions")
          .add("baseline", &O::baseline,
               "baseline of the score-function terms: the other trajectories' mean (batch), the learned log Z "
               "(log_z) or none")
          .add("samples", &O::samples,
               "where batches come from: P_F's own (forward; target expectations by importance weights) or exact "
               "target samples walked back through P_B (target; envs that sample or enumerate their target)");
  return table;
}

HierarchicalVariational::HierarchicalVariational(HviKind kind, const HviOptions& options)
    : kind_(kind), options_(options) {
  options_.validate();
}

std::string HierarchicalVariational::kind_name(HviKind kind) {
  switch (kind) {
    case HviKind::kReverseKl: return "reverse_kl";
    case HviKind::kForwardKl: return "forward_kl";
    case HviKind::kWakeSleep: return "wake_sleep";
    case HviKind::kReverseWakeSleep: return "reverse_wake_sleep";
  }
  return "";
}

Requirements HierarchicalVariational::requirements() const {
  Requirements r;
  r.log_z = options_.baseline == HviBaseline::kLogZ;
  r.min_batch_size = options_.baseline == HviBaseline::kBatch ? 2 : 1;
  r.on_policy = true;
  r.target_batches = options_.samples == HviSamples::kTarget;
  return r;
}

torch::Tensor HierarchicalVariational::log_ratio(const LossInputs& in) {
  // padding holds 0 in both log_pf and log_pb, so a plain sum over time is the masked sum
  return (in.log_pf - in.log_pb).sum(0) - in.log_reward;
}

namespace {

// Expectation weights of a batch of B ([B], detached, summing to 1): uniform when the batch is
// drawn from the distribution the expectation is under, else self-normalised importance weights
// softmax(log_w).
torch::Tensor expectation_weights(const torch::Tensor& log_w, bool uniform) {
  if (uniform) return torch::full_like(log_w, 1.0 / static_cast<double>(log_w.size(0)));
  return torch::softmax(log_w, 0);
}

// The baseline of a score-function term with values v ([B], detached): the leave-one-out mean
// under uniform weights (each trajectory's baseline independent of it: unbiased), the weighted
// mean under importance weights (already biased).
torch::Tensor batch_baseline(const torch::Tensor& v, const torch::Tensor& w, bool uniform) {
  if (uniform) return (v.sum() - v) / static_cast<double>(v.size(0) - 1);
  return (w * v).sum().expand_as(v);
}

}  // namespace

torch::Tensor HierarchicalVariational::loss(const LossInputs& in) const {
  const auto lpf = in.log_pf.sum(0);
  const auto lpb = in.log_pb.sum(0);
  const auto s = (lpf - lpb - in.log_reward).detach();
  const bool target = options_.samples == HviSamples::kTarget;
  const auto w_f = expectation_weights(s, !target);   // E under P_F
  const auto w_t = expectation_weights(-s, target);   // E under the target process
  const bool reverse_f = kind_ == HviKind::kReverseKl || kind_ == HviKind::kReverseWakeSleep;
  const bool reverse_b = kind_ == HviKind::kReverseKl || kind_ == HviKind::kWakeSleep;
  auto baseline = [&](const torch::Tensor& v, const torch::Tensor& w, bool uniform, double log_z_sign) {
    switch (options_.baseline) {
      case HviBaseline::kBatch: return batch_baseline(v, w, uniform);
      case HviBaseline::kLogZ: return (log_z_sign * in.log_z.detach()).expand_as(v);
      case HviBaseline::kNone: break;
    }
    return torch::zeros_like(v);
  };

  torch::Tensor surrogate;
  if (reverse_f)  // E_PF[(s - b) d log P_F]
    surrogate = (w_f * (s - baseline(s, w_f, !target, -1.0)) * lpf).sum();
  else  // -E_PB[d log P_F]
    surrogate = -(w_t * lpf).sum();
  if (reverse_b)  // -E_PF[d log P_B]
    surrogate = surrogate - (w_f * lpb).sum();
  else  // E_PB[(-s - b) d log P_B]
    surrogate = surrogate + (w_t * (-s - baseline(-s, w_t, target, 1.0)) * lpb).sum();

  auto value = reverse_f ? (w_f * s).sum() : (w_t * -s).sum();
  auto loss = value + (surrogate - surrogate.detach());
  if (options_.baseline == HviBaseline::kLogZ) {  // log Z fitted by the expected TB loss under P_F
    auto fit = 0.5 * (w_f * (s + in.log_z).square()).sum();
    loss = loss + (fit - fit.detach());
  }
  return loss;
}

torch::Tensor HierarchicalVariational::log_z_estimate(const LossInputs& in) const {
  if (options_.baseline == HviBaseline::kLogZ) return {};
  const auto s = log_ratio(in).detach();
  const double log_b = std::log(static_cast<double>(s.size(0)));
  if (options_.samples == HviSamples::kTarget) return -(torch::logsumexp(s, 0) - log_b);
  return torch::logsumexp(-s, 0) - log_b;
}

}  // namespace gfn

// Hierarchical variational objectives (Malkin, Lahlou, Deleu et al., ICLR 2023, "GFlowNets and
// variational inference"): the divergences between the forward process and the target process
//     P_F(tau) = prod_t p_F(s_t+1 | s_t),      P_B(tau) = R(x) P_B(tau | x) / Z,
// minimised directly with their gradients estimated from one batch. With, per trajectory,
//     s(tau) = log P_F(tau) - log P_B(tau | x) - log R(x)     (so that log P_F / P_B = s + log Z),
// the four kinds (objective.kind) train P_F and a learned P_B by:
//     reverse_kl          P_F and P_B by D_KL(P_F || P_B)
//     forward_kl          P_F and P_B by D_KL(P_B || P_F)
//     wake_sleep          P_F by D_KL(P_B || P_F) (sleep), P_B by D_KL(P_F || P_B) (wake)
//     reverse_wake_sleep  P_F by D_KL(P_F || P_B), P_B by D_KL(P_B || P_F)
// With a fixed P_B (uniform, the env's) only the P_F halves act: wake_sleep is forward_kl and
// reverse_wake_sleep is reverse_kl.
//
// The gradients (each divergence differentiated only through its own model: log P_F's terms carry
// the forward head's gradient, log P_B's the backward head's; a shared trunk receives both):
//     d/dF D_KL(P_F || P_B) = E_PF[(s - b) d log P_F]      (score function; b any baseline)
//     d/dB D_KL(P_F || P_B) = -E_PF[d log P_B(tau | x)]
//     d/dF D_KL(P_B || P_F) = -E_PB[d log P_F]
//     d/dB D_KL(P_B || P_F) = E_PB[(-s - b) d log P_B(tau | x)]   (score function)
// The baseline b (objective.baseline): "batch" (for each trajectory the mean of the other
// trajectories' values: leave-one-out, so the estimator stays unbiased; batches of >= 2), "log_z"
// (the learned log Z as a control variate: b = -log Z for P_F's term, log Z for P_B's, and log Z
// is fitted by minimising E_PF[(s + log Z)^2] / 2, the expected TB loss, whose minimiser is the
// ELBO), or "none".
//
// Where the batch comes from (objective.samples): "forward", the on-policy batch of P_F, where
// expectations under the target are taken with self-normalised importance weights
// w ∝ exp(-s) = R P_B(tau | x) / P_F; or "target", B exact samples x ~ R / Z walked back through
// P_B (components/target_sampler.h), where expectations under P_F take the weights w ∝ exp(s).
// Either way the estimators assume the batch is drawn exactly as said: no exploration or replay
// (Requirements::on_policy; the trainer refuses them). Self-normalised weights make an estimator
// biased for finite B (consistent as B grows); the uniform ones are unbiased. The
// reparametrised gradient of continuous pieces is not offered: the rollout is not differentiable
// in the policy's parameters (it samples under no_grad and scoring re-reads the drawn coordinates).
//
// The loss value is the divergence's estimate up to its unknown constant: E_PF[s] (= D_KL(P_F ||
// P_B) - log Z, the negative ELBO) for the kinds whose P_F term is reverse KL, E_PB[-s]
// (= D_KL(P_B || P_F) + log Z, the EUBO) for the others; the gradients come through zero-valued
// surrogate terms. Without a learned log Z, the log Z logged is
// the batch's importance estimate: log mean exp(-s) (forward batches), -log mean exp(s) (target).
#pragma once

#include <string>

#include "core/objective.h"
#include "core/options.h"

namespace gfn {

enum class HviKind { kReverseKl, kForwardKl, kWakeSleep, kReverseWakeSleep };
enum class HviBaseline { kBatch, kLogZ, kNone };
enum class HviSamples { kForward, kTarget };
template <>
const EnumNames<HviBaseline>& enum_names<HviBaseline>();  // "batch", "log_z", "none"
template <>
const EnumNames<HviSamples>& enum_names<HviSamples>();  // "forward", "target"

struct HviOptions : KeyedOptions<HviOptions> {
  HviBaseline baseline = HviBaseline::kBatch;  // of the score-function terms
  HviSamples samples = HviSamples::kForward;   // where the batches come from
  // The config keys (objective.baseline, objective.samples).
  static const OptionTable<HviOptions>& keys();
};

class HierarchicalVariational final : public Objective {
 public:
  HierarchicalVariational(HviKind kind, const HviOptions& options);
  // The registered name of `kind` ("reverse_kl", ...).
  static std::string kind_name(HviKind kind);

  std::string name() const override { return kind_name(kind_); }
  Requirements requirements() const override;
  torch::Tensor loss(const LossInputs& inputs) const override;
  torch::Tensor log_z_estimate(const LossInputs& inputs) const override;

  // s(tau) per trajectory ([B]), with the graphs of log P_F and log P_B.
  static torch::Tensor log_ratio(const LossInputs& inputs);

 private:
  HviKind kind_;
  HviOptions options_;
};

}  // namespace gfn

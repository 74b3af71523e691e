// Batched forward sampling of trajectories.
//
// Fixed time extent T = max_length + 1, a done mask instead of compaction, no host sync inside
// the loop, every draw from the given torch::Generator. Sampling may explore (temperature on the
// logits, then epsilon-uniform mixing over the available components); the trainer always
// rescores the trajectories under the training policy, so exploration never biases the loss.
#pragma once

#include <torch/types.h>

#include "core/env.h"
#include "core/estimator.h"
#include "core/options.h"
#include "core/types.h"

namespace gfn {

struct SamplerOptions : KeyedOptions<SamplerOptions> {
  double epsilon = 0.0;      // probability of a uniform choice among available components, in [0, 1]
  double temperature = 1.0;  // logits are divided by it before the softmax and continuous pieces
                             // draw from tempered densities (KernelHead::sample_coords), > 0
  // Whether rollout computes log_pf_sampled (the densities of continuous pieces cost a pass per
  // step); the trainer, which rescores every step anyway, copies its scores there instead when
  // sampling on-policy. Not a config key.
  bool record_log_pf = true;
  // Extra standard deviation of Gaussian pieces, added in quadrature (chart units): off-policy
  // exploration of diffusion samplers, set by the exploration schedule (components/exploration.h).
  // Not a config key.
  double noise = 0.0;

  // The config keys (train.epsilon, train.temperature).
  static const OptionTable<SamplerOptions>& keys();
  bool on_policy() const { return epsilon == 0.0 && temperature == 1.0 && noise == 0.0; }
};

// The behaviour distribution over components: softmax(logits / temperature) over `mask`, mixed
// with the uniform distribution over `mask` with weight epsilon. [N, C] -> [N, C].
torch::Tensor behaviour_probs(const torch::Tensor& logits, const torch::Tensor& mask,
                              const SamplerOptions& options);

// Samples `batch` trajectories from s0 with the policy. Compact execution evaluates only the rows
// still running at each step; fixed shapes evaluate every row (Execution). With `keep`, the
// policy runs under autograd and its outputs at every evaluated row are kept there, in the order
// scoring evaluates them (score_trajectories reads them instead of running the network again: on
// on-policy batches the scores are the same); without it, everything runs under no_grad.
Trajectories rollout(const Env& env, PolicyNetImpl& policy, int64_t batch, const SamplerOptions& options,
                     torch::Generator& generator, const torch::Device& device,
                     Execution execution = Execution::kAuto, PolicyPass* keep = nullptr);

// Samples one trajectory backward from each state of `terminal` ([B] rows, none the sink) to s0
// under P_B (the learned head, or the uniform policy: uniform over the available components and
// on each piece's domain), with no host sync, and returns it in forward time as score_trajectories
// reads it: states[0] = s0, ..., states[n] = x, the exit at step n, padding after. Forward actions
// come from env.forward_action. A row that has not reached s0 within max_length backward moves
// (an environment bug the checker reports) starts at the state it reached, with is_initial false.
// log_pf_sampled is 0: these trajectories were not drawn from P_F.
Trajectories backward_rollout(const Env& env, PolicyNetImpl& policy, const States& terminal,
                              torch::Generator& generator, Execution execution = Execution::kAuto);

}  // namespace gfn

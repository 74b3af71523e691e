// Batches drawn from the target, for the objectives that take expectations under it (forward KL,
// and the sleep phase of wake-sleep with objective.samples = "target"; losses/hvi.h): every
// iteration, B terminal states x ~ R / Z exactly, each walked back to s0 through P_B,
// tau ~ P_B(. | x), so that tau is distributed as P_B(tau | x) R(x) / Z, the distribution forward
// KL takes its expectation under. The trainer scores the batch under the training policy.
//
// Exact target samples come from the env's own sampler where it has one (Env::exact_samples), or
// from R / Z over the enumerated states (Env::enumerate_states, every state whose exit is open),
// drawn with replacement from the trainer's generator. Any other env is a ConfigError that names
// the alternative (objective.samples = "forward": importance weights on P_F's own batches).
#pragma once

#include <string>

#include <torch/types.h>

#include "core/component.h"

namespace gfn {

class TargetSamplerComponent final : public TrainingComponent {
 public:
  explicit TargetSamplerComponent(const ComponentSetup& setup);
  // Objectives whose Requirements ask for target batches.
  static bool wanted(const ComponentSetup& setup) { return setup.requirements.target_batches; }

  std::string name() const override { return "target"; }
  bool replaces_rollout(int64_t /*iteration*/) const override { return true; }
  void extend_batch(TrainingBatch& batch, const TrainingContext& context) override;

  // `n` exact target samples x ~ R / Z.
  States draw(int64_t n, torch::Generator& generator) const;

 private:
  const Env& env_;
  torch::Device device_;
  int64_t batch_size_;
  bool env_sampler_ = false;  // Env::exact_samples; else the table below
  States states_;             // enumerated states
  torch::Tensor probs_;       // [S] float64: R / Z over them (0 where the exit is closed)
};

}  // namespace gfn

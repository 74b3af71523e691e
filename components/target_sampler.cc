#include "components/target_sampler.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/evaluation.h"
#include "core/sampler.h"
#include "core/tabular.h"
#include "core/trainer.h"

namespace gfn {

TargetSamplerComponent::TargetSamplerComponent(const ComponentSetup& setup)
    : env_(setup.env), device_(setup.device), batch_size_(setup.trainer.batch_size) {
  if (env_.has_exact_samples()) {
    env_sampler_ = true;
    return;
  }
  if (!has_state_table(env_))
    throw ConfigError(fmt::format("objective.samples = \"target\": exact samples of R / Z need an env that samples "
                                  "its target or enumerates its states, and env '{}' does neither; set "
                                  "objective.samples = \"forward\" (self-normalised importance weights on P_F's "
                                  "batches)",
                                  env_.name()));
  StateTable table(env_, device_);
  states_ = table.states;
  probs_ = torch::tensor(target_distribution(table), torch::kFloat64).to(device_);
}

States TargetSamplerComponent::draw(int64_t n, torch::Generator& generator) const {
  if (env_sampler_) return env_.exact_samples(n, generator, device_);
  return states_.index_select(torch::multinomial(probs_, n, /*replacement=*/true, generator));
}

void TargetSamplerComponent::extend_batch(TrainingBatch& batch, const TrainingContext& context) {
  torch::NoGradGuard no_grad;
  batch.trajectories = backward_rollout(context.env, context.estimators.backward_policy(),
                                        draw(batch_size_, context.generator), context.generator, context.execution);
}

}  // namespace gfn

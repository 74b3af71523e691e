#include "core/sampler.h"

#include <fmt/format.h>
#include <torch/torch.h>

namespace gfn {

void SamplerOptions::validate() const {
  if (!(epsilon >= 0.0 && epsilon <= 1.0))
    throw ConfigError(fmt::format("train.epsilon = {}: expected a float in [0, 1]", epsilon));
  if (!(temperature > 0.0) || !std::isfinite(temperature))
    throw ConfigError(fmt::format("train.temperature = {}: expected a finite float > 0", temperature));
}

torch::Tensor behaviour_probs(const torch::Tensor& logits, const torch::Tensor& mask,
                              const SamplerOptions& options) {
  auto scaled = options.temperature == 1.0 ? logits : logits / options.temperature;
  auto probs = scaled.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity()).softmax(1);
  if (options.epsilon > 0.0) {
    auto uniform = mask.to(probs.scalar_type());
    uniform = uniform / uniform.sum(1, /*keepdim=*/true);
    probs = probs * (1.0 - options.epsilon) + uniform * options.epsilon;
  }
  return probs;
}

Trajectories rollout(const Env& env, PolicyNetImpl& policy, int64_t batch, const SamplerOptions& options,
                     torch::Generator& generator, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const int64_t steps = env.max_length() + 1;
  const auto& spec = env.action_spec();
  const int64_t exit = spec.forward.exit;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);

  States s = env.initial_states(batch, device);
  auto done = torch::zeros({batch}, f32.dtype(torch::kBool));
  auto coords = torch::zeros({batch, spec.coord_dim}, f32);
  std::vector<torch::Tensor> disc{s.discrete}, cont{s.continuous}, init{s.is_initial}, sink{s.is_sink};
  std::vector<torch::Tensor> comps, valid, log_pf, log_jac;
  for (int64_t t = 0; t < steps; ++t) {
    // one batched policy evaluation; rows already at the sink get a harmless full mask
    auto logits = policy.forward_logits(policy.trunk(env.features(s)));
    auto mask = env.forward_mask(s).logical_or(done.unsqueeze(1));
    auto probs = behaviour_probs(logits, mask, options);
    auto comp = torch::multinomial(probs, 1, /*replacement=*/true, generator);  // [B, 1]
    auto lp = probs.gather(1, comp).squeeze(1).log();
    comp = comp.squeeze(1);

    // move the rows that neither exit nor have finished
    auto res = env.step(s, Actions{comp, coords});
    auto stay = done.logical_or(comp.eq(exit));
    States next = States::where(stay, s, res.next);
    next.is_sink = stay;

    // record the step
    comps.push_back(comp.masked_fill(done, -1));
    valid.push_back(done.logical_not());
    log_pf.push_back(lp.masked_fill(done, 0.0));
    log_jac.push_back(res.log_jacobian.masked_fill(stay, 0.0));
    disc.push_back(next.discrete);
    cont.push_back(next.continuous);
    init.push_back(next.is_initial);
    sink.push_back(next.is_sink);
    done = stay;
    s = std::move(next);
  }

  Trajectories traj;
  traj.states_discrete = torch::stack(disc);
  traj.states_continuous = torch::stack(cont);
  traj.is_initial = torch::stack(init);
  traj.is_sink = torch::stack(sink);
  traj.action_component = torch::stack(comps);
  traj.action_coords = torch::zeros({steps, batch, spec.coord_dim}, f32);
  traj.log_jacobian = torch::stack(log_jac);
  traj.mask = torch::stack(valid);
  traj.length = traj.mask.sum(0);
  traj.log_pf_sampled = torch::stack(log_pf);
  // the sink keeps the coordinates of the state it was reached from
  traj.terminal_discrete = s.discrete;
  traj.terminal_continuous = s.continuous;
  traj.log_reward = env.log_reward(traj.terminal_states());
  return traj;
}

}  // namespace gfn

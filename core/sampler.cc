#include "core/sampler.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "measures/categorical.h"

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
  const double neg_inf = -std::numeric_limits<double>::infinity();

  // all the randomness of the rollout in one draw: Gumbel noise per step, row and component
  auto gumbel = gumbel_noise({steps, batch, spec.forward.size()}, generator, f32);

  const auto& head = policy.forward_head();
  States s = env.initial_states(batch, device);
  auto done = torch::zeros({batch}, f32.dtype(torch::kBool));
  auto no_coords = torch::zeros({batch, spec.coord_dim}, f32);
  std::vector<torch::Tensor> disc{s.discrete}, cont{s.continuous}, init{s.is_initial};
  std::vector<torch::Tensor> comps, finished, scores, log_jac, coord_steps, log_q;
  for (int64_t t = 0; t < steps; ++t) {
    // one batched policy evaluation; rows already at the sink get a harmless full mask
    auto out = policy.forward_outputs(policy.trunk(env.features(s)));
    auto logits = head.logits(out);
    auto mask = env.forward_mask(s).logical_or(done.unsqueeze(1));
    torch::Tensor score;
    if (options.on_policy()) {
      score = torch::where(mask, logits, neg_inf);  // unnormalised: the softmax comes once, at the end
    } else {
      score = behaviour_probs(logits, mask, options).log();
    }
    auto comp = (score + gumbel[t]).argmax(1);
    // chart coordinates for the rows that chose a continuous piece
    auto coords = no_coords;
    if (head.has_pieces()) {
      coords = head.sample_coords(out, comp, generator).to(f32);
      coord_steps.push_back(coords);
      log_q.push_back(head.log_density(out, comp, coords));
    }

    // move the rows that neither exit nor have finished
    auto res = env.step(s, Actions{comp, coords});
    auto stay = done.logical_or(comp.eq(exit));
    auto stay_col = stay.unsqueeze(1);
    States next{torch::where(stay_col, s.discrete, res.next.discrete),
                s.continuous.size(1) ? torch::where(stay_col, s.continuous, res.next.continuous) : s.continuous,
                torch::where(stay, s.is_initial, res.next.is_initial), stay};

    comps.push_back(comp);
    finished.push_back(done);
    scores.push_back(score);
    log_jac.push_back(res.log_jacobian);
    disc.push_back(next.discrete);
    cont.push_back(next.continuous);
    init.push_back(next.is_initial);
    done = stay;
    s = std::move(next);
  }

  // masks and log-probabilities of the whole rollout at once
  Trajectories traj;
  auto before = torch::stack(finished);  // [T, B]: the row had finished before step t
  auto comp = torch::stack(comps);
  auto after = torch::cat({before.narrow(0, 1, steps - 1), done.unsqueeze(0)});
  traj.states_discrete = torch::stack(disc);
  traj.states_continuous = torch::stack(cont);
  traj.is_initial = torch::stack(init);
  traj.is_sink = torch::cat({torch::zeros({1, batch}, before.options()), after});
  traj.action_component = comp.masked_fill(before, -1);
  traj.action_coords = head.has_pieces() ? torch::stack(coord_steps).masked_fill(before.unsqueeze(2), 0.0)
                                         : torch::zeros({steps, batch, spec.coord_dim}, f32);
  traj.log_jacobian = torch::stack(log_jac).masked_fill(after, 0.0);
  traj.mask = before.logical_not();
  traj.length = traj.mask.sum(0);
  // log p_F = log pi(c) + log q(u) - log J under the behaviour policy
  auto log_pi = torch::stack(scores).log_softmax(2).gather(2, comp.unsqueeze(2)).squeeze(2);
  if (head.has_pieces()) log_pi = log_pi + torch::stack(log_q).to(log_pi.scalar_type()) - traj.log_jacobian;
  traj.log_pf_sampled = log_pi.masked_fill(before, 0.0);
  // the sink keeps the coordinates of the state it was reached from
  traj.terminal_discrete = s.discrete;
  traj.terminal_continuous = s.continuous;
  traj.log_reward = env.log_reward(traj.terminal_states());
  return traj;
}

}  // namespace gfn

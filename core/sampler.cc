#include "core/sampler.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/kernels/kernels.h"
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
  const auto i64 = f32.dtype(torch::kInt64);
  // On the CPU a host sync costs nothing, so each step evaluates only the rows that have not
  // finished (and the loop idles once all have); elsewhere every row, every step, fixed shapes.
  const bool compact = !fixed_shapes(device);
  States s = env.initial_states(batch, device);
  auto done = torch::zeros({batch}, f32.dtype(torch::kBool));
  auto no_coords = torch::zeros({batch, spec.coord_dim}, f32);
  auto zeros_b = torch::zeros({batch}, f32);
  std::vector<torch::Tensor> disc{s.discrete}, cont{s.continuous}, init{s.is_initial};
  std::vector<torch::Tensor> comps, finished, scores, log_jac, coord_steps, log_q;
  for (int64_t t = 0; t < steps; ++t) {
    torch::Tensor active;  // [A] rows evaluated at this step (compact mode)
    if (compact) {
      active = done.logical_not().nonzero().squeeze(1);
      if (active.numel() == 0) {  // every row has exited: the rest is padding
        comps.push_back(torch::zeros({batch}, i64));
        finished.push_back(done);
        scores.push_back(torch::zeros({batch, spec.forward.size()}, f32));
        log_jac.push_back(zeros_b);
        if (head.has_pieces()) {
          coord_steps.push_back(no_coords);
          log_q.push_back(zeros_b);
        }
        disc.push_back(s.discrete);
        cont.push_back(s.continuous);
        init.push_back(s.is_initial);
        continue;
      }
    }
    const States cur = compact ? s.index_select(active) : s;
    const int64_t rows = cur.batch_size();
    // one batched policy evaluation; in fixed-shape mode, rows already at the sink get a
    // harmless full mask
    auto out = policy.forward_outputs(policy.trunk(env.features(cur)));
    auto logits = head.logits(out);
    auto mask = env.forward_mask(cur);
    // the draw: unnormalised scores on-policy (the softmax comes once, at the end)
    torch::Tensor score, comp, stay;
    if (!compact && options.on_policy()) {
      auto draw = fused::categorical_step(logits, mask, done, gumbel[t], exit);  // one kernel on CUDA
      score = draw.score;
      comp = draw.component;
      stay = draw.stay;
    } else {
      if (!compact) mask = mask.logical_or(done.unsqueeze(1));
      score = options.on_policy() ? torch::where(mask, logits, neg_inf) : behaviour_probs(logits, mask, options).log();
      comp = (score + (compact ? gumbel[t].index_select(0, active) : gumbel[t])).argmax(1);
      stay = comp.eq(exit);
      if (!compact) stay = stay.logical_or(done);
    }
    // chart coordinates for the rows that chose a continuous piece
    auto coords = compact ? torch::zeros({rows, spec.coord_dim}, f32) : no_coords;
    torch::Tensor lq;
    if (head.has_pieces()) {
      coords = head.sample_coords(out, comp, generator, options.temperature).to(f32);
      lq = options.record_log_pf ? head.log_density(out, comp, coords) : torch::zeros({rows}, f32);
    }

    // move the rows that neither exit nor have finished
    auto res = env.step(cur, Actions{comp, coords});
    auto stay_col = stay.unsqueeze(1);
    States next{torch::where(stay_col, cur.discrete, res.next.discrete),
                cur.continuous.size(1) ? torch::where(stay_col, cur.continuous, res.next.continuous) : cur.continuous,
                torch::where(stay, cur.is_initial, res.next.is_initial), stay};
    auto log_j = res.log_jacobian;
    if (compact) {
      // back to full rows; finished rows keep their state
      comp = torch::zeros({batch}, i64).index_copy(0, active, comp);
      score = torch::zeros({batch, spec.forward.size()}, f32).index_copy(0, active, score.to(f32));
      log_j = zeros_b.index_copy(0, active, log_j.to(f32));
      if (head.has_pieces()) {
        coords = no_coords.index_copy(0, active, coords);
        lq = zeros_b.index_copy(0, active, lq.to(f32));
      }
      next = States{s.discrete.index_copy(0, active, next.discrete),
                    s.continuous.size(1) ? s.continuous.index_copy(0, active, next.continuous) : s.continuous,
                    s.is_initial.index_copy(0, active, next.is_initial), done.index_copy(0, active, stay)};
    }
    if (head.has_pieces()) {
      coord_steps.push_back(coords);
      log_q.push_back(lq);
    }

    comps.push_back(comp);
    finished.push_back(done);
    scores.push_back(score);
    log_jac.push_back(log_j);
    disc.push_back(next.discrete);
    cont.push_back(next.continuous);
    init.push_back(next.is_initial);
    done = next.is_sink;
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

Trajectories backward_rollout(const Env& env, PolicyNetImpl& policy, const States& terminal,
                              torch::Generator& generator) {
  torch::NoGradGuard no_grad;
  const int64_t moves_max = env.max_length();
  const int64_t steps = moves_max + 1;
  const int64_t batch = terminal.batch_size();
  const auto& spec = env.action_spec();
  const auto device = terminal.is_sink.device();
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const auto i64 = f32.dtype(torch::kInt64);
  const double neg_inf = -std::numeric_limits<double>::infinity();
  const auto& head = policy.backward_head();
  const bool learned = policy.learned_backward();

  // walk back from x; rows that reached s0 stay there
  auto gumbel = gumbel_noise({std::max<int64_t>(moves_max, 1), batch, spec.backward.size()}, generator, f32);
  States s{terminal.discrete, terminal.continuous, terminal.is_initial, torch::zeros_like(terminal.is_sink)};
  auto at_root = s.is_initial;
  auto moves = torch::zeros({batch}, i64);
  std::vector<torch::Tensor> disc{s.discrete}, cont{s.continuous}, init{s.is_initial};
  std::vector<torch::Tensor> fcomp, fcoords, fjac;  // entry k takes chain state k+1 to chain state k
  for (int64_t k = 0; k < moves_max; ++k) {
    auto mask = env.backward_mask(s).logical_or(at_root.unsqueeze(1));
    torch::Tensor comp, coords;
    if (learned) {
      auto out = policy.backward_outputs(policy.trunk(env.features(s)));
      comp = (torch::where(mask, head.logits(out), neg_inf) + gumbel[k]).argmax(1);
      coords = head.has_pieces() ? head.sample_coords(out, comp, generator).to(f32)
                                 : torch::zeros({batch, spec.coord_dim}, f32);
    } else {
      auto logits = policy.max_entropy_backward()
                        ? max_entropy_backward_log_probs(env, s).to(f32).masked_fill(at_root.unsqueeze(1), 0.0)
                        : torch::zeros({batch, spec.backward.size()}, f32);
      comp = (logits.masked_fill(mask.logical_not(), neg_inf) + gumbel[k]).argmax(1);
      coords = head.has_pieces() ? head.sample_uniform_coords(comp, generator).to(f32)
                                 : torch::zeros({batch, spec.coord_dim}, f32);
    }
    auto res = env.backward_step(s, Actions{comp, coords});
    torch::Tensor log_j;
    Actions fwd = env.forward_action(s, res.next, Actions{comp, coords}, &log_j);
    fcomp.push_back(fwd.component);
    fcoords.push_back(fwd.coords.to(f32));
    fjac.push_back(log_j.to(torch::kFloat32));
    auto stay = at_root;
    auto stay_col = stay.unsqueeze(1);
    States parent{torch::where(stay_col, s.discrete, res.next.discrete),
                  s.continuous.size(1) ? torch::where(stay_col, s.continuous, res.next.continuous) : s.continuous,
                  torch::where(stay, s.is_initial, res.next.is_initial), s.is_sink};
    moves = moves + stay.logical_not().to(torch::kInt64);
    at_root = at_root.logical_or(parent.is_initial);
    disc.push_back(parent.discrete);
    cont.push_back(parent.continuous);
    init.push_back(parent.is_initial);
    s = std::move(parent);
  }

  // forward time: state t is chain state n - t (x itself, as the sink, after the exit)
  auto chain_disc = torch::stack(disc), chain_cont = torch::stack(cont), chain_init = torch::stack(init);
  auto t_states = torch::arange(steps + 1, i64).unsqueeze(1);  // [T+1, 1]
  auto sidx = (moves.unsqueeze(0) - t_states).clamp_min(0);     // [T+1, B]
  auto gather3 = [](const torch::Tensor& x, const torch::Tensor& idx) {
    return x.gather(0, idx.unsqueeze(2).expand({idx.size(0), idx.size(1), x.size(2)}));
  };
  Trajectories traj;
  traj.states_discrete = gather3(chain_disc, sidx);
  traj.states_continuous = gather3(chain_cont, sidx);
  traj.is_initial = chain_init.gather(0, sidx);
  traj.is_sink = t_states.gt(moves.unsqueeze(0));

  // forward step t < n is chain action n - 1 - t; step n is the exit
  auto t_steps = torch::arange(steps, i64).unsqueeze(1);  // [T, 1]
  auto n = moves.unsqueeze(0);
  auto is_move = t_steps.lt(n);
  if (moves_max > 0) {
    auto aidx = (n - 1 - t_steps).clamp(0, moves_max - 1);  // [T, B]
    auto comps = torch::stack(fcomp).gather(0, aidx);
    traj.action_component = torch::where(is_move, comps, torch::full_like(comps, -1));
    traj.action_coords = gather3(torch::stack(fcoords), aidx).masked_fill(is_move.logical_not().unsqueeze(2), 0.0);
    traj.log_jacobian = torch::stack(fjac).gather(0, aidx).masked_fill(is_move.logical_not(), 0.0);
  } else {
    traj.action_component = torch::full({steps, batch}, -1, i64);
    traj.action_coords = torch::zeros({steps, batch, spec.coord_dim}, f32);
    traj.log_jacobian = torch::zeros({steps, batch}, f32);
  }
  traj.action_component.masked_fill_(t_steps.eq(n), spec.forward.exit);
  traj.mask = t_steps.le(n);
  traj.length = moves + 1;
  traj.log_pf_sampled = torch::zeros({steps, batch}, f32);
  traj.terminal_discrete = terminal.discrete;
  traj.terminal_continuous = terminal.continuous;
  traj.log_reward = env.log_reward(terminal);
  return traj;
}

}  // namespace gfn

#include "core/sampler.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/kernels/kernels.h"
#include "measures/categorical.h"

namespace gfn {

const OptionTable<SamplerOptions>& SamplerOptions::keys() {
  using O = SamplerOptions;
  static const auto table =
      OptionTable<O>()
          .add("train.epsilon", &O::epsilon, "exploration: probability of a uniform choice among available moves",
               in(0, 1))
          .add("train.temperature", &O::temperature,
               "exploration: sampling logits are divided by it and continuous pieces draw from tempered densities",
               above(0).at_most(1e6));
  return table;
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

namespace {

// What a forward rollout records step by step, and the trajectories made from it at the end.
struct RolloutSteps {
  std::vector<torch::Tensor> disc, cont, init;  // the states, [B, ...] each
  std::vector<torch::Tensor> comps, finished, scores, log_jac, coords, log_q;  // per step

  void add_state(const States& s) {
    disc.push_back(s.discrete);
    cont.push_back(s.continuous);
    init.push_back(s.is_initial);
  }
  void add_step(const torch::Tensor& comp, const torch::Tensor& done_before, const torch::Tensor& score,
                const torch::Tensor& log_j) {
    comps.push_back(comp);
    finished.push_back(done_before);
    scores.push_back(score);
    log_jac.push_back(log_j);
  }
  // the chart coordinates and their log-density of a step (kernels with pieces)
  void add_piece(const torch::Tensor& u, const torch::Tensor& lq) {
    coords.push_back(u);
    log_q.push_back(lq);
  }

  // masks and log-probabilities of the whole rollout at once; `last` is the final state and `done`
  // whether each row has reached the sink
  Trajectories trajectories(const Env& env, const States& last, const torch::Tensor& done, int64_t coord_dim) const {
    const int64_t steps = static_cast<int64_t>(comps.size()), batch = done.size(0);
    const bool pieces = !coords.empty();
    Trajectories traj;
    auto before = torch::stack(finished);  // [T, B]: the row had finished before step t
    auto comp = torch::stack(comps);
    auto after = torch::cat({before.narrow(0, 1, steps - 1), done.unsqueeze(0)});
    traj.states_discrete = torch::stack(disc);
    traj.states_continuous = torch::stack(cont);
    traj.is_initial = torch::stack(init);
    traj.is_sink = torch::cat({torch::zeros({1, batch}, before.options()), after});
    traj.action_component = comp.masked_fill(before, -1);
    traj.action_coords = pieces ? torch::stack(coords).masked_fill(before.unsqueeze(2), 0.0)
                                : torch::zeros({steps, batch, coord_dim}, scores[0].options().dtype(torch::kFloat64));
    traj.log_jacobian = torch::stack(log_jac).masked_fill(after, 0.0);
    traj.mask = before.logical_not();
    traj.length = traj.mask.sum(0);
    // log p_F = log pi(c) + log q(u) - log J under the behaviour policy
    auto log_pi = torch::stack(scores).log_softmax(2).gather(2, comp.unsqueeze(2)).squeeze(2);
    if (pieces) log_pi = log_pi + torch::stack(log_q).to(log_pi.scalar_type()) - traj.log_jacobian;
    traj.log_pf_sampled = log_pi.masked_fill(before, 0.0);
    // the sink keeps the coordinates of the state it was reached from
    traj.terminal_discrete = last.discrete;
    traj.terminal_continuous = last.continuous;
    traj.log_reward = env.log_reward(traj.terminal_states());
    return traj;
  }
};

// The components drawn at one rollout step for the evaluated rows: the behaviour policy's scores
// (on-policy: the masked logits, softmax applied once at the end), the draws, and whether each
// row stays (exits, or had finished: a fixed-shape selection's unkept rows).
fused::CategoricalStep draw_components(const torch::Tensor& logits, const torch::Tensor& mask,
                                       const RowSelection& rows, const torch::Tensor& gumbel, int64_t exit,
                                       const SamplerOptions& options) {
  if (options.on_policy()) return fused::categorical_step(logits, mask, rows.unkept(), gumbel, exit);  // one kernel on CUDA
  fused::CategoricalStep draw;
  draw.score = behaviour_probs(logits, rows.open_unkept(mask), options).log();
  draw.component = (draw.score + gumbel).argmax(1);
  draw.stay = rows.or_unkept(draw.component.eq(exit));
  return draw;
}

}  // namespace

Trajectories rollout(const Env& env, PolicyNetImpl& policy, int64_t batch, const SamplerOptions& options,
                     torch::Generator& generator, const torch::Device& device, Execution execution,
                     PolicyPass* keep) {
  torch::NoGradGuard no_grad;
  FrozenPolicy frozen(policy);  // the parameters do not change during a rollout
  execution = resolve_execution(execution, device);
  const int64_t steps = env.max_length() + 1;
  const auto& spec = env.action_spec();
  const int64_t exit = spec.forward.exit;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);

  // all the randomness of the rollout in one draw: Gumbel noise per step, row and component
  auto gumbel = gumbel_noise({steps, batch, spec.forward.size()}, generator, f32);

  const auto& head = policy.forward_head();
  const auto i64 = f32.dtype(torch::kInt64);
  States s = env.draw_initial_states(batch, generator, device);  // a conditional env draws c here
  auto done = torch::zeros({batch}, f32.dtype(torch::kBool));
  auto no_coords = torch::zeros({batch, spec.coord_dim}, f32.dtype(torch::kFloat64));
  auto zeros_b = torch::zeros({batch}, f32), zeros_comp = torch::zeros({batch}, i64);
  auto zeros_score = torch::zeros({batch, spec.forward.size()}, f32);
  RolloutSteps r;
  r.add_state(s);
  std::vector<torch::Tensor> kept_features, kept_hidden, kept_out;
  for (int64_t t = 0; t < steps; ++t) {
    // the rows evaluated at this step: those still running (compact), or all (fixed shapes)
    RowSelection rows(done.logical_not(), execution);
    if (rows.empty()) {  // every row has exited: the rest is padding
      r.add_step(zeros_comp, done, zeros_score, zeros_b);
      if (head.has_pieces()) r.add_piece(no_coords, zeros_b);
      r.add_state(s);
      continue;
    }
    const States cur = rows.take(s);
    // one batched policy evaluation (kept with its graph for scoring), then the draw
    auto features = env.features(cur);
    torch::Tensor out;
    if (keep != nullptr) {
      c10::AutoGradMode grad(true);
      auto hidden = policy.trunk(features);
      kept_features.push_back(features);
      kept_hidden.push_back(hidden);
      kept_out.push_back(policy.forward_outputs(hidden, features));
      out = kept_out.back().detach();
    } else {
      out = policy.forward_outputs(policy.trunk(features), features);
    }
    auto draw = draw_components(head.logits(out), env.forward_mask(cur), rows, rows.take(gumbel[t]), exit, options);
    // chart coordinates for the rows that chose a continuous piece
    auto coords = rows.take(no_coords);
    torch::Tensor lq;
    if (head.has_pieces()) {
      coords = head.sample_coords(out, draw.component, generator, execution, options.temperature, options.noise);
      lq = options.record_log_pf ? head.log_density(out, draw.component, coords, execution)
                                 : torch::zeros({rows.size()}, f32);
    }

    // move the rows that neither exit nor have finished; back to whole rows, finished rows
    // keeping their state
    auto res = env.step(cur, Actions{draw.component, coords});
    auto stay = draw.stay, stay_col = stay.unsqueeze(1);
    States next{rows.expand(torch::where(stay_col, cur.discrete, res.next.discrete), s.discrete),
                cur.continuous.size(1)
                    ? rows.expand(torch::where(stay_col, cur.continuous, res.next.continuous), s.continuous)
                    : s.continuous,
                rows.expand(torch::where(stay, cur.is_initial, res.next.is_initial), s.is_initial),
                rows.expand(stay, done)};
    r.add_step(rows.expand(draw.component, zeros_comp), done, rows.expand(draw.score.to(f32), zeros_score),
               rows.expand(res.log_jacobian.to(f32), zeros_b));
    if (head.has_pieces()) r.add_piece(rows.expand(coords, no_coords), rows.expand(lq.to(f32), zeros_b));
    r.add_state(next);
    done = next.is_sink;
    s = std::move(next);
  }
  if (keep != nullptr) {
    c10::AutoGradMode grad(true);  // the concatenations join the graph too
    *keep = PolicyPass{torch::cat(kept_features), torch::cat(kept_hidden), torch::cat(kept_out)};
  }
  return r.trajectories(env, s, done, spec.coord_dim);
}

namespace {

// A backward walk from terminal states, chain state k being k moves from x: the states, and the
// forward actions (entry k takes chain state k + 1 to chain state k), with each row's moves.
struct BackwardChain {
  std::vector<torch::Tensor> disc, cont, init;  // [B, ...] per chain state
  std::vector<torch::Tensor> fcomp, fcoords, fjac;  // the forward actions, recovered
  std::vector<torch::Tensor> bcomp, bcoords, bjac;  // the backward actions, as drawn
  torch::Tensor moves;  // [B] int64

  void add_state(const States& s) {
    disc.push_back(s.discrete);
    cont.push_back(s.continuous);
    init.push_back(s.is_initial);
  }
  // In forward time: state t is chain state n - t (x itself, as the sink, after the exit);
  // forward step t < n is chain action n - 1 - t; step n is the exit.
  Trajectories trajectories(const Env& env, const States& terminal) const;
};

Trajectories BackwardChain::trajectories(const Env& env, const States& terminal) const {
  const int64_t moves_max = static_cast<int64_t>(fcomp.size()), steps = moves_max + 1, batch = moves.size(0);
  const auto& spec = env.action_spec();
  const auto i64 = moves.options(), f32 = i64.dtype(torch::kFloat32);
  auto t_states = torch::arange(steps + 1, i64).unsqueeze(1);  // [T+1, 1]
  auto sidx = (moves.unsqueeze(0) - t_states).clamp_min(0);     // [T+1, B]
  auto gather3 = [](const torch::Tensor& x, const torch::Tensor& idx) {
    return x.gather(0, idx.unsqueeze(2).expand({idx.size(0), idx.size(1), x.size(2)}));
  };
  Trajectories traj;
  traj.states_discrete = gather3(torch::stack(disc), sidx);
  traj.states_continuous = gather3(torch::stack(cont), sidx);
  traj.is_initial = torch::stack(init).gather(0, sidx);
  traj.is_sink = t_states.gt(moves.unsqueeze(0));
  auto t_steps = torch::arange(steps, i64).unsqueeze(1);  // [T, 1]
  auto n = moves.unsqueeze(0);
  auto is_move = t_steps.lt(n);
  if (moves_max > 0) {
    auto aidx = (n - 1 - t_steps).clamp(0, moves_max - 1);  // [T, B]
    auto no_move = is_move.logical_not();
    auto take = [&](const std::vector<torch::Tensor>& per_move) { return torch::stack(per_move).gather(0, aidx); };
    traj.action_component = take(fcomp).masked_fill(no_move, -1);
    traj.action_coords = gather3(torch::stack(fcoords), aidx).masked_fill(no_move.unsqueeze(2), 0.0);
    traj.log_jacobian = take(fjac).masked_fill(no_move, 0.0);
    traj.backward_component = take(bcomp).masked_fill(no_move, -1);
    traj.backward_coords = gather3(torch::stack(bcoords), aidx).masked_fill(no_move.unsqueeze(2), 0.0);
    traj.backward_log_jacobian = take(bjac).masked_fill(no_move, 0.0);
  } else {
    traj.action_component = traj.backward_component = torch::full({steps, batch}, -1, i64);
    traj.action_coords = traj.backward_coords = torch::zeros({steps, batch, spec.coord_dim}, f32.dtype(torch::kFloat64));
    traj.log_jacobian = traj.backward_log_jacobian = torch::zeros({steps, batch}, f32);
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

// One backward move of every row of `s` under P_B (rows at s0 get a full mask and stay there):
// the components and chart coordinates drawn.
Actions backward_draw(const Env& env, PolicyNetImpl& policy, const States& s, const torch::Tensor& at_root,
                      const torch::Tensor& gumbel, torch::Generator& generator, Execution execution) {
  const auto& spec = env.action_spec();
  const auto& head = policy.backward_head();
  const int64_t batch = s.batch_size();
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(s.is_sink.device());
  const double neg_inf = -std::numeric_limits<double>::infinity();
  auto mask = env.backward_mask(s).logical_or(at_root.unsqueeze(1));
  if (policy.learned_backward() || policy.fixed_backward()) {
    auto out = policy.fixed_backward() ? env.fixed_backward_outputs(s) : policy.backward_outputs(policy.trunk(env.features(s)));
    auto comp = (torch::where(mask, head.logits(out), neg_inf) + gumbel).argmax(1);
    return {comp, head.has_pieces() ? head.sample_coords(out, comp, generator, execution)
                                    : torch::zeros({batch, spec.coord_dim}, f32.dtype(torch::kFloat64))};
  }
  auto logits = policy.max_entropy_backward()
                    ? max_entropy_backward_log_probs(env, s).to(f32).masked_fill(at_root.unsqueeze(1), 0.0)
                    : torch::zeros({batch, spec.backward.size()}, f32);
  auto comp = (logits.masked_fill(mask.logical_not(), neg_inf) + gumbel).argmax(1);
  return {comp, head.has_pieces() ? head.sample_uniform_coords(comp, generator)
                                  : torch::zeros({batch, spec.coord_dim}, f32.dtype(torch::kFloat64))};
}

}  // namespace

Trajectories backward_rollout(const Env& env, PolicyNetImpl& policy, const States& terminal,
                              torch::Generator& generator, Execution execution) {
  torch::NoGradGuard no_grad;
  const int64_t moves_max = env.max_length();
  const int64_t batch = terminal.batch_size();
  const auto device = terminal.is_sink.device();
  execution = resolve_execution(execution, device);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);

  // walk back from x; rows that reached s0 stay there
  auto gumbel =
      gumbel_noise({std::max<int64_t>(moves_max, 1), batch, env.action_spec().backward.size()}, generator, f32);
  States s{terminal.discrete, terminal.continuous, terminal.is_initial, torch::zeros_like(terminal.is_sink)};
  auto at_root = s.is_initial;
  BackwardChain chain;
  chain.add_state(s);
  chain.moves = torch::zeros({batch}, f32.dtype(torch::kInt64));
  for (int64_t k = 0; k < moves_max; ++k) {
    const Actions back = backward_draw(env, policy, s, at_root, gumbel[k], generator, execution);
    auto res = env.backward_step(s, back);
    torch::Tensor log_j;
    Actions fwd = env.forward_action(s, res.next, back, &log_j);
    chain.fcomp.push_back(fwd.component);
    chain.fcoords.push_back(fwd.coords.to(torch::kFloat64));
    chain.fjac.push_back(log_j.to(torch::kFloat32));
    chain.bcomp.push_back(back.component);
    chain.bcoords.push_back(back.coords);
    chain.bjac.push_back(res.log_jacobian.to(torch::kFloat32));
    auto stay = at_root;
    auto stay_col = stay.unsqueeze(1);
    States parent{torch::where(stay_col, s.discrete, res.next.discrete),
                  s.continuous.size(1) ? torch::where(stay_col, s.continuous, res.next.continuous) : s.continuous,
                  torch::where(stay, s.is_initial, res.next.is_initial), s.is_sink};
    chain.moves = chain.moves + stay.logical_not().to(torch::kInt64);
    at_root = at_root.logical_or(parent.is_initial);
    chain.add_state(parent);
    s = std::move(parent);
  }
  return chain.trajectories(env, terminal);
}

}  // namespace gfn

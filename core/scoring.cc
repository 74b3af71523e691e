#include "core/scoring.h"

#include <torch/torch.h>

namespace gfn {

torch::Tensor clip_log_reward(const torch::Tensor& log_reward, double clip) {
  if (std::isinf(clip) && clip < 0) return log_reward;
  return log_reward.clamp_min(clip);
}

torch::Tensor forward_looking_credits(const torch::Tensor& ell, const torch::Tensor& log_reward,
                                      const torch::Tensor& mask, const torch::Tensor& length) {
  const int64_t T = ell.size(0), B = ell.size(1);
  auto t = torch::arange(T, length.options()).unsqueeze(1);
  auto exit = t.eq(length.unsqueeze(0) - 1);
  auto next = torch::cat({ell.narrow(0, 1, T - 1), torch::zeros({1, B}, ell.options())});
  next = torch::where(exit, log_reward.to(ell.scalar_type()).unsqueeze(0).expand({T, B}), next);
  return (next - ell).masked_fill(mask.logical_not(), 0.0);
}

namespace {

// log sum over the parents p of each row of F(p -> row), with the raw forward logits as log edge
// flows: the parents come from the env's backward atoms (one batched pass of the policy over all
// of them). Rows without a parent (s0) get a finite dummy value, to be masked by the caller.
torch::Tensor parents_log_inflow(const Env& env, PolicyNetImpl& policy, const States& rows) {
  const int64_t n = rows.batch_size(), Cb = env.action_spec().backward.size();
  auto moves = parent_moves(env, rows);
  auto all = States::cat(moves.parents);  // [Cb * n], component-major
  auto logits = policy.forward_logits(policy.trunk(env.features(all)));
  auto edge = logits.gather(1, moves.component.t().reshape({-1, 1})).view({Cb, n});
  auto has = moves.available.logical_or(rows.is_initial.unsqueeze(1));  // s0: a finite dummy
  return edge.masked_fill(has.t().logical_not(), -std::numeric_limits<double>::infinity()).logsumexp(0);
}

}  // namespace

LossInputs score_trajectories(const Env& env, Estimators& estimators, const Trajectories& traj,
                              const ScoreOptions& options) {
  auto& policy = *estimators.policy;
  const int64_t T = traj.num_steps(), B = traj.batch_size();
  const int64_t dd = traj.states_discrete.size(2), dc = traj.states_continuous.size(2);
  auto dtype = estimators.log_z.scalar_type();

  // the states s_t of the steps, flattened time-major: on the CPU the valid ones only (`idx`),
  // elsewhere all T*B rows in fixed shapes, with padding made harmless (a full mask, no density)
  // and masked out of every result
  const bool fixed = fixed_shapes(traj.mask.device());
  auto valid = traj.mask.reshape({-1});  // [T*B]
  torch::Tensor padding;  // fixed shapes: the padding rows
  if (fixed) padding = valid.logical_not();
  States all{traj.states_discrete.narrow(0, 0, T).reshape({T * B, dd}),
             traj.states_continuous.narrow(0, 0, T).reshape({T * B, dc}),
             traj.is_initial.narrow(0, 0, T).reshape({-1}), traj.is_sink.narrow(0, 0, T).reshape({-1})};
  auto comp_all = traj.action_component.reshape({-1});  // -1 on padding
  const int64_t da = traj.action_coords.size(2);
  auto coords_all = traj.action_coords.reshape({T * B, da});
  torch::Tensor idx;  // [N] valid rows (compact mode)
  if (!fixed) idx = valid.nonzero().squeeze(1);
  auto select = [&](const torch::Tensor& t) { return fixed ? t : t.index_select(0, idx); };
  States rows = fixed ? all : all.index_select(idx);
  auto comp = select(comp_all);  // -1 on padding: no piece's density
  auto comp_index = fixed ? comp.clamp_min(0) : comp;

  // forward log-probabilities, one pass of the trunk: log pi(c) + log q(u) (the chart's log J
  // is subtracted below)
  const auto& fhead = policy.forward_head();
  auto features = env.features(rows);
  auto hidden = policy.trunk(features);
  auto fout = policy.forward_outputs(hidden);
  auto logits = fhead.logits(fout);
  auto fmask = env.forward_mask(rows);
  if (fixed) fmask = fmask.logical_or(padding.unsqueeze(1));
  auto lpf_rows = masked_log_softmax(logits, fmask);
  auto lpf = lpf_rows.gather(1, comp_index.unsqueeze(1)).squeeze(1);
  if (fhead.has_pieces()) lpf = lpf + fhead.log_density(fout, comp, select(coords_all));
  auto zeros = torch::zeros({T * B}, lpf.options());
  // [T, B] from one value per row, 0 on padding
  auto by_step = [&](const torch::Tensor& per_row) {
    return (fixed ? per_row.masked_fill(padding, 0.0) : zeros.index_copy(0, idx, per_row)).view({T, B});
  };
  // log F(s_t) at every valid step's state, [T+1, B] with 0 on padding (flow head only)
  torch::Tensor log_flow;
  if (policy.has_flow())
    log_flow = torch::cat({by_step(policy.log_flow(hidden, features)), torch::zeros({1, B}, lpf.options())});
  auto log_pf = by_step(lpf) - traj.log_jacobian.to(dtype);

  // the backward action taking s_t back to s_{t-1}, for the valid rows with t >= 1 (the rows at
  // t = 0 are s0 and get a dummy 0); in fixed shapes for every row with t >= 1, the padding's
  // forward component replaced by 0 so that the env sees an action it knows
  const int64_t n = rows.batch_size();
  torch::Tensor pos, child_valid;  // compact: positions of the t >= 1 rows among `rows`
  States parents, children;
  torch::Tensor parent_comp, parent_coords;
  if (fixed) {
    const int64_t m = (T - 1) * B;  // steps 0..T-2 are the parents of steps 1..T-1
    child_valid = valid.narrow(0, B, m);
    parents = all.narrow(0, m);
    children = all.narrow(B, m);
    parent_comp = comp_all.narrow(0, 0, m).masked_fill(child_valid.logical_not(), 0);
    parent_coords = coords_all.narrow(0, 0, m);
  } else {
    pos = idx.ge(B).nonzero().squeeze(1);  // [M] positions among the valid rows
    auto child_rows = idx.index_select(0, pos);  // [M] rows of `all`
    auto parent_rows = child_rows - B;
    parents = all.index_select(parent_rows);
    children = all.index_select(child_rows);
    parent_comp = comp_all.index_select(0, parent_rows);
    parent_coords = coords_all.index_select(0, parent_rows);
  }
  torch::Tensor bjac;
  Actions bwd = env.backward_action(parents, children, Actions{parent_comp, parent_coords}, &bjac);
  // one value per row of `rows` from one per child row (0 at t = 0)
  auto per_row = [&](const torch::Tensor& per_child) {
    if (!fixed) {
      auto shape = per_child.sizes().vec();
      shape[0] = n;
      return torch::zeros(shape, per_child.options()).index_copy(0, pos, per_child);
    }
    auto shape = per_child.sizes().vec();
    shape[0] = B;
    return torch::cat({torch::zeros(shape, per_child.options()), per_child});
  };
  auto bcomp = per_row(bwd.component);
  auto bjac_rows = per_row(bjac.to(dtype));
  if (fixed) {
    auto no_parent = torch::cat({torch::ones({B}, child_valid.options()), child_valid.logical_not()});
    bcomp = bcomp.masked_fill(no_parent, -1);
    bjac_rows = bjac_rows.masked_fill(no_parent, 0.0);
  }
  auto bcomp_index = fixed ? bcomp.clamp_min(0) : bcomp;

  // backward log-probabilities at s_t (s0 has no parent: its row is masked to 0)
  // (P_B's own network where it has one: the TLM target, on its own trunk)
  auto& bpolicy = estimators.backward_policy();
  const auto& bhead = bpolicy.backward_head();
  auto root = rows.is_initial;
  auto bmask = env.backward_mask(rows).logical_or(root.unsqueeze(1));
  if (fixed) bmask = bmask.logical_or(padding.unsqueeze(1));
  torch::Tensor lpb;
  if (bpolicy.learned_backward()) {
    auto bout = bpolicy.backward_outputs(&bpolicy == &policy ? hidden : bpolicy.trunk(features));
    auto lpb_rows = masked_log_softmax(bhead.logits(bout), bmask);
    lpb = lpb_rows.gather(1, bcomp_index.unsqueeze(1)).squeeze(1);
    if (bhead.has_pieces()) lpb = lpb + bhead.log_density(bout, bcomp, per_row(bwd.coords));
  } else if (bpolicy.max_entropy_backward()) {
    // N(s_{t-1}) / N(s_t): the parents are the trajectory's own states (s0's row is masked below)
    auto log_n_parent = per_row(env.log_path_count(parents).to(torch::kFloat64));
    lpb = (log_n_parent - env.log_path_count(rows).to(torch::kFloat64)).to(dtype);
  } else {
    lpb = -bmask.sum(1).to(dtype).log();
    if (bhead.has_pieces()) lpb = lpb + bhead.log_uniform_density(bcomp_index).to(dtype);
  }
  lpb = (lpb - bjac_rows).masked_fill(root, 0.0);
  auto lpb_by_row = by_step(lpb);
  // step t's backward probability lives at row t + 1; the exit step's row is the sink (0)
  auto log_pb = torch::cat({lpb_by_row.narrow(0, 1, T - 1), torch::zeros({1, B}, lpb.options())});

  LossInputs in;
  in.log_pf = log_pf;
  in.log_pb = log_pb;
  in.log_flow = log_flow;
  in.log_reward = clip_log_reward(traj.log_reward.to(dtype), options.log_reward_clip);
  in.log_z = estimators.log_z;
  in.mask = traj.mask;
  in.length = traj.length;
  if (options.edge_flows) {
    const double inf = std::numeric_limits<double>::infinity();
    in.log_outflow = by_step(logits.masked_fill(fmask.logical_not(), -inf).logsumexp(1));
    in.log_inflow = by_step(parents_log_inflow(env, policy, rows).masked_fill(root, 0.0));
  }
  if (options.state_rewards) {
    in.log_pf_exit = by_step(lpf_rows.select(1, env.action_spec().forward.exit));
    in.log_reward_states = by_step(clip_log_reward(env.log_reward(rows).to(dtype), options.log_reward_clip));
  }
  if (options.local_credit) {
    torch::NoGradGuard no_grad;
    auto ell = by_step(env.intermediate_log_reward(rows).to(dtype).masked_fill(root, 0.0));
    in.local_credit = forward_looking_credits(ell, in.log_reward, in.mask, in.length);
  }
  return in;
}

}  // namespace gfn

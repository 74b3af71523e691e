#include "core/scoring.h"

#include <limits>

#include <torch/torch.h>

namespace gfn {

template <>
const EnumNames<Credit>& enum_names<Credit>() {
  static const EnumNames<Credit> names{
      {Credit::kNone, "none"}, {Credit::kForwardLooking, "fl"}, {Credit::kLearned, "led"}};
  return names;
}

const OptionTable<ScoreOptions>& ScoreOptions::keys() {
  using O = ScoreOptions;
  static const auto table =
      OptionTable<O>()
          .add("objective.log_reward_clip", &O::log_reward_clip, "log R is clamped from below at this value (-inf: none)",
               at_most(0).or_value(-std::numeric_limits<double>::infinity()))
          .add("objective.credit", &O::credit,
               "per-step local credits (tb, db, subtb): none, forward-looking (fl) from the env's intermediate "
               "reward, or learned (led) from a potential network regressed on log R");
  return table;
}

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

namespace {

// The steps of a batch that one scoring pass evaluates, flattened time-major (row t * B + b is
// step t of trajectory b, from state s_t): the valid ones in compact execution, all T*B in fixed
// shapes (the padding made harmless and masked out).
struct StepRows {
  int64_t T = 0, B = 0;
  Execution execution;      // resolved
  RowSelection rows;        // over the T*B steps
  States all;               // [T*B] every step's state s_t
  States states;            // the evaluated steps' states
  torch::Tensor component;  // [N] their forward components (-1 on padding)
  torch::Tensor coords;     // [N, Da] their chart coordinates
  torch::Tensor zeros;      // [T*B] of the estimators' dtype

  StepRows(const Trajectories& traj, Execution execution, torch::Dtype dtype)
      : T(traj.num_steps()),
        B(traj.batch_size()),
        execution(resolve_execution(execution, traj.mask.device())),
        rows(traj.mask.reshape({-1}), this->execution) {
    const int64_t dd = traj.states_discrete.size(2), dc = traj.states_continuous.size(2);
    all = States{traj.states_discrete.narrow(0, 0, T).reshape({T * B, dd}),
                 traj.states_continuous.narrow(0, 0, T).reshape({T * B, dc}),
                 traj.is_initial.narrow(0, 0, T).reshape({-1}), traj.is_sink.narrow(0, 0, T).reshape({-1})};
    states = rows.take(all);
    component = rows.take(traj.action_component.reshape({-1}));
    coords = rows.take(traj.action_coords.reshape({T * B, traj.action_coords.size(2)}));
    zeros = torch::zeros({T * B}, traj.mask.options().dtype(dtype));
  }
  // [T, B] from one value per evaluated row, 0 on padding
  torch::Tensor by_step(const torch::Tensor& per_row) const { return rows.put(per_row, zeros).view({T, B}); }
};

// The backward actions undoing each evaluated step's forward action: for the steps t >= 1 the
// env's backward_action from s_{t-1} to s_t, for the steps at t = 0 (s0: no parent) component -1
// and log J = 0, as one value per evaluated row. Every trajectory's step 0 is valid, so the first
// B evaluated rows are the steps at t = 0 in both executions.
struct BackwardSteps {
  torch::Tensor component;     // [N] int64 (-1 where there is no parent, and on padding)
  torch::Tensor coords;        // [N, Da]
  torch::Tensor log_jacobian;  // [N] float
  States parents;              // the steps' parents, for the steps t >= 1
};

BackwardSteps backward_steps(const Env& env, const StepRows& r, const Trajectories& traj, torch::Dtype dtype) {
  const int64_t m = (r.T - 1) * r.B;  // steps 0..T-2 are the parents of steps 1..T-1
  RowSelection children(traj.mask.reshape({-1}).narrow(0, r.B, m), r.execution);
  BackwardSteps out;
  out.parents = children.take(r.all.narrow(0, m));
  // per child row t, the forward step t - 1 that reached it
  auto of_step = [&](const torch::Tensor& per_step) {  // [T, B] or [T, B, Da]
    auto shape = per_step.sizes().vec();
    shape.erase(shape.begin());
    shape[0] = r.T * r.B;
    return children.take(per_step.reshape(shape).narrow(0, 0, m));
  };
  Actions bwd;
  torch::Tensor log_j;
  if (traj.backward_coords.defined()) {
    // sampled backward: P_B is read at the coordinates it drew
    bwd = Actions{children.fill_unkept(of_step(traj.backward_component), 0), of_step(traj.backward_coords)};
    log_j = of_step(traj.backward_log_jacobian);
  } else {
    // a padding child's forward component replaced by 0, so that the env sees an action it knows
    auto forward = Actions{children.fill_unkept(of_step(traj.action_component), 0), of_step(traj.action_coords)};
    bwd = env.backward_action(out.parents, children.take(r.all.narrow(r.B, m)), forward, &log_j);
  }
  // one value per evaluated row: none for the B steps at t = 0
  auto with_roots = [&](const torch::Tensor& per_child, double fill) {
    auto shape = per_child.sizes().vec();
    shape[0] = r.B;
    return torch::cat({torch::full(shape, fill, per_child.options()), per_child});
  };
  out.component = with_roots(children.fill_unkept(bwd.component, -1), -1);
  out.coords = with_roots(bwd.coords, 0.0);
  out.log_jacobian = with_roots(children.fill_unkept(log_j.to(dtype), 0.0), 0.0);
  return out;
}

// log p_B(s_{t-1} | s_t) at each evaluated row (0 at s0), the chart's log J included, from
// `bpolicy`'s backward kernel: its learned head (on `hidden`, the trunk's output at the rows,
// when given), the max-entropy P_B, or the uniform one.
torch::Tensor backward_log_probs(const Env& env, PolicyNetImpl& bpolicy, const StepRows& r, const BackwardSteps& bwd,
                                 const torch::Tensor& features, const torch::Tensor& hidden, torch::Dtype dtype) {
  const auto& bhead = bpolicy.backward_head();
  auto root = r.states.is_initial;
  auto bmask = r.rows.open_unkept(env.backward_mask(r.states).logical_or(root.unsqueeze(1)));
  auto bcomp = bwd.component.clamp_min(0);
  torch::Tensor lpb;
  if (bpolicy.learned_backward() || bpolicy.fixed_backward()) {
    auto bout = bpolicy.fixed_backward() ? env.fixed_backward_outputs(r.states).to(dtype)
                                         : bpolicy.backward_outputs(hidden.defined() ? hidden : bpolicy.trunk(features));
    lpb = masked_log_softmax(bhead.logits(bout), bmask).gather(1, bcomp.unsqueeze(1)).squeeze(1);
    if (bhead.has_pieces()) lpb = lpb + bhead.log_density(bout, bwd.component, bwd.coords, r.execution);
  } else if (bpolicy.max_entropy_backward()) {
    // N(s_{t-1}) / N(s_t): the parents are the trajectory's own states (s0's row is masked below)
    auto log_n = env.log_path_count(bwd.parents).to(torch::kFloat64);
    auto log_n_parent = torch::cat({torch::zeros({r.B}, log_n.options()), log_n});
    lpb = (log_n_parent - env.log_path_count(r.states).to(torch::kFloat64)).to(dtype);
  } else {
    lpb = -bmask.sum(1).to(dtype).log();
    if (bhead.has_pieces()) lpb = lpb + bhead.log_uniform_density(bcomp).to(dtype);
  }
  return (lpb - bwd.log_jacobian).masked_fill(root, 0.0);
}

// [T, B] log p_B by step from the values at the rows: step t's backward probability lives at
// row t + 1; the exit step's row is the sink (0).
torch::Tensor log_pb_by_step(const StepRows& r, const torch::Tensor& lpb_rows) {
  auto by_row = r.by_step(lpb_rows);
  return torch::cat({by_row.narrow(0, 1, r.T - 1), torch::zeros({1, r.B}, by_row.options())});
}

}  // namespace

LossInputs score_trajectories(const Env& env, Estimators& estimators, const Trajectories& traj,
                              const ScoreOptions& options, Execution execution, const PolicyPass* pass) {
  auto& policy = *estimators.policy;
  const auto dtype = estimators.log_z.scalar_type();
  const StepRows r(traj, execution, dtype);

  // forward log-probabilities, one pass of the trunk: log pi(c) + log q(u) (the chart's log J
  // is subtracted below); padding rows get a full mask and component -1 (no density)
  const auto& fhead = policy.forward_head();
  const bool kept = pass != nullptr && pass->defined();
  TORCH_CHECK(!kept || pass->out.size(0) == r.rows.size(), "score_trajectories: the kept pass has ",
              kept ? pass->out.size(0) : 0, " rows, the trajectories ", r.rows.size());
  auto features = kept ? pass->features : env.features(r.states);
  auto hidden = kept ? pass->hidden : policy.trunk(features);
  auto fout = kept ? pass->out : policy.forward_outputs(hidden, features);
  auto logits = fhead.logits(fout);
  auto fmask = r.rows.open_unkept(env.forward_mask(r.states));
  auto lpf_rows = masked_log_softmax(logits, fmask);
  auto lpf = lpf_rows.gather(1, r.component.clamp_min(0).unsqueeze(1)).squeeze(1);
  if (fhead.has_pieces()) lpf = lpf + fhead.log_density(fout, r.component, r.coords, r.execution);

  // backward log-probabilities at s_t (P_B's own network where it has one: the TLM target, on
  // its own trunk)
  auto& bpolicy = estimators.backward_policy();
  const auto bwd = backward_steps(env, r, traj, dtype);
  auto lpb = backward_log_probs(env, bpolicy, r, bwd, features, &bpolicy == &policy ? hidden : torch::Tensor(), dtype);

  LossInputs in;
  in.log_pf = r.by_step(lpf) - traj.log_jacobian.to(dtype);
  in.log_pb = log_pb_by_step(r, lpb);
  // log F(s_t) at every valid step's state, [T+1, B] with 0 on padding
  if (estimators.flow)
    in.log_flow = torch::cat({r.by_step(estimators.flow->log_flow(hidden, features)), torch::zeros({1, r.B}, lpf.options())});
  in.log_reward = clip_log_reward(traj.log_reward.to(dtype), options.log_reward_clip);
  in.log_z = estimators.log_z_at(env, traj.terminal_states());  // [] or, conditional, log Z(c) [B]
  in.mask = traj.mask;
  in.length = traj.length;
  auto root = r.states.is_initial;
  if (options.edge_flows) {
    const double inf = std::numeric_limits<double>::infinity();
    in.log_outflow = r.by_step(logits.masked_fill(fmask.logical_not(), -inf).logsumexp(1));
    in.log_inflow = r.by_step(parents_log_inflow(env, policy, r.states).masked_fill(root, 0.0));
  }
  if (options.state_rewards) {
    in.log_pf_exit = r.by_step(lpf_rows.select(1, env.action_spec().forward.exit));
    in.log_reward_states = r.by_step(clip_log_reward(env.log_reward(r.states).to(dtype), options.log_reward_clip));
  }
  if (options.credit == Credit::kForwardLooking) {
    torch::NoGradGuard no_grad;
    auto ell = r.by_step(env.intermediate_log_reward(r.states).to(dtype).masked_fill(root, 0.0));
    in.local_credit = forward_looking_credits(ell, in.log_reward, in.mask, in.length);
  }
  return in;
}

torch::Tensor score_backward(const Env& env, PolicyNetImpl& net, const Trajectories& traj, Execution execution) {
  const auto dtype = net.parameters().front().scalar_type();
  const StepRows r(traj, execution, dtype);
  const auto bwd = backward_steps(env, r, traj, dtype);
  return log_pb_by_step(r, backward_log_probs(env, net, r, bwd, env.features(r.states), torch::Tensor(), dtype));
}

}  // namespace gfn

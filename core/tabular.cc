#include "core/tabular.h"

#include <limits>
#include <stdexcept>

#include <torch/torch.h>

#include "measures/categorical.h"

namespace gfn {

StateTable::StateTable(const Env& env, const torch::Device& device) {
  if (!env.enumerable()) throw std::logic_error("StateTable: env '" + env.name() + "' does not enumerate its states");
  const auto& spec = env.action_spec();
  if (spec.forward.has_pieces()) throw std::logic_error("StateTable: env '" + env.name() + "' has continuous pieces");
  torch::NoGradGuard no_grad;
  states = env.enumerate_states(device);
  const int64_t S = states.batch_size(), C = spec.forward.size();
  features = env.features(states);
  forward_mask = env.forward_mask(states);
  backward_mask = env.backward_mask(states);
  log_reward = env.log_reward(states);
  exit = spec.forward.exit;
  initial = env.state_index(env.initial_states(1, device)).item<int64_t>();

  // children and the backward moves undoing each forward component
  auto self = torch::arange(S, states.discrete.options().dtype(torch::kInt64));
  std::vector<torch::Tensor> child_cols, back_cols;
  auto coords = torch::zeros({S, spec.coord_dim}, features.options().dtype(torch::kFloat64));
  for (int64_t c = 0; c < C; ++c) {
    auto allowed = forward_mask.select(1, c);
    if (c == exit) {
      child_cols.push_back(self);
      back_cols.push_back(torch::zeros_like(self));
      continue;
    }
    Actions a{torch::full({S}, c, self.options()), coords};
    auto next = env.step(states, a).next;
    // unavailable moves may leave the state space: index only the available ones
    auto safe = States::where(allowed, next, states);
    auto idx = env.state_index(safe);
    child_cols.push_back(torch::where(allowed, idx, self));
    auto back = env.backward_action(states, safe, a).component;
    back_cols.push_back(torch::where(allowed, back, torch::zeros_like(back)));
  }
  child = torch::stack(child_cols, 1);
  backward_component = torch::stack(back_cols, 1);

  // parents and the forward moves into each state from them
  auto moves = parent_moves(env, states);
  std::vector<torch::Tensor> parent_cols;
  for (size_t c = 0; c < moves.parents.size(); ++c)
    parent_cols.push_back(torch::where(moves.available.select(1, c), env.state_index(moves.parents[c]), self));
  parent = torch::stack(parent_cols, 1);
  parent_component = moves.component;
  if (env.has_path_counts()) {
    auto log_n = env.log_path_count(states).to(torch::kFloat64);
    auto log_pb = log_n.index_select(0, parent.reshape({-1})).view(parent.sizes()) - log_n.unsqueeze(1);
    max_entropy_log_pb =
        log_pb.masked_fill(moves.available.logical_not(), -std::numeric_limits<double>::infinity())
            .masked_fill(states.is_initial.unsqueeze(1), 0.0);
  }
  if (env.has_intermediate_reward())
    intermediate_log_reward = env.intermediate_log_reward(states).masked_fill(states.is_initial, 0.0);
}

bool has_state_table(const Env& env) {
  return env.enumerable() && !env.action_spec().forward.has_pieces() && env.num_states() <= (int64_t{1} << 22);
}

bool tabular_worthwhile(const Env& env, int64_t batch) {
  if (!env.enumerable() || env.action_spec().forward.has_pieces()) return false;
  return env.num_states() <= batch * (env.max_length() + 1);
}

namespace {

// log p_B on every state ([S, C_b]) from `net`'s backward kernel, its trunk's output `hidden`
// at the table's states (learned heads only)
torch::Tensor table_log_pb(const StateTable& table, PolicyNetImpl& net, const torch::Tensor& hidden,
                           torch::Dtype dtype) {
  auto root = table.states.is_initial.unsqueeze(1);
  auto bmask = table.backward_mask.logical_or(root);
  if (net.learned_backward()) return masked_log_softmax(net.backward_logits(hidden), bmask);
  if (net.max_entropy_backward()) {
    TORCH_CHECK(table.max_entropy_log_pb.defined(), "evaluate_table: the env counts no paths");
    return table.max_entropy_log_pb.to(dtype);
  }
  auto uniform = -bmask.sum(1, /*keepdim=*/true).to(dtype).log();
  return uniform.expand({-1, bmask.size(1)});
}

}  // namespace

TablePass evaluate_table_forward(const StateTable& table, PolicyNetImpl& policy) {
  TablePass pass;
  pass.hidden = policy.trunk(table.features);
  pass.logits = policy.forward_logits(pass.hidden);
  pass.log_pf = masked_log_softmax(pass.logits, table.forward_mask);
  return pass;
}

void evaluate_table_backward(const StateTable& table, Estimators& estimators, TablePass& pass) {
  auto& net = estimators.backward_policy();
  const bool own = &net == estimators.policy.get();
  pass.log_pb = table_log_pb(table, net, own || !net.learned_backward() ? pass.hidden : net.trunk(table.features),
                             pass.log_pf.scalar_type());
  if (estimators.flow) pass.log_flow = estimators.flow->log_flow(pass.hidden, table.features);
}

TablePass evaluate_table(const StateTable& table, PolicyNetImpl& policy) {
  TablePass pass = evaluate_table_forward(table, policy);
  pass.log_pb = table_log_pb(table, policy, pass.hidden, pass.log_pf.scalar_type());
  return pass;
}

TablePass evaluate_table(const StateTable& table, Estimators& estimators) {
  TablePass pass = evaluate_table_forward(table, *estimators.policy);
  evaluate_table_backward(table, estimators, pass);
  return pass;
}

torch::Tensor score_tabular_backward(const StateTable& table, PolicyNetImpl& net, const Trajectories& traj,
                                     const torch::Tensor& state_index) {
  TablePass pass;
  pass.log_pb = table_log_pb(table, net, net.learned_backward() ? net.trunk(table.features) : torch::Tensor(),
                             net.parameters().front().scalar_type());
  return tabular_log_pb(table, pass, traj, state_index);
}

namespace {

// the walk as tensor operations: Gumbel-max draws, no host sync
void walk_tensor(const StateTable& table, const torch::Tensor& probs, int64_t steps, int64_t batch,
                 torch::Generator& generator, torch::Tensor* path, torch::Tensor* components) {
  const int64_t C = table.child.size(1);
  auto child_flat = table.child.reshape({-1});
  auto idx = torch::full({batch}, table.initial, table.child.options());
  auto done = torch::zeros({batch}, table.child.options().dtype(torch::kBool));
  auto log_probs = probs.log();
  auto gumbel = gumbel_noise({steps, batch, C}, generator, probs.options());
  std::vector<torch::Tensor> visited{idx}, comps;
  for (int64_t t = 0; t < steps; ++t) {
    auto comp = (log_probs.index_select(0, idx) + gumbel[t]).argmax(1);
    auto next = child_flat.index_select(0, idx * C + comp);
    auto stay = done.logical_or(comp.eq(table.exit));
    comps.push_back(comp.masked_fill(done, -1));
    idx = torch::where(stay, idx, next);
    visited.push_back(idx);
    done = stay;
  }
  *path = torch::stack(visited);
  *components = torch::stack(comps);
}

// the walk as a host loop over a CPU table: inverse-CDF draws from uniforms of the generator
void walk_host(const StateTable& table, const torch::Tensor& probs, int64_t steps, int64_t batch,
               torch::Generator& generator, torch::Tensor* path, torch::Tensor* components) {
  const int64_t C = table.child.size(1);
  auto cdf_t = probs.to(torch::kFloat64).cumsum(1).contiguous();
  auto u_t = torch::rand({steps, batch}, generator, torch::TensorOptions().dtype(torch::kFloat64));
  auto child_t = table.child.contiguous();
  *path = torch::empty({steps + 1, batch}, torch::kInt64);
  *components = torch::full({steps, batch}, -1, torch::kInt64);
  const double* cdf = cdf_t.data_ptr<double>();
  const double* u = u_t.data_ptr<double>();
  const int64_t* child = child_t.data_ptr<int64_t>();
  int64_t* pp = path->data_ptr<int64_t>();
  int64_t* cp = components->data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    int64_t s = table.initial;
    pp[b] = s;
    bool done = false;
    for (int64_t t = 0; t < steps; ++t) {
      if (!done) {
        const int64_t c = inverse_cdf_pick(cdf + s * C, C, u[t * batch + b]);
        cp[t * batch + b] = c;
        if (c == table.exit) {
          done = true;
        } else {
          s = child[s * C + c];
        }
      }
      pp[(t + 1) * batch + b] = s;
    }
  }
}

}  // namespace

Trajectories rollout_tabular(const Env& env, const StateTable& table, const torch::Tensor& probs, int64_t batch,
                             torch::Generator& generator, torch::Tensor* state_index, TabularBackend backend) {
  torch::NoGradGuard no_grad;
  const int64_t steps = env.max_length() + 1;
  const int64_t C = table.child.size(1);
  if (backend == TabularBackend::kAuto) backend = probs.is_cpu() ? TabularBackend::kHost : TabularBackend::kTensor;
  if (backend == TabularBackend::kHost && !probs.is_cpu())
    throw std::logic_error("rollout_tabular: the host walk needs a CPU table");
  torch::Tensor path, comp;
  if (backend == TabularBackend::kHost) {
    walk_host(table, probs, steps, batch, generator, &path, &comp);
  } else {
    walk_tensor(table, probs, steps, batch, generator, &path, &comp);
  }

  // everything else follows from the visited indices and components
  Trajectories traj;
  auto flat = path.reshape({-1});
  const auto& st = table.states;
  traj.states_discrete = st.discrete.index_select(0, flat).view({steps + 1, batch, st.discrete.size(1)});
  traj.states_continuous = st.continuous.index_select(0, flat).view({steps + 1, batch, st.continuous.size(1)});
  traj.is_initial = st.is_initial.index_select(0, flat).view({steps + 1, batch});
  traj.mask = comp.ge(0);
  traj.is_sink = torch::cat({torch::zeros({1, batch}, traj.mask.options()), traj.mask.logical_not().logical_or(
                                                                              comp.eq(table.exit))});
  traj.action_component = comp;
  const int64_t da = env.action_spec().coord_dim;
  traj.action_coords = torch::zeros({steps, batch, da}, table.features.options().dtype(torch::kFloat64));
  traj.log_jacobian = torch::zeros({steps, batch}, table.features.options());
  traj.length = traj.mask.sum(0);
  auto probs_flat = probs.reshape({-1});
  auto p = probs_flat.index_select(0, (path.narrow(0, 0, steps) * C + comp.clamp_min(0)).reshape({-1}));
  traj.log_pf_sampled = p.log().view({steps, batch}).masked_fill(traj.mask.logical_not(), 0.0);
  auto last = path[steps];
  traj.terminal_discrete = st.discrete.index_select(0, last);
  traj.terminal_continuous = st.continuous.index_select(0, last);
  traj.log_reward = table.log_reward.index_select(0, last);
  if (state_index != nullptr) *state_index = path;
  return traj;
}

torch::Tensor tabular_log_pb(const StateTable& table, const TablePass& pass, const Trajectories& traj,
                             const torch::Tensor& state_index) {
  const int64_t T = traj.num_steps(), B = traj.batch_size();
  const int64_t C = table.forward_mask.size(1), Cb = pass.log_pb.size(1);
  auto from = state_index.narrow(0, 0, T), to = state_index.narrow(0, 1, T);  // [T, B]
  auto comp = traj.action_component.clamp_min(0);
  // log p_B(s_t | s_{t+1}) at the child, with the component undoing a_t
  auto bcomp = table.backward_component.reshape({-1}).index_select(0, (from * C + comp).reshape({-1})).view({T, B});
  auto lpb = pass.log_pb.reshape({-1}).index_select(0, (to * Cb + bcomp).reshape({-1})).view({T, B});
  return lpb.masked_fill(traj.mask.logical_not().logical_or(traj.action_component.eq(table.exit)), 0.0);
}

LossInputs score_tabular(const StateTable& table, const TablePass& pass, const Trajectories& traj,
                         const torch::Tensor& state_index, const torch::Tensor& log_z, const ScoreOptions& options) {
  const int64_t T = traj.num_steps(), B = traj.batch_size();
  const int64_t C = pass.log_pf.size(1), Cb = table.backward_mask.size(1);
  auto from = state_index.narrow(0, 0, T);  // [T, B]
  auto comp = traj.action_component.clamp_min(0);
  auto invalid = traj.mask.logical_not();

  // forward: log p_F(a_t | s_t) from the table
  auto lpf = pass.log_pf.reshape({-1}).index_select(0, (from * C + comp).reshape({-1})).view({T, B});

  LossInputs in;
  in.log_pf = lpf.masked_fill(invalid, 0.0);
  in.log_pb = tabular_log_pb(table, pass, traj, state_index);
  if (pass.log_flow.defined()) {
    auto flow = pass.log_flow.index_select(0, from.reshape({-1})).view({T, B}).masked_fill(invalid, 0.0);
    in.log_flow = torch::cat({flow, torch::zeros({1, B}, flow.options())});
  }
  in.log_reward = clip_log_reward(traj.log_reward.to(lpf.scalar_type()), options.log_reward_clip);
  in.log_z = log_z;
  in.mask = traj.mask;
  in.length = traj.length;
  // per-state quantities [S] read at every step's state s_t
  auto at_states = [&](const torch::Tensor& per_state) {
    return per_state.index_select(0, from.reshape({-1})).view({T, B}).masked_fill(invalid, 0.0);
  };
  if (options.edge_flows) {
    const double inf = std::numeric_limits<double>::infinity();
    auto root = table.states.is_initial;
    in.log_outflow = at_states(pass.logits.masked_fill(table.forward_mask.logical_not(), -inf).logsumexp(1));
    auto edge = pass.logits.reshape({-1})
                    .index_select(0, (table.parent * C + table.parent_component).reshape({-1}))
                    .view({table.size(), Cb});
    auto has = table.backward_mask.logical_or(root.unsqueeze(1));  // s0: finite dummy, masked below
    in.log_inflow = at_states(edge.masked_fill(has.logical_not(), -inf).logsumexp(1).masked_fill(root, 0.0));
  }
  if (options.state_rewards) {
    in.log_pf_exit = at_states(pass.log_pf.select(1, table.exit));
    in.log_reward_states = at_states(clip_log_reward(table.log_reward.to(lpf.scalar_type()), options.log_reward_clip));
  }
  if (options.credit == Credit::kForwardLooking) {
    TORCH_CHECK(table.intermediate_log_reward.defined(), "score_tabular: the env defines no intermediate reward");
    in.local_credit = forward_looking_credits(at_states(table.intermediate_log_reward.to(lpf.scalar_type())),
                                              in.log_reward, in.mask, in.length);
  }
  return in;
}

}  // namespace gfn

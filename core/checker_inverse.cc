// The "inverse" check (core/checker.h): every sampled move is undone exactly by
// backward_action, backward_step and forward_action, and the masks agree with the moves.
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/internal/checker_parts.h"

namespace gfn::checker {

namespace {

// Per-row largest |a - b| over the columns where `columns` ([N, D] bool, or undefined: all) is
// true, and whether it exceeds tol * (1 + |b|) or is not finite: {[N] float64, [N] bool}.
std::pair<torch::Tensor, torch::Tensor> compare_rows(const torch::Tensor& a, const torch::Tensor& b, double tol,
                                                     const torch::Tensor& columns = {}) {
  const int64_t n = a.size(0);
  if (a.dim() == 2 && a.size(1) == 0) return {torch::zeros({n}, kF64), torch::zeros({n}, kF64.dtype(torch::kBool))};
  auto x = a.to(torch::kFloat64), y = b.to(torch::kFloat64);
  if (x.dim() == 1) x = x.unsqueeze(1), y = y.unsqueeze(1);
  auto d = (x - y).abs();
  auto bad = d.gt(tol * (1.0 + y.abs())).logical_or(d.isfinite().logical_not());
  if (columns.defined()) {
    d = d.masked_fill(columns.logical_not(), 0.0);
    bad = bad.logical_and(columns);
  }
  return {d.nan_to_num(std::numeric_limits<double>::infinity()).amax(1), bad.any(1)};
}

// The failures of one check: how many rows failed and the first message of each kind.
struct Findings {
  torch::Tensor any_bad;  // [M] bool
  std::vector<std::string> messages;
  // rows `bad` ([M] bool) fail; `what(row)` describes the first of them
  void add(const torch::Tensor& bad, const std::function<std::string(int64_t)>& what) {
    any_bad = any_bad.defined() ? any_bad.logical_or(bad) : bad.clone();
    if (!bad.any().item<bool>()) return;
    const int64_t row = bad.nonzero()[0][0].item<int64_t>();
    messages.push_back(fmt::format("{} of {} fail, first {}", bad.sum().item<int64_t>(), bad.size(0), what(row)));
  }
};

// Where move `row` was sampled: "at trajectory b step t (forward 'name')".
std::string at_step(const ActionSpec& spec, const Sample& s, int64_t row) {
  const int64_t B = s.traj.batch_size();
  const int64_t flat = s.move_rows[row].item<int64_t>();
  return fmt::format("at trajectory {} step {} (forward '{}')", flat % B, flat / B,
                     component_name(spec.forward, s.forward.component[row].item<int64_t>()));
}

// The name of the backward component of move `row` in `bwd`.
std::string backward_name(const ActionSpec& spec, const Actions& bwd, int64_t row) {
  return component_name(spec.backward, bwd.component[row].item<int64_t>());
}

// What is wrong with the forward masks at the sampled states: a non-sink state without a
// forward component; with every_state_terminal(), a state that cannot exit.
std::vector<std::string> forward_mask_problems(const Env& env, const Sample& s) {
  const auto& spec = env.action_spec();
  std::vector<std::string> problems;
  auto fmask_all = env.forward_mask(s.forward_states);
  const int64_t empty_f = fmask_all.any(1).logical_not().sum().item<int64_t>();
  if (empty_f) problems.push_back(fmt::format("{} sampled non-sink states have no forward component", empty_f));
  // an env that declares every state terminal offers the exit everywhere
  if (env.every_state_terminal()) {
    const int64_t no_exit =
        spec.forward.exit < 0 ? fmask_all.size(0)
                              : fmask_all.select(1, spec.forward.exit).logical_not().sum().item<int64_t>();
    if (no_exit)
      problems.push_back(fmt::format("every_state_terminal() is true but {} sampled states cannot exit", no_exit));
  }
  return problems;
}

// The worst error of each move when it is undone ([M] float64), and where float32 values do not
// determine the chart coordinates.
struct MoveErrors {
  torch::Tensor state;           // backward_step's parent vs the sampled one, continuous coordinates
  torch::Tensor coords;          // forward_action's chart coordinates vs the sampled ones
  torch::Tensor forward_log_j;   // forward_action's log J vs step's (0 where unresolved)
  torch::Tensor backward_log_j;  // backward_step's log J vs backward_action's
  torch::Tensor unresolved;      // [M] bool: numerically singular chart points, not compared
};

// The moves' backward actions (their log J written to `log_jacobian`), failing the moves whose
// child has no backward component, whose forward component is not in forward_mask(parent) or
// whose backward component is not in backward_mask(child).
Actions backward_actions(const Env& env, const Sample& s, Findings& f, torch::Tensor* log_jacobian) {
  const auto& spec = env.action_spec();
  const auto& comp = s.forward.component;
  auto bmask_children = env.backward_mask(s.children);
  f.add(bmask_children.any(1).logical_not(),
        [&](int64_t row) { return "the child has no backward component " + at_step(spec, s, row); });

  // the move was available forward
  auto fmask = env.forward_mask(s.parents);
  f.add(fmask.gather(1, comp.unsqueeze(1)).squeeze(1).logical_not(), [&](int64_t row) {
    return "the forward component is not in forward_mask(parent) " + at_step(spec, s, row);
  });

  // backward_action names a component available at the child
  Actions bwd = env.backward_action(s.parents, s.children, s.forward, log_jacobian);
  const int64_t cb = spec.backward.size();
  auto in_range = bwd.component.ge(0).logical_and(bwd.component.lt(cb));
  auto avail_b = bmask_children.gather(1, bwd.component.clamp(0, cb - 1).unsqueeze(1)).squeeze(1).logical_and(in_range);
  f.add(avail_b.logical_not(), [&](int64_t row) {
    return fmt::format("backward_action gives '{}', not in backward_mask(child) {}", backward_name(spec, bwd, row),
                       at_step(spec, s, row));
  });
  return bwd;
}

// backward_step(child, backward action) is the parent, with the log J of backward_action
// (`bwd_log_j`, undefined when it gave none).
void check_backward_step(const Env& env, const Sample& s, const Actions& bwd, const torch::Tensor& bwd_log_j,
                         double tol, Findings& f, MoveErrors& e) {
  const auto& spec = env.action_spec();
  auto back = env.backward_step(s.children, bwd);
  f.add(back.next.discrete.ne(s.parents.discrete).any(1), [&](int64_t row) {
    return fmt::format("backward_step(child, '{}') does not recover the parent's discrete coordinates {}",
                       backward_name(spec, bwd, row), at_step(spec, s, row));
  });
  auto state_cmp = compare_rows(back.next.continuous, s.parents.continuous, tol);
  e.state = state_cmp.first;
  f.add(state_cmp.second, [&](int64_t row) {
    return fmt::format("backward_step(child, '{}') misses the parent's continuous coordinates by {:.3g} {}",
                       backward_name(spec, bwd, row), e.state[row].item<double>(), at_step(spec, s, row));
  });
  f.add(back.next.is_initial.ne(s.parents.is_initial),
        [&](int64_t row) { return "backward_step gets is_initial wrong " + at_step(spec, s, row); });
  e.backward_log_j = torch::zeros({s.move_rows.size(0)}, kF64);
  if (bwd_log_j.defined()) {
    auto cmp = compare_rows(back.log_jacobian, bwd_log_j, tol);
    e.backward_log_j = cmp.first;
    f.add(cmp.second, [&](int64_t row) {
      return fmt::format("backward_step and backward_action disagree on log J by {:.3g} {}",
                         e.backward_log_j[row].item<double>(), at_step(spec, s, row));
    });
  }
}

// Per move and chart coordinate, whether the states' float values fail to determine the
// coordinate to `tol` ([M] bool, over the true entries of `columns` [M, Da]). Float coordinates
// and states (eps of their dtype) pin the chart coordinates down only to about eps |x| |row_i(D phi^+)|; where that exceeds the
// tolerance (near a singular point of the chart, such as a pole of spherical coordinates)
// coordinates and log J are not compared.
torch::Tensor unresolved_moves(const Env& env, const Sample& s, const torch::Tensor& columns, const CheckOptions& o) {
  const auto& spec = env.action_spec();
  const auto& comp = s.forward.component;
  const int64_t m = s.move_rows.size(0), da = s.forward.coords.size(1);
  // the precision of the env's continuous states (float64 in the built-in envs)
  const double eps = s.children.continuous.scalar_type() == torch::kFloat64 ? std::numeric_limits<double>::epsilon()
                                                                            : std::numeric_limits<float>::epsilon();
  auto scale = s.children.continuous.numel() ? 1.0 + s.children.continuous.to(torch::kFloat64).abs().amax(1)
                                             : torch::ones({m}, kF64);
  // |row_i(D phi^+)| of each move's piece, zero-padded to Da
  auto sensitivity = torch::zeros({m, da}, kF64);
  for (int64_t c = 0; c < spec.forward.size(); ++c) {
    const auto& piece = spec.forward.components[c];
    if (piece.kind != ComponentKind::kPiece || s.children.continuous.size(1) == 0) continue;
    auto rows = comp.eq(c).nonzero().squeeze(1);
    if (rows.size(0) == 0) continue;
    auto v = chart_volume(env, true, s.parents.index_select(rows), c, piece.domain, piece.dim,
                          s.forward.coords.index_select(0, rows).to(torch::kFloat64), o.finite_difference_step);
    auto row_norms = torch::linalg_pinv(v.d).norm(2, 2);  // [n, k]
    if (piece.dim < da) row_norms = torch::constant_pad_nd(row_norms, {0, da - piece.dim});
    sensitivity.index_copy_(0, rows, row_norms);
  }
  auto resolution = (8.0 * eps) * scale.unsqueeze(1) * sensitivity;
  return resolution.gt(o.inverse_tolerance)
      .logical_or(resolution.isfinite().logical_not())
      .logical_and(columns)
      .any(1);
}

// forward_action's chart coordinates `fwd_coords` are the sampled ones, where float32 values
// determine them.
void check_forward_coords(const Env& env, const Sample& s, const torch::Tensor& fwd_coords, const CheckOptions& o,
                          Findings& f, MoveErrors& e) {
  const auto& spec = env.action_spec();
  const auto& comp = s.forward.component;
  const int64_t m = s.move_rows.size(0), da = s.forward.coords.size(1);
  e.coords = torch::zeros({m}, kF64);
  e.unresolved = torch::zeros({m}, kF64.dtype(torch::kBool));
  if (da == 0) return;
  // the columns of each move's piece
  std::vector<int64_t> dims;
  for (const auto& c : spec.forward.components) dims.push_back(c.kind == ComponentKind::kPiece ? c.dim : 0);
  auto dim_of = torch::tensor(dims, kI64).index_select(0, comp.clamp(0, spec.forward.size() - 1));
  auto columns = torch::arange(da, kI64).unsqueeze(0).lt(dim_of.unsqueeze(1));  // [M, Da]
  auto cmp = compare_rows(fwd_coords.narrow(1, 0, da), s.forward.coords, o.inverse_tolerance, columns);
  e.coords = cmp.first;
  e.unresolved = unresolved_moves(env, s, columns, o);
  f.add(cmp.second.logical_and(e.unresolved.logical_not()), [&](int64_t row) {
    const int64_t d = dims[comp[row].item<int64_t>()];
    return fmt::format("forward_action recovers coordinates {} instead of {} (error {:.3g}) {}",
                       fmt_coords(fwd_coords[row], d), fmt_coords(s.forward.coords[row], d),
                       e.coords[row].item<double>(), at_step(spec, s, row));
  });
}

// forward_action(child, parent, backward action) is the sampled forward action, with the log J
// step reported (forward_action's written to `log_jacobian`), where float32 values determine them.
void check_forward_action(const Env& env, const Sample& s, const Actions& bwd, const CheckOptions& o, Findings& f,
                          MoveErrors& e, torch::Tensor* log_jacobian) {
  const auto& spec = env.action_spec();
  Actions fa = env.forward_action(s.children, s.parents, bwd, log_jacobian);
  f.add(fa.component.ne(s.forward.component), [&](int64_t row) {
    return fmt::format("forward_action gives component {} {}", fa.component[row].item<int64_t>(),
                       at_step(spec, s, row));
  });
  check_forward_coords(env, s, fa.coords, o, f, e);
  e.forward_log_j = torch::zeros({s.move_rows.size(0)}, kF64);
  if (!log_jacobian->defined()) return;
  const auto& fjac = *log_jacobian;
  auto cmp = compare_rows(fjac, s.log_jacobian, o.inverse_tolerance);
  const auto& err = cmp.first;
  e.forward_log_j = err.masked_fill(e.unresolved, 0.0);
  f.add(cmp.second.logical_and(e.unresolved.logical_not()), [&](int64_t row) {
    return fmt::format("log J of forward_action ({:.6g}) and of step ({:.6g}) differ by {:.3g} {}",
                       fjac[row].item<double>(), s.log_jacobian[row].item<double>(), err[row].item<double>(),
                       at_step(spec, s, row));
  });
}

// The result: the worst errors, and on failure every problem (those of the masks and log J
// first, then the failing moves').
CheckResult inverse_result(const Sample& s, double tol, const std::vector<std::string>& problems, const Findings& f,
                           const MoveErrors& e) {
  CheckResult r{"inverse", false, false, ""};
  const int64_t m = s.move_rows.size(0);
  r.passed = problems.empty();
  const int64_t singular = e.unresolved.sum().item<int64_t>();
  const std::string numbers = fmt::format(
      "{} moves of {} trajectories: worst errors state {:.2g}, coords {:.2g}, log J forward {:.2g}, backward {:.2g} "
      "(tolerance {:g}){}",
      m, s.traj.batch_size(), max_or_zero(e.state), max_or_zero(e.coords.masked_fill(e.unresolved, 0.0)),
      max_or_zero(e.forward_log_j), max_or_zero(e.backward_log_j), tol,
      singular ? fmt::format("; {} moves at numerically singular chart points (coordinates not determined by the "
                             "states' {} values) not compared on coordinates and log J",
                             singular, s.children.continuous.scalar_type() == torch::kFloat64 ? "float64" : "float32")
               : "");
  if (r.passed) {
    r.detail = numbers + "; masks consistent, every move undone by backward_action/backward_step/forward_action";
  } else {
    r.detail = fmt::format("{} of {} moves fail: {} [{}]", f.any_bad.sum().item<int64_t>(), m,
                           fmt::join(problems, "; "), numbers);
  }
  return r;
}

}  // namespace

CheckResult check_inverse(const Env& env, const Sample& s, const CheckOptions& o) {
  const auto& spec = env.action_spec();
  auto problems = forward_mask_problems(env, s);
  if (s.move_rows.size(0) == 0) {
    CheckResult r{"inverse", problems.empty(), false, ""};
    r.detail = fmt::format("{} trajectories made no move (every one exited at once); nothing to invert{}",
                           s.traj.batch_size(), problems.empty() ? "" : "; " + problems[0]);
    return r;
  }
  // undo every move: backward_action, backward_step, then forward_action
  Findings f;
  MoveErrors e;
  torch::Tensor bwd_log_j, fwd_log_j;
  Actions bwd = backward_actions(env, s, f, &bwd_log_j);
  check_backward_step(env, s, bwd, bwd_log_j, o.inverse_tolerance, f, e);
  check_forward_action(env, s, bwd, o, f, e, &fwd_log_j);
  if (!fwd_log_j.defined() && spec.forward.has_pieces()) problems.push_back("forward_action did not fill log_jacobian");
  if (!bwd_log_j.defined() && spec.backward.has_pieces())
    problems.push_back("backward_action did not fill log_jacobian");
  problems.insert(problems.end(), f.messages.begin(), f.messages.end());
  return inverse_result(s, o.inverse_tolerance, problems, f, e);
}

}  // namespace gfn::checker

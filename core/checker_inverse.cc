// The "inverse" check (core/checker.h): every sampled move is undone exactly by
// backward_action, backward_step and forward_action, and the masks agree with the moves.
#include <functional>
#include <limits>
#include <utility>

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

}  // namespace

CheckResult check_inverse(const Env& env, const Sample& s, const CheckOptions& o) {
  const auto& spec = env.action_spec();
  const int64_t B = s.traj.batch_size();
  const int64_t m = s.move_rows.size(0);
  const double tol = o.inverse_tolerance;
  CheckResult r{"inverse", false, false, ""};
  std::vector<std::string> problems;

  // no non-sink state without a forward component, no non-initial state without a backward one
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
  if (m == 0) {
    r.passed = problems.empty();
    r.detail = fmt::format("{} trajectories made no move (every one exited at once); nothing to invert{}",
                           s.traj.batch_size(), problems.empty() ? "" : "; " + problems[0]);
    return r;
  }
  auto comp = s.forward.component;
  auto at_step = [&](int64_t row) {
    const int64_t flat = s.move_rows[row].item<int64_t>();
    const int64_t c = comp[row].item<int64_t>();
    return fmt::format("at trajectory {} step {} (forward '{}')", flat % B, flat / B,
                       c >= 0 && c < spec.forward.size() ? spec.forward.components[c].name : std::to_string(c));
  };
  auto bmask_children = env.backward_mask(s.children);
  auto empty_b = bmask_children.any(1).logical_not();
  Findings f;
  f.add(empty_b, [&](int64_t row) { return "the child has no backward component " + at_step(row); });

  // the move was available forward
  auto fmask = env.forward_mask(s.parents);
  f.add(fmask.gather(1, comp.unsqueeze(1)).squeeze(1).logical_not(),
        [&](int64_t row) { return "the forward component is not in forward_mask(parent) " + at_step(row); });

  // backward_action names a component available at the child
  torch::Tensor bjac;
  Actions bwd = env.backward_action(s.parents, s.children, s.forward, &bjac);
  const int64_t cb = spec.backward.size();
  auto in_range = bwd.component.ge(0).logical_and(bwd.component.lt(cb));
  auto avail_b = bmask_children.gather(1, bwd.component.clamp(0, cb - 1).unsqueeze(1)).squeeze(1).logical_and(in_range);
  auto bname = [&](int64_t row) {
    const int64_t c = bwd.component[row].item<int64_t>();
    return c >= 0 && c < cb ? spec.backward.components[c].name : std::to_string(c);
  };
  f.add(avail_b.logical_not(), [&](int64_t row) {
    return fmt::format("backward_action gives '{}', not in backward_mask(child) {}", bname(row), at_step(row));
  });

  // backward_step(child, backward_action) is the parent
  auto back = env.backward_step(s.children, bwd);
  f.add(back.next.discrete.ne(s.parents.discrete).any(1), [&](int64_t row) {
    return fmt::format("backward_step(child, '{}') does not recover the parent's discrete coordinates {}",
                       bname(row), at_step(row));
  });
  auto state_cmp = compare_rows(back.next.continuous, s.parents.continuous, tol);
  const auto& state_err = state_cmp.first;
  f.add(state_cmp.second, [&](int64_t row) {
    return fmt::format("backward_step(child, '{}') misses the parent's continuous coordinates by {:.3g} {}",
                       bname(row), state_err[row].item<double>(), at_step(row));
  });
  f.add(back.next.is_initial.ne(s.parents.is_initial),
        [&](int64_t row) { return "backward_step gets is_initial wrong " + at_step(row); });
  torch::Tensor bjac_err = torch::zeros({m}, kF64);
  if (bjac.defined()) {
    auto cmp = compare_rows(back.log_jacobian, bjac, tol);
    const auto& e = cmp.first;
    bjac_err = e;
    f.add(cmp.second, [&](int64_t row) {
      return fmt::format("backward_step and backward_action disagree on log J by {:.3g} {}", e[row].item<double>(),
                         at_step(row));
    });
  }

  // forward_action(child, parent, backward) is the forward action, with the same log J
  torch::Tensor fjac;
  Actions fa = env.forward_action(s.children, s.parents, bwd, &fjac);
  f.add(fa.component.ne(comp), [&](int64_t row) {
    return fmt::format("forward_action gives component {} {}", fa.component[row].item<int64_t>(), at_step(row));
  });
  std::vector<int64_t> dims;
  for (const auto& c : spec.forward.components) dims.push_back(c.kind == ComponentKind::kPiece ? c.dim : 0);
  const int64_t da = s.forward.coords.size(1);
  torch::Tensor coord_err = torch::zeros({m}, kF64);
  auto unresolved = torch::zeros({m}, kF64.dtype(torch::kBool));
  if (da > 0) {
    auto dim_of = torch::tensor(dims, kI64).index_select(0, comp.clamp(0, spec.forward.size() - 1));
    auto columns = torch::arange(da, kI64).unsqueeze(0).lt(dim_of.unsqueeze(1));  // [M, Da]
    auto cmp = compare_rows(fa.coords.narrow(1, 0, da), s.forward.coords, tol, columns);
    const auto& e = cmp.first;
    coord_err = e;
    // float32 coordinates and states pin the chart coordinates down only to about
    // eps |x| |row_i(D phi^+)|; where that exceeds the tolerance (near a singular point of the
    // chart, such as a pole of spherical coordinates) coordinates and log J are not compared
    const double eps = std::numeric_limits<float>::epsilon();
    auto scale = s.children.continuous.numel() ? 1.0 + s.children.continuous.to(torch::kFloat64).abs().amax(1)
                                               : torch::ones({m}, kF64);
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
    unresolved = resolution.gt(tol).logical_or(resolution.isfinite().logical_not()).logical_and(columns).any(1);
    auto coord_bad = cmp.second.logical_and(unresolved.logical_not());
    f.add(coord_bad, [&](int64_t row) {
      const int64_t d = dims[comp[row].item<int64_t>()];
      return fmt::format("forward_action recovers coordinates {} instead of {} (error {:.3g}) {}",
                         fmt_coords(fa.coords[row], d), fmt_coords(s.forward.coords[row], d), e[row].item<double>(),
                         at_step(row));
    });
  }
  torch::Tensor fjac_err = torch::zeros({m}, kF64);
  if (fjac.defined()) {
    auto cmp = compare_rows(fjac, s.log_jacobian, tol);
    const auto& e = cmp.first;
    fjac_err = e.masked_fill(unresolved, 0.0);
    f.add(cmp.second.logical_and(unresolved.logical_not()), [&](int64_t row) {
      return fmt::format("log J of forward_action ({:.6g}) and of step ({:.6g}) differ by {:.3g} {}",
                         fjac[row].item<double>(), s.log_jacobian[row].item<double>(), e[row].item<double>(),
                         at_step(row));
    });
  } else if (spec.forward.has_pieces()) {
    problems.push_back("forward_action did not fill log_jacobian");
  }
  if (!bjac.defined() && spec.backward.has_pieces()) problems.push_back("backward_action did not fill log_jacobian");

  for (auto& msg : f.messages) problems.push_back(msg);
  const int64_t failed = f.any_bad.sum().item<int64_t>();
  r.passed = problems.empty();
  const int64_t singular = unresolved.sum().item<int64_t>();
  const std::string numbers = fmt::format(
      "{} moves of {} trajectories: worst errors state {:.2g}, coords {:.2g}, log J forward {:.2g}, backward {:.2g} "
      "(tolerance {:g}){}",
      m, B, max_or_zero(state_err), max_or_zero(coord_err.masked_fill(unresolved, 0.0)), max_or_zero(fjac_err),
      max_or_zero(bjac_err), tol,
      singular ? fmt::format("; {} moves at numerically singular chart points (coordinates not determined by float32 "
                             "values) not compared on coordinates and log J",
                             singular)
               : "");
  if (r.passed) {
    r.detail = numbers + "; masks consistent, every move undone by backward_action/backward_step/forward_action";
  } else {
    std::string joined;
    for (const auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
    r.detail = fmt::format("{} of {} moves fail: {} [{}]", failed, m, joined, numbers);
  }
  return r;
}

}  // namespace gfn::checker

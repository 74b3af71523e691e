#include "core/checker.h"

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <utility>

#include <boost/math/quadrature/gauss.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "core/estimator.h"
#include "core/evaluation.h"
#include "core/kernel_head.h"
#include "core/params.h"
#include "core/sampler.h"
#include "core/trainer.h"
#include "measures/categorical.h"
#include "measures/densities.h"

namespace gfn {

void CheckOptions::validate() const {
  auto fail = [](const char* field, const std::string& value, const char* rule) {
    throw ConfigError(fmt::format("CheckOptions.{} = {}: expected {}", field, value, rule));
  };
  if (trajectories < 1) fail("trajectories", std::to_string(trajectories), "an integer >= 1");
  if (is_samples < 2) fail("is_samples", std::to_string(is_samples), "an integer >= 2");
  if (is_batch < 1) fail("is_batch", std::to_string(is_batch), "an integer >= 1");
  if (!(is_tolerance_se > 0.0) || !std::isfinite(is_tolerance_se))
    fail("is_tolerance_se", fmt::format("{}", is_tolerance_se), "a finite float > 0");
  if (!(min_ess >= 0.0) || !std::isfinite(min_ess)) fail("min_ess", fmt::format("{}", min_ess), "a finite float >= 0");
  if (quadrature_states < 1) fail("quadrature_states", std::to_string(quadrature_states), "an integer >= 1");
  if (quadrature_nodes != 20 && quadrature_nodes != 30 && quadrature_nodes != 40 && quadrature_nodes != 60)
    fail("quadrature_nodes", std::to_string(quadrature_nodes), "one of 20, 30, 40, 60");
  if (!(quadrature_tolerance > 0.0) || !std::isfinite(quadrature_tolerance))
    fail("quadrature_tolerance", fmt::format("{}", quadrature_tolerance), "a finite float > 0");
  if (jacobian_states < 1) fail("jacobian_states", std::to_string(jacobian_states), "an integer >= 1");
  if (!(finite_difference_step > 0.0 && finite_difference_step <= 0.01))
    fail("finite_difference_step", fmt::format("{}", finite_difference_step), "a float in (0, 0.01]");
  if (!(jacobian_tolerance > 0.0) || !std::isfinite(jacobian_tolerance))
    fail("jacobian_tolerance", fmt::format("{}", jacobian_tolerance), "a finite float > 0");
  if (!(inverse_tolerance > 0.0) || !std::isfinite(inverse_tolerance))
    fail("inverse_tolerance", fmt::format("{}", inverse_tolerance), "a finite float > 0");
}

bool CheckReport::passed() const {
  for (const auto& c : checks)
    if (!c.skipped && !c.passed) return false;
  return true;
}

std::string CheckReport::text() const {
  std::string out;
  for (const auto& c : checks)
    out += fmt::format("{} {}: {}\n", c.skipped ? "SKIP" : (c.passed ? "PASS" : "FAIL"), c.name, c.detail);
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;
const torch::Device kCpu(torch::kCPU);
const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
const auto kI64 = torch::TensorOptions().dtype(torch::kInt64);

// ---------------------------------------------------------------------------------------------
// the reference policy

// uniform P_B unless the backward kernel has a piece on R^k (no uniform density there)
BackwardPolicy backward_policy_for(const ActionSpec& spec) {
  for (const auto& c : spec.backward.components)
    if (c.kind == ComponentKind::kPiece && c.domain == Domain::kReal) return BackwardPolicy::kLearned;
  return BackwardPolicy::kUniform;
}

// The output bias of a head whose output weights are zero (see the header): logits 0, Beta
// concentrations 1, Gaussian N(0, exp(gaussian_log_scale)^2), von Mises concentration ~0.
torch::Tensor reference_bias(const KernelSpec& spec, const HeadOptions& head, double gaussian_log_scale,
                             double concentration, int64_t size) {
  std::vector<double> bias(static_cast<size_t>(size), 0.0);
  // cmin + (cmax - cmin) sigmoid(raw) = concentration
  const double p = (concentration - head.min_concentration) / (head.max_concentration - head.min_concentration);
  const double unit_concentration = std::log(p / (1.0 - p));
  int64_t offset = spec.size();
  for (const auto& c : spec.components) {
    if (c.kind != ComponentKind::kPiece) continue;
    switch (c.domain) {
      case Domain::kUnitCube:
      case Domain::kInterval: {
        const int64_t k = head.mixture_components;
        // [mixture logits (K) | alpha (K*D) | beta (K*D)]
        for (int64_t i = k; i < BetaMixture::raw_size(k, c.dim); ++i) bias[offset + i] = unit_concentration;
        offset += BetaMixture::raw_size(k, c.dim);
        break;
      }
      case Domain::kReal:
        // [loc (D) | log-scale (D)]
        for (int64_t i = 0; i < c.dim; ++i) bias[offset + c.dim + i] = gaussian_log_scale;
        offset += 2 * c.dim;
        break;
      case Domain::kCircle:
        // [location raw, concentration raw]: softplus(-10) = 4.5e-5
        bias[offset + 1] = -10.0;
        offset += 2;
        break;
      case Domain::kNone: break;
    }
  }
  TORCH_CHECK(offset == size, "reference_bias: head layout of ", offset, " columns, expected ", size);
  return torch::tensor(bias, torch::kFloat32);
}

// The estimators the checks use (see the header).
enum class Policy {
  kReference,  // sampling and "partition": fixed output layers, P_F's Betas at concentration 1/2
  kUniform,    // "normalisation": fixed output layers, every Beta at concentration 1
  kInitial,    // "normalisation": the network as initialised
};

// Beta concentration of the reference P_F on cube and interval pieces: below 1 the density is
// heavier near the faces of the domain, where charts degenerate and backward pieces shrink (the
// Box's backward arcs have length -> 0 near the walls, so P_B's density there is unbounded); a
// P_F that visits those regions often keeps the importance weights' tail light. On the Box this
// raised the effective sample size of 100,000 draws from 23-180 (concentration 1) to 170-580.
constexpr double kReferenceConcentration = 0.5;

// Small seeded estimators (the same seed gives the same trunk to all three).
Estimators make_estimators(const Env& env, uint64_t seed, Policy kind) {
  EstimatorOptions eo;
  eo.hidden = 32;
  eo.layers = 2;
  eo.backward = backward_policy_for(env.action_spec());
  auto gen = make_generator(seed, kCpu);
  Estimators est(env, eo, gen, kCpu);
  if (kind == Policy::kInitial) return est;
  const double concentration = kind == Policy::kReference ? kReferenceConcentration : 1.0;
  torch::NoGradGuard no_grad;
  auto& policy = *est.policy;
  for (auto& p : policy.named_parameters()) {
    if (p.key() == "forward_weight" || p.key() == "backward_weight") p.value().zero_();
    if (p.key() == "forward_bias")
      p.value().copy_(reference_bias(env.action_spec().forward, eo.head, std::log(2.0), concentration,
                                     policy.forward_head().output_size()));
    if (p.key() == "backward_bias")
      p.value().copy_(
          reference_bias(env.action_spec().backward, eo.head, 0.0, 1.0, policy.backward_head().output_size()));
  }
  return est;
}

// ---------------------------------------------------------------------------------------------
// sampled trajectories and what the checks read from them

// The states at steps offset .. offset + T - 1 of every trajectory, flattened time-major: [T*B].
States flat_states(const Trajectories& tr, int64_t offset) {
  const int64_t T = tr.num_steps(), B = tr.batch_size();
  return {tr.states_discrete.narrow(0, offset, T).reshape({T * B, tr.states_discrete.size(2)}),
          tr.states_continuous.narrow(0, offset, T).reshape({T * B, tr.states_continuous.size(2)}),
          tr.is_initial.narrow(0, offset, T).reshape({-1}), tr.is_sink.narrow(0, offset, T).reshape({-1})};
}

States with_continuous(const States& s, torch::Dtype dtype) {
  return {s.discrete, s.continuous.to(dtype), s.is_initial, s.is_sink};
}

struct Sample {
  Trajectories traj;
  torch::Tensor move_rows;     // [M] int64: flat rows t * B + b of the valid non-exit steps
  States parents, children;    // [M]: the moves' endpoints
  Actions forward;             // [M]: the moves' actions
  torch::Tensor log_jacobian;  // [M] float64: log J reported by step while sampling
  States forward_states;       // non-sink states a step was taken from (the exit's included)
  States backward_states;      // the moves' children: neither initial nor sink
};

Sample draw(const Env& env, Estimators& est, int64_t n, torch::Generator& gen) {
  Sample s;
  s.traj = rollout(env, *est.policy, n, SamplerOptions{}, gen, kCpu);
  const auto& tr = s.traj;
  const int64_t T = tr.num_steps(), B = tr.batch_size();
  auto parents = flat_states(tr, 0), children = flat_states(tr, 1);
  auto comp = tr.action_component.reshape({-1});
  auto valid = tr.mask.reshape({-1});
  const int64_t exit = env.action_spec().forward.exit;
  auto move = exit >= 0 ? valid.logical_and(comp.ne(exit)) : valid;
  s.move_rows = move.nonzero().squeeze(1);
  s.parents = parents.index_select(s.move_rows);
  s.children = children.index_select(s.move_rows);
  s.forward = {comp.index_select(0, s.move_rows),
               tr.action_coords.reshape({T * B, tr.action_coords.size(2)}).index_select(0, s.move_rows)};
  s.log_jacobian = tr.log_jacobian.reshape({-1}).index_select(0, s.move_rows).to(torch::kFloat64);
  s.forward_states = parents.index_select(valid.nonzero().squeeze(1));
  s.backward_states = s.children;
  return s;
}

double max_or_zero(const torch::Tensor& t) { return t.numel() ? t.max().item<double>() : 0.0; }

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

std::string fmt_coords(const torch::Tensor& row, int64_t dim) {
  std::string out;
  auto r = row.to(torch::kFloat64).contiguous();
  for (int64_t i = 0; i < dim; ++i) out += fmt::format("{}{:.4g}", i ? ", " : "", r[i].item<double>());
  return "(" + out + ")";
}

// ---------------------------------------------------------------------------------------------
// inverse

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

// The env's log J and the numerical one at chart coordinates u of piece `comp` from `states`.
struct Volume {
  torch::Tensor env_log_j;  // [N] float64
  torch::Tensor num_log_j;  // [N] float64: log sqrt det(D phi^T D phi), central differences
  torch::Tensor same_chart;  // [N] bool: the stencil's discrete coordinates stayed those of u
  torch::Tensor noise;       // [N] float64: bound on num_log_j's rounding error (4 sum_i |e_i| / |D_i|)
  torch::Tensor d;           // [N, Dc, k] float64: the differentiated chart D phi
  bool float32 = false;      // the env computed in float32 (float64 states were not kept)
};
Volume chart_volume(const Env& env, bool forward, const States& states, int64_t comp, Domain domain, int64_t dim,
                    const torch::Tensor& u, double h, bool coarse = false);

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

// ---------------------------------------------------------------------------------------------
// numerical volume factors


// Central differences of u -> next state's continuous coordinates, step h per chart coordinate
// (float64 states; float32 with h >= 3e-3 when the env does not keep float64), the step shrunk
// near the faces of a cube domain so that the stencil stays inside it.
// `coarse` assumes float32 rounding inside the env whatever the dtype it returns.
Volume chart_volume(const Env& env, bool forward, const States& states, int64_t comp, Domain domain, int64_t dim,
                    const torch::Tensor& u, double h, bool coarse) {
  const int64_t n = states.batch_size();
  auto apply = [&](const States& st, const torch::Tensor& coords) {
    Actions a{torch::full({n}, comp, kI64), coords.to(st.continuous.scalar_type())};
    return forward ? env.step(st, a) : env.backward_step(st, a);
  };
  Volume v;
  States st = with_continuous(states, torch::kFloat64);
  auto base = apply(st, u);
  if (base.next.continuous.size(1) > 0 && base.next.continuous.scalar_type() != torch::kFloat64) {
    // the env does not keep float64: differentiate in float32 with a step suited to it
    v.float32 = true;
    st = with_continuous(states, torch::kFloat32);
    base = apply(st, u);
  }
  if (v.float32 || coarse) h = std::max(h, 3e-3);
  const double eps = v.float32 || coarse ? std::numeric_limits<float>::epsilon() : std::numeric_limits<double>::epsilon();
  v.env_log_j = base.log_jacobian.to(torch::kFloat64);
  v.same_chart = torch::ones({n}, kF64.dtype(torch::kBool));
  v.noise = torch::zeros({n}, kF64);
  std::vector<torch::Tensor> columns;
  for (int64_t i = 0; i < dim; ++i) {
    auto ui = u.select(1, i);
    auto hi = torch::full({n}, h, kF64);
    if (domain == Domain::kUnitCube || domain == Domain::kInterval)
      hi = torch::minimum(hi, torch::minimum(ui, 1.0 - ui) * 0.5).clamp_min(1e-300);
    auto e = torch::zeros_like(u);
    e.select(1, i).copy_(hi);
    auto plus = apply(st, u + e), minus = apply(st, u - e);
    auto xp = plus.next.continuous.to(torch::kFloat64), xm = minus.next.continuous.to(torch::kFloat64);
    auto column = (xp - xm) / (2.0 * hi.unsqueeze(1));
    columns.push_back(column);
    // rounding of the two points, divided by the step, relative to the column's length
    auto rounding = eps * (xp.abs() + xm.abs()) / (2.0 * hi.unsqueeze(1));
    v.noise = v.noise + 4.0 * rounding.norm(2, 1) / column.norm(2, 1);
    v.same_chart = v.same_chart.logical_and(plus.next.discrete.eq(base.next.discrete).all(1))
                       .logical_and(minus.next.discrete.eq(base.next.discrete).all(1));
  }
  if (base.next.continuous.size(1) == 0) {
    v.num_log_j = torch::full({n}, -std::numeric_limits<double>::infinity(), kF64);
    return v;
  }
  auto d = torch::stack(columns, 2);              // [N, Dc, k]
  v.d = d;
  auto gram = torch::matmul(d.transpose(1, 2), d);  // [N, k, k]
  v.num_log_j = 0.5 * std::get<1>(torch::linalg_slogdet(gram));
  return v;
}

const char* domain_name(Domain d) {
  switch (d) {
    case Domain::kUnitCube: return "cube";
    case Domain::kInterval: return "interval";
    case Domain::kReal: return "R";
    case Domain::kCircle: return "circle";
    case Domain::kNone: break;
  }
  return "none";
}

// Random interior chart coordinates of a piece, float64 [n, da] (zero beyond `dim`).
torch::Tensor interior_coords(Domain domain, int64_t n, int64_t dim, int64_t da, torch::Generator& gen) {
  torch::Tensor u;
  switch (domain) {
    case Domain::kUnitCube:
    case Domain::kInterval: u = 0.02 + 0.96 * torch::rand({n, dim}, gen, kF64); break;
    case Domain::kReal: u = torch::randn({n, dim}, gen, kF64); break;
    case Domain::kCircle: u = (2.0 * torch::rand({n, dim}, gen, kF64) - 1.0) * (M_PI - 0.02); break;
    case Domain::kNone: u = torch::zeros({n, dim}, kF64); break;
  }
  return dim == da ? u : torch::constant_pad_nd(u, {0, da - dim});
}

// Up to `k` random rows of `states` among those where `available` ([N] bool) holds.
States pick(const States& states, const torch::Tensor& available, int64_t k, torch::Generator& gen) {
  auto rows = available.nonzero().squeeze(1);
  auto order = torch::randperm(rows.size(0), gen, kI64).narrow(0, 0, std::min(k, rows.size(0)));
  return states.index_select(rows.index_select(0, order));
}

struct Kernel {
  bool forward;
  const KernelSpec* spec;
  const States* states;  // sampled states where this kernel acts
  const char* label;
};

std::vector<Kernel> kernels(const Env& env, const Sample& s) {
  return {{true, &env.action_spec().forward, &s.forward_states, "forward"},
          {false, &env.action_spec().backward, &s.backward_states, "backward"}};
}

torch::Tensor kernel_mask(const Env& env, const Kernel& k, const States& states) {
  return k.forward ? env.forward_mask(states) : env.backward_mask(states);
}

// ---------------------------------------------------------------------------------------------
// jacobian

CheckResult check_jacobian(const Env& env, const Sample& s, const CheckOptions& o, torch::Generator& gen) {
  CheckResult r{"jacobian", true, false, ""};
  const int64_t da = env.action_spec().coord_dim;
  std::vector<std::string> parts, failures;
  bool any_piece = false, any_float32 = false;
  for (const auto& k : kernels(env, s)) {
    if (k.states->batch_size() == 0) continue;
    auto mask = kernel_mask(env, k, *k.states);
    for (int64_t c = 0; c < k.spec->size(); ++c) {
      const auto& comp = k.spec->components[c];
      if (comp.kind != ComponentKind::kPiece) continue;
      any_piece = true;
      const std::string label = fmt::format("{} '{}' ({}^{})", k.label, comp.name, domain_name(comp.domain), comp.dim);
      auto st = pick(*k.states, mask.select(1, c), o.jacobian_states, gen);
      const int64_t n = st.batch_size();
      if (n == 0) {
        parts.push_back(label + ": never available at the sampled states, untested");
        continue;
      }
      auto u = interior_coords(comp.domain, n, comp.dim, da, gen);
      auto v = chart_volume(env, k.forward, st, c, comp.domain, comp.dim, u, o.finite_difference_step);
      any_float32 = any_float32 || v.float32;
      const double tol = v.float32 ? 100 * o.jacobian_tolerance : o.jacobian_tolerance;
      auto err = (v.env_log_j - v.num_log_j).abs().nan_to_num(std::numeric_limits<double>::infinity());
      // the tolerance, widened where rounding in the differences could reach it
      auto allowed = v.noise.nan_to_num(0.0) + tol;
      auto bad = err.gt(allowed).logical_and(v.same_chart);
      const int64_t crossing = v.same_chart.logical_not().sum().item<int64_t>();
      const double worst = max_or_zero(err.masked_select(v.same_chart));
      std::string note = crossing ? fmt::format(", {} stencils crossing a chart boundary ignored", crossing) : "";
      if (bad.any().item<bool>() && !v.float32) {
        // a second opinion with a float32-grade step and rounding model, for envs that round chart
        // coordinates or states to float32 inside while returning float64
        auto v2 = chart_volume(env, k.forward, st, c, comp.domain, comp.dim, u, o.finite_difference_step, true);
        auto err2 = (v.env_log_j - v2.num_log_j).abs().nan_to_num(std::numeric_limits<double>::infinity());
        auto bad2 = err2.gt(v2.noise.nan_to_num(0.0) + 100 * o.jacobian_tolerance);
        const int64_t rescued = bad.logical_and(bad2.logical_not()).sum().item<int64_t>();
        if (rescued)
          note += fmt::format(", {} states agree only with float32-grade differences (the env rounds to float32 "
                              "inside?)", rescued);
        bad = bad.logical_and(bad2);
      }
      if (bad.any().item<bool>()) {
        const int64_t row = bad.nonzero()[0][0].item<int64_t>();
        failures.push_back(fmt::format(
            "{}: log J of the env {:.6g} but numerically {:.6g} at u = {} ({} of {} states off by more than {:g}, "
            "worst {:.3g}){}",
            label, v.env_log_j[row].item<double>(), v.num_log_j[row].item<double>(), fmt_coords(u[row], comp.dim),
            bad.sum().item<int64_t>(), n, tol, worst, note));
      } else {
        const double widened = max_or_zero(allowed.masked_select(err.gt(tol)));
        if (widened > 0) note += fmt::format(", tolerance widened to {:.2g} where rounding allows", widened);
        parts.push_back(fmt::format("{}: {} states, worst |log J_env - log J_num| {:.2g}{}", label, n, worst, note));
      }
    }
  }
  if (!any_piece) {
    r.skipped = true;
    r.detail = "no continuous pieces (every component is an atom with J = 1)";
    return r;
  }
  std::string joined;
  for (const auto& p : failures.empty() ? parts : failures) joined += (joined.empty() ? "" : "; ") + p;
  r.passed = failures.empty();
  r.detail = joined + (any_float32 ? "; the env keeps float32 states, so finite differences ran in float32 with a "
                                     "100x looser tolerance"
                                   : "");
  return r;
}

// ---------------------------------------------------------------------------------------------
// normalisation

template <unsigned N>
void legendre_nodes(std::vector<double>* x, std::vector<double>* w) {
  using G = boost::math::quadrature::gauss<double, N>;
  const auto& a = G::abscissa();
  const auto& wt = G::weights();
  for (size_t i = 0; i < a.size(); ++i) {
    x->push_back(a[i]);
    w->push_back(wt[i]);
    if (a[i] != 0.0) {
      x->push_back(-a[i]);
      w->push_back(wt[i]);
    }
  }
}

// Quadrature nodes over a piece's chart domain: coordinates [Q, dim] and log weights [Q]
// (the change of variables from Gauss-Legendre's (-1, 1) included), float64.
std::pair<torch::Tensor, torch::Tensor> domain_nodes(Domain domain, int64_t dim, int64_t order) {
  std::vector<double> t, w;
  switch (order) {
    case 20: legendre_nodes<20>(&t, &w); break;
    case 30: legendre_nodes<30>(&t, &w); break;
    case 40: legendre_nodes<40>(&t, &w); break;
    default: legendre_nodes<60>(&t, &w); break;
  }
  // one dimension: u(t) and log(w |du/dt|)
  std::vector<double> u1, lw1;
  for (size_t i = 0; i < t.size(); ++i) {
    double u = 0, jac = 1;
    switch (domain) {
      case Domain::kReal: {
        // u = t / (1 - t^2) maps (-1, 1) onto R
        const double q = 1.0 - t[i] * t[i];
        u = t[i] / q;
        jac = (1.0 + t[i] * t[i]) / (q * q);
        break;
      }
      case Domain::kCircle:
        u = M_PI * t[i];
        jac = M_PI;
        break;
      default:
        u = 0.5 * (t[i] + 1.0);
        jac = 0.5;
        break;
    }
    u1.push_back(u);
    lw1.push_back(std::log(w[i] * jac));
  }
  auto u = torch::tensor(u1, kF64).unsqueeze(1);
  auto lw = torch::tensor(lw1, kF64);
  if (dim == 1) return {u, lw};
  // two dimensions: the tensor product
  const int64_t q = u.size(0);
  auto a = u.repeat_interleave(q, 0), b = u.repeat({q, 1});
  return {torch::cat({a, b}, 1), lw.repeat_interleave(q, 0) + lw.repeat({q})};
}

CheckResult check_normalisation(const Env& env, const Sample& s, Estimators& uniform_policy, Estimators& initial,
                                const CheckOptions& o, torch::Generator& gen) {
  CheckResult r{"normalisation", true, false, ""};
  const int64_t da = env.action_spec().coord_dim;
  double worst_sum = 0.0, worst_integral = 0.0;
  int64_t integrals = 0;
  std::vector<std::string> failures, notes;
  const std::pair<const char*, Estimators*> policies[] = {{"uniform", &uniform_policy}, {"initial", &initial}};
  for (const auto& k : kernels(env, s)) {
    if (k.states->batch_size() == 0) continue;
    auto avail = kernel_mask(env, k, *k.states);
    auto st = pick(*k.states, avail.any(1), o.quadrature_states, gen);
    if (st.batch_size() == 0) continue;
    auto mask = kernel_mask(env, k, st);
    for (const auto& [policy_name, est] : policies) {
      auto& policy = *est->policy;
      const bool uniform = !k.forward && !policy.learned_backward();
      const auto& head = k.forward ? policy.forward_head() : policy.backward_head();
      auto hidden = policy.trunk(env.features(st));
      torch::Tensor out, log_pi;
      if (uniform) {
        log_pi = (-mask.sum(1, /*keepdim=*/true).to(torch::kFloat64).log()).expand({-1, k.spec->size()});
        log_pi = log_pi.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
      } else {
        out = k.forward ? policy.forward_outputs(hidden) : policy.backward_outputs(hidden);
        log_pi = masked_log_softmax(head.logits(out), mask).to(torch::kFloat64);
      }
      // the component probabilities over the available components
      auto sums = log_pi.exp().masked_fill(mask.logical_not(), 0.0).sum(1);
      const double sum_err = max_or_zero((sums - 1.0).abs().nan_to_num(1.0));
      worst_sum = std::max(worst_sum, sum_err);
      if (sum_err > 1e-4)
        failures.push_back(fmt::format("{} {} policy: component probabilities sum to {:.6g}", policy_name, k.label,
                                       sums[(sums - 1.0).abs().argmax()].item<double>()));
      // every piece of dimension <= 2 integrates to 1 over its reference measure
      for (int64_t c = 0; c < k.spec->size(); ++c) {
        const auto& comp = k.spec->components[c];
        if (comp.kind != ComponentKind::kPiece) continue;
        if (comp.dim > 2) {
          if (policy_name == policies[0].first)
            notes.push_back(fmt::format("{} '{}' of dimension {} not integrated (see jacobian)", k.label, comp.name,
                                        comp.dim));
          continue;
        }
        auto rows = mask.select(1, c).nonzero().squeeze(1);
        const int64_t n = rows.size(0);
        if (n == 0) continue;
        auto [nodes, log_w] = domain_nodes(comp.domain, comp.dim, o.quadrature_nodes);
        const int64_t q = nodes.size(0);
        auto rep = rows.repeat_interleave(q);  // [n * q] state of each node
        States at = st.index_select(rep);
        auto u = nodes.repeat({n, 1});
        if (comp.dim < da) u = torch::constant_pad_nd(u, {0, da - comp.dim});
        auto cidx = torch::full({n * q}, c, kI64);
        torch::Tensor log_q;
        if (uniform) {
          log_q = head.log_uniform_density(cidx).to(torch::kFloat64);
        } else {
          log_q = head.log_density(out.index_select(0, rep), cidx, u.to(torch::kFloat32)).to(torch::kFloat64);
        }
        auto v = chart_volume(env, k.forward, at, c, comp.domain, comp.dim, u, o.finite_difference_step);
        auto terms = (log_q - v.env_log_j + v.num_log_j + log_w.repeat({n})).view({n, q});
        auto integral = terms.logsumexp(1).exp();  // [n]
        auto err = (integral - 1.0).abs().nan_to_num(std::numeric_limits<double>::infinity());
        const double worst = max_or_zero(err);
        worst_integral = std::max(worst_integral, worst);
        integrals += n;
        if (worst > o.quadrature_tolerance) {
          const int64_t i = err.argmax().item<int64_t>();
          failures.push_back(fmt::format(
              "{} {} policy, piece '{}' ({}^{}): the density integrates to {:.6g} over its reference measure "
              "(|error| > {:g} at {} of {} states)",
              policy_name, k.label, comp.name, domain_name(comp.domain), comp.dim, integral[i].item<double>(),
              o.quadrature_tolerance, err.gt(o.quadrature_tolerance).sum().item<int64_t>(), n));
        }
      }
    }
  }
  std::string joined;
  for (const auto& p : failures) joined += (joined.empty() ? "" : "; ") + p;
  r.passed = failures.empty();
  std::string summary = fmt::format(
      "uniform and initial policies at up to {} states per kernel: worst |sum pi - 1| {:.2g}", o.quadrature_states,
      worst_sum);
  if (integrals)
    summary += fmt::format(", worst |integral - 1| {:.2g} over {} piece integrals ({} Gauss-Legendre nodes per dim)",
                           worst_integral, integrals, o.quadrature_nodes);
  else
    summary += ", no piece of dimension <= 2 to integrate";
  for (const auto& n : notes) summary += "; " + n;
  r.detail = r.passed ? summary : joined + " [" + summary + "]";
  return r;
}

// ---------------------------------------------------------------------------------------------
// partition, termination

CheckResult check_partition(const Env& env, Estimators& reference, const CheckOptions& o) {
  CheckResult r{"partition", false, false, ""};
  auto exact = env.log_partition();
  if (!exact) {
    r.skipped = true;
    r.detail = "the env does not know its log Z";
    return r;
  }
  const auto& spec = env.action_spec().forward;
  if (env.enumerable() && !spec.has_pieces() && spec.exit >= 0 && env.num_states() <= (int64_t{1} << 22)) {
    auto states = env.enumerate_states(kCpu);
    auto terminal = env.forward_mask(states).select(1, spec.exit);
    auto log_r = env.log_reward(states).to(torch::kFloat64).masked_select(terminal);
    const double sum = log_r.logsumexp(0).item<double>();
    r.passed = std::fabs(sum - *exact) <= 1e-4 * std::max(1.0, std::fabs(*exact));
    r.detail = fmt::format("log sum R(x) over the {} enumerated terminal states = {:.6f} vs log Z {:.6f}: difference "
                           "{:+.3g} (tolerance 1e-4 relative)",
                           log_r.numel(), sum, *exact, sum - *exact);
    return r;
  }
  auto gen = make_generator(o.seed + 3, kCpu);
  auto e = importance_log_z(env, reference, o.is_samples, std::min(o.is_batch, o.is_samples), gen, kCpu);
  const double diff = e.log_z - *exact;
  const double se = e.relative_se;
  const double in_se = se > 0 ? diff / se : (diff == 0 ? 0.0 : std::numeric_limits<double>::infinity());
  const std::string numbers = fmt::format(
      "log Z_IS = {:.5f} vs exact {:.5f}: difference {:+.3g} = {:+.2f} SE (SE {:.3g}, limit {:g} SE); ESS {:.0f} "
      "of {}; ELBO {:.4f}",
      e.log_z, *exact, diff, in_se, se, o.is_tolerance_se, e.ess, e.samples, e.elbo);
  if (!std::isfinite(e.log_z) || !std::isfinite(se)) {
    r.detail = "the importance-sampling estimate is not finite: " + numbers;
  } else if (e.ess < o.min_ess) {
    r.detail = fmt::format("inconclusive: effective sample size {:.1f} below {:g}, the standard error means nothing: {}",
                           e.ess, o.min_ess, numbers);
  } else {
    r.passed = std::fabs(diff) <= o.is_tolerance_se * se;
    r.detail = numbers;
  }
  return r;
}

CheckResult check_termination(const Env& env, const Sample& s) {
  CheckResult r{"termination", false, false, ""};
  const auto& tr = s.traj;
  const auto& spec = env.action_spec().forward;
  const int64_t n = tr.batch_size(), limit = env.max_length() + 1;
  if (spec.exit < 0) {
    r.detail = "the forward kernel has no exit atom (KernelSpec::exit = -1)";
    return r;
  }
  auto len = tr.length;
  auto last = tr.action_component.gather(0, (len - 1).clamp_min(0).unsqueeze(0)).squeeze(0);
  auto bad = len.lt(1).logical_or(len.gt(limit)).logical_or(last.ne(spec.exit));
  const int64_t failed = bad.sum().item<int64_t>();
  auto lenf = len.to(torch::kFloat64);
  const std::string numbers =
      fmt::format("lengths (moves + exit) min {} mean {:.2f} max {} of at most max_length + 1 = {}",
                  len.min().item<int64_t>(), lenf.mean().item<double>(), len.max().item<int64_t>(), limit);
  r.passed = failed == 0;
  if (r.passed) {
    r.detail = fmt::format("all {} trajectories end with '{}': {}", n, spec.components[spec.exit].name, numbers);
  } else {
    const int64_t b = bad.nonzero()[0][0].item<int64_t>();
    const int64_t c = last[b].item<int64_t>();
    r.detail = fmt::format(
        "{} of {} trajectories did not end with '{}' within max_length = {} moves (first: trajectory {}, last "
        "component '{}'): {}",
        failed, n, spec.components[spec.exit].name, env.max_length(), b,
        c >= 0 && c < spec.size() ? spec.components[c].name : std::to_string(c), numbers);
  }
  return r;
}

std::string error_text(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

}  // namespace

CheckReport check_env(const Env& env, const CheckOptions& options) {
  options.validate();
  torch::NoGradGuard no_grad;
  CheckReport report;
  report.env = env.name();

  // the reference and as-initialised estimators, and one batch of trajectories
  std::optional<Estimators> reference, uniform, initial;
  std::optional<Sample> sample;
  std::string setup_error;
  const auto t0 = Clock::now();
  try {
    reference.emplace(make_estimators(env, options.seed, Policy::kReference));
    uniform.emplace(make_estimators(env, options.seed, Policy::kUniform));
    initial.emplace(make_estimators(env, options.seed, Policy::kInitial));
    auto gen = make_generator(options.seed + 1, kCpu);
    sample.emplace(draw(env, *reference, options.trajectories, gen));
  } catch (const std::exception& e) {
    setup_error = error_text(e);
  }
  const double setup_s = std::chrono::duration<double>(Clock::now() - t0).count();

  auto gen = make_generator(options.seed + 2, kCpu);
  auto run = [&](const char* name, const std::function<CheckResult()>& f, double extra_s = 0.0) {
    const auto start = Clock::now();
    CheckResult r{name, false, false, ""};
    if (!setup_error.empty()) {
      r.detail = "could not sample trajectories with the reference policy: " + setup_error;
    } else {
      try {
        r = f();
      } catch (const std::exception& e) {
        r = CheckResult{name, false, false, "the env threw: " + error_text(e)};
      }
    }
    const double s = extra_s + std::chrono::duration<double>(Clock::now() - start).count();
    r.detail += fmt::format(" ({:.2f} s)", s);
    report.checks.push_back(std::move(r));
  };
  run("inverse", [&] { return check_inverse(env, *sample, options); }, setup_s);
  run("jacobian", [&] { return check_jacobian(env, *sample, options, gen); });
  run("normalisation", [&] { return check_normalisation(env, *sample, *uniform, *initial, options, gen); });
  run("partition", [&] { return check_partition(env, *reference, options); });
  run("termination", [&] { return check_termination(env, *sample); });
  return report;
}

}  // namespace gfn

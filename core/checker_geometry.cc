// The checks of the geometry (core/checker.h): numerical volume factors of the charts,
// "jacobian" (the env's log J against them) and "normalisation" (the policies' densities
// integrated by Gauss-Legendre quadrature over their reference measures).
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include <boost/math/quadrature/gauss.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include "core/internal/checker_parts.h"
#include "core/kernel_head.h"
#include "measures/categorical.h"

namespace gfn::checker {

namespace {

States with_continuous(const States& s, torch::Dtype dtype) {
  return {s.discrete, s.continuous.to(dtype), s.is_initial, s.is_sink};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// numerical volume factors

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
    // rounding of the two points, divided by the step, relative to the column's length; a
    // coordinate is taken to carry rounding of at least eps absolute (its chart computes it from
    // quantities of the state space's unit scale: an angle near pi/2 holds 2e-16, so a piece a
    // few 1e-13 long, next to a face, has differences the step cannot resolve)
    auto rounding = eps * (xp.abs().clamp_min(1.0) + xm.abs().clamp_min(1.0)) / (2.0 * hi.unsqueeze(1));
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

namespace {

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

}  // namespace

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
  r.passed = failures.empty();
  r.detail = fmt::format("{}{}", fmt::join(r.passed ? parts : failures, "; "),
                         any_float32 ? "; the env keeps float32 states, so finite differences ran in float32 with a "
                                       "100x looser tolerance"
                                     : "");
  return r;
}

// ---------------------------------------------------------------------------------------------
// normalisation

namespace {

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

// What "normalisation" found over every kernel and policy.
struct NormalisationTally {
  double worst_sum = 0.0;       // largest |sum of the component probabilities - 1|
  double worst_integral = 0.0;  // largest |integral - 1| over the pieces and states
  int64_t integrals = 0;        // piece integrals computed (one per piece and state)
  std::vector<std::string> failures;
  std::vector<std::string> notes;  // pieces not integrated
};

// One policy's kernel at the states a check integrates over.
struct KernelPolicy {
  const char* name;         // "uniform" or "initial"
  const KernelHead* head;
  bool uniform;             // a uniform P_B: no head outputs
  torch::Tensor out;        // [N, head->output_size()] float32; undefined when uniform
  torch::Tensor log_pi;     // [N, C] float64: log pi(c | s), -inf where c is not in `mask`
};

// The kernel `k` of the policy of `est` at `st` (`mask` [N, C] bool: its available components).
KernelPolicy kernel_policy(const Env& env, const Kernel& k, Estimators& est, const char* name, const States& st,
                           const torch::Tensor& mask) {
  auto& policy = *est.policy;
  KernelPolicy p{name, k.forward ? &policy.forward_head() : &policy.backward_head(),
                 !k.forward && !policy.learned_backward() && !policy.fixed_backward(), {}, {}};
  if (p.uniform) {
    p.log_pi = (-mask.sum(1, /*keepdim=*/true).to(torch::kFloat64).log()).expand({-1, k.spec->size()});
    p.log_pi = p.log_pi.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  } else {
    auto features = env.features(st);
    auto hidden = policy.trunk(features);
    p.out = k.forward ? policy.forward_outputs(hidden, features)
                      : policy.fixed_backward() ? env.fixed_backward_outputs(st) : policy.backward_outputs(hidden);
    p.log_pi = masked_log_softmax(p.head->logits(p.out), mask).to(torch::kFloat64);
  }
  return p;
}

// A note for each piece of `k` of dimension > 2: quadrature skips them.
void note_unintegrated_pieces(const Kernel& k, std::vector<std::string>& notes) {
  for (const auto& comp : k.spec->components)
    if (comp.kind == ComponentKind::kPiece && comp.dim > 2)
      notes.push_back(fmt::format("{} '{}' of dimension {} not integrated (see jacobian)", k.label, comp.name,
                                  comp.dim));
}

// The component probabilities sum to 1 over the available components (`mask` [N, C] bool).
void check_component_sums(const Kernel& k, const KernelPolicy& p, const torch::Tensor& mask, NormalisationTally& t) {
  auto sums = p.log_pi.exp().masked_fill(mask.logical_not(), 0.0).sum(1);
  const double sum_err = max_or_zero((sums - 1.0).abs().nan_to_num(1.0));
  t.worst_sum = std::max(t.worst_sum, sum_err);
  if (sum_err > 1e-4)
    t.failures.push_back(fmt::format("{} {} policy: component probabilities sum to {:.6g}", p.name, k.label,
                                     sums[(sums - 1.0).abs().argmax()].item<double>()));
}

// The integral of piece `c`'s density over its reference measure at the states `rows` of `st`,
//     int_U q(u | s, c) / J_env(u) * J_num(u) du,
// by Gauss-Legendre quadrature over the chart domain: [n] float64.
torch::Tensor piece_integrals(const Env& env, const Kernel& k, const KernelPolicy& p, int64_t c, const States& st,
                              const torch::Tensor& rows, const CheckOptions& o) {
  const auto& comp = k.spec->components[c];
  const int64_t da = env.action_spec().coord_dim;
  const int64_t n = rows.size(0);
  auto [nodes, log_w] = domain_nodes(comp.domain, comp.dim, o.quadrature_nodes);
  const int64_t q = nodes.size(0);
  auto rep = rows.repeat_interleave(q);  // [n * q] state of each node
  States at = st.index_select(rep);
  auto u = nodes.repeat({n, 1});
  if (comp.dim < da) u = torch::constant_pad_nd(u, {0, da - comp.dim});
  // the policy's log-density and the env's and numerical log J at every node
  auto cidx = torch::full({n * q}, c, kI64);
  torch::Tensor log_q;
  if (p.uniform) {
    log_q = p.head->log_uniform_density(cidx).to(torch::kFloat64);
  } else {
    log_q = p.head->log_density(p.out.index_select(0, rep), cidx, u).to(torch::kFloat64);
  }
  auto v = chart_volume(env, k.forward, at, c, comp.domain, comp.dim, u, o.finite_difference_step);
  auto terms = (log_q - v.env_log_j + v.num_log_j + log_w.repeat({n})).view({n, q});
  return terms.logsumexp(1).exp();
}

// Every piece of dimension <= 2 available somewhere in `mask` ([N, C] bool) integrates to 1
// over its reference measure at the states where it is available.
void check_piece_integrals(const Env& env, const Kernel& k, const KernelPolicy& p, const States& st,
                           const torch::Tensor& mask, const CheckOptions& o, NormalisationTally& t) {
  for (int64_t c = 0; c < k.spec->size(); ++c) {
    const auto& comp = k.spec->components[c];
    if (comp.kind != ComponentKind::kPiece || comp.dim > 2) continue;
    auto rows = mask.select(1, c).nonzero().squeeze(1);
    const int64_t n = rows.size(0);
    if (n == 0) continue;
    auto integral = piece_integrals(env, k, p, c, st, rows, o);
    auto err = (integral - 1.0).abs().nan_to_num(std::numeric_limits<double>::infinity());
    const double worst = max_or_zero(err);
    t.worst_integral = std::max(t.worst_integral, worst);
    t.integrals += n;
    if (worst > o.quadrature_tolerance) {
      const int64_t i = err.argmax().item<int64_t>();
      t.failures.push_back(fmt::format(
          "{} {} policy, piece '{}' ({}^{}): the density integrates to {:.6g} over its reference measure "
          "(|error| > {:g} at {} of {} states)",
          p.name, k.label, comp.name, domain_name(comp.domain), comp.dim, integral[i].item<double>(),
          o.quadrature_tolerance, err.gt(o.quadrature_tolerance).sum().item<int64_t>(), n));
    }
  }
}

// The result: the worst errors and the notes; on failure every failure first.
CheckResult normalisation_result(const NormalisationTally& t, const CheckOptions& o) {
  CheckResult r{"normalisation", t.failures.empty(), false, ""};
  std::string summary = fmt::format(
      "uniform and initial policies at up to {} states per kernel: worst |sum pi - 1| {:.2g}", o.quadrature_states,
      t.worst_sum);
  if (t.integrals)
    summary += fmt::format(", worst |integral - 1| {:.2g} over {} piece integrals ({} Gauss-Legendre nodes per dim)",
                           t.worst_integral, t.integrals, o.quadrature_nodes);
  else
    summary += ", no piece of dimension <= 2 to integrate";
  for (const auto& n : t.notes) summary += "; " + n;
  r.detail = r.passed ? summary : fmt::format("{} [{}]", fmt::join(t.failures, "; "), summary);
  return r;
}

}  // namespace

CheckResult check_normalisation(const Env& env, const Sample& s, Estimators& uniform_policy, Estimators& initial,
                                const CheckOptions& o, torch::Generator& gen) {
  NormalisationTally t;
  const std::pair<const char*, Estimators*> policies[] = {{"uniform", &uniform_policy}, {"initial", &initial}};
  for (const auto& k : kernels(env, s)) {
    if (k.states->batch_size() == 0) continue;
    // up to quadrature_states sampled states where the kernel has a component
    auto avail = kernel_mask(env, k, *k.states);
    auto st = pick(*k.states, avail.any(1), o.quadrature_states, gen);
    if (st.batch_size() == 0) continue;
    auto mask = kernel_mask(env, k, st);
    note_unintegrated_pieces(k, t.notes);
    // each policy's component probabilities and piece densities there
    for (const auto& [name, est] : policies) {
      auto p = kernel_policy(env, k, *est, name, st, mask);
      check_component_sums(k, p, mask, t);
      check_piece_integrals(env, k, p, st, mask, o, t);
    }
  }
  return normalisation_result(t, o);
}

}  // namespace gfn::checker

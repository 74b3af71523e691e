#include "core/checker.h"

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <utility>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include "core/estimator.h"
#include "core/evaluation.h"
#include "core/internal/checker_parts.h"
#include "core/kernel_head.h"
#include "core/params.h"
#include "core/sampler.h"
#include "core/trainer.h"
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
  if (!(reference_concentration >= 0.01 && reference_concentration <= 5.0))
    fail("reference_concentration", fmt::format("{}", reference_concentration), "a float in [0.01, 5]");
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

namespace checker {
namespace {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// the reference policy

// the env's own P_B where it has one; else uniform unless the backward kernel has a piece on R^k
// (no uniform density there)
BackwardPolicy backward_policy_for(const Env& env) {
  if (env.has_fixed_backward()) return BackwardPolicy::kFixed;
  for (const auto& c : env.action_spec().backward.components)
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
      case Domain::kCircle: {
        const int64_t k = head.mixture_components;
        // [mixture logits (K) | location (K*D) | concentration (K*D)]: softplus(-10) = 4.5e-5
        for (int64_t i = k + k * c.dim; i < VonMisesMixture::raw_size(k, c.dim); ++i) bias[offset + i] = -10.0;
        offset += VonMisesMixture::raw_size(k, c.dim);
        break;
      }
      case Domain::kNone: break;
    }
  }
  TORCH_CHECK(offset == size, "reference_bias: head layout of ", offset, " columns, expected ", size);
  return torch::tensor(bias, torch::kFloat32);
}

// The estimators the checks use (see the header).
enum class Policy {
  kReference,  // sampling and "partition": fixed output layers, P_F's Betas at reference_concentration
  kUniform,    // "normalisation": fixed output layers, every Beta at concentration 1
  kInitial,    // "normalisation": the network as initialised
};

// Small seeded estimators (the same seed gives the same trunk to all three). The reference P_F's
// Betas have CheckOptions::reference_concentration (the header says why 1/2 by default); the
// heads' lower bound goes below it where it is under 0.2.
Estimators make_estimators(const Env& env, uint64_t seed, Policy kind, double reference_concentration) {
  EstimatorOptions eo;
  eo.hidden = 32;
  eo.layers = 2;
  eo.backward = backward_policy_for(env);
  eo.head.min_concentration = eo.backward_min_concentration = std::min(0.1, reference_concentration / 2);
  auto gen = make_generator(seed, kCpu);
  Estimators est(env, eo, gen, kCpu);
  if (kind == Policy::kInitial) return est;
  const double concentration = kind == Policy::kReference ? reference_concentration : 1.0;
  torch::NoGradGuard no_grad;
  auto& policy = *est.policy;
  for (auto& p : policy.named_parameters()) {
    if (p.key() == "forward_weight" || p.key() == "backward_weight") p.value().zero_();
    if (p.key() == "forward_bias")
      p.value().copy_(reference_bias(env.action_spec().forward, eo.head, env.has_fixed_backward() ? 0.0 : std::log(2.0),
                                     concentration,
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

}  // namespace

double max_or_zero(const torch::Tensor& t) { return t.numel() ? t.max().item<double>() : 0.0; }

std::string component_name(const KernelSpec& kernel, int64_t c) {
  return c >= 0 && c < kernel.size() ? kernel.components[c].name : std::to_string(c);
}

std::string fmt_coords(const torch::Tensor& row, int64_t dim) {
  std::string out;
  auto r = row.to(torch::kFloat64).contiguous();
  for (int64_t i = 0; i < dim; ++i) out += fmt::format("{}{:.4g}", i ? ", " : "", r[i].item<double>());
  return "(" + out + ")";
}

namespace {

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
  // A statistical check: one estimate beyond the limit is drawn again from an independent stream,
  // and the check fails only if the second estimate is beyond it too. With Gaussian errors a
  // correct env fails with probability p^2 (p = 2 Phi(-limit): 0.27 % at 3 SE, so 7e-6).
  const double p_one = std::erfc(o.is_tolerance_se / std::sqrt(2.0));
  const std::string level = fmt::format(
      "statistical: fails only when two independent estimates are both beyond {:g} SE, which a correct env "
      "does with probability {:.1e} if the errors are Gaussian",
      o.is_tolerance_se, p_one * p_one);
  std::string first;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto gen = make_generator(o.seed + 3 + 1000003 * static_cast<uint64_t>(attempt), kCpu);
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
      return r;
    }
    if (e.ess < o.min_ess) {
      r.detail = fmt::format("inconclusive: effective sample size {:.1f} below {:g}, the standard error means nothing: {}",
                             e.ess, o.min_ess, numbers);
      return r;
    }
    r.passed = std::fabs(diff) <= o.is_tolerance_se * se;
    if (attempt == 0) {
      r.detail = numbers + " (" + level + ")";
      if (r.passed) return r;
      first = numbers;
    } else {
      r.detail = fmt::format("{}; a first estimate was beyond the limit ({}) ({})", numbers, first, level);
    }
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
        failed, n, spec.components[spec.exit].name, env.max_length(), b, component_name(spec, c), numbers);
  }
  return r;
}

std::string error_text(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

}  // namespace
}  // namespace checker

CheckReport check_env(const Env& env, const CheckOptions& options) {
  using namespace checker;
  options.validate();
  torch::NoGradGuard no_grad;
  CheckReport report;
  report.env = env.name();

  // a malformed action spec would fail every check: report it alone
  try {
    validate_action_spec(env.action_spec(), env.name());
  } catch (const ConfigError& e) {
    report.checks.push_back(CheckResult{"spec", false, false, e.what()});
    return report;
  }

  // the reference and as-initialised estimators, and one batch of trajectories
  std::optional<Estimators> reference, uniform, initial;
  std::optional<Sample> sample;
  std::string setup_error;
  const auto t0 = Clock::now();
  try {
    const double c = options.reference_concentration;
    reference.emplace(make_estimators(env, options.seed, Policy::kReference, c));
    uniform.emplace(make_estimators(env, options.seed, Policy::kUniform, c));
    initial.emplace(make_estimators(env, options.seed, Policy::kInitial, c));
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

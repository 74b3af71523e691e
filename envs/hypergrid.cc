#include "envs/hypergrid.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/kernels/kernels.h"

namespace gfn {

namespace {

constexpr int64_t kMaxEnumerableStates = int64_t{1} << 26;

// per-coordinate indicators of the two reward regions
bool outer_region(int64_t x, int64_t height) {
  double a = std::fabs(static_cast<double>(x) / static_cast<double>(height - 1) - 0.5);
  return 0.25 < a;
}
bool ring_region(int64_t x, int64_t height) {
  double a = std::fabs(static_cast<double>(x) / static_cast<double>(height - 1) - 0.5);
  return 0.3 < a && a < 0.4;
}

}  // namespace

const OptionTable<HypergridOptions>& HypergridOptions::keys() {
  using O = HypergridOptions;
  static const auto table = OptionTable<O>("HypergridOptions")
                                .add("ndim", &O::ndim, "number of coordinates n", in(1, 32))
                                .add("height", &O::height, "side length H of the grid", in(2, 1 << 20))
                                .add("r0", &O::r0, "base reward R0", above(0))
                                .add("r1", &O::r1, "reward R1 of the outer region", at_least(0))
                                .add("r2", &O::r2, "reward R2 of the ring inside the outer region", at_least(0))
                                .rule([](const O& o) {
                                  // the largest reward, R0 + R1 + R2 on the ring, must be a double
                                  // for log R to be finite (each key alone is finite already)
                                  return std::isfinite(o.r0 + o.r1 + o.r2)
                                             ? std::string()
                                             : fmt::format("env.r0 + env.r1 + env.r2 = {} + {} + {}: the largest "
                                                           "reward overflows a double (log R = inf); expected a sum "
                                                           "below {:.4g}",
                                                           o.r0, o.r1, o.r2, std::numeric_limits<double>::max());
                                });
  return table;
}

HypergridEnv::HypergridEnv(const HypergridOptions& options) : options_(options) {
  options_.validate();
  const int64_t n = options_.ndim;
  for (int64_t d = 0; d < n; ++d) {
    spec_.forward.components.push_back({fmt::format("+{}", d), ComponentKind::kAtom, 0, Domain::kNone});
    spec_.backward.components.push_back({fmt::format("-{}", d), ComponentKind::kAtom, 0, Domain::kNone});
  }
  spec_.forward.components.push_back({"exit", ComponentKind::kAtom, 0, Domain::kNone});
  spec_.forward.exit = n;
  // enumerable while H^n stays small enough to hold a distribution over it
  double log_states = static_cast<double>(n) * std::log(static_cast<double>(options_.height));
  enumerable_ = log_states <= std::log(static_cast<double>(kMaxEnumerableStates));
  dims_ = torch::arange(n, torch::kInt64);
  offsets_ = dims_.cpu() * options_.height;
  place_ = torch::full({n}, options_.height, torch::kInt64).pow(torch::arange(n - 1, -1, -1, torch::kInt64));
}

States HypergridEnv::initial_states(int64_t batch, const torch::Device& device) const {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return {torch::zeros({batch, options_.ndim}, i64), torch::zeros({batch, 0}, f64), torch::ones({batch}, b),
          torch::zeros({batch}, b)};
}

torch::Tensor HypergridEnv::features(const States& states) const {
  const auto& x = states.discrete;  // [B, n]
  if (fused::enabled(x.device())) return fused::hypergrid_features(x, options_.height);
  auto out = torch::zeros({x.size(0), feature_dim()}, x.options().dtype(torch::kFloat32));
  return out.scatter_(1, x + offsets_.on(x.device()), 1.0);
}

torch::Tensor HypergridEnv::log_path_count(const States& states) const {
  auto x = states.discrete.to(torch::kFloat64);
  return torch::lgamma(x.sum(1) + 1.0) - torch::lgamma(x + 1.0).sum(1);
}

torch::Tensor HypergridEnv::forward_mask(const States& states) const {
  const auto& x = states.discrete;
  if (fused::enabled(x.device())) return fused::hypergrid_forward_mask(x, options_.height);
  auto can_exit = torch::ones({x.size(0), 1}, x.options().dtype(torch::kBool));
  return torch::cat({x.lt(options_.height - 1), can_exit}, 1);
}

torch::Tensor HypergridEnv::backward_mask(const States& states) const { return states.discrete.gt(0); }

StepResult HypergridEnv::step(const States& states, const Actions& actions) const {
  const auto& x = states.discrete;
  // the exit (component n) matches no coordinate, so it leaves x unchanged
  auto next = fused::enabled(x.device()) ? fused::hypergrid_step(x, actions.component)
                                         : x + actions.component.unsqueeze(1).eq(dims_.on(x.device()));
  auto zeros_b = torch::zeros_like(states.is_initial);
  return {States{next, states.continuous, zeros_b, states.is_sink},
          torch::zeros({x.size(0)}, x.options().dtype(torch::kFloat32))};
}

StepResult HypergridEnv::backward_step(const States& states, const Actions& actions) const {
  const auto& x = states.discrete;
  auto prev = x - actions.component.unsqueeze(1).eq(dims_.on(x.device())).to(x.scalar_type());  // int - bool is an error
  return {States{prev, states.continuous, prev.eq(0).all(1), torch::zeros_like(states.is_sink)},
          torch::zeros({x.size(0)}, x.options().dtype(torch::kFloat32))};
}

Actions HypergridEnv::backward_action(const States& /*parent*/, const States& /*child*/, const Actions& forward,
                                      torch::Tensor* log_jacobian) const {
  return same_index_action(forward, log_jacobian);  // the element/coordinate that went up comes down
}

Actions HypergridEnv::forward_action(const States& /*child*/, const States& /*parent*/, const Actions& backward,
                                     torch::Tensor* log_jacobian) const {
  return same_index_action(backward, log_jacobian);
}

torch::Tensor HypergridEnv::log_reward(const States& states) const {
  return log_reward_given(states, {}, torch::Tensor());
}

torch::Tensor HypergridEnv::log_reward_given(const States& states, const std::vector<std::string>& names,
                                             const torch::Tensor& values) const {
  auto a = (states.discrete.to(torch::kFloat64) / static_cast<double>(options_.height - 1) - 0.5).abs();
  auto outer = a.gt(0.25).all(1).to(torch::kFloat64);
  auto ring = (a.gt(0.3) & a.lt(0.4)).all(1).to(torch::kFloat64);
  // each of R0, R1, R2: the row's value where named, else the configured one
  auto coefficient = [&](const char* key, double configured) -> torch::Tensor {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == key) return values.select(1, static_cast<int64_t>(i)).to(torch::kFloat64);
    return torch::full({}, configured, outer.options());
  };
  auto r = coefficient("r0", options_.r0) + coefficient("r1", options_.r1) * outer + coefficient("r2", options_.r2) * ring;
  return r.log().to(torch::kFloat32);
}

int64_t HypergridEnv::num_states() const {
  int64_t s = 1;
  for (int64_t d = 0; d < options_.ndim; ++d) s *= options_.height;
  return s;
}

States HypergridEnv::enumerate_states(const torch::Device& device) const {
  if (!enumerable_) return Env::enumerate_states(device);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto index = torch::arange(num_states(), i64);
  // mixed-radix digits, most significant first
  std::vector<torch::Tensor> digits(options_.ndim);
  auto rest = index;
  for (int64_t d = options_.ndim - 1; d >= 0; --d) {
    digits[d] = rest.remainder(options_.height);
    rest = rest.div(options_.height, "floor");
  }
  auto x = torch::stack(digits, 1);
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return {x, torch::zeros({x.size(0), 0}, i64.dtype(torch::kFloat64)), index.eq(0), torch::zeros({x.size(0)}, b)};
}

torch::Tensor HypergridEnv::state_index(const States& states) const {
  const auto& x = states.discrete;
  return (x * place_.on(x.device())).sum(1);
}

std::optional<double> HypergridEnv::log_partition() const {
  double outer = 0, ring = 0;
  for (int64_t i = 0; i < options_.height; ++i) {
    outer += outer_region(i, options_.height);
    ring += ring_region(i, options_.height);
  }
  // log Z = logsumexp(log R0 + n log H, log R1 + n log outer, log R2 + n log ring), in log space:
  // H^n alone reaches 2^640 and R0 H^n overflows a double long before log Z does
  const double n = static_cast<double>(options_.ndim);
  const double terms[] = {std::log(options_.r0) + n * std::log(static_cast<double>(options_.height)),
                          std::log(options_.r1) + n * std::log(outer), std::log(options_.r2) + n * std::log(ring)};
  const double top = *std::max_element(std::begin(terms), std::end(terms));  // finite: R0 > 0
  double sum = 0.0;
  for (double t : terms) sum += std::exp(t - top);  // exp(-inf) = 0 for an empty region or a zero reward
  return top + std::log(sum);
}

double HypergridEnv::reward(const std::vector<int64_t>& x) const {
  bool outer = true, ring = true;
  for (auto v : x) {
    outer = outer && outer_region(v, options_.height);
    ring = ring && ring_region(v, options_.height);
  }
  return options_.r0 + options_.r1 * outer + options_.r2 * ring;
}

}  // namespace gfn

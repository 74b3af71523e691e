#include "envs/sets.h"

#include <cmath>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

namespace gfn {

namespace {

const double kNegInf = -std::numeric_limits<double>::infinity();

double log_add(double a, double b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  const double m = std::max(a, b);
  return m + std::log1p(std::exp(-std::fabs(a - b)));
}

// log e_j, j = 0..k, of a set of weights with one more weight exp(log_w): the elementary
// symmetric polynomials' recursion e_j <- e_j + w e_{j-1}
std::vector<double> with_element(std::vector<double> e, double log_w) {
  for (size_t j = e.size() - 1; j >= 1; --j) e[j] = log_add(e[j], e[j - 1] + log_w);
  return e;
}

}  // namespace

const OptionTable<SetsOptions>& SetsOptions::keys() {
  using O = SetsOptions;
  static const auto table =
      OptionTable<O>("SetsOptions")
          .add("universe", &O::universe, "number of elements n = |U|", in(1, 1024))
          .add("size", &O::size, "elements k = |S| of every set (at most env.universe)", in(1, 1024))
          .add("energy_seed", &O::energy_seed, "seed of the element energies E(a) ~ uniform [0, 1)", at_least(0))
          .rule([](const O& o) {
            return o.size <= o.universe
                       ? std::string()
                       : fmt::format("env.size = {}: expected at most env.universe = {}", o.size, o.universe);
          });
  return table;
}

SetsEnv::SetsEnv(const SetsOptions& options) : options_(options) {
  options_.validate();
  const int64_t n = options_.universe, k = options_.size;
  for (int64_t a = 0; a < n; ++a) {
    spec_.forward.components.push_back({fmt::format("+{}", a), ComponentKind::kAtom, 0, Domain::kNone});
    spec_.backward.components.push_back({fmt::format("-{}", a), ComponentKind::kAtom, 0, Domain::kNone});
  }
  spec_.forward.components.push_back({"exit", ComponentKind::kAtom, 0, Domain::kNone});
  spec_.forward.exit = n;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(options_.energy_seed));
  energies_f32_ = torch::rand({n}, gen, torch::TensorOptions().dtype(torch::kFloat32));
  energies_ = energies_f32_.cpu().to(torch::kFloat64);  // the float32 values exactly: R and Z agree

  // log Z = log e_k(w) and P(a in x) = w_a e_{k-1}(w without a) / e_k(w), from prefix and suffix
  // polynomials: e_{k-1}(w without a) = sum_j e_j(w_0..w_{a-1}) e_{k-1-j}(w_{a+1}..w_{n-1})
  std::vector<double> log_w(n);
  for (int64_t a = 0; a < n; ++a) log_w[a] = -energies_[a].item<double>();
  // prefix[a]: the polynomials of elements 0..a-1; suffix[a]: of a..n-1 (the empty set: e_0 = 1)
  std::vector<double> none(k + 1, kNegInf);
  none[0] = 0.0;
  std::vector<std::vector<double>> prefix(n + 1, none), suffix(n + 1, none);
  for (int64_t a = 0; a < n; ++a) prefix[a + 1] = with_element(prefix[a], log_w[a]);
  for (int64_t a = n - 1; a >= 0; --a) suffix[a] = with_element(suffix[a + 1], log_w[a]);
  log_z_ = prefix[n][k];
  // the reachable subsets (at most k elements) in increasing order of their bits, and the rank of
  // every bit pattern among them (-1 past k elements)
  elements_ = torch::arange(n, torch::kInt64);
  if (enumerable()) {
    place_ = torch::pow(2, torch::arange(n - 1, -1, -1, torch::kInt64));  // element 0 the most significant bit
    auto all = torch::arange(int64_t{1} << n, torch::kInt64);
    auto reachable = all.unsqueeze(1).div(place_.cpu().unsqueeze(0), "floor").remainder(2).sum(1).le(k);
    masks_ = all.masked_select(reachable);
    rank_ = torch::full_like(all, -1).masked_scatter(reachable, torch::arange(masks_.size(0), torch::kInt64));
  }
  inclusion_.resize(n);
  for (int64_t a = 0; a < n; ++a) {
    double without = kNegInf;
    for (int64_t j = 0; j <= k - 1; ++j) without = log_add(without, prefix[a][j] + suffix[a + 1][k - 1 - j]);
    inclusion_[a] = std::exp(log_w[a] + without - log_z_);
  }
}

States SetsEnv::initial_states(int64_t batch, const torch::Device& device) const {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return {torch::zeros({batch, options_.universe}, i64),
          torch::zeros({batch, 0}, i64.dtype(torch::kFloat64)), torch::ones({batch}, b), torch::zeros({batch}, b)};
}

torch::Tensor SetsEnv::log_path_count(const States& states) const {
  return torch::lgamma(states.discrete.sum(1).to(torch::kFloat64) + 1.0);
}

torch::Tensor SetsEnv::features(const States& states) const { return states.discrete.to(torch::kFloat32); }

torch::Tensor SetsEnv::forward_mask(const States& states) const {
  const auto& x = states.discrete;
  auto full = x.sum(1, /*keepdim=*/true).ge(options_.size);  // [B, 1]
  return torch::cat({x.eq(0).logical_and(full.logical_not()), full}, 1);
}

torch::Tensor SetsEnv::backward_mask(const States& states) const { return states.discrete.eq(1); }

StepResult SetsEnv::step(const States& states, const Actions& actions) const {
  const auto& x = states.discrete;
  // the exit (component n) matches no element, so it leaves x unchanged
  auto add = elements_.on(x.device()).unsqueeze(0).eq(actions.component.unsqueeze(1));
  auto next = x + add.to(x.scalar_type());
  return {States{next, states.continuous, torch::zeros_like(states.is_initial), states.is_sink},
          torch::zeros({x.size(0)}, x.options().dtype(torch::kFloat32))};
}

StepResult SetsEnv::backward_step(const States& states, const Actions& actions) const {
  const auto& x = states.discrete;
  auto remove = elements_.on(x.device()).unsqueeze(0).eq(actions.component.unsqueeze(1));
  auto prev = x - remove.to(x.scalar_type());
  return {States{prev, states.continuous, prev.eq(0).all(1), torch::zeros_like(states.is_sink)},
          torch::zeros({x.size(0)}, x.options().dtype(torch::kFloat32))};
}

Actions SetsEnv::backward_action(const States& /*parent*/, const States& /*child*/, const Actions& forward,
                                 torch::Tensor* log_jacobian) const {
  return same_index_action(forward, log_jacobian);  // the element/coordinate that went up comes down
}

Actions SetsEnv::forward_action(const States& /*child*/, const States& /*parent*/, const Actions& backward,
                                torch::Tensor* log_jacobian) const {
  return same_index_action(backward, log_jacobian);
}

torch::Tensor SetsEnv::log_reward(const States& states) const {
  const auto& x = states.discrete;
  return -torch::mv(x.to(torch::kFloat32), energies_f32_.on(x.device()));
}

std::vector<std::pair<std::string, double>> SetsEnv::sample_metrics(const States& terminal) const {
  auto freq = terminal.discrete.to(torch::kCPU, torch::kFloat64).mean(0);
  auto exact = torch::tensor(inclusion_, torch::kFloat64);
  auto err = (freq - exact).abs();
  return {{"inclusion_error", err.mean().item<double>()}, {"inclusion_max_error", err.max().item<double>()}};
}

int64_t SetsEnv::num_states() const {
  if (!enumerable()) return Env::num_states();
  return masks_.size(0);
}

States SetsEnv::enumerate_states(const torch::Device& device) const {
  if (!enumerable()) return Env::enumerate_states(device);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto masks = masks_.to(device);
  auto x = masks.unsqueeze(1).div(place_.on(device).unsqueeze(0), "floor").remainder(2);
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return {x, torch::zeros({x.size(0), 0}, i64.dtype(torch::kFloat64)), masks.eq(0), torch::zeros({x.size(0)}, b)};
}

torch::Tensor SetsEnv::state_index(const States& states) const {
  const auto& x = states.discrete;
  return rank_.on(x.device()).index_select(0, (x * place_.on(x.device()).unsqueeze(0)).sum(1));
}

}  // namespace gfn

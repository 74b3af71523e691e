// The time architecture of the policy network (policy.architecture = "time", core/estimator.h):
// the network of the diffusion-sampler papers (PIS, Zhang & Chen 2022; Sendera et al. 2024).
//
// Every time-indexed state has t = k / steps, so the time embedding is computed once per call for
// the steps + 1 times and gathered by k; and since the state embedding is linear and feeds the
// joint MLP's first (linear) layer directly, the two are applied as one product
// y (W_s W_1s) + (b_s W_1s + b_1 + temb W_1t)[k], the same function with a per-row cost of
// m * hidden instead of (m + 2 embedding) * hidden multiply-adds.
#include <cmath>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/estimator.h"

namespace gfn {

void PolicyNetImpl::build_time_network(int64_t in_features, torch::Generator& generator) {
  if (!context_.time)
    throw ConfigError("policy.architecture = \"time\": the env is not time-indexed (Env::time_indexing); use \"mlp\"");
  if (options_.trunk_precision != Precision::kFp32)
    throw ConfigError("policy.trunk_precision = \"bf16\": the time architecture computes in fp32 only");
  const int64_t m = in_features - 1, H = options_.time_harmonics, E = options_.embedding;
  if (m < 1) throw ConfigError("policy.architecture = \"time\": the env's features hold no state coordinates");
  if (options_.langevin) {
    if (!context_.reward_gradient)
      throw ConfigError("policy.langevin = true: the env supplies no grad log R (Env::has_log_reward_gradient)");
    int64_t real_pieces = 0;
    for (const auto& p : forward_head_.pieces()) real_pieces += p.domain == Domain::kReal && p.dim == m;
    if (real_pieces != 1 || forward_head_.pieces().size() != 1)
      throw ConfigError(fmt::format("policy.langevin = true: expected one forward piece on R^{} (the state's "
                                    "coordinates)",
                                    m));
  }
  const auto dtype = options_.dtype;
  const int64_t steps = context_.time->steps;
  // sin and cos of every time at every frequency, [steps + 1, 2H]
  auto f = torch::linspace(0.1, 100.0, H, torch::TensorOptions().dtype(dtype));
  auto t = torch::arange(steps + 1, torch::TensorOptions().dtype(dtype)).div(static_cast<double>(steps));
  auto phase = t.unsqueeze(1) * f.unsqueeze(0);
  time_features_ = register_buffer("time_features", torch::cat({phase.sin(), phase.cos()}, 1));
  auto linear = [&](const std::string& name, int64_t in, int64_t out, std::vector<torch::Tensor>& w,
                    std::vector<torch::Tensor>& b) {
    auto [wi, bi] = make_linear(in, out, dtype, generator);
    w.push_back(register_parameter(name + "_weight", wi));
    b.push_back(register_parameter(name + "_bias", bi));
  };
  linear("time0", 2 * H, E, time_w_, time_b_);
  linear("time1", E, E, time_w_, time_b_);
  auto [sw, sb] = make_linear(m, E, dtype, generator);
  state_w_ = register_parameter("state_weight", sw);
  state_b_ = register_parameter("state_bias", sb);
  std::tie(weights_, biases_) = make_mlp(*this, "trunk", 2 * E, options_.hidden, options_.layers, dtype, generator);
  if (options_.langevin) {
    linear("langevin0", 2 * H, E, lgv_w_, lgv_b_);
    linear("langevin1", E, m, lgv_w_, lgv_b_);
    torch::NoGradGuard no_grad;
    lgv_w_[1].zero_();  // s(t) starts at 0: the initial policy is the reference step, as without
    lgv_b_[1].zero_();
  }
}

namespace {

torch::Tensor activate(const torch::Tensor& h, Activation a) {
  switch (a) {
    case Activation::kRelu: return torch::relu(h);
    case Activation::kLeakyRelu: return torch::leaky_relu(h, 0.01);
    case Activation::kElu: return torch::elu(h);
    case Activation::kGelu: return torch::gelu(h);
  }
  return h;
}

// k = round(t * steps) of each row's time (feature column 0), [N] int64 in [0, steps]
torch::Tensor time_index(const torch::Tensor& features, int64_t steps) {
  return (features.select(1, 0) * static_cast<double>(steps)).round().to(torch::kInt64).clamp(0, steps);
}

}  // namespace

void PolicyNetImpl::set_frozen(bool frozen) {
  frozen_ = frozen;
  frozen_per_time_ = frozen_state_map_ = frozen_langevin_ = torch::Tensor();
}

torch::Tensor PolicyNetImpl::time_trunk(const torch::Tensor& features) {
  const int64_t E = options_.embedding, m = features.size(1) - 1;
  const auto act = options_.activation;
  auto x = features.to(weights_[0].scalar_type());
  auto k = time_index(x, context_.time->steps);
  const bool cache = frozen_ && !torch::GradMode::is_enabled();
  torch::Tensor per_time = cache ? frozen_per_time_ : torch::Tensor(), state_map = cache ? frozen_state_map_ : torch::Tensor();
  if (!per_time.defined()) {
    const auto& tf = time_features_;
    auto temb = torch::addmm(time_b_[1], activate(torch::addmm(time_b_[0], tf, time_w_[0]), Activation::kGelu),
                             time_w_[1]);  // [steps + 1, E]
    // the joint MLP's first layer on [state embedding | time embedding]
    auto w_s = weights_[0].narrow(0, 0, E), w_t = weights_[0].narrow(0, E, E);
    per_time = torch::addmm(biases_[0] + torch::matmul(state_b_, w_s), temb, w_t);  // [steps + 1, hidden]
    state_map = torch::matmul(state_w_, w_s);                                       // [m, hidden]
    if (cache) frozen_per_time_ = per_time, frozen_state_map_ = state_map;
  }
  auto h = torch::addmm(per_time.index_select(0, k), x.narrow(1, 1, m), state_map);
  h = activate(h, act);
  for (size_t l = 1; l < weights_.size(); ++l) h = activate(torch::addmm(biases_[l], h, weights_[l]), act);
  return h;
}

torch::Tensor PolicyNetImpl::time_outputs(const torch::Tensor& hidden, const torch::Tensor& features) {
  auto out = torch::addmm(forward_bias_, hidden, forward_weight_);
  const auto& pieces = forward_head_.pieces();
  std::vector<torch::Tensor> cols{out.narrow(1, 0, forward_head_.num_components())};
  const double to_chart = context_.time->drift_to_chart, range = options_.log_var_range;
  for (const auto& p : pieces) {
    auto raw = out.narrow(1, p.offset, p.raw_size);
    if (p.domain != Domain::kReal) {
      cols.push_back(raw);
      continue;
    }
    auto drift = raw.narrow(1, 0, p.dim);
    if (options_.langevin) {
      torch::Tensor grad;
      {
        torch::NoGradGuard no_grad;
        auto x = features.narrow(1, 1, p.dim).to(torch::kFloat64);
        grad = context_.reward_gradient(x).nan_to_num(0.0).clamp(-options_.langevin_clip, options_.langevin_clip);
      }
      const bool cache = frozen_ && !torch::GradMode::is_enabled();
      auto scale = cache ? frozen_langevin_ : torch::Tensor();
      if (!scale.defined()) {
        const auto& tf = time_features_;
        scale = torch::addmm(lgv_b_[1], torch::gelu(torch::addmm(lgv_b_[0], tf, lgv_w_[0])), lgv_w_[1]);
        if (cache) frozen_langevin_ = scale;
      }
      auto k = time_index(features, context_.time->steps);
      drift = drift + scale.index_select(0, k) * grad.to(drift.scalar_type());
    }
    cols.push_back(drift.clamp(-options_.drift_clip, options_.drift_clip) * to_chart);
    auto log_scale = raw.narrow(1, p.dim, p.dim);
    cols.push_back(range > 0 ? 0.5 * range * torch::tanh(log_scale) : log_scale * 0.0);
  }
  return torch::cat(cols, 1);
}

}  // namespace gfn

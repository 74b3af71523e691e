#include "envs/diffusion.h"

#include <cmath>

#include <fmt/format.h>
#include <torch/torch.h>

namespace gfn {

const OptionTable<DiffusionOptions>& DiffusionOptions::keys() {
  using O = DiffusionOptions;
  static const auto table =
      OptionTable<O>("DiffusionOptions")
          .add("target", &O::target, "the density to sample (25gmm and 9gmm: d = 2; funnel; manywell: d even)",
               diffusion_target_names())
          .add("dim", &O::dim, "dimension d of the target (0: its default, funnel 10, manywell 32)", in(0, 4096))
          .add("steps", &O::steps, "T, the number of Euler-Maruyama steps of every trajectory", in(1, 10000))
          .add("sigma2", &O::sigma2, "variance sigma^2 of the reference Brownian motion at t = 1", above(0).at_most(1e6));
  return table;
}

DiffusionEnv::DiffusionEnv(const DiffusionOptions& options)
    : DiffusionEnv(options, make_diffusion_target(options.target, options.dim)) {}

DiffusionEnv::DiffusionEnv(const DiffusionOptions& options, std::shared_ptr<const DiffusionTarget> target)
    : options_(options), target_(std::move(target)) {
  options_.validate();
  if (!target_) throw std::invalid_argument("DiffusionEnv: no target");
  dim_ = target_->dim();
  dt_ = 1.0 / static_cast<double>(options_.steps);
  step_scale_ = std::sqrt(options_.sigma2 * dt_);
  spec_.forward.components = {{"step", ComponentKind::kPiece, dim_, Domain::kReal},
                              {"exit", ComponentKind::kAtom, 0, Domain::kNone}};
  spec_.forward.exit = kExit;
  spec_.backward.components = {{"bridge", ComponentKind::kPiece, dim_, Domain::kReal},
                               {"to_s0", ComponentKind::kAtom, 0, Domain::kNone}};
  spec_.coord_dim = dim_;
}

States DiffusionEnv::initial_states(int64_t batch, const torch::Device& device) const {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto b = i64.dtype(torch::kBool);
  return {torch::zeros({batch, 1}, i64), torch::zeros({batch, dim_}, i64.dtype(torch::kFloat64)),
          torch::ones({batch}, b), torch::zeros({batch}, b)};
}

torch::Tensor DiffusionEnv::features(const States& states) const {
  auto t = states.discrete.to(torch::kFloat32) * static_cast<float>(dt_);
  return torch::cat({t, states.continuous.to(torch::kFloat32)}, 1);
}

torch::Tensor DiffusionEnv::forward_mask(const States& states) const {
  const auto& k = states.discrete;
  return torch::cat({k.lt(options_.steps), k.eq(options_.steps)}, 1);
}

torch::Tensor DiffusionEnv::backward_mask(const States& states) const {
  const auto& k = states.discrete;
  return torch::cat({k.ge(2), k.eq(1)}, 1);
}

torch::Tensor DiffusionEnv::bridge_scale(const torch::Tensor& k) const {
  auto kf = k.to(torch::kFloat64);
  auto ratio = torch::where(k.ge(2), (kf - 1.0) / kf, torch::ones_like(kf));
  return (ratio * (options_.sigma2 * dt_)).sqrt();
}

namespace {

// d log s per row ([B, 1] scale -> [B] float32)
torch::Tensor log_volume(const torch::Tensor& scale, int64_t d) {
  return (scale.log().squeeze(1) * static_cast<double>(d)).to(torch::kFloat32);
}

}  // namespace

StepResult DiffusionEnv::step(const States& states, const Actions& actions) const {
  const auto& k = states.discrete;
  const auto& x = states.continuous;
  auto move = actions.component.eq(kStep).unsqueeze(1);
  auto next = torch::where(move, x + step_scale_ * actions.coords.to(x.scalar_type()), x);
  auto k_next = k + move.to(k.scalar_type());
  auto log_j = torch::full({states.batch_size()}, static_cast<double>(dim_) * std::log(step_scale_),
                           x.options().dtype(torch::kFloat32));
  return {States{k_next, next, k_next.select(1, 0).eq(0), states.is_sink}, log_j};
}

StepResult DiffusionEnv::backward_step(const States& states, const Actions& actions) const {
  const auto& k = states.discrete;
  const auto& x = states.continuous;
  auto back = actions.component.eq(kBridge).unsqueeze(1);
  auto to_s0 = actions.component.eq(kToS0).unsqueeze(1);
  auto s_b = bridge_scale(k);
  auto kf = k.to(torch::kFloat64);
  auto mean = x * ((kf - 1.0) / kf.clamp_min(1.0));
  auto prev = torch::where(back, mean + s_b * actions.coords.to(x.scalar_type()), x);
  prev = torch::where(to_s0, torch::zeros_like(prev), prev);
  auto k_prev = torch::where(to_s0, torch::zeros_like(k), k - back.to(k.scalar_type()));
  return {States{k_prev, prev, k_prev.select(1, 0).eq(0), torch::zeros_like(states.is_sink)},
          log_volume(s_b, dim_).masked_fill(back.squeeze(1).logical_not(), 0.0)};  // atoms: J = 1
}

Actions DiffusionEnv::backward_action(const States& parent, const States& child, const Actions& /*forward*/,
                                      torch::Tensor* log_jacobian) const {
  const auto& k = child.discrete;
  auto back = k.select(1, 0).ge(2);
  auto s_b = bridge_scale(k);
  auto kf = k.to(torch::kFloat64);
  auto mean = child.continuous * ((kf - 1.0) / kf.clamp_min(1.0));
  auto u = torch::where(back.unsqueeze(1), (parent.continuous - mean) / s_b, 0.0);
  if (log_jacobian != nullptr) *log_jacobian = log_volume(s_b, dim_).masked_fill(back.logical_not(), 0.0);
  return {back.logical_not().to(torch::kInt64), u};
}

Actions DiffusionEnv::forward_action(const States& child, const States& parent, const Actions& /*backward*/,
                                     torch::Tensor* log_jacobian) const {
  const int64_t n = child.batch_size();
  if (log_jacobian != nullptr)
    *log_jacobian = torch::full({n}, static_cast<double>(dim_) * std::log(step_scale_),
                                child.continuous.options().dtype(torch::kFloat32));
  return {torch::full({n}, kStep, child.discrete.options()), (child.continuous - parent.continuous) / step_scale_};
}

torch::Tensor DiffusionEnv::log_reward(const States& states) const {
  return target_->log_density(states.continuous.to(torch::kFloat64)).to(torch::kFloat32);
}

torch::Tensor DiffusionEnv::intermediate_log_reward(const States& states) const {
  // (1 - t) log N(x; 0, sigma^2 t) + t log R(x), t = k dt (rows at s0 get a finite dummy)
  auto x = states.continuous.to(torch::kFloat64);
  auto t = (states.discrete.select(1, 0).to(torch::kFloat64) * dt_).clamp_min(dt_);
  auto var = t * options_.sigma2;
  auto log_normal = -0.5 * (x.square().sum(1) / var + static_cast<double>(dim_) * (2 * M_PI * var).log());
  return ((1.0 - t) * log_normal + t * target_->log_density(x)).to(torch::kFloat32);
}

torch::Tensor DiffusionEnv::fixed_backward_outputs(const States& states) const {
  return torch::zeros({states.batch_size(), 2 + 2 * dim_}, states.continuous.options().dtype(torch::kFloat32));
}

torch::Tensor DiffusionEnv::log_reward_gradient(const States& states) const {
  return target_->grad_log_density(states.continuous.to(torch::kFloat64));
}

States DiffusionEnv::exact_samples(int64_t n, torch::Generator& generator, const torch::Device& device) const {
  auto x = target_->sample(n, generator).to(device, torch::kFloat64);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto b = i64.dtype(torch::kBool);
  return {torch::full({n, 1}, options_.steps, i64), x, torch::zeros({n}, b), torch::zeros({n}, b)};
}

std::optional<TimeIndexing> DiffusionEnv::time_indexing() const {
  return TimeIndexing{options_.steps, std::sqrt(dt_) / std::sqrt(options_.sigma2)};
}

std::optional<TerminalGrid> DiffusionEnv::terminal_grid(int64_t points, const torch::Device& device) const {
  if (dim_ > 2 || points < 1) return std::nullopt;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  const double a = target_->extent(), width = 2 * a / static_cast<double>(points);
  auto c = (torch::arange(points, f64) + 0.5) * width - a;
  auto x = dim_ == 1 ? c.unsqueeze(1) : torch::stack({c.repeat_interleave(points), c.repeat({points})}, 1);
  const int64_t n = x.size(0);
  auto b = f64.dtype(torch::kBool);
  States s{torch::full({n, 1}, options_.steps, f64.dtype(torch::kInt64)), x, torch::zeros({n}, b),
           torch::zeros({n}, b)};
  return TerminalGrid{s, torch::full({n}, static_cast<double>(dim_) * std::log(width), f64)};
}

}  // namespace gfn

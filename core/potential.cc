#include "core/potential.h"

#include <fmt/format.h>
#include <torch/torch.h>

namespace gfn {

PotentialNetImpl::PotentialNetImpl(int64_t feature_dim, int64_t hidden, int64_t layers, Activation activation,
                                   torch::Dtype dtype, torch::Generator& generator)
    : activation_(activation) {
  int64_t in = 2 * feature_dim + 1;
  for (int64_t l = 0; l < layers; ++l) {
    auto [w, b] = make_linear(in, hidden, dtype, generator);
    weights_.push_back(register_parameter(fmt::format("layer{}_weight", l), w));
    biases_.push_back(register_parameter(fmt::format("layer{}_bias", l), b));
    in = hidden;
  }
  auto opts = torch::TensorOptions().dtype(dtype);
  out_weight_ = register_parameter("out_weight", torch::zeros({in, 1}, opts));
  out_bias_ = register_parameter("out_bias", torch::zeros({1}, opts));
}

torch::Tensor PotentialNetImpl::forward(const torch::Tensor& from, const torch::Tensor& to,
                                        const torch::Tensor& exit) {
  auto dtype = out_weight_.scalar_type();
  auto x = torch::cat({from.to(dtype), to.to(dtype).masked_fill(exit.unsqueeze(1), 0.0),
                       exit.to(dtype).unsqueeze(1)},
                      1);
  return torch::addmm(out_bias_, mlp_forward(x, weights_, biases_, activation_), out_weight_).squeeze(1);
}

torch::Tensor PotentialNetImpl::values(const Env& env, const Trajectories& traj) {
  const int64_t T = traj.num_steps(), B = traj.batch_size();
  const int64_t dd = traj.states_discrete.size(2), dc = traj.states_continuous.size(2);
  // the steps (t, b), flattened time-major, and their states s_t and s_{t+1}: the valid ones on
  // the CPU, every one in fixed shapes (padding is a real state there; its value is masked out)
  States all{traj.states_discrete.reshape({(T + 1) * B, dd}), traj.states_continuous.reshape({(T + 1) * B, dc}),
             traj.is_initial.reshape({-1}), traj.is_sink.reshape({-1})};
  auto valid = traj.mask.reshape({-1});
  if (fixed_shapes(valid.device())) {
    auto t = torch::arange(T, traj.length.options()).unsqueeze(1);
    auto exit = t.eq(traj.length.unsqueeze(0) - 1).reshape({-1});
    auto phi = forward(env.features(all.narrow(0, T * B)), env.features(all.narrow(B, T * B)), exit);
    return phi.masked_fill(valid.logical_not(), 0.0).view({T, B});
  }
  auto idx = valid.nonzero().squeeze(1);  // [N]
  auto exit = idx.div(B, "floor").eq(traj.length.index_select(0, idx.remainder(B)) - 1);
  auto phi = forward(env.features(all.index_select(idx)), env.features(all.index_select(idx + B)), exit);
  return torch::zeros({T * B}, phi.options()).index_copy(0, idx, phi).view({T, B});
}

torch::Tensor potential_regression_loss(const torch::Tensor& phi, const torch::Tensor& log_reward,
                                        const torch::Tensor& mask, const torch::Tensor& length, double drop_rate,
                                        torch::Generator& generator) {
  auto u = torch::rand(phi.sizes(), generator, torch::TensorOptions().dtype(torch::kFloat32).device(phi.device()));
  // the step with the largest draw is kept whatever the rate: uniform among the valid steps
  auto first = u.masked_fill(mask.logical_not(), -1.0).argmax(0, /*keepdim=*/true);  // [1, B]
  auto keep = u.ge(drop_rate).logical_and(mask);
  keep.scatter_(0, first, true);
  auto z = keep.to(phi.scalar_type());
  auto n = length.to(phi.scalar_type());
  auto estimate = n / z.sum(0) * (z * phi).sum(0);
  return (estimate - log_reward.to(phi.scalar_type())).square().mean();
}

torch::Tensor redistributed_credits(const torch::Tensor& phi, const torch::Tensor& log_reward,
                                    const torch::Tensor& mask, const torch::Tensor& length) {
  torch::NoGradGuard no_grad;
  auto p = phi.detach().masked_fill(mask.logical_not(), 0.0);
  auto shift = (log_reward.to(p.scalar_type()) - p.sum(0)) / length.to(p.scalar_type());
  return (p + shift.unsqueeze(0)).masked_fill(mask.logical_not(), 0.0);
}

}  // namespace gfn

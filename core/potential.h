// Learned energy decompositions (LED; Jang et al., ICLR 2024; DESIGN.md §5). A potential network
// phi(s -> s') scores every step of a trajectory; it is regressed so that its sum over a
// trajectory matches log R(x) under dropout of the steps, and its values, shifted so that they
// sum to log R(x) exactly, become the per-step credits of the forward-looking residuals
// (losses/credit.h).
//
// The step s_t -> s_{t+1} is presented to the network as [f(s_t), f(s_{t+1}), 0] and the exit
// x -> sf as [f(x), 0, 1], f the env's features; so phi covers every valid step, the exit
// included, and n below is a trajectory's number of valid steps (LossInputs::length).
#pragma once

#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "core/env.h"
#include "core/estimator.h"
#include "core/types.h"

namespace gfn {

class PotentialNetImpl : public torch::nn::Module {
 public:
  // An MLP of `layers` hidden layers of width `hidden` on 2 * feature_dim + 1 inputs, then one
  // output whose layer starts at zero (phi = 0: the first credits spread log R evenly).
  PotentialNetImpl(int64_t feature_dim, int64_t hidden, int64_t layers, Activation activation, torch::Dtype dtype,
                   torch::Generator& generator);
  // phi of each step, [T, B] (0 on padding), carrying the graph of the network's parameters.
  torch::Tensor values(const Env& env, const Trajectories& traj);
  // phi on explicit inputs: from [N, F], to [N, F] (ignored where exit), exit [N] bool -> [N]
  torch::Tensor forward(const torch::Tensor& from, const torch::Tensor& to, const torch::Tensor& exit);

 private:
  Activation activation_;
  std::vector<torch::Tensor> weights_, biases_;  // hidden layers, [in, out] and [out]
  torch::Tensor out_weight_, out_bias_;           // [hidden, 1], [1]
};
TORCH_MODULE(PotentialNet);

// The dropout regression of the potential, [] float: z_t ~ Bernoulli(1 - drop_rate) over each
// trajectory's valid steps, one of them kept when the draw drops them all (uniformly among them),
// and the mean over the batch of ((n / sum z) sum_t z_t phi_t - log R(x))^2. No host sync.
torch::Tensor potential_regression_loss(const torch::Tensor& phi, const torch::Tensor& log_reward,
                                        const torch::Tensor& mask, const torch::Tensor& length, double drop_rate,
                                        torch::Generator& generator);

// The redistributed credits, [T, B], detached: phi_t + (log R(x) - sum_s phi_s) / n on the valid
// steps, 0 on padding; each trajectory's credits sum to log R(x) (up to rounding).
torch::Tensor redistributed_credits(const torch::Tensor& phi, const torch::Tensor& log_reward,
                                    const torch::Tensor& mask, const torch::Tensor& length);

}  // namespace gfn

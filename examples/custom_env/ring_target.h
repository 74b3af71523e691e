// A density of one's own for the diffusion sampler (envs/diffusion.h): a ring of radius 3 in the
// plane, log R(x) = -(|x| - 3)^2 / (2 * 0.25). log_density is all a target must write: the
// gradient for the Langevin term and local search comes from autograd, and log Z and exact
// samples are optional (without them the run reports the ELBO and log Z_IS, not their errors).
//
//     custom_env train ring_diffusion.toml --out runs/ring_diffusion
#pragma once

#include <torch/torch.h>

#include "envs/diffusion_targets.h"

namespace example {

class RingTarget final : public gfn::DiffusionTarget {
 public:
  std::string name() const override { return "ring"; }
  int64_t dim() const override { return 2; }
  torch::Tensor log_density(const torch::Tensor& x) const override {
    auto r = x.to(torch::kFloat64).square().sum(1).sqrt();
    return -(r - 3.0).square() / 0.5;
  }
  double extent() const override { return 5.0; }
};

}  // namespace example

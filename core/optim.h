// Adam (Kingma & Ba, 2015) with parameter groups, fused per parameter on the CPU.
//
// LibTorch's Adam issues ~10 tensor operations per parameter per step; for the small networks
// of GFlowNet benchmarks that per-op overhead was ~0.2 ms of a ~1.1 ms hypergrid iteration.
// On the CPU this optimiser updates each parameter in one pass over its memory; on other
// devices it runs the same update as tensor operations. The update is LibTorch's exactly
// (no weight decay, no amsgrad):
//     m <- b1 m + (1-b1) g,  v <- b2 v + (1-b2) g^2,
//     p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
#pragma once

#include <cstdint>
#include <vector>

#include <string>

#include <torch/types.h>

namespace torch::serialize {
class OutputArchive;
class InputArchive;
}  // namespace torch::serialize

namespace gfn {

struct AdamGroup {
  std::vector<torch::Tensor> params;  // leaf tensors with requires_grad
  double lr = 1e-3;                   // learning rate, > 0
};

class FusedAdam {
 public:
  explicit FusedAdam(std::vector<AdamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);

  // Drops every gradient (the next backward allocates fresh ones).
  void zero_grad();
  // One update of every parameter that has a gradient.
  void step();

  std::vector<AdamGroup>& groups() { return groups_; }
  const std::vector<AdamGroup>& groups() const { return groups_; }
  int64_t steps() const { return steps_; }

  // Writes the step counter, each group's learning rate and the moments under `prefix`, and
  // reads them back into an optimiser over parameters of the same shapes (checkpoints). `load`
  // throws std::runtime_error naming the key when an entry is missing or of another shape.
  void save(torch::serialize::OutputArchive& archive, const std::string& prefix) const;
  void load(torch::serialize::InputArchive& archive, const std::string& prefix);

 private:
  std::vector<AdamGroup> groups_;
  std::vector<std::vector<torch::Tensor>> exp_avg_, exp_avg_sq_;  // per group, per parameter
  double beta1_, beta2_, eps_;
  int64_t steps_ = 0;
};

}  // namespace gfn

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

#include <functional>
#include <string>

#include <torch/types.h>

#include "core/archive.h"

namespace gfn {

struct AdamGroup {
  std::vector<torch::Tensor> params;  // leaf tensors with requires_grad
  double lr = 1e-3;                   // learning rate, > 0
  std::string name;                   // what the group trains, in messages ("policy", "log Z", ...)
};

class FusedAdam {
 public:
  explicit FusedAdam(std::vector<AdamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);

  // Device-resident state, for capture in a CUDA graph: the step counter and each group's
  // learning rate live in tensors on the parameters' device, and step() reads no host value
  // that changes between steps, so a captured step() replays correctly. A group's `lr` is then
  // read only by sync_learning_rates(), which copies it into the tensors: call it (outside any
  // capture) after changing one. Off by default: the host counter costs nothing on the CPU.
  void set_device_state(bool on);
  bool device_state() const { return step_tensor_.defined(); }
  void sync_learning_rates();

  // Drops every gradient (the next backward allocates fresh ones).
  void zero_grad();
  // One update of every parameter that has a gradient; a gradient reducer, when set, first sees
  // (and may replace) the gradients of every parameter of every group, in group order: the
  // data-parallel all-reduce (core/distributed.h). A NaN or an infinity in any gradient (after
  // the reduction, so that every rank decides alike) skips the whole update: nothing changes,
  // not even the moments or the step counter, and step() returns false (nonfinite_group() then
  // names the first group concerned). With device state (a CUDA graph) the gradients are not
  // inspected: that would be a host sync inside the capture.
  bool step();
  // Whether the last step() was skipped for a non-finite gradient, and the name of the first
  // group concerned.
  bool last_step_skipped() const { return last_skipped_; }
  const std::string& nonfinite_group() const { return nonfinite_group_; }
  using GradientReducer = std::function<void(std::vector<torch::Tensor>& params)>;
  void set_gradient_reducer(GradientReducer reducer) { reducer_ = std::move(reducer); }

  std::vector<AdamGroup>& groups() { return groups_; }
  const std::vector<AdamGroup>& groups() const { return groups_; }
  // The number of steps taken (with device state, read back from the device).
  int64_t steps() const;

  // Writes the step counter, each group's learning rate and the moments under `prefix`, and
  // reads them back into an optimiser over parameters of the same shapes (checkpoints). `load`
  // throws std::runtime_error naming the key when an entry is missing or of another shape.
  void save(torch::serialize::OutputArchive& archive, const std::string& prefix) const;
  void load(torch::serialize::InputArchive& archive, const std::string& prefix);
  // load(), with a missing or misshapen entry a ConfigError naming `source` (the checkpoint file):
  // "<source>: <problem> (not a checkpoint of this config)".
  void load(torch::serialize::InputArchive& archive, const std::string& prefix, const std::string& source);

 private:
  std::vector<AdamGroup> groups_;
  std::vector<std::vector<torch::Tensor>> exp_avg_, exp_avg_sq_;  // per group, per parameter
  double beta1_, beta2_, eps_;
  int64_t steps_ = 0;
  torch::Tensor step_tensor_;              // [] float64 on the device (device state)
  std::vector<torch::Tensor> lr_tensors_;  // [] float64 per group (device state)
  GradientReducer reducer_;
  std::string nonfinite_group_;
  bool last_skipped_ = false;
};

// Whether every element of `t` is finite (no NaN, no infinity); on the CPU one pass over the
// memory without allocating.
bool all_finite(const torch::Tensor& t);

}  // namespace gfn

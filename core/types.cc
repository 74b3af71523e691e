#include "core/types.h"

#include <atomic>
#include <mutex>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace gfn {

struct DeviceConstant::Copies {
  std::mutex mutex;
  std::vector<std::pair<torch::Device, torch::Tensor>> tensors;
};

DeviceConstant::DeviceConstant(torch::Tensor cpu) : cpu_(std::move(cpu)), copies_(std::make_shared<Copies>()) {}

torch::Tensor DeviceConstant::on(const torch::Device& device) const {
  if (device == cpu_.device()) return cpu_;
  std::lock_guard<std::mutex> lock(copies_->mutex);
  for (const auto& [d, t] : copies_->tensors)
    if (d == device) return t;
  copies_->tensors.emplace_back(device, cpu_.to(device));
  return copies_->tensors.back().second;
}

namespace {
std::atomic<bool> forced_fixed_shapes{false};
}  // namespace

bool fixed_shapes(const torch::Device& device) { return !device.is_cpu() || forced_fixed_shapes.load(); }

void force_fixed_shapes(bool on) { forced_fixed_shapes.store(on); }

States States::index_select(const torch::Tensor& index) const {
  return {discrete.index_select(0, index), continuous.index_select(0, index), is_initial.index_select(0, index),
          is_sink.index_select(0, index)};
}

States States::narrow(int64_t start, int64_t length) const {
  return {discrete.narrow(0, start, length), continuous.narrow(0, start, length), is_initial.narrow(0, start, length),
          is_sink.narrow(0, start, length)};
}

States States::where(const torch::Tensor& cond, const States& a, const States& b) {
  auto col = cond.unsqueeze(1);
  return {torch::where(col, a.discrete, b.discrete), torch::where(col, a.continuous, b.continuous),
          torch::where(cond, a.is_initial, b.is_initial), torch::where(cond, a.is_sink, b.is_sink)};
}

States States::cat(const std::vector<States>& parts) {
  std::vector<torch::Tensor> d, c, i, s;
  for (const auto& p : parts) {
    d.push_back(p.discrete);
    c.push_back(p.continuous);
    i.push_back(p.is_initial);
    s.push_back(p.is_sink);
  }
  return {torch::cat(d), torch::cat(c), torch::cat(i), torch::cat(s)};
}

States States::to(const torch::Device& device) const {
  return {discrete.to(device), continuous.to(device), is_initial.to(device), is_sink.to(device)};
}

States Trajectories::states_at(int64_t t) const {
  return {states_discrete[t], states_continuous[t], is_initial[t], is_sink[t]};
}

States Trajectories::terminal_states() const {
  auto b = terminal_discrete.size(0);
  auto opts = torch::TensorOptions().dtype(torch::kBool).device(terminal_discrete.device());
  // x is s0 exactly when the trajectory exits at once
  return {terminal_discrete, terminal_continuous, length.eq(1), torch::zeros({b}, opts)};
}

}  // namespace gfn

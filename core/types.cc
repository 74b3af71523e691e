#include "core/types.h"

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

template <>
const EnumNames<Execution>& enum_names<Execution>() {
  static const EnumNames<Execution> names{
      {Execution::kAuto, "auto"}, {Execution::kCompact, "compact"}, {Execution::kFixedShape, "fixed"}};
  return names;
}

Execution resolve_execution(Execution execution, const torch::Device& device) {
  if (execution != Execution::kAuto) return execution;
  return device.is_cpu() ? Execution::kCompact : Execution::kFixedShape;
}

RowSelection::RowSelection(torch::Tensor keep, Execution execution) : keep_(std::move(keep)) {
  TORCH_CHECK(execution != Execution::kAuto, "RowSelection: resolve the execution first");
  if (execution == Execution::kCompact) {
    index_ = keep_.nonzero().squeeze(1);
  } else {
    unkept_ = keep_.logical_not();
  }
}

int64_t RowSelection::size() const { return fixed() ? keep_.size(0) : index_.size(0); }

torch::Tensor RowSelection::take(const torch::Tensor& t) const { return fixed() ? t : t.index_select(0, index_); }

States RowSelection::take(const States& states) const { return fixed() ? states : states.index_select(index_); }

torch::Tensor RowSelection::fill_unkept(const torch::Tensor& t, double fill) const {
  if (!fixed()) return t;
  auto unkept = unkept_;
  while (unkept.dim() < t.dim()) unkept = unkept.unsqueeze(-1);
  return t.masked_fill(unkept, fill);
}

torch::Tensor RowSelection::put(const torch::Tensor& values, const torch::Tensor& base) const {
  if (!fixed()) return base.index_copy(0, index_, values);
  auto keep = keep_;
  while (keep.dim() < values.dim()) keep = keep.unsqueeze(-1);
  return torch::where(keep, values, base);
}

torch::Tensor RowSelection::open_unkept(const torch::Tensor& mask) const {
  return fixed() ? mask.logical_or(unkept_.unsqueeze(1)) : mask;
}

torch::Tensor RowSelection::or_unkept(const torch::Tensor& flag) const {
  return fixed() ? flag.logical_or(unkept_) : flag;
}

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

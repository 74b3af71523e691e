#include "core/optim.h"

#include "core/params.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include <ATen/core/grad_mode.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

namespace gfn {

namespace {

// one fused pass over a contiguous CPU parameter
template <typename T>
void adam_cpu(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, int64_t n, double b1, double b2, double step_size, double bc2_sqrt,
              double eps) {
  const T tb1 = static_cast<T>(b1), tb2 = static_cast<T>(b2);
  const T ob1 = static_cast<T>(1 - b1), ob2 = static_cast<T>(1 - b2);
  const T ss = static_cast<T>(step_size), bc = static_cast<T>(bc2_sqrt), te = static_cast<T>(eps);
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i];
    const T mi = tb1 * m[i] + ob1 * gi;
    const T vi = tb2 * v[i] + ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= ss * mi / (std::sqrt(vi) / bc + te);
  }
}

}  // namespace

FusedAdam::FusedAdam(std::vector<AdamGroup> groups, double beta1, double beta2, double eps)
    : groups_(std::move(groups)), beta1_(beta1), beta2_(beta2), eps_(eps) {
  for (const auto& g : groups_) {
    if (!(g.lr > 0.0)) throw std::invalid_argument("FusedAdam: learning rates must be > 0");
    std::vector<torch::Tensor> m, v;
    for (const auto& p : g.params) {
      if (!p.is_leaf() || !p.requires_grad())
        throw std::invalid_argument("FusedAdam: parameters must be leaf tensors that require grad");
      m.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
      v.push_back(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    }
    exp_avg_.push_back(std::move(m));
    exp_avg_sq_.push_back(std::move(v));
  }
}

void FusedAdam::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.mutable_grad() = torch::Tensor();
}

void FusedAdam::set_device_state(bool on) {
  if (!on) {
    if (device_state()) steps_ = steps();
    step_tensor_ = torch::Tensor();
    lr_tensors_.clear();
    return;
  }
  if (device_state()) return;
  torch::Device device(torch::kCPU);
  for (const auto& g : groups_)
    if (!g.params.empty()) device = g.params.front().device();
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  step_tensor_ = torch::full({}, static_cast<double>(steps_), f64);
  lr_tensors_.clear();
  for (const auto& g : groups_) lr_tensors_.push_back(torch::full({}, g.lr, f64));
}

void FusedAdam::sync_learning_rates() {
  at::NoGradGuard no_grad;
  for (size_t gi = 0; gi < lr_tensors_.size(); ++gi) lr_tensors_[gi].fill_(groups_[gi].lr);
}

int64_t FusedAdam::steps() const {
  return device_state() ? static_cast<int64_t>(step_tensor_.item<double>()) : steps_;
}

namespace {

// Whether any of the n IEEE values at `p` (bit patterns of type U) is a NaN or an infinity: its
// exponent field all ones. (bits & exponent) + lowest exponent bit carries into the sign bit
// exactly then, so an OR of those sums, an integer reduction the compiler vectorises (a float
// sum would not be: reassociation is not allowed), has its top bit set.
template <class U>
bool any_nonfinite_bits(const void* p, int64_t n, U exponent, U lowest) {
  const U top = U{1} << (8 * sizeof(U) - 1);
  U any = 0;
  const auto* bytes = static_cast<const unsigned char*>(p);
  for (int64_t i = 0; i < n; ++i) {
    U bits;
    std::memcpy(&bits, bytes + i * static_cast<int64_t>(sizeof(U)), sizeof(U));
    any |= (bits & exponent) + lowest;
  }
  return (any & top) != 0;
}

}  // namespace

bool all_finite(const torch::Tensor& t) {
  if (t.is_cpu() && t.is_contiguous()) {
    if (t.scalar_type() == torch::kFloat32)
      return !any_nonfinite_bits<uint32_t>(t.data_ptr(), t.numel(), 0x7f800000u, 0x00800000u);
    if (t.scalar_type() == torch::kFloat64)
      return !any_nonfinite_bits<uint64_t>(t.data_ptr(), t.numel(), 0x7ff0000000000000ull, 0x0010000000000000ull);
  }
  if (!t.is_floating_point()) return true;
  return torch::isfinite(t).all().item<bool>();
}

bool FusedAdam::step() {
  at::NoGradGuard no_grad;
  if (reducer_) {
    std::vector<torch::Tensor> params;
    for (const auto& g : groups_) params.insert(params.end(), g.params.begin(), g.params.end());
    reducer_(params);
  }
  last_skipped_ = false;
  if (!device_state()) {
    for (const auto& g : groups_)
      for (const auto& p : g.params)
        if (p.grad().defined() && !all_finite(p.grad())) {
          nonfinite_group_ = g.name.empty() ? "unnamed" : g.name;
          last_skipped_ = true;
          return false;
        }
  }
  if (device_state()) {
    // the same update from device scalars: step_size = lr / (1 - b1^t), sqrt(1 - b2^t)
    step_tensor_.add_(1.0);
    auto bc1 = 1.0 - torch::pow(beta1_, step_tensor_);
    auto bc2_sqrt = (1.0 - torch::pow(beta2_, step_tensor_)).sqrt();
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      auto step_size = lr_tensors_[gi] / bc1;
      for (size_t pi = 0; pi < groups_[gi].params.size(); ++pi) {
        auto& p = groups_[gi].params[pi];
        const auto& grad = p.grad();
        if (!grad.defined()) continue;
        auto& m = exp_avg_[gi][pi];
        auto& v = exp_avg_sq_[gi][pi];
        m.mul_(beta1_).add_(grad, 1.0 - beta1_);
        v.mul_(beta2_).addcmul_(grad, grad, 1.0 - beta2_);
        auto denom = (v.sqrt() / bc2_sqrt.to(v.scalar_type())).add_(eps_);
        p.sub_(m / denom * step_size.to(p.scalar_type()));
      }
    }
    return true;
  }
  ++steps_;
  const double t = static_cast<double>(steps_);
  const double bc1 = 1.0 - std::pow(beta1_, t);
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2_, t));
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& group = groups_[gi];
    const double step_size = group.lr / bc1;
    for (size_t pi = 0; pi < group.params.size(); ++pi) {
      auto& p = group.params[pi];
      const auto& grad = p.grad();
      if (!grad.defined()) continue;
      auto& m = exp_avg_[gi][pi];
      auto& v = exp_avg_sq_[gi][pi];
      if (p.is_cpu() && p.is_contiguous() && (p.scalar_type() == torch::kFloat32 || p.scalar_type() == torch::kFloat64)) {
        auto g = grad.contiguous();
        if (p.scalar_type() == torch::kFloat32) {
          adam_cpu(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(), p.numel(),
                   beta1_, beta2_, step_size, bc2_sqrt, eps_);
        } else {
          adam_cpu(p.data_ptr<double>(), g.data_ptr<double>(), m.data_ptr<double>(), v.data_ptr<double>(),
                   p.numel(), beta1_, beta2_, step_size, bc2_sqrt, eps_);
        }
      } else {
        // the same update as tensor operations (other devices, other layouts)
        m.mul_(beta1_).add_(grad, 1.0 - beta1_);
        v.mul_(beta2_).addcmul_(grad, grad, 1.0 - beta2_);
        auto denom = (v.sqrt() / bc2_sqrt).add_(eps_);
        p.addcdiv_(m, denom, -step_size);
      }
    }
  }
  return true;
}

}  // namespace gfn

namespace gfn {

void FusedAdam::save(torch::serialize::OutputArchive& archive, const std::string& prefix) const {
  archive.write(prefix + "steps", torch::tensor(steps()), /*is_buffer=*/true);
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const std::string g = prefix + std::to_string(gi) + ".";
    archive.write(g + "lr", torch::tensor(groups_[gi].lr, torch::kFloat64), true);
    for (size_t pi = 0; pi < exp_avg_[gi].size(); ++pi) {
      archive.write(g + "m." + std::to_string(pi), exp_avg_[gi][pi], true);
      archive.write(g + "v." + std::to_string(pi), exp_avg_sq_[gi][pi], true);
    }
  }
}

void FusedAdam::load(torch::serialize::InputArchive& archive, const std::string& prefix) {
  auto read = [&](const std::string& key, const torch::Tensor* like) {
    torch::Tensor t;
    if (!archive.try_read(key, t, /*is_buffer=*/true)) throw std::runtime_error("no entry '" + key + "'");
    if (like != nullptr && t.sizes() != like->sizes())
      throw std::runtime_error("entry '" + key + "' has another shape than this optimiser's parameter");
    return t;
  };
  const int64_t steps = read(prefix + "steps", nullptr).item<int64_t>();
  at::NoGradGuard no_grad;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const std::string g = prefix + std::to_string(gi) + ".";
    groups_[gi].lr = read(g + "lr", nullptr).item<double>();
    for (size_t pi = 0; pi < exp_avg_[gi].size(); ++pi) {
      exp_avg_[gi][pi].copy_(read(g + "m." + std::to_string(pi), &exp_avg_[gi][pi]));
      exp_avg_sq_[gi][pi].copy_(read(g + "v." + std::to_string(pi), &exp_avg_sq_[gi][pi]));
    }
  }
  steps_ = steps;
  if (device_state()) {
    step_tensor_.fill_(static_cast<double>(steps));
    sync_learning_rates();
  }
}

void FusedAdam::load(torch::serialize::InputArchive& archive, const std::string& prefix, const std::string& source) {
  try {
    load(archive, prefix);
  } catch (const std::exception& e) {
    throw ConfigError(source + ": " + first_line(e) + " (not a checkpoint of this config)");
  }
}

}  // namespace gfn

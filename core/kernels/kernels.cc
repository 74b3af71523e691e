#include "core/kernels/kernels.h"

#include <atomic>
#include <limits>
#include <stdexcept>

#include <torch/torch.h>

#include "core/kernels/rows.h"

#ifdef GFN_WITH_CUDA
#include <c10/cuda/CUDAStream.h>

#include "core/kernels/cuda_launch.h"
#endif

namespace gfn::fused {

namespace {

std::atomic<bool> kernels_on{true};

#ifdef GFN_WITH_CUDA
void* stream_of(const torch::Tensor& t) { return c10::cuda::getCurrentCUDAStream(t.device().index()).stream(); }
#endif

void require_cpu(const torch::Tensor& t, const char* what) {
  if (!t.is_cpu()) throw std::logic_error(std::string("gfn::fused::") + what + ": the host loop needs CPU tensors");
}

}  // namespace

bool enabled(const torch::Device& device) {
#ifdef GFN_WITH_CUDA
  return device.is_cuda() && kernels_on.load();
#else
  (void)device;
  return false;
#endif
}

void set_enabled(bool on) { kernels_on.store(on); }

CategoricalStep categorical_step_ops(const torch::Tensor& logits, const torch::Tensor& mask, const torch::Tensor& done,
                                     const torch::Tensor& gumbel, int64_t exit) {
  CategoricalStep r;
  const double neg_inf = -std::numeric_limits<double>::infinity();
  r.score = torch::where(done.defined() ? mask.logical_or(done.unsqueeze(1)) : mask, logits, neg_inf);
  r.component = (r.score + gumbel).argmax(1);
  r.stay = done.defined() ? r.component.eq(exit).logical_or(done) : r.component.eq(exit);
  return r;
}

CategoricalStep categorical_step_rows(const torch::Tensor& logits, const torch::Tensor& mask,
                                      const torch::Tensor& done, const torch::Tensor& gumbel, int64_t exit) {
  for (const auto* t : {&logits, &mask, &done, &gumbel}) require_cpu(*t, "categorical_step_rows");
  const int64_t B = logits.size(0), C = logits.size(1);
  auto l = logits.to(torch::kFloat32).contiguous(), g = gumbel.to(torch::kFloat32).contiguous();
  auto m = mask.contiguous(), d = done.contiguous();
  CategoricalStep r{torch::empty({B, C}, l.options()), torch::empty({B}, torch::kInt64), torch::empty({B}, torch::kBool)};
  for (int64_t b = 0; b < B; ++b)
    rows::categorical_step(l.data_ptr<float>() + b * C, m.data_ptr<bool>() + b * C, g.data_ptr<float>() + b * C,
                           d.data_ptr<bool>()[b], C, exit, r.score.data_ptr<float>() + b * C,
                           r.component.data_ptr<int64_t>() + b, r.stay.data_ptr<bool>() + b);
  return r;
}

CategoricalStep categorical_step(const torch::Tensor& logits, const torch::Tensor& mask, const torch::Tensor& done,
                                 const torch::Tensor& gumbel, int64_t exit) {
#ifdef GFN_WITH_CUDA
  if (enabled(logits.device()) && logits.scalar_type() == torch::kFloat32 && gumbel.scalar_type() == torch::kFloat32) {
    const int64_t B = logits.size(0), C = logits.size(1);
    auto l = logits.contiguous(), m = mask.contiguous(), g = gumbel.contiguous();
    auto d = done.defined() ? done.contiguous() : torch::zeros({B}, m.options());
    CategoricalStep r{torch::empty({B, C}, l.options()), torch::empty({B}, l.options().dtype(torch::kInt64)),
                      torch::empty({B}, l.options().dtype(torch::kBool))};
    cuda::categorical_step(l.data_ptr<float>(), m.data_ptr<bool>(), g.data_ptr<float>(), d.data_ptr<bool>(), B, C,
                           exit, r.score.data_ptr<float>(), r.component.data_ptr<int64_t>(), r.stay.data_ptr<bool>(),
                           stream_of(l));
    return r;
  }
#endif
  return categorical_step_ops(logits, mask, done, gumbel, exit);
}

torch::Tensor hypergrid_features(const torch::Tensor& x, int64_t height) {
  const int64_t B = x.size(0), n = x.size(1);
  auto xc = x.contiguous();
  auto out = torch::empty({B, n * height}, x.options().dtype(torch::kFloat32));
#ifdef GFN_WITH_CUDA
  if (x.is_cuda()) {
    cuda::hypergrid_features(xc.data_ptr<int64_t>(), B, n, height, out.data_ptr<float>(), stream_of(x));
    return out;
  }
#endif
  require_cpu(x, "hypergrid_features");
  for (int64_t b = 0; b < B; ++b)
    rows::hypergrid_features(xc.data_ptr<int64_t>() + b * n, n, height, out.data_ptr<float>() + b * n * height);
  return out;
}

torch::Tensor hypergrid_forward_mask(const torch::Tensor& x, int64_t height) {
  const int64_t B = x.size(0), n = x.size(1);
  auto xc = x.contiguous();
  auto out = torch::empty({B, n + 1}, x.options().dtype(torch::kBool));
#ifdef GFN_WITH_CUDA
  if (x.is_cuda()) {
    cuda::hypergrid_forward_mask(xc.data_ptr<int64_t>(), B, n, height, out.data_ptr<bool>(), stream_of(x));
    return out;
  }
#endif
  require_cpu(x, "hypergrid_forward_mask");
  for (int64_t b = 0; b < B; ++b)
    rows::hypergrid_forward_mask(xc.data_ptr<int64_t>() + b * n, n, height, out.data_ptr<bool>() + b * (n + 1));
  return out;
}

torch::Tensor hypergrid_step(const torch::Tensor& x, const torch::Tensor& component) {
  const int64_t B = x.size(0), n = x.size(1);
  auto xc = x.contiguous(), cc = component.contiguous();
  auto out = torch::empty({B, n}, x.options());
#ifdef GFN_WITH_CUDA
  if (x.is_cuda()) {
    cuda::hypergrid_step(xc.data_ptr<int64_t>(), cc.data_ptr<int64_t>(), B, n, out.data_ptr<int64_t>(), stream_of(x));
    return out;
  }
#endif
  require_cpu(x, "hypergrid_step");
  for (int64_t b = 0; b < B; ++b)
    rows::hypergrid_step(xc.data_ptr<int64_t>() + b * n, cc.data_ptr<int64_t>()[b], n, out.data_ptr<int64_t>() + b * n);
  return out;
}

}  // namespace gfn::fused

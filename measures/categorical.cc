#include "measures/categorical.h"

#include <limits>

#include <torch/torch.h>

namespace gfn {

torch::Tensor masked_log_softmax(const torch::Tensor& logits, const torch::Tensor& mask) {
  return torch::where(mask, logits, -std::numeric_limits<double>::infinity()).log_softmax(1);
}

torch::Tensor gumbel_noise(at::IntArrayRef sizes, torch::Generator& generator, const torch::TensorOptions& options) {
  return torch::rand(sizes, generator, options).clamp_min_(1e-30).log_().neg_().log_().neg_();
}

}  // namespace gfn

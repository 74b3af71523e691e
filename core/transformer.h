// The transformer trunk of policy.architecture = "transformer", for envs whose features are a
// sequence of one-hot tokens (Env::token_layout; the bit sequences): a pre-LN encoder
// (Vaswani et al. 2017; Xiong et al. 2020) over the tokens, mean-pooled into the hidden vector the
// policy heads read.
//     h_0 = onehot(x) W_in + b_in + P               (P: a learned position embedding, [L, d])
//     h  <- h + MHA(LN(h)) W_o + b_o                 (policy.heads heads of d / heads each)
//     h  <- h + GELU(LN(h) W_1 + b_1) W_2 + b_2      (feed-forward width 4 d)
//     out = mean_l LN(h)_l                           ([N, d], d = policy.hidden)
// Linear layers start as PyTorch's (uniform in +-1/sqrt(fan_in)), P ~ N(0, 0.02^2), the layer
// norms at gain 1 and bias 0, all drawn from the policy's initialisation generator.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

namespace torch::nn {
class Module;
}

namespace gfn {

struct TransformerWeights {
  int64_t length = 0, vocabulary = 0, heads = 1;
  torch::Tensor in_w, in_b, position, out_gain, out_bias;
  struct Layer {
    torch::Tensor ln1_g, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_g, ln2_b, ff1_w, ff1_b, ff2_w, ff2_b;
  };
  std::vector<Layer> layers;
};

// Registers the weights on `module` (names "tf_...") and returns them.
TransformerWeights make_transformer(torch::nn::Module& module, int64_t length, int64_t vocabulary, int64_t width,
                                    int64_t layers, int64_t heads, torch::Dtype dtype, torch::Generator& generator);

// [N, length * vocabulary] -> [N, width]
torch::Tensor transformer_forward(const torch::Tensor& features, const TransformerWeights& w);

}  // namespace gfn

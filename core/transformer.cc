#include "core/transformer.h"

#include <cmath>
#include <utility>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/estimator.h"

namespace gfn {

TransformerWeights make_transformer(torch::nn::Module& module, int64_t length, int64_t vocabulary, int64_t width,
                                    int64_t layers, int64_t heads, torch::Dtype dtype, torch::Generator& generator) {
  TransformerWeights w;
  w.length = length;
  w.vocabulary = vocabulary;
  w.heads = heads;
  auto opts = torch::TensorOptions().dtype(dtype);
  auto reg = [&](const std::string& name, torch::Tensor t) { return module.register_parameter(name, std::move(t)); };
  auto linear = [&](const std::string& name, int64_t in, int64_t out, torch::Tensor& weight, torch::Tensor& bias) {
    auto [lw, lb] = make_linear(in, out, dtype, generator);
    weight = reg(name + "_weight", lw);
    bias = reg(name + "_bias", lb);
  };
  linear("tf_in", vocabulary, width, w.in_w, w.in_b);
  w.position = reg("tf_position", torch::empty({length, width}, opts).normal_(0.0, 0.02, generator));
  for (int64_t l = 0; l < layers; ++l) {
    TransformerWeights::Layer layer;
    const std::string p = fmt::format("tf{}_", l);
    layer.ln1_g = reg(p + "ln1_gain", torch::ones({width}, opts));
    layer.ln1_b = reg(p + "ln1_bias", torch::zeros({width}, opts));
    linear(p + "qkv", width, 3 * width, layer.qkv_w, layer.qkv_b);
    linear(p + "o", width, width, layer.o_w, layer.o_b);
    layer.ln2_g = reg(p + "ln2_gain", torch::ones({width}, opts));
    layer.ln2_b = reg(p + "ln2_bias", torch::zeros({width}, opts));
    linear(p + "ff1", width, 4 * width, layer.ff1_w, layer.ff1_b);
    linear(p + "ff2", 4 * width, width, layer.ff2_w, layer.ff2_b);
    w.layers.push_back(layer);
  }
  w.out_gain = reg("tf_out_gain", torch::ones({width}, opts));
  w.out_bias = reg("tf_out_bias", torch::zeros({width}, opts));
  return w;
}

torch::Tensor transformer_forward(const torch::Tensor& features, const TransformerWeights& w) {
  const int64_t N = features.size(0), L = w.length, d = w.in_w.size(1), H = w.heads, dh = d / H;
  auto x = features.to(w.in_w.scalar_type()).view({N, L, w.vocabulary});
  auto h = torch::matmul(x, w.in_w) + w.in_b + w.position;  // [N, L, d]
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  for (const auto& layer : w.layers) {
    auto a = torch::layer_norm(h, {d}, layer.ln1_g, layer.ln1_b);
    auto qkv = (torch::matmul(a, layer.qkv_w) + layer.qkv_b).view({N, L, 3, H, dh}).permute({2, 0, 3, 1, 4});
    auto att = torch::softmax(torch::matmul(qkv[0], qkv[1].transpose(-2, -1)) * scale, -1);  // [N, H, L, L]
    auto o = torch::matmul(att, qkv[2]).transpose(1, 2).reshape({N, L, d});
    h = h + torch::matmul(o, layer.o_w) + layer.o_b;
    auto f = torch::layer_norm(h, {d}, layer.ln2_g, layer.ln2_b);
    h = h + torch::matmul(torch::gelu(torch::matmul(f, layer.ff1_w) + layer.ff1_b), layer.ff2_w) + layer.ff2_b;
  }
  return torch::layer_norm(h, {d}, w.out_gain, w.out_bias).mean(1);
}

}  // namespace gfn

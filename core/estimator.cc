#include "core/estimator.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>
#include <torch/serialize/archive.h>

#include "core/file_io.h"

namespace gfn {

template <>
const EnumNames<Activation>& enum_names<Activation>() {
  static const EnumNames<Activation> names{
      {Activation::kRelu, "relu"},
      {Activation::kLeakyRelu, "leaky_relu"},
      {Activation::kElu, "elu"},
      {Activation::kGelu, "gelu"}};
  return names;
}

template <>
const EnumNames<Architecture>& enum_names<Architecture>() {
  static const EnumNames<Architecture> names{
      {Architecture::kMlp, "mlp"}, {Architecture::kTime, "time"}, {Architecture::kTransformer, "transformer"}};
  return names;
}

template <>
const EnumNames<BackwardPolicy>& enum_names<BackwardPolicy>() {
  static const EnumNames<BackwardPolicy> names{{BackwardPolicy::kUniform, "uniform"},
                                               {BackwardPolicy::kLearned, "learned"},
                                               {BackwardPolicy::kTlm, "tlm"},
                                               {BackwardPolicy::kMaxEnt, "maxent"},
                                               {BackwardPolicy::kFixed, "fixed"}};
  return names;
}

template <>
const EnumNames<Precision>& enum_names<Precision>() {
  static const EnumNames<Precision> names{{Precision::kFp32, "fp32"}, {Precision::kBf16, "bf16"}};
  return names;
}

const OptionTable<EstimatorOptions>& EstimatorOptions::keys() {
  using O = EstimatorOptions;
  static const auto table =
      OptionTable<O>()
          .add("policy.architecture", &O::architecture,
               "the network: an MLP on the env's features (mlp), or for time-indexed envs (diffusion) a sinusoidal "
               "time embedding, a state embedding and a joint MLP with a zero-initialised output (time), or for envs "
               "whose features are tokens (bitseq) a pre-LN transformer encoder, mean-pooled (transformer)")
          .add("policy.hidden", &O::hidden, "width of each hidden layer of the MLP trunk", in(1, 1 << 16))
          .add("policy.layers", &O::layers, "number of hidden layers of the MLP trunk (transformer: encoder layers)",
               in(1, 64))
          .add("policy.heads", &O::heads, "transformer: attention heads (a divisor of policy.hidden)", in(1, 64))
          .add("policy.activation", &O::activation, "nonlinearity of the trunk")
          .add("policy.backward", &O::backward,
               "backward policy P_B: uniform, a learned head on the trunk (trained through the loss), or tlm (its own "
               "network trained by trajectory likelihood maximisation, scored through an EMA target), or maxent "
               "(N(s) / N(s'), envs that count paths: hypergrid, sets), or fixed (the env's own kernel: the "
               "diffusion env's Brownian bridge)")
          .add("policy.trunk_precision", &O::trunk_precision,
               "mixed precision: the trunk's matrix products in bf16 (float32 master weights; heads, log-softmax "
               "and losses in float32, densities and chart coordinates in float64), or all in fp32")
          .add("policy.init_log_z", &O::init_log_z, "initial value of the learned log Z", in(-1e6, 1e6))
          .nest(&O::head, HeadOptions::keys())
          .add("policy.time_harmonics", &O::time_harmonics,
               "time architecture: frequencies of the sinusoidal time embedding (0.1 to 100)", in(1, 4096))
          .add("policy.embedding", &O::embedding, "time architecture: width of the time and state embeddings",
               in(1, 1 << 16))
          .add("policy.drift_clip", &O::drift_clip, "time architecture: bound of |drift| of a forward piece on R^k",
               above(0))
          .add("policy.log_var_range", &O::log_var_range,
               "time architecture: the learned log-variance correction of a forward piece on R^k lies in +-range "
               "(0: the env's reference variance)",
               in(0, 20))
          .add("policy.langevin", &O::langevin,
               "time architecture: the drift gets a learned time-dependent multiple of grad log R (the Langevin "
               "parametrisation)")
          .add("policy.langevin_clip", &O::langevin_clip, "bound of |grad log R| in the Langevin term", above(0))
          .add("policy.backward_min_concentration", &O::backward_min_concentration,
               "lower bound of the Beta concentrations of a learned backward kernel (learned, tlm); >= 1 keeps its "
               "density bounded, which TLM's likelihood maximisation needs on envs with Beta pieces",
               above(0).at_most(1e6))
          .rule([](const O& o) {
            if (o.architecture == Architecture::kTransformer && o.hidden % o.heads != 0)
              return fmt::format("policy.heads = {}: expected a divisor of policy.hidden = {}", o.heads, o.hidden);
            if (o.architecture == Architecture::kTransformer && o.trunk_precision != Precision::kFp32)
              return std::string("policy.trunk_precision = \"bf16\": the transformer computes in float32 only");
            // the floor of a backward kernel's Betas matters only where P_B has Betas of its own
            return !o.backward_has_concentrations() || o.backward_min_concentration < o.head.max_concentration
                       ? std::string()
                       : fmt::format("policy.backward_min_concentration = {}: expected a float in (0, "
                                     "policy.max_concentration = {}) with policy.backward = \"{}\"",
                                     o.backward_min_concentration, o.head.max_concentration,
                                     enum_name(o.backward));
          });
  return table;
}

std::optional<torch::Dtype> EstimatorOptions::trunk_dtype() const {
  if (trunk_precision == Precision::kBf16) return torch::kBFloat16;
  return std::nullopt;
}

// the weight is stored [in, out] so that x W needs no transpose (a contiguous right operand makes
// OpenBLAS's small GEMMs ~25% faster)
std::pair<torch::Tensor, torch::Tensor> make_linear(int64_t in, int64_t out, torch::Dtype dtype,
                                                    torch::Generator& generator) {
  double bound = 1.0 / std::sqrt(static_cast<double>(in));
  auto opts = torch::TensorOptions().dtype(dtype);
  auto w = torch::empty({in, out}, opts).uniform_(-bound, bound, generator);
  auto b = torch::empty({out}, opts).uniform_(-bound, bound, generator);
  return {w, b};
}

std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> make_mlp(torch::nn::Module& module,
                                                                           const std::string& prefix, int64_t in,
                                                                           int64_t hidden, int64_t layers,
                                                                           torch::Dtype dtype,
                                                                           torch::Generator& generator) {
  std::vector<torch::Tensor> weights, biases;
  for (int64_t l = 0; l < layers; ++l) {
    auto [w, b] = make_linear(in, hidden, dtype, generator);
    weights.push_back(module.register_parameter(fmt::format("{}{}_weight", prefix, l), w));
    biases.push_back(module.register_parameter(fmt::format("{}{}_bias", prefix, l), b));
    in = hidden;
  }
  return {weights, biases};
}

torch::Tensor mlp_forward(const torch::Tensor& features, const std::vector<torch::Tensor>& weights,
                          const std::vector<torch::Tensor>& biases, Activation activation,
                          std::optional<torch::Dtype> compute) {
  const torch::Dtype master = weights[0].scalar_type();
  const bool cast = compute.has_value() && *compute != master;
  auto h = features.to(cast ? *compute : master);
  for (size_t l = 0; l < weights.size(); ++l) {
    h = cast ? torch::addmm(biases[l].to(*compute), h, weights[l].to(*compute)) : torch::addmm(biases[l], h, weights[l]);
    switch (activation) {
      case Activation::kRelu: h = torch::relu_(h); break;
      case Activation::kLeakyRelu: h = torch::leaky_relu_(h, 0.01); break;
      case Activation::kElu: h = torch::elu(h); break;
      case Activation::kGelu: h = torch::gelu(h); break;
    }
  }
  return cast ? h.to(master) : h;
}

bool EstimatorOptions::backward_has_concentrations() const {
  return backward == BackwardPolicy::kLearned || backward == BackwardPolicy::kTlm || backward == BackwardPolicy::kFixed;
}

HeadOptions EstimatorOptions::backward_head_options() const {
  HeadOptions h = head;
  // a uniform or max-entropy P_B draws no Beta: its head keeps the forward bounds, and
  // policy.backward_min_concentration is neither read nor checked
  if (backward_has_concentrations()) h.min_concentration = backward_min_concentration;
  if (backward == BackwardPolicy::kFixed) h.mixture_components = h.initial_mixture_components = 1;  // Env::fixed_backward_outputs
  return h;
}

PolicyContext policy_context(const Env& env) {
  PolicyContext c;
  c.time = env.time_indexing();
  c.tokens = env.token_layout();
  if (env.has_log_reward_gradient()) {
    const Env* e = &env;
    c.reward_gradient = [e](const torch::Tensor& x) {
      const int64_t n = x.size(0);
      auto opts = x.options();
      States s{torch::zeros({n, e->discrete_dim()}, opts.dtype(torch::kInt64)), x.to(torch::kFloat64),
               torch::zeros({n}, opts.dtype(torch::kBool)), torch::zeros({n}, opts.dtype(torch::kBool))};
      return e->log_reward_gradient(s);
    };
  }
  return c;
}

PolicyNetImpl::PolicyNetImpl(const ActionSpec& spec, int64_t in_features, const EstimatorOptions& options,
                             torch::Generator& generator, PolicyContext context)
    : options_(options),
      forward_head_(spec.forward, spec.coord_dim, options.head),
      backward_head_(spec.backward, spec.coord_dim, options.backward_head_options()),
      context_(std::move(context)) {
  options_.validate();
  const int64_t forward_outputs = forward_head_.output_size();
  const int64_t backward_outputs = backward_head_.output_size();
  if (options_.backward == BackwardPolicy::kUniform || options_.backward == BackwardPolicy::kMaxEnt)
    backward_head_.require_uniform();
  const int64_t width = options_.hidden;
  if (options_.architecture == Architecture::kTime) {
    build_time_network(in_features, generator);
  } else if (options_.architecture == Architecture::kTransformer) {
    if (!context_.tokens || context_.tokens->length * context_.tokens->vocabulary != in_features)
      throw ConfigError("policy.architecture = \"transformer\": the env's features are not a sequence of tokens "
                        "(Env::token_layout; the bitseq env's are): use mlp");
    transformer_ = make_transformer(*this, context_.tokens->length, context_.tokens->vocabulary, options_.hidden,
                                    options_.layers, options_.heads, options_.dtype, generator);
  } else {
    // an MLP trunk of options_.layers hidden layers
    std::tie(weights_, biases_) = make_mlp(*this, "trunk", in_features, options_.hidden, options_.layers,
                                           options_.dtype, generator);
  }
  auto [fw, fb] = make_linear(width, forward_outputs, options_.dtype, generator);
  if (options_.architecture == Architecture::kTime) fw.zero_(), fb.zero_();  // the env's reference step
  forward_weight_ = register_parameter("forward_weight", fw);
  forward_bias_ = register_parameter("forward_bias", fb);
  if (options_.backward == BackwardPolicy::kLearned && backward_outputs > 0) {
    auto [bw, bb] = make_linear(width, backward_outputs, options_.dtype, generator);
    backward_weight_ = register_parameter("backward_weight", bw);
    backward_bias_ = register_parameter("backward_bias", bb);
  }
}

torch::Tensor PolicyNetImpl::trunk(const torch::Tensor& features) {
  if (options_.architecture == Architecture::kTime) return time_trunk(features);
  if (options_.architecture == Architecture::kTransformer) return transformer_forward(features, transformer_);
  return mlp_forward(features, weights_, biases_, options_.activation, options_.trunk_dtype());
}

torch::Tensor PolicyNetImpl::forward_outputs(const torch::Tensor& hidden, const torch::Tensor& features) {
  if (options_.architecture == Architecture::kTime) return time_outputs(hidden, features);
  return torch::addmm(forward_bias_, hidden, forward_weight_);
}

torch::Tensor PolicyNetImpl::forward_logits(const torch::Tensor& hidden) {
  return forward_head_.logits(torch::addmm(forward_bias_, hidden, forward_weight_));
}

torch::Tensor PolicyNetImpl::backward_outputs(const torch::Tensor& hidden) {
  TORCH_CHECK(learned_backward(), "backward_outputs: the backward policy is not learned");
  return torch::addmm(backward_bias_, hidden, backward_weight_);
}

torch::Tensor PolicyNetImpl::backward_logits(const torch::Tensor& hidden) {
  return backward_head_.logits(backward_outputs(hidden));
}

Estimators::Estimators(const Env& env, const EstimatorOptions& options, torch::Generator& generator,
                       const torch::Device& device) {
  options.validate();
  if (options.backward == BackwardPolicy::kMaxEnt && !env.has_path_counts())
    throw ConfigError(fmt::format("policy.backward = \"maxent\": env '{}' does not count its paths (the max-entropy "
                                  "P_B needs N(s), e.g. the hypergrid's): use uniform, learned or tlm",
                                  env.name()));
  // TLM's P_B is its own network (components/tlm.h): the policy has no backward head
  EstimatorOptions forward = options;
  if (options.backward == BackwardPolicy::kTlm) forward.backward = BackwardPolicy::kUniform;
  needs_backward_net_ = options.backward == BackwardPolicy::kTlm;
  if (options.backward == BackwardPolicy::kFixed && !env.has_fixed_backward())
    throw ConfigError(fmt::format("policy.backward = \"fixed\": env '{}' supplies no backward kernel of its own (the "
                                  "diffusion env does): use uniform, learned or tlm",
                                  env.name()));
  policy = PolicyNet(env.action_spec(), env.feature_dim(), forward, generator, policy_context(env));
  policy->to(device);
  log_z = torch::full({}, options.init_log_z, torch::TensorOptions().dtype(options.dtype).device(device))
              .set_requires_grad(true);
}

LogZNetImpl::LogZNetImpl(int64_t conditions, int64_t hidden, int64_t layers, Activation activation, torch::Dtype dtype,
                         torch::Generator& generator)
    : activation_(activation) {
  std::tie(weights_, biases_) = make_mlp(*this, "layer", conditions, hidden, layers, dtype, generator);
  out_weight_ = register_parameter("out_weight", torch::zeros({hidden, 1}, dtype));
  out_bias_ = register_parameter("out_bias", torch::zeros({1}, dtype));
}

torch::Tensor LogZNetImpl::forward(const torch::Tensor& condition) {
  auto h = mlp_forward(condition.to(out_weight_.scalar_type()), weights_, biases_, activation_);
  return torch::addmm(out_bias_, h, out_weight_).squeeze(1);
}

torch::Tensor Estimators::log_z_at(const Env& env, const States& states) const {
  if (!log_z_net) return log_z;
  return log_z + log_z_net.ptr()->forward(env.condition_features(states).to(log_z.device())).to(log_z.scalar_type());
}

Estimators Estimators::at_condition(const Env& env, const torch::Device& device) const {
  torch::NoGradGuard no_grad;
  Estimators at = *this;
  at.log_z = log_z_at(env, env.initial_states(1, device)).detach().reshape({}).clone();
  at.log_z_net = nullptr;
  return at;
}

PolicyNetImpl& Estimators::backward_policy() const {
  if (backward) return *backward.ptr();
  if (needs_backward_net_)
    throw std::logic_error("Estimators: policy.backward = \"tlm\" scores P_B with TLM's network, which is not set "
                           "(create its component: components/tlm.h)");
  return *policy.ptr();
}

void Estimators::write(torch::serialize::OutputArchive& archive) const {
  policy->save(archive);
  archive.write("log_z", log_z, /*is_buffer=*/false);
  if (log_z_net) write_module(archive, "log_z_net.", *log_z_net);
}

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::string bytes;
  archive.save_to([&bytes](const void* data, size_t n) {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  return bytes;
}

void save_archive(torch::serialize::OutputArchive& archive, const std::string& path) {
  write_file_atomic(path, archive_bytes(archive), /*sync=*/true);
}

torch::Tensor read_archive_entry(torch::serialize::InputArchive& archive, const std::string& source,
                                 const std::string& key, const torch::Tensor& into, bool is_buffer) {
  torch::Tensor t;
  if (!archive.try_read(key, t, is_buffer))
    throw ConfigError(fmt::format("{}: no entry '{}' (not a model of this config)", source, key));
  if (into.defined() && t.sizes() != into.sizes())
    throw ConfigError(fmt::format("{}: '{}' has shape {} but this config builds {} (not a model of this config)",
                                  source, key, fmt::join(t.sizes(), "x"), fmt::join(into.sizes(), "x")));
  return t;
}

void read_module(torch::serialize::InputArchive& archive, const std::string& source, const std::string& prefix,
                 torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.named_parameters())
    p.value().copy_(read_archive_entry(archive, source, prefix + p.key(), p.value(), false));
}

void write_module(torch::serialize::OutputArchive& archive, const std::string& prefix,
                  const torch::nn::Module& module) {
  for (const auto& p : module.named_parameters()) archive.write(prefix + p.key(), p.value());
}

void Estimators::read(torch::serialize::InputArchive& archive, const std::string& source) {
  // every parameter must be there with the shape this config builds
  read_module(archive, source, "", *policy);
  torch::NoGradGuard no_grad;
  log_z.copy_(read_archive_entry(archive, source, "log_z", log_z, false));
  if (log_z_net) read_module(archive, source, "log_z_net.", *log_z_net);
}

}  // namespace gfn

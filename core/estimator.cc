#include "core/estimator.h"

#include "core/potential.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

namespace gfn {

void EstimatorOptions::validate() const {
  if (hidden < 1) throw ConfigError(fmt::format("policy.hidden = {}: expected an integer >= 1", hidden));
  if (layers < 1) throw ConfigError(fmt::format("policy.layers = {}: expected an integer >= 1", layers));
  if (!(backward_min_concentration > 0.0 && backward_min_concentration < head.max_concentration))
    throw ConfigError(fmt::format("policy.backward_min_concentration = {}: expected a float in (0, "
                                  "policy.max_concentration = {})",
                                  backward_min_concentration, head.max_concentration));
  if (potential_hidden < 1)
    throw ConfigError(fmt::format("objective.led_hidden = {}: expected an integer >= 1", potential_hidden));
  if (potential_layers < 1)
    throw ConfigError(fmt::format("objective.led_layers = {}: expected an integer >= 1", potential_layers));
  if (!std::isfinite(init_log_z))
    throw ConfigError(fmt::format("policy.init_log_z = {}: expected a finite float", init_log_z));
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
    }
  }
  return cast ? h.to(master) : h;
}

HeadOptions EstimatorOptions::backward_head_options() const {
  HeadOptions h = head;
  h.min_concentration = backward_min_concentration;
  return h;
}

PolicyNetImpl::PolicyNetImpl(const ActionSpec& spec, int64_t in_features, const EstimatorOptions& options,
                             torch::Generator& generator)
    : options_(options),
      forward_head_(spec.forward, spec.coord_dim, options.head),
      backward_head_(spec.backward, spec.coord_dim, options.backward_head_options()) {
  options_.validate();
  const int64_t forward_outputs = forward_head_.output_size();
  const int64_t backward_outputs = backward_head_.output_size();
  if (options_.backward == BackwardPolicy::kUniform || options_.backward == BackwardPolicy::kMaxEnt)
    backward_head_.require_uniform();
  // an MLP trunk of options_.layers hidden layers, its parameters named <prefix><l>_weight/_bias
  auto make_trunk = [&](const std::string& prefix, std::vector<torch::Tensor>& weights,
                        std::vector<torch::Tensor>& biases) {
    int64_t in = in_features;
    for (int64_t l = 0; l < options_.layers; ++l) {
      auto [w, b] = make_linear(in, options_.hidden, options_.dtype, generator);
      weights.push_back(register_parameter(fmt::format("{}{}_weight", prefix, l), w));
      biases.push_back(register_parameter(fmt::format("{}{}_bias", prefix, l), b));
      in = options_.hidden;
    }
  };
  make_trunk("trunk", weights_, biases_);
  const int64_t width = options_.hidden;
  auto [fw, fb] = make_linear(width, forward_outputs, options_.dtype, generator);
  forward_weight_ = register_parameter("forward_weight", fw);
  forward_bias_ = register_parameter("forward_bias", fb);
  if (options_.backward == BackwardPolicy::kLearned && backward_outputs > 0) {
    auto [bw, bb] = make_linear(width, backward_outputs, options_.dtype, generator);
    backward_weight_ = register_parameter("backward_weight", bw);
    backward_bias_ = register_parameter("backward_bias", bb);
  }
  if (options_.flow) {
    if (options_.flow_trunk == FlowTrunk::kSeparate) make_trunk("flow_trunk", flow_weights_, flow_biases_);
    auto [w, b] = make_linear(width, 1, options_.dtype, generator);
    flow_weight_ = register_parameter("flow_weight", w);
    flow_bias_ = register_parameter("flow_bias", b);
  }
}

torch::Tensor PolicyNetImpl::log_flow(const torch::Tensor& hidden, const torch::Tensor& features) {
  TORCH_CHECK(has_flow(), "log_flow: the estimators have no flow head");
  const auto& h = flow_weights_.empty() ? hidden : mlp(features, flow_weights_, flow_biases_);
  return torch::addmm(flow_bias_, h, flow_weight_).squeeze(1);
}

torch::Tensor PolicyNetImpl::trunk(const torch::Tensor& features) { return mlp(features, weights_, biases_); }

torch::Tensor PolicyNetImpl::mlp(const torch::Tensor& features, const std::vector<torch::Tensor>& weights,
                                 const std::vector<torch::Tensor>& biases) const {
  return mlp_forward(features, weights, biases, options_.activation, options_.trunk_dtype);
}

torch::Tensor PolicyNetImpl::forward_outputs(const torch::Tensor& hidden) {
  return torch::addmm(forward_bias_, hidden, forward_weight_);
}

torch::Tensor PolicyNetImpl::forward_logits(const torch::Tensor& hidden) {
  return forward_head_.logits(forward_outputs(hidden));
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
  if (options.backward == BackwardPolicy::kMaxEnt && !env.has_path_counts())
    throw ConfigError(fmt::format("policy.backward = \"maxent\": env '{}' does not count its paths (the max-entropy "
                                  "P_B needs N(s), e.g. the hypergrid's): use uniform, learned or tlm",
                                  env.name()));
  // TLM maximises P_B's likelihood: Beta pieces with concentrations below 1 have unbounded
  // densities at the ends of [0, 1], where float32 coordinates land, and the loss diverges there
  // (measured on the Box 2-D: bench/RESULTS.md)
  if (options.backward == BackwardPolicy::kTlm && options.backward_min_concentration < 1.0)
    for (const auto& c : env.action_spec().backward.components)
      if (c.domain == Domain::kUnitCube || c.domain == Domain::kInterval)
        throw ConfigError(fmt::format(
            "policy.backward = \"tlm\" with policy.backward_min_concentration = {}: env '{}' has Beta backward "
            "pieces, whose likelihood is unbounded below concentration 1 (TLM's loss diverges): set it to 1 or more",
            options.backward_min_concentration, env.name()));
  EstimatorOptions forward = options;
  if (options.backward == BackwardPolicy::kTlm) forward.backward = BackwardPolicy::kUniform;  // no head of its own
  policy = PolicyNet(env.action_spec(), env.feature_dim(), forward, generator);
  policy->to(device);
  if (options.backward == BackwardPolicy::kTlm) {
    EstimatorOptions b = options;
    b.backward = BackwardPolicy::kLearned;
    b.flow = false;
    backward_online = PolicyNet(env.action_spec(), env.feature_dim(), b, generator);
    backward_target = PolicyNet(env.action_spec(), env.feature_dim(), b, generator);
    torch::NoGradGuard no_grad;
    auto target = backward_target->named_parameters();
    for (auto& p : backward_online->named_parameters()) {
      if (p.key() == "backward_weight" || p.key() == "backward_bias") p.value().zero_();  // uniform start
      target[p.key()].copy_(p.value()).set_requires_grad(false);
    }
    backward_online->to(device);
    backward_target->to(device);
  }
  if (options.potential) {
    potential = std::make_shared<PotentialNetImpl>(env.feature_dim(), options.potential_hidden,
                                                   options.potential_layers, options.activation, options.dtype,
                                                   generator);
    potential->to(device);
  }
  log_z = torch::full({}, options.init_log_z, torch::TensorOptions().dtype(options.dtype).device(device))
              .set_requires_grad(true);
}

std::vector<torch::Tensor> Estimators::policy_parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& p : policy->named_parameters())
    if (p.key().rfind("flow_", 0) != 0) out.push_back(p.value());
  return out;
}

std::vector<torch::Tensor> Estimators::tlm_parameters() const {
  std::vector<torch::Tensor> out;
  if (!tlm()) return out;
  for (const auto& p : backward_online->named_parameters())
    if (p.key().rfind("forward_", 0) != 0) out.push_back(p.value());  // its forward head is unused
  return out;
}

void Estimators::update_backward_target(double kappa) {
  TORCH_CHECK(tlm(), "update_backward_target: the backward policy is not TLM");
  torch::NoGradGuard no_grad;
  // both nets are built by the same constructor: their parameters come in the same order
  auto online = backward_online->parameters();
  auto target = backward_target->parameters();
  for (size_t i = 0; i < target.size(); ++i) target[i].lerp_(online[i], kappa);
}

std::vector<torch::Tensor> Estimators::potential_parameters() const {
  return potential ? potential->parameters() : std::vector<torch::Tensor>{};
}

std::vector<torch::Tensor> Estimators::flow_parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& p : policy->named_parameters())
    if (p.key().rfind("flow_", 0) == 0) out.push_back(p.value());
  return out;
}

void Estimators::write(torch::serialize::OutputArchive& archive) const {
  policy->save(archive);
  archive.write("log_z", log_z, /*is_buffer=*/false);
  if (tlm()) {
    for (const auto& p : backward_online->named_parameters()) archive.write("tlm_online." + p.key(), p.value());
    for (const auto& p : backward_target->named_parameters()) archive.write("tlm_target." + p.key(), p.value());
  }
  if (potential)
    for (const auto& p : potential->named_parameters()) archive.write("led_potential." + p.key(), p.value());
}

void Estimators::save(const std::string& path, int64_t iteration) const {
  torch::serialize::OutputArchive archive;
  write(archive);
  archive.write("iteration", torch::tensor(iteration), /*is_buffer=*/true);
  save_archive(archive, path);
}

void save_archive(torch::serialize::OutputArchive& archive, const std::string& path) {
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp + " to " + path);
}

namespace {

// Entry `key` of `archive`, of the shape of `into` when that is defined; ConfigError otherwise.
torch::Tensor read_entry(torch::serialize::InputArchive& archive, const std::string& source, const std::string& key,
                         const torch::Tensor& into, bool is_buffer) {
  torch::Tensor t;
  if (!archive.try_read(key, t, is_buffer))
    throw ConfigError(fmt::format("{}: no entry '{}' (not a model of this config)", source, key));
  if (into.defined() && t.sizes() != into.sizes())
    throw ConfigError(fmt::format("{}: '{}' has shape {} but this config builds {} (not a model of this config)",
                                  source, key, fmt::join(t.sizes(), "x"), fmt::join(into.sizes(), "x")));
  return t;
}

}  // namespace

void Estimators::read(torch::serialize::InputArchive& archive, const std::string& source) {
  // every parameter must be there with the shape this config builds
  torch::NoGradGuard no_grad;
  auto copy = [&](const std::string& key, torch::Tensor into) { into.copy_(read_entry(archive, source, key, into, false)); };
  for (auto& p : policy->named_parameters()) copy(p.key(), p.value());
  copy("log_z", log_z);
  if (tlm()) {
    for (auto& p : backward_online->named_parameters()) copy("tlm_online." + p.key(), p.value());
    for (auto& p : backward_target->named_parameters()) copy("tlm_target." + p.key(), p.value());
  }
  if (potential)
    for (auto& p : potential->named_parameters()) copy("led_potential." + p.key(), p.value());
}

int64_t Estimators::load(const std::string& path) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw ConfigError(fmt::format("{}: not a gfn model file ({})", path, first_line(e)));
  }
  read(archive, path);
  return read_entry(archive, path, "iteration", torch::Tensor(), true).item<int64_t>();
}

}  // namespace gfn

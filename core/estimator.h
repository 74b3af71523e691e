// The learnable parts of a GFlowNet, built from an environment's action specification:
// an MLP trunk on the env's features, a forward policy head (one logit per forward component),
// an optional learned backward head on the same trunk, and the scalar log Z.
//
// For a discrete kernel, log p_F(s -> s') = log softmax over the available components of the
// logits; a forced move (one available component) gets exactly 0. The uniform backward policy
// puts 1 / (number of available backward components) on each.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "core/archive.h"
#include "core/env.h"
#include "core/kernel_head.h"
#include "core/options.h"
#include "core/transformer.h"
#include "measures/categorical.h"

namespace gfn {

enum class Activation { kRelu, kLeakyRelu, kElu, kGelu };
template <>
const EnumNames<Activation>& enum_names<Activation>();  // "relu", "leaky_relu", "elu", "gelu"
// The policy network (policy.architecture):
//   mlp   an MLP trunk on the env's features, linear heads on it;
//   time  for time-indexed envs (Env::time_indexing: diffusion samplers), as in PIS and the
//         diffusion-sampler papers: a sinusoidal embedding of t (policy.time_harmonics frequencies
//         from 0.1 to 100, sin and cos, then a 2-layer MLP to policy.embedding), a linear
//         embedding of the state's coordinates, and a joint MLP on both (policy.layers of
//         policy.hidden); the output layer starts at zero, so the forward kernel starts as the
//         env's reference step. A forward piece on R^k reads its location as a drift f(t, x),
//         clipped at policy.drift_clip and scaled into chart units by the env, and its log-scale
//         as a bounded correction (policy.log_var_range / 2) tanh(raw) of the reference step's
//         (0 when the range is 0: the reference variance). With policy.langevin the drift gets
//         a learned, time-dependent multiple (per coordinate) of grad log R, clipped at
//         policy.langevin_clip (Zhang & Chen 2022);
//   transformer  for envs whose features are a token sequence (Env::token_layout: the bit
//         sequences): a pre-LN encoder of policy.layers layers of width policy.hidden with
//         policy.heads heads over the tokens, mean-pooled (core/transformer.h); linear heads on it.
enum class Architecture { kMlp, kTime, kTransformer };
template <>
const EnumNames<Architecture>& enum_names<Architecture>();  // "mlp", "time", "transformer"
// P_B: uniform over the available backward components; a learned head on the policy trunk,
// trained through the GFlowNet loss ("naive"); or TLM (Gritsaev et al., ICLR 2025): its own
// network trained by trajectory likelihood maximisation, the loss scoring an EMA target of it
// (components/tlm.h); or the max-entropy P_B N(s) / N(s') of an env that counts its paths
// (Env::has_path_counts); or the env's own fixed kernel (Env::has_fixed_backward: the Brownian
// bridge of a diffusion sampler).
enum class BackwardPolicy { kUniform, kLearned, kTlm, kMaxEnt, kFixed };
template <>
const EnumNames<BackwardPolicy>& enum_names<BackwardPolicy>();  // "uniform", "learned", "tlm", "maxent", "fixed"
// The precision of the policy trunk's matrix products: float32, or bf16 from float32 master
// weights (mixed precision; heads, densities and losses stay float32).
enum class Precision { kFp32, kBf16 };
template <>
const EnumNames<Precision>& enum_names<Precision>();  // "fp32", "bf16"

// Building blocks shared by the networks: a Linear layer's parameters with PyTorch's default
// initialisation (uniform in +-1/sqrt(in)) drawn from `generator`, the weight stored [in, out];
// and an MLP's forward pass, the activation after every layer; with `compute` other than the
// weights' dtype (bf16), the layers run in `compute` on casts of the weights (gradients reach
// the weights in their own dtype) and the output comes back in the weights' dtype.
std::pair<torch::Tensor, torch::Tensor> make_linear(int64_t in, int64_t out, torch::Dtype dtype,
                                                    torch::Generator& generator);
// An MLP's hidden layers: `layers` of width `hidden` on `in` inputs, each drawn by make_linear
// from `generator` and registered on `module` as "<prefix><l>_weight" and "<prefix><l>_bias".
std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> make_mlp(torch::nn::Module& module,
                                                                           const std::string& prefix, int64_t in,
                                                                           int64_t hidden, int64_t layers,
                                                                           torch::Dtype dtype,
                                                                           torch::Generator& generator);
torch::Tensor mlp_forward(const torch::Tensor& features, const std::vector<torch::Tensor>& weights,
                          const std::vector<torch::Tensor>& biases, Activation activation,
                          std::optional<torch::Dtype> compute = std::nullopt);

struct EstimatorOptions : KeyedOptions<EstimatorOptions> {
  Architecture architecture = Architecture::kMlp;    // the network (above)
  int64_t hidden = 256;                              // width of every hidden layer, >= 1
  int64_t layers = 2;                                // number of hidden layers (transformer: encoder layers), >= 1
  int64_t heads = 4;                                 // transformer: attention heads (divides hidden)
  Activation activation = Activation::kRelu;         // nonlinearity of the trunk
  BackwardPolicy backward = BackwardPolicy::kUniform;  // P_B
  Precision trunk_precision = Precision::kFp32;      // mixed precision of the trunk
  double init_log_z = 0.0;                           // initial value of log Z
  HeadOptions head;                                  // densities of continuous pieces
  // The time architecture (policy.architecture = "time"):
  int64_t time_harmonics = 64;   // frequencies of the sinusoidal time embedding
  int64_t embedding = 64;        // width of the time and state embeddings
  double drift_clip = 1e4;       // |drift| bound of a forward piece on R^k
  double log_var_range = 4.0;    // bound of the learned log-variance correction (0: the reference variance)
  bool langevin = false;         // drift + s(t) * grad log R
  double langevin_clip = 1e2;    // |grad log R| bound in the Langevin term
  // The lower bound of the Beta concentrations of a learned backward kernel (learned, tlm). At 1
  // or more its density is bounded, so maximising P_B's likelihood (TLM) cannot diverge on
  // coordinates that round to the ends of [0, 1]; at head.min_concentration's 0.1 it can.
  double backward_min_concentration = 0.1;
  torch::Dtype dtype = torch::kFloat32;              // parameter dtype (float64 for gradient checks); not a key

  // The config keys (policy.*).
  static const OptionTable<EstimatorOptions>& keys();
  // Whether P_B draws from Beta pieces of its own kernel (learned, tlm, fixed), whose floor is
  // backward_min_concentration; a uniform or max-entropy P_B has none.
  bool backward_has_concentrations() const;
  // `head` with the backward kernel's concentration floor (where backward_has_concentrations()).
  HeadOptions backward_head_options() const;
  // The dtype the trunk computes in when it differs from `dtype` (bf16), else none.
  std::optional<torch::Dtype> trunk_dtype() const;
};

// What a policy network needs of its env beyond the action spec: the time indexing of the time
// architecture and grad log R of the Langevin term (from the features' state columns, [N, m]
// float64 -> [N, m] float64). policy_context(env) fills them.
struct PolicyContext {
  std::optional<TimeIndexing> time;
  std::optional<TokenLayout> tokens;  // the transformer's input
  std::function<torch::Tensor(const torch::Tensor&)> reward_gradient;
};
PolicyContext policy_context(const Env& env);

// The trunk and heads, sized from the env's action specification. Parameters are initialised
// from `generator` with PyTorch's default Linear scheme (uniform in +-1/sqrt(fan_in)), so a
// seed fixes them. Throws ConfigError for a uniform backward policy on pieces over R^k.
class PolicyNetImpl : public torch::nn::Module {
 public:
  // ConfigError for the time architecture on an env without time indexing (`context`), or with
  // Langevin on one without grad log R.
  PolicyNetImpl(const ActionSpec& spec, int64_t in_features, const EstimatorOptions& options,
                torch::Generator& generator, PolicyContext context = {});

  // [N, F] -> [N, hidden]
  torch::Tensor trunk(const torch::Tensor& features);
  // [N, hidden] -> [N, forward_head().output_size()]: C_f logits, then the pieces' parameters.
  // The time architecture reads the rows' features ([N, F]) too (t, and x for the Langevin term).
  torch::Tensor forward_outputs(const torch::Tensor& hidden, const torch::Tensor& features);
  // [N, hidden] -> [N, C_f] raw component logits
  torch::Tensor forward_logits(const torch::Tensor& hidden);
  // the backward head's outputs and logits (learned backward policy only)
  torch::Tensor backward_outputs(const torch::Tensor& hidden);
  torch::Tensor backward_logits(const torch::Tensor& hidden);

  const KernelHead& forward_head() const { return forward_head_; }
  const KernelHead& backward_head() const { return backward_head_; }
  bool learned_backward() const { return backward_weight_.defined(); }
  bool max_entropy_backward() const { return options_.backward == BackwardPolicy::kMaxEnt; }
  bool fixed_backward() const { return options_.backward == BackwardPolicy::kFixed; }
  // While frozen (a rollout: no gradients, the parameters unchanged), the time architecture
  // computes its per-time tables once instead of at every call. FrozenPolicy sets and clears it.
  void set_frozen(bool frozen);
  const EstimatorOptions& options() const { return options_; }

 private:
  // the time architecture's pieces
  void build_time_network(int64_t in_features, torch::Generator& generator);
  torch::Tensor time_trunk(const torch::Tensor& features);
  torch::Tensor time_outputs(const torch::Tensor& hidden, const torch::Tensor& features);

  EstimatorOptions options_;
  KernelHead forward_head_;
  KernelHead backward_head_;
  TransformerWeights transformer_;      // policy.architecture = "transformer"
  std::vector<torch::Tensor> weights_;  // [in, out] per hidden layer (transposed w.r.t. nn::Linear)
  std::vector<torch::Tensor> biases_;   // [out]
  torch::Tensor forward_weight_, forward_bias_;    // [hidden, C_f], [C_f]
  torch::Tensor backward_weight_, backward_bias_;  // [hidden, C_b], [C_b] (learned P_B)
  // the time architecture: its time embedding (2 layers), state embedding, and the Langevin
  // scale s(t) (2 layers on its own time embedding)
  PolicyContext context_;
  std::vector<torch::Tensor> time_w_, time_b_, lgv_w_, lgv_b_;
  torch::Tensor state_w_, state_b_;
  bool frozen_ = false;
  torch::Tensor frozen_per_time_, frozen_state_map_, frozen_langevin_;  // the tables while frozen
  torch::Tensor time_features_;  // [steps + 1, 2 harmonics]: sin and cos of k / steps at each frequency (a buffer)
};
TORCH_MODULE(PolicyNet);

// Freezes a policy for the scope of a rollout (PolicyNetImpl::set_frozen).
class FrozenPolicy {
 public:
  explicit FrozenPolicy(PolicyNetImpl& policy) : policy_(policy) { policy_.set_frozen(true); }
  ~FrozenPolicy() { policy_.set_frozen(false); }
  FrozenPolicy(const FrozenPolicy&) = delete;
  FrozenPolicy& operator=(const FrozenPolicy&) = delete;

 private:
  PolicyNetImpl& policy_;
};

// The policy network at the states of a batch's steps, as scoring evaluates them ([N] rows: the
// valid steps time-major in compact execution, all T*B in fixed shapes): what an on-policy
// rollout keeps, under autograd, so that scoring need not run the network again.
struct PolicyPass {
  torch::Tensor features;  // [N, F]
  torch::Tensor hidden;    // [N, hidden]: the trunk's output, with its graph
  torch::Tensor out;       // [N, forward head outputs], with its graph
  bool defined() const { return out.defined(); }
};

// log F(s) of states, for the objectives that read flows (LossInputs::log_flow): a module that a
// component owns (components/flow_head.h) and the estimators score with.
class StateFlow {
 public:
  virtual ~StateFlow() = default;
  // log F(s), [N], from the policy trunk's output at the states (`hidden` [N, hidden]) and their
  // features ([N, F]); carries the autograd graph.
  virtual torch::Tensor log_flow(const torch::Tensor& hidden, const torch::Tensor& features) = 0;
};

// log Z(c) of a conditional GFlowNet (core/condition.h) less the scalar log Z: an MLP of the
// condition features ([B, P] float32 -> [B]) whose output layer starts at zero, so that log Z(c)
// = log Z + g(c) starts at policy.init_log_z for every c.
class LogZNetImpl : public torch::nn::Module {
 public:
  LogZNetImpl(int64_t conditions, int64_t hidden, int64_t layers, Activation activation, torch::Dtype dtype,
              torch::Generator& generator);
  torch::Tensor forward(const torch::Tensor& condition);

 private:
  Activation activation_;
  std::vector<torch::Tensor> weights_, biases_;
  torch::Tensor out_weight_, out_bias_;
};
TORCH_MODULE(LogZNet);

// What the loss and the evaluation score with: the policy (P_F, and P_B where it is the policy's
// own head or uniform or max-entropy), log Z, and what components set beside them: P_B's own
// network (TLM's target) and a flow head. Components own those modules and their training
// (core/component.h); the estimators only point at them.
struct Estimators {
  PolicyNet policy{nullptr};
  torch::Tensor log_z;                 // [] parameter
  PolicyNet backward{nullptr};         // P_B's own network (its backward head), when set
  std::shared_ptr<StateFlow> flow;     // log F(s), when set
  LogZNet log_z_net{nullptr};          // conditional GFlowNets: log Z(c) = log_z + log_z_net(c)

  // The policy and log Z for `env`, initialised from `generator`. ConfigError for a backward
  // policy the env cannot have (maxent without path counts, uniform over pieces on R^k).
  Estimators(const Env& env, const EstimatorOptions& options, torch::Generator& generator,
             const torch::Device& device);
  // The net whose backward kernel is P_B: `backward` when set, else the policy. std::logic_error
  // for a TLM policy whose network is not set (its component was not created).
  PolicyNetImpl& backward_policy() const;
  // log Z of the trajectories through `states` (any of their states: they share the condition):
  // log_z ([]) for an unconditional model, log Z(c) ([B]) with a log Z(c) network.
  torch::Tensor log_z_at(const Env& env, const States& states) const;
  // These estimators at the fixed condition of `env` (a ConditionedEnv view, core/condition.h):
  // log Z(c) as the scalar log Z of an unconditional model (what exact metrics, importance
  // sampling and `gfn eval` read); the policy and components shared.
  Estimators at_condition(const Env& env, const torch::Device& device) const;
  // The policy's parameters (Adam at train.lr).
  std::vector<torch::Tensor> policy_parameters() const { return policy->parameters(); }
  // The policy module and log Z in a LibTorch archive (model.pt and checkpoints hold them beside
  // the components' modules); `read` throws ConfigError naming `source` for a missing entry or
  // one of another shape (not a model of this config).
  void write(torch::serialize::OutputArchive& archive) const;
  void read(torch::serialize::InputArchive& archive, const std::string& source);

 private:
  bool needs_backward_net_ = false;  // TLM
};

// Entry `key` of `archive`, of the shape of `into` when that is defined; ConfigError naming
// `source` otherwise ("not a model of this config").
torch::Tensor read_archive_entry(torch::serialize::InputArchive& archive, const std::string& source,
                                 const std::string& key, const torch::Tensor& into, bool is_buffer);
// Copies every parameter of `module` from `archive` entries "<prefix><name>", checked as above.
void read_module(torch::serialize::InputArchive& archive, const std::string& source, const std::string& prefix,
                 torch::nn::Module& module);
// Writes every parameter of `module` as "<prefix><name>".
void write_module(torch::serialize::OutputArchive& archive, const std::string& prefix, const torch::nn::Module& module);

// The bytes of `archive` as LibTorch writes them to a file (a zip of its records).
std::string archive_bytes(torch::serialize::OutputArchive& archive);
// Writes `archive` to `path` through a temporary file renamed over it, synced (core/file_io.h:
// write_file_atomic), so that a reader or a crash never sees half a file; WriteError naming the
// file and the reason when it cannot be written (the previous file then stays as it was).
void save_archive(torch::serialize::OutputArchive& archive, const std::string& path);

}  // namespace gfn

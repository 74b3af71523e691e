// The learnable parts of a GFlowNet, built from an environment's action specification:
// an MLP trunk on the env's features, a forward policy head (one logit per forward component),
// an optional learned backward head on the same trunk, and the scalar log Z.
//
// For a discrete kernel, log p_F(s -> s') = log softmax over the available components of the
// logits; a forced move (one available component) gets exactly 0. The uniform backward policy
// puts 1 / (number of available backward components) on each.
#pragma once

#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "core/env.h"
#include "core/kernel_head.h"
#include "core/params.h"
#include "measures/categorical.h"

namespace torch::serialize {
class OutputArchive;
class InputArchive;
}  // namespace torch::serialize

namespace gfn {

enum class Activation { kRelu, kLeakyRelu, kElu };
// P_B: uniform over the available backward components; a learned head on the policy trunk,
// trained through the GFlowNet loss ("naive"); or TLM (Gritsaev et al., ICLR 2025): its own
// network trained by trajectory likelihood maximisation, the loss scoring an EMA target of it; or
// the max-entropy P_B N(s) / N(s') of an env that counts its paths (Env::has_path_counts).
enum class BackwardPolicy { kUniform, kLearned, kTlm, kMaxEnt };
enum class FlowTrunk { kShared, kSeparate };

// Building blocks shared by the networks: a Linear layer's parameters with PyTorch's default
// initialisation (uniform in +-1/sqrt(in)) drawn from `generator`, the weight stored [in, out];
// and an MLP's forward pass, the activation after every layer; with `compute` other than the
// weights' dtype (bf16), the layers run in `compute` on casts of the weights (gradients reach
// the weights in their own dtype) and the output comes back in the weights' dtype.
std::pair<torch::Tensor, torch::Tensor> make_linear(int64_t in, int64_t out, torch::Dtype dtype,
                                                    torch::Generator& generator);
torch::Tensor mlp_forward(const torch::Tensor& features, const std::vector<torch::Tensor>& weights,
                          const std::vector<torch::Tensor>& biases, Activation activation,
                          std::optional<torch::Dtype> compute = std::nullopt);

struct EstimatorOptions {
  int64_t hidden = 256;                              // width of every hidden layer, >= 1
  int64_t layers = 2;                                // number of hidden layers, >= 1
  Activation activation = Activation::kRelu;         // nonlinearity of the trunk
  BackwardPolicy backward = BackwardPolicy::kUniform;  // P_B: uniform, a learned head on the trunk, or TLM
  double init_log_z = 0.0;                           // initial value of log Z
  HeadOptions head;                                  // densities of continuous pieces
  // The lower bound of the Beta concentrations of a learned backward kernel (learned, tlm). At 1
  // or more its density is bounded, so maximising P_B's likelihood (TLM) cannot diverge on
  // coordinates that round to the ends of [0, 1]; at head.min_concentration's 0.1 it can.
  double backward_min_concentration = 0.1;
  bool flow = false;                                 // a log F(s) head (objectives that read
                                                     // LossInputs::log_flow)
  FlowTrunk flow_trunk = FlowTrunk::kShared;         // the flow head on the policy's trunk, or on its
                                                     // own MLP of the same shape
  bool potential = false;                            // LED's potential network phi(s -> s') (core/potential.h)
  int64_t potential_hidden = 64;                     // its width, >= 1
  int64_t potential_layers = 2;                      // its number of hidden layers, >= 1
  torch::Dtype dtype = torch::kFloat32;              // parameter dtype (float64 for gradient checks)
  // Mixed precision: the dtype the policy's trunk computes in (kBFloat16: the trunk's matrix
  // products in bf16 from the float32 master parameters, its output back in float32; none: in
  // `dtype`); the heads, log-softmax, densities and losses stay in `dtype`.
  std::optional<torch::Dtype> trunk_dtype;

  // Throws ConfigError naming the field, its value and the rule.
  void validate() const;
  // `head` with the backward kernel's concentration floor.
  HeadOptions backward_head_options() const;
};

// The trunk and heads, sized from the env's action specification. Parameters are initialised
// from `generator` with PyTorch's default Linear scheme (uniform in +-1/sqrt(fan_in)), so a
// seed fixes them. Throws ConfigError for a uniform backward policy on pieces over R^k.
class PolicyNetImpl : public torch::nn::Module {
 public:
  PolicyNetImpl(const ActionSpec& spec, int64_t in_features, const EstimatorOptions& options,
                torch::Generator& generator);

  // [N, F] -> [N, hidden]
  torch::Tensor trunk(const torch::Tensor& features);
  // [N, hidden] -> [N, forward_head().output_size()]: C_f logits, then the pieces' parameters
  torch::Tensor forward_outputs(const torch::Tensor& hidden);
  // [N, hidden] -> [N, C_f] raw component logits
  torch::Tensor forward_logits(const torch::Tensor& hidden);
  // the backward head's outputs and logits (learned backward policy only)
  torch::Tensor backward_outputs(const torch::Tensor& hidden);
  torch::Tensor backward_logits(const torch::Tensor& hidden);

  // log F(s), [N] (flow head only), from the policy trunk's output `hidden` [N, hidden] (shared
  // trunk) or from the features [N, F] through the flow's own trunk (separate)
  torch::Tensor log_flow(const torch::Tensor& hidden, const torch::Tensor& features);
  bool has_flow() const { return flow_weight_.defined(); }
  const KernelHead& forward_head() const { return forward_head_; }
  const KernelHead& backward_head() const { return backward_head_; }
  bool learned_backward() const { return backward_weight_.defined(); }
  bool max_entropy_backward() const { return options_.backward == BackwardPolicy::kMaxEnt; }
  const EstimatorOptions& options() const { return options_; }

 private:
  EstimatorOptions options_;
  KernelHead forward_head_;
  KernelHead backward_head_;
  std::vector<torch::Tensor> weights_;  // [in, out] per hidden layer (transposed w.r.t. nn::Linear)
  std::vector<torch::Tensor> biases_;   // [out]
  torch::Tensor forward_weight_, forward_bias_;    // [hidden, C_f], [C_f]
  torch::Tensor backward_weight_, backward_bias_;  // [hidden, C_b], [C_b] (learned P_B)
  torch::Tensor flow_weight_, flow_bias_;          // [hidden, 1], [1] (flow head)
  std::vector<torch::Tensor> flow_weights_, flow_biases_;  // the flow's own trunk (separate only)
  // the MLP trunk with layers (weights[l], biases[l])
  torch::Tensor mlp(const torch::Tensor& features, const std::vector<torch::Tensor>& weights,
                    const std::vector<torch::Tensor>& biases) const;
};
TORCH_MODULE(PolicyNet);

class PotentialNetImpl;

// Everything a trainer optimises, with the parameter groups that get their own learning rates.
struct Estimators {
  PolicyNet policy{nullptr};
  torch::Tensor log_z;  // [] parameter
  // TLM only: the backward network psi (a policy net whose learned backward head on its own trunk
  // is P_B; the head's output layer starts at 0, i.e. uniform) and its EMA target psi-bar, which
  // is what the forward loss and evaluation score with.
  PolicyNet backward_online{nullptr};
  PolicyNet backward_target{nullptr};
  // LED only: the potential network (core/potential.h).
  std::shared_ptr<PotentialNetImpl> potential;

  Estimators(const Env& env, const EstimatorOptions& options, torch::Generator& generator,
             const torch::Device& device);
  // A view scoring with `policy` alone (its own backward head or the uniform P_B).
  Estimators(PolicyNet policy, torch::Tensor log_z) : policy(std::move(policy)), log_z(std::move(log_z)) {}
  // The net whose backward head is P_B when learned: the TLM target, else the policy.
  PolicyNetImpl& backward_policy() const { return backward_target ? *backward_target.ptr() : *policy.ptr(); }
  bool tlm() const { return static_cast<bool>(backward_online); }
  // TLM: psi's trained parameters (its trunk and backward head), and the EMA step
  // psi-bar <- (1 - kappa) psi-bar + kappa psi.
  std::vector<torch::Tensor> tlm_parameters() const;
  void update_backward_target(double kappa);
  // The policy's parameters without the flow head's, and the flow head's (empty without one):
  // each gets its own learning rate.
  std::vector<torch::Tensor> policy_parameters() const;
  std::vector<torch::Tensor> flow_parameters() const;
  // LED's potential network's parameters (empty without one).
  std::vector<torch::Tensor> potential_parameters() const;
  // Writes every parameter (the policy module, log Z, the TLM nets, the LED potential) and `iteration` to a LibTorch archive
  // file, atomically: a temporary file beside it, then a rename.
  void save(const std::string& path, int64_t iteration = 0) const;
  // Reads what save wrote into these estimators (same architecture); returns the iteration.
  // Throws ConfigError naming the file for a file that is not such an archive or whose
  // parameters do not match this architecture.
  int64_t load(const std::string& path);
  // The same entries in an archive (checkpoints hold them beside the trainer's state); `source`
  // names the archive in errors.
  void write(torch::serialize::OutputArchive& archive) const;
  void read(torch::serialize::InputArchive& archive, const std::string& source);
};

// Writes `archive` to `path` through a temporary file renamed over it, so that a reader (or a
// crash) never sees half a file; std::runtime_error when the rename fails.
void save_archive(torch::serialize::OutputArchive& archive, const std::string& path);

}  // namespace gfn

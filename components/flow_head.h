// The flow head log F(s), for the objectives that read flows (DB, SubTB; Bengio et al., JMLR
// 2023; Madan et al., ICML 2023): a linear layer on the policy trunk's output ("shared": the
// trunk learns for both), or on an MLP of the policy's shape of its own on the env's features
// ("separate"), trained through the GFlowNet loss with its own Adam learning rate.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "core/component.h"
#include "core/estimator.h"
#include "core/options.h"

namespace gfn {

enum class FlowTrunk { kShared, kSeparate };
template <>
const EnumNames<FlowTrunk>& enum_names<FlowTrunk>();  // "shared", "separate"

struct FlowOptions : KeyedOptions<FlowOptions> {
  FlowTrunk trunk = FlowTrunk::kShared;  // on the policy's trunk, or on its own
  double lr = 1e-3;                      // Adam learning rate of the head (and its own trunk), > 0

  // The config keys (policy.flow_trunk, train.lr_flow).
  static const OptionTable<FlowOptions>& keys();
};

// log F(s): [N] from the policy trunk's output at the states (shared) or their features
// (separate). Parameters "weight" [hidden, 1], "bias" [1], and "trunk<l>_weight/_bias" when
// separate, drawn from the generator in that order: trunk, then head.
class FlowHeadImpl : public torch::nn::Module, public StateFlow {
 public:
  FlowHeadImpl(int64_t feature_dim, const EstimatorOptions& policy, FlowTrunk trunk, torch::Generator& generator);
  torch::Tensor log_flow(const torch::Tensor& hidden, const torch::Tensor& features) override;

 private:
  Activation activation_;
  std::optional<torch::Dtype> compute_;            // the policy trunk's compute dtype (bf16) or none
  std::vector<torch::Tensor> weights_, biases_;    // the separate trunk's layers (empty when shared)
  torch::Tensor weight_, bias_;                    // [hidden, 1], [1]
};

// The flow head as a component: its module (set as Estimators::flow), its Adam group at
// FlowOptions::lr beside the policy's, its entries "flow.<parameter>" in model.pt.
class FlowHeadComponent final : public TrainingComponent {
 public:
  FlowHeadComponent(const ComponentSetup& setup, const FlowOptions& options);
  // Created for objectives whose Requirements read flows.
  static bool wanted(const ComponentSetup& setup) { return setup.requirements.flow; }

  std::string name() const override { return "flow"; }
  std::vector<AdamGroup> loss_groups() override { return {{head_->parameters(), options_.lr, "the flow head"}}; }
  void write_model(torch::serialize::OutputArchive& archive) const override;
  void read_model(torch::serialize::InputArchive& archive, const std::string& source) override;
  FlowHeadImpl& head() { return *head_; }

 private:
  FlowOptions options_;
  std::shared_ptr<FlowHeadImpl> head_;
};

}  // namespace gfn

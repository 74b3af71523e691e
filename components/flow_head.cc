#include "components/flow_head.h"

#include <torch/torch.h>

namespace gfn {

template <>
const EnumNames<FlowTrunk>& enum_names<FlowTrunk>() {
  static const EnumNames<FlowTrunk> names{{FlowTrunk::kShared, "shared"}, {FlowTrunk::kSeparate, "separate"}};
  return names;
}

const OptionTable<FlowOptions>& FlowOptions::keys() {
  using O = FlowOptions;
  static const auto table =
      OptionTable<O>()
          .add("policy.flow_trunk", &O::trunk,
               "the flow head log F(s) on the policy's trunk, or on its own MLP of the same shape")
          .add("train.lr_flow", &O::lr,
               "Adam learning rate of the flow head log F(s) and its own trunk (objectives with flows: db, subtb)",
               above(0).at_most(10));
  return table;
}

FlowHeadImpl::FlowHeadImpl(int64_t feature_dim, const EstimatorOptions& policy, FlowTrunk trunk,
                           torch::Generator& generator)
    : activation_(policy.activation), compute_(policy.trunk_dtype()) {
  if (trunk == FlowTrunk::kSeparate)
    std::tie(weights_, biases_) =
        make_mlp(*this, "trunk", feature_dim, policy.hidden, policy.layers, policy.dtype, generator);
  auto [w, b] = make_linear(policy.hidden, 1, policy.dtype, generator);
  weight_ = register_parameter("weight", w);
  bias_ = register_parameter("bias", b);
}

torch::Tensor FlowHeadImpl::log_flow(const torch::Tensor& hidden, const torch::Tensor& features) {
  const auto h = weights_.empty() ? hidden : mlp_forward(features, weights_, biases_, activation_, compute_);
  return torch::addmm(bias_, h, weight_).squeeze(1);
}

FlowHeadComponent::FlowHeadComponent(const ComponentSetup& setup, const FlowOptions& options) : options_(options) {
  options_.validate();
  head_ = std::make_shared<FlowHeadImpl>(setup.env.feature_dim(), setup.estimator, options_.trunk,
                                         setup.init_generator);
  head_->to(setup.device);
  setup.estimators.flow = head_;
}

void FlowHeadComponent::write_model(torch::serialize::OutputArchive& archive) const {
  write_module(archive, "flow.", *head_);
}

void FlowHeadComponent::read_model(torch::serialize::InputArchive& archive, const std::string& source) {
  read_module(archive, source, "flow.", *head_);
}

}  // namespace gfn

// Shared test helpers: small hypergrids, small estimator networks, a bundle of both, and the
// message of a failing validate().
#pragma once

#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "apps/registry.h"
#include "core/component.h"
#include "core/estimator.h"
#include "core/params.h"
#include "core/sampler.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"

namespace gfn::testing {

// The central finite difference (step `eps`) of loss_fn() w.r.t. entry i of `flat`, a flat view
// sharing a parameter's storage; the entry is restored afterwards.
template <class LossFn>
double central_difference(const torch::Tensor& flat, int64_t i, LossFn&& loss_fn, double eps = 1e-6) {
  torch::NoGradGuard no_grad;
  const double orig = flat[i].template item<double>();
  flat[i] = orig + eps;
  const double up = loss_fn().template item<double>();
  flat[i] = orig - eps;
  const double down = loss_fn().template item<double>();
  flat[i] = orig;
  return (up - down) / (2 * eps);
}

// A hypergrid env with `ndim` dimensions of `height` cells and the default rewards.
inline HypergridEnv make_grid(int64_t ndim, int64_t height) {
  HypergridOptions o;
  o.ndim = ndim;
  o.height = height;
  return HypergridEnv(o);
}

// Estimator options of a small network: the given width, dtype and P_B, other fields default.
inline EstimatorOptions small_net(int64_t hidden = 16, torch::Dtype dtype = torch::kFloat32,
                                  BackwardPolicy backward = BackwardPolicy::kUniform) {
  EstimatorOptions o;
  o.hidden = hidden;
  o.dtype = dtype;
  o.backward = backward;
  return o;
}

// A grid, the CPU generator seeded with `init_seed`, and estimators initialised from it (in that order).
struct GridSetup {
  HypergridEnv env;
  torch::Generator init_gen;
  Estimators est;

  GridSetup(int64_t ndim, int64_t height, uint64_t init_seed, const EstimatorOptions& options)
      : env(make_grid(ndim, height)),
        init_gen(make_generator(init_seed, torch::kCPU)),
        est(env, options, init_gen, torch::kCPU) {}
  GridSetup(const GridSetup&) = delete;
  GridSetup& operator=(const GridSetup&) = delete;

  // `batch` trajectories of the policy, drawn from `gen` (which advances).
  Trajectories sample(int64_t batch, torch::Generator& gen, const SamplerOptions& so = {}) {
    return rollout(env, *est.policy, batch, so, gen, torch::kCPU);
  }
  // `batch` trajectories of the policy, drawn from a fresh CPU generator seeded with `seed`.
  Trajectories sample(int64_t batch, uint64_t seed, const SamplerOptions& so = {}) {
    auto gen = make_generator(seed, torch::kCPU);
    return sample(batch, gen, so);
  }
};

// The components a run of these options creates beside `est` (a flow head for objectives that
// read flows, TLM's network for policy.backward = "tlm", LED's potential for objective.credit =
// "led"), with their default keys, drawn from `init` after the estimators.
inline Components components_for(const Env& env, Estimators& est, const EstimatorOptions& eo,
                                 const Objective& objective, const TrainerOptions& to, torch::Generator& init,
                                 const torch::Device& device = torch::kCPU) {
  const Requirements requirements = objective.requirements();
  return make_components(Registry::builtin(), ComponentSetup{env, est, eo, to, requirements, init, device});
}

// The component C (built from options O) of estimators `est` built with `eo`, drawn from `gen`
// after them, with default trainer options and requirements.
template <class C, class O>
std::unique_ptr<C> component_for(const Env& env, Estimators& est, const EstimatorOptions& eo, torch::Generator& gen,
                                 const O& options = {}) {
  return std::make_unique<C>(ComponentSetup{env, est, eo, TrainerOptions{}, Requirements{}, gen, torch::kCPU}, options);
}

// The parameters the components train through the GFlowNet loss (the flow head's).
inline std::vector<torch::Tensor> loss_parameters(const Components& components) {
  std::vector<torch::Tensor> out;
  for (const auto& c : components)
    for (const auto& g : c->loss_groups()) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

// The ConfigError message of `options.validate()` ("" when it does not throw).
template <class Options>
std::string validate_error(const Options& options) {
  try {
    options.validate();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace gfn::testing

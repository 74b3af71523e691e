// One training iteration: sample (the on-policy rollout, or table look-ups on the tabular
// path), let the components act (core/component.h), score under the training policy in one
// batched pass, loss, backward, one Adam step over the policy, log Z (objectives that learn it)
// and the components' loss groups.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/component.h"
#include "core/env.h"
#include "core/estimator.h"
#include "core/objective.h"
#include "core/optim.h"
#include "core/options.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/tabular.h"
#include "core/types.h"

namespace gfn {

// What an iteration whose log-rewards, loss or gradients hold a NaN or an infinity does.
enum class NonFinitePolicy { kStop, kSkip };
template <>
const EnumNames<NonFinitePolicy>& enum_names<NonFinitePolicy>();  // "stop", "skip"

// An iteration met a non-finite value under train.on_nonfinite = "stop": "iteration N: <what>"
// (the quantity, and for a log-reward the state). Nothing of that iteration was applied.
class NonFiniteError : public std::runtime_error {
 public:
  NonFiniteError(int64_t iteration, const std::string& what);
  int64_t iteration() const { return iteration_; }
  const std::string& what_happened() const { return what_; }

 private:
  int64_t iteration_;
  std::string what_;
};

// Whether to train through state tables (core/tabular.h).
enum class TabularMode { kAuto, kOn, kOff };
template <>
const EnumNames<TabularMode>& enum_names<TabularMode>();  // "auto", "on", "off"

struct TrainerOptions : KeyedOptions<TrainerOptions> {
  int64_t batch_size = 16;    // trajectories per iteration, >= 1
  double lr = 1e-3;           // Adam learning rate of the policy, > 0
  double lr_logz = 0.1;       // Adam learning rate of log Z, > 0
  int64_t lr_decay_every = 0;  // every N iterations the trainer's learning rates are multiplied by lr_decay (0: never)
  double lr_decay = 0.5;       // step decay factor, in (0, 1]
  TabularMode tabular = TabularMode::kAuto;  // auto: when num_states <= batch * T
  Execution execution = Execution::kAuto;    // compact or fixed-shape batches (core/types.h)
  // On-policy batches scored with the policy outputs their rollout computed (under autograd, one
  // graph per step) instead of one batched pass after it. Off by default: on the CPU the backward
  // pass through one small graph per step costs more than the batched forward it saves
  // (bench/RESULTS.md, 2026-12-03).
  bool reuse_rollout = false;
  // CUDA only: capture one whole iteration (rollout, scoring, the components' steps, loss,
  // backward, optimiser steps) as a CUDA graph after kGraphWarmup eager ones, and replay it
  // (core/cuda_graph.h). The sampling draws then come from the device's default generator.
  bool cuda_graph = false;
  // A NaN or an infinity in a batch's log-rewards, its loss or a gradient: stop (NonFiniteError,
  // nothing applied) or skip the batch (no update; counted in nonfinite_skips()).
  NonFinitePolicy on_nonfinite = NonFinitePolicy::kStop;
  SamplerOptions sampler;     // exploration of the behaviour policy (train.epsilon, train.temperature)
  ScoreOptions score;         // log-reward clipping and local credits (objective.*)

  // The config keys (train.*, and the sampler's and scoring's).
  static const OptionTable<TrainerOptions>& keys();
};

// What one iteration produced (detached from the graph).
struct IterationResult {
  Trajectories trajectories;
  torch::Tensor loss;            // [] float
  torch::Tensor log_pf;          // [T, B] float: under the training policy
  torch::Tensor log_pb;          // [T, B] float
  torch::Tensor terminal_index;  // [B] int64: state index of x (enumerable envs), else undefined
  double grad_norm = std::nan("");  // global L2 norm of the gradients, when asked for
  torch::Tensor grad_sq;         // [] float64: its square on the device (CUDA graphs), else undefined
  std::vector<torch::Tensor> metrics;  // [] each: the components' metrics (Trainer::metric_names)
  // What was not finite (empty: nothing): "the loss is nan", "the log-reward of state ... is
  // -inf", "the gradient of the policy is not finite". The batch was then not trained on.
  std::string nonfinite;
};

class CudaGraphStep;

class Trainer {
 public:
  static constexpr int64_t kGraphWarmup = 3;  // eager iterations before a CUDA graph's capture

  // `env`, `estimators`, `objective` and the components must outlive the trainer. Every random
  // draw of an iteration comes from a generator seeded with `seed`. ConfigError when the options
  // are invalid or the objective reads what the env or the estimators cannot provide.
  Trainer(const Env& env, Estimators& estimators, Objective& objective, const TrainerOptions& options,
          uint64_t seed, const torch::Device& device, std::vector<TrainingComponent*> components = {});
  ~Trainer();

  // Runs one iteration and returns its trajectories and loss; with `with_grad_norm` also the
  // global gradient norm before the update (a host sync: ask only on logged iterations). A
  // non-finite log-reward, loss or gradient throws NonFiniteError (train.on_nonfinite = "stop")
  // or skips the update (IterationResult::nonfinite says what; "skip").
  IterationResult step(bool with_grad_norm = false);
  // The iterations skipped for non-finite values (train.on_nonfinite = "skip"), over the whole
  // run (checkpointed).
  int64_t nonfinite_skips() const { return nonfinite_skips_; }

  bool tabular() const { return tabular_; }
  // The state tables of an enumerable env (null otherwise).
  const StateTable* table() const { return table_ ? &*table_ : nullptr; }
  int64_t iteration() const { return iteration_; }
  // The current learning rate of the policy (after decay).
  double current_lr() const;
  torch::Generator& generator() { return generator_; }
  FusedAdam& optimizer() { return *optimizer_; }
  const TrainerOptions& options() const { return options_; }
  Execution execution() const { return execution_; }
  // Data-parallel training (core/distributed.h): `reducer` sees the gradients before every
  // optimiser step, the trainer's (policy, log Z, the components' loss groups) and each
  // component's own (TLM's P_B, LED's potential).
  void set_gradient_reducer(const FusedAdam::GradientReducer& reducer);
  // The components' /train metrics, in the order of IterationResult::metrics.
  std::vector<std::string> metric_names() const;

  // Checkpoints: the iteration, the sampling generator's state, the optimiser (policy, log Z and
  // the components' loss groups) with its moments and current learning rates, and every
  // component's state. The estimators and the components' modules are saved by save_model /
  // Estimators::write. `load_state` throws ConfigError naming `source` when an entry is missing
  // or does not fit this trainer.
  void save_state(torch::serialize::OutputArchive& archive) const;
  void load_state(torch::serialize::InputArchive& archive, const std::string& source);

 private:
  // ConfigError unless the env and the estimators provide what the objective reads.
  void check_requirements(const Requirements& r) const;
  TrainingContext context();
  // The batch of one iteration: a tabular or a generic rollout (`pass`: the forward table pass of
  // the tabular path).
  // On-policy generic batches keep the rollout's policy outputs (`kept`) for scoring.
  TrainingBatch sample(const SamplerOptions& sampler, TablePass& pass, PolicyPass& kept);
  LossInputs score(TrainingBatch& batch, TablePass& pass, const PolicyPass& kept, const SamplerOptions& sampler);
  // The gradients' squared global norm, on the host or as a device tensor.
  double host_grad_sq() const;
  torch::Tensor device_grad_sq() const;
  // The device work of one iteration (what a CUDA graph captures): sampling, the components'
  // hooks, scoring, the loss, its gradients and the optimiser step, with the gradient norm on
  // the host (`host_grad_norm`, a sync) or as IterationResult::grad_sq (`device_grad_norm`).
  IterationResult iterate(bool host_grad_norm, bool device_grad_norm);
  // The host bookkeeping after it: the components' after_step (not after a skipped batch), the
  // counter and the decays.
  void finish_iteration(bool skipped);
  // What in `inputs` (log-rewards) or `loss` is not finite, or empty.
  std::string nonfinite_inputs(const TrainingBatch& batch, const LossInputs& inputs, const torch::Tensor& loss) const;

  const Env& env_;
  Estimators& estimators_;
  Objective& objective_;
  TrainerOptions options_;
  torch::Device device_;
  Execution execution_;
  std::vector<TrainingComponent*> components_;
  Requirements requirements_;  // the objective's
  torch::Generator generator_;
  std::unique_ptr<FusedAdam> optimizer_;
  std::unique_ptr<CudaGraphStep> graph_;  // train.cuda_graph
  IterationResult captured_;              // the result tensors the graph rewrites
  TrainingBatch batch_;                   // the last iteration's batch (what after_step sees)
  std::optional<StateTable> table_;
  bool tabular_ = false;
  int64_t iteration_ = 0;
  int64_t nonfinite_skips_ = 0;
};

// A torch::Generator for `device` seeded with `seed`.
torch::Generator make_generator(uint64_t seed, const torch::Device& device);

}  // namespace gfn

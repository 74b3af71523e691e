// Components: everything that learns or supplies training data beside the policy.
//
// The policy and log Z are what a GFlowNet is; around them, a run may need more: a flow head
// log F(s) trained through the loss (DB, SubTB), a backward network trained by its own likelihood
// with an EMA target (TLM), a potential regressed on log R whose values become per-step credits
// (LED), and, as data sources, replay buffers, local search or exploration schedules. Each is a
// TrainingComponent ("component"; not to be confused with a kernel's Component, core/env.h): it
// owns its modules and optimiser, says which parameters the GFlowNet loss trains,
// hooks into the iteration where it acts, adds what it provides to the loss inputs, logs its
// metrics and saves its state. The Trainer loops over the components it is given, in order:
//
//     sampler options <- adjust_sampling        (exploration schedules)
//     rollout
//     extend_batch                              (replay, local search; the batch is rescored)
//     before_scoring                            (TLM: a likelihood step of P_B, its target moved)
//     scoring -> LossInputs
//     add_loss_inputs                           (LED: its regression steps, then the credits)
//     loss, backward, one Adam step over the policy, log Z and every loss_groups()
//     after_step                                (decays, buffer insertion)
//
// A component is built by its registration (apps/run.h Registry::add_component) from its own
// config keys; its modules are drawn from the run's initialisation generator when it is built,
// and it points the estimators at what the loss scores with (Estimators::backward, ::flow).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/env.h"
#include "core/estimator.h"
#include "core/objective.h"
#include "core/optim.h"
#include "core/sampler.h"
#include "core/types.h"

namespace gfn {

struct StateTable;
struct TrainerOptions;

// One iteration's training data as the components see it.
struct TrainingBatch {
  Trajectories trajectories;  // the batch ([T+1, B] states ...)
  torch::Tensor path;         // [T+1, B] int64: the state index of every step (tabular training), else undefined
  int64_t iteration = 0;      // 0-based index of this iteration
};

// What a component's hooks may use of the run they are part of.
struct TrainingContext {
  const Env& env;
  Estimators& estimators;      // what the loss scores with
  const StateTable* table;     // tabular training: the env's state tables; else null
  Execution execution;         // resolved
  torch::Generator& generator;  // the trainer's generator: every random draw of an iteration
  torch::Device device;
};

// What a component is built from, beside its own options.
struct ComponentSetup {
  const Env& env;
  Estimators& estimators;                // to point at the modules it provides
  const EstimatorOptions& estimator;     // the policy's architecture (its width, activation, dtype)
  const TrainerOptions& trainer;         // the trainer's (core/trainer.h): batch, credits, exploration
  const Requirements& requirements;      // what the objective reads
  torch::Generator& init_generator;      // parameters are drawn from it, in creation order
  torch::Device device;
};

class TrainingComponent {
 public:
  virtual ~TrainingComponent() = default;
  // The registered name: the prefix of its checkpoint and model entries ("tlm").
  virtual std::string name() const = 0;

  // Parameters trained through the GFlowNet loss, as groups of the trainer's Adam with their
  // learning rates (the flow head); train.lr_decay applies to them as to the policy's.
  virtual std::vector<AdamGroup> loss_groups() { return {}; }
  // The component's own optimisers (TLM's, LED's): the trainer keeps their state on the device
  // for CUDA graphs.
  virtual std::vector<FusedAdam*> optimizers() { return {}; }

  // Data sources. The behaviour policy of iteration `iteration` (0-based): an exploration
  // schedule sets its epsilon or temperature.
  virtual void adjust_sampling(SamplerOptions& /*options*/, int64_t /*iteration*/) {}
  // Whether iteration `iteration`'s batch comes from this component instead of a rollout (a replay
  // buffer's turn): the trainer then skips the rollout and extend_batch fills the batch.
  virtual bool replaces_rollout(int64_t /*iteration*/) const { return false; }
  // After the rollout: adds or replaces trajectories (replayed, locally searched). The trainer
  // scores every trajectory of the batch under the training policy afterwards, so off-policy data
  // is scored correctly.
  virtual void extend_batch(TrainingBatch& /*batch*/, const TrainingContext& /*context*/) {}

  // Learners. Before the batch is scored (TLM: its likelihood step and target update).
  virtual void before_scoring(const TrainingBatch& /*batch*/, const TrainingContext& /*context*/) {}
  // After scoring, before the loss: what it adds to the loss inputs (LED's credits).
  // `adds_local_credit`: it sets LossInputs::local_credit (what objective.credit = "led" needs).
  virtual bool adds_local_credit() const { return false; }
  virtual void add_loss_inputs(const TrainingBatch& /*batch*/, LossInputs& /*inputs*/,
                               const TrainingContext& /*context*/) {}
  // After the optimiser step, on the host (learning-rate decays, buffer insertion).
  virtual void after_step(const TrainingBatch& /*batch*/, const TrainingContext& /*context*/) {}

  // Its /train columns, and their values at the last iteration ([] tensors on any device, read
  // on logged rows only), in the same order.
  virtual std::vector<std::string> metric_names() const { return {}; }
  virtual std::vector<torch::Tensor> metric_values() const { return {}; }

  // Its modules (model.pt and checkpoints) and its training state (optimisers, counters,
  // buffers: checkpoints), as archive entries named "<name()>.<...>". The readers throw
  // ConfigError naming `source` for an entry that is missing or of another shape.
  virtual void write_model(torch::serialize::OutputArchive& /*archive*/) const {}
  virtual void read_model(torch::serialize::InputArchive& /*archive*/, const std::string& /*source*/) {}
  virtual void write_state(torch::serialize::OutputArchive& /*archive*/) const {}
  virtual void read_state(torch::serialize::InputArchive& /*archive*/, const std::string& /*source*/) {}
};

using Components = std::vector<std::unique_ptr<TrainingComponent>>;

// Plain pointers to `components`, for a Trainer.
std::vector<TrainingComponent*> component_pointers(const Components& components);

// The model a run trains: the estimators and every component's modules, as written to
// DIR/model.pt with its iteration, atomically (a temporary file, then a rename). `load_model`
// reads one written for the same config and returns its iteration; ConfigError naming the file
// for a file that is not one.
void save_model(const std::string& path, const Estimators& estimators, const Components& components,
                int64_t iteration);
int64_t load_model(const std::string& path, Estimators& estimators, const Components& components);

}  // namespace gfn

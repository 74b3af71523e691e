// One training iteration (DESIGN.md §4): sample, score under the training policy in one
// batched pass, loss, backward, optimiser step. Adam with its own learning rate for log Z. With a
// TLM backward policy, each iteration first takes one step of P_B's network psi on the sampled
// trajectories (maximising their backward likelihood, its own Adam and decay) and moves the
// target psi-bar towards it; the forward loss then scores P_B with the updated target. With LED,
// the potential network takes its regression steps on the same trajectories after scoring, and
// its redistributed values become the loss's local credits.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>

#include <torch/types.h>

#include "core/env.h"
#include "core/estimator.h"
#include "core/objective.h"
#include "core/optim.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/tabular.h"
#include "core/types.h"

namespace gfn {

// Whether to train through state tables (core/tabular.h).
enum class TabularMode { kAuto, kOn, kOff };

struct TrainerOptions {
  int64_t batch_size = 16;    // trajectories per iteration, >= 1
  double lr = 1e-3;           // Adam learning rate of the policy, > 0
  double lr_logz = 0.1;       // Adam learning rate of log Z, > 0
  double lr_flow = 1e-3;      // Adam learning rate of the flow head log F(s), > 0
  SamplerOptions sampler;     // exploration of the behaviour policy
  ScoreOptions score;         // log-reward clipping
  TabularMode tabular = TabularMode::kAuto;  // auto: when num_states <= batch * T
  double lr_backward = 1e-3;   // TLM: Adam learning rate of the backward network, > 0
  double backward_decay = 0.999;  // TLM: its learning rate is multiplied by this after every step, in (0, 1]
  double tlm_ema = 0.25;       // TLM: kappa of the target update psi-bar <- (1 - kappa) psi-bar + kappa psi, in (0, 1]
  // LED (objective.credit = "led"): the potential network's regression, its updates per policy
  // update and its learning rate (core/potential.h)
  bool led = false;
  double led_drop_rate = -1.0;  // in [0, 1); -1: 0.1 when trajectories have < 10 steps, else 0.2 (the paper's)
  int64_t led_steps = 1;        // potential updates per iteration, >= 1
  double lr_potential = 1e-3;   // Adam learning rate of the potential, > 0
  int64_t lr_decay_every = 0;  // every N iterations all learning rates are multiplied by lr_decay (0: never)
  double lr_decay = 0.5;       // step decay factor, in (0, 1]
  // CUDA only: capture one whole iteration (rollout, scoring, loss, backward, optimiser steps)
  // as a CUDA graph after kGraphWarmup eager ones, and replay it (core/cuda_graph.h). The
  // sampling draws then come from the device's default generator.
  bool cuda_graph = false;

  // Throws ConfigError naming the field, its value and the rule.
  void validate() const;
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
  torch::Tensor backward_loss;   // [] float: TLM's -mean sum_t log p_B under psi (TLM only)
  torch::Tensor potential_loss;  // [] float: LED's dropout regression before its last update (LED only)
};

class CudaGraphStep;

class Trainer {
 public:
  static constexpr int64_t kGraphWarmup = 3;  // eager iterations before a CUDA graph's capture

  // `env`, `estimators` and `objective` must outlive the trainer. Every random draw of
  // sampling comes from a generator seeded with `seed`.
  Trainer(const Env& env, Estimators& estimators, Objective& objective, const TrainerOptions& options,
          uint64_t seed, const torch::Device& device);
  ~Trainer();

  // Runs one iteration and returns its trajectories and loss; with `with_grad_norm` also the
  // global gradient norm before the update (a host sync: ask only on logged iterations).
  IterationResult step(bool with_grad_norm = false);

  bool tabular() const { return tabular_; }
  // The state tables of an enumerable env (null otherwise).
  const StateTable* table() const { return table_ ? &*table_ : nullptr; }
  int64_t iteration() const { return iteration_; }
  // The current learning rate of the policy (after decay).
  double current_lr() const;
  torch::Generator& generator() { return generator_; }
  FusedAdam& optimizer() { return *optimizer_; }
  const TrainerOptions& options() const { return options_; }

  // Checkpoints: the iteration, the sampling generator's state and every optimiser (policy and
  // log Z and flows, TLM's, LED's) with its moments and current learning rates. The estimators
  // (modules, EMA target) are saved by Estimators::write. `load_state` throws ConfigError naming
  // `source` when an entry is missing or does not fit this trainer.
  void save_state(torch::serialize::OutputArchive& archive) const;
  void load_state(torch::serialize::InputArchive& archive, const std::string& source);

 private:
  const Env& env_;
  Estimators& estimators_;
  Objective& objective_;
  TrainerOptions options_;
  torch::Device device_;
  torch::Generator generator_;
  std::unique_ptr<FusedAdam> optimizer_;
  std::unique_ptr<FusedAdam> backward_optimizer_;  // TLM only
  std::unique_ptr<FusedAdam> potential_optimizer_;  // LED only
  double led_drop_rate_ = 0.0;                      // resolved from options_.led_drop_rate
  // LED: options_.led_steps regression steps of the potential on `traj`; the credits of `inputs`
  // are the redistributed values of the potential before its last step. Returns the last loss.
  torch::Tensor led_step(const Trajectories& traj, LossInputs& inputs);
  // TLM: one likelihood step of psi on P_F's trajectories (`path`: their state indices on the
  // tabular path), then the EMA step of the target; returns the loss.
  torch::Tensor tlm_step(const Trajectories& traj, const torch::Tensor& path);
  // The device work of one iteration (what a CUDA graph captures): sampling, scoring, the
  // TLM and LED steps, the loss, its gradients and the optimiser step, with the gradient norm
  // on the host (`host_grad_norm`, a sync) or as IterationResult::grad_sq (`device_grad_norm`).
  IterationResult iterate(bool host_grad_norm, bool device_grad_norm);
  // The host bookkeeping after it: the counter and the learning-rate schedules.
  void finish_iteration();
  std::unique_ptr<CudaGraphStep> graph_;  // train.cuda_graph
  IterationResult captured_;              // the result tensors the graph rewrites
  std::optional<StateTable> table_;
  bool tabular_ = false;
  int64_t iteration_ = 0;
};

// A torch::Generator for `device` seeded with `seed`.
torch::Generator make_generator(uint64_t seed, const torch::Device& device);

}  // namespace gfn

// Replay and local search (Sendera et al., NeurIPS 2024, "Improved off-policy training of
// diffusion samplers"), as one training component: a buffer of terminal states that the on-policy
// batches fill, and from which every replay.every-th iteration draws its batch instead of a
// rollout, each drawn state x turned into a training trajectory by sampling backward through P_B
// (tau ~ P_B(.|x)); the trainer scores it under the training policy like any batch.
//
// Sampling from the buffer (replay.prioritization):
//   fifo    uniform over the buffer's contents (the oldest state is overwritten when full);
//   reward  P(i) ∝ R(x_i)^beta (replay.beta);
//   rank    P(i) ∝ 1 / (k N + rank_i), rank 0 the highest reward, N the buffer's size, k =
//           replay.rank_weight (Tripp et al. 2020).
// Draws are with replacement, from the trainer's generator.
//
// Local search (local_search.every > 0): every that many iterations, on a buffer iteration,
// local_search.chains states drawn from the buffer (as above) run local_search.steps steps of the
// Metropolis-adjusted Langevin algorithm on log R over the continuous coordinates,
//     x' = x + h grad log R(x) + sqrt(2 h) eps,  accepted with probability
//     min(1, R(x') q(x | x') / (R(x) q(x' | x))),  q(y | x) = N(y; x + h grad log R(x), 2h I),
// proposals outside the env's support (Env::in_support, the Box's cube) rejected; after each step
// h is multiplied by 1 + local_search.adapt when the step's acceptance rate exceeds
// local_search.target_acceptance and by 1 - adapt otherwise. The states accepted after
// local_search.burn_in steps join the buffer. h carries over from one search to the next.
//
// Everything (the buffer's contents and order, h, the counters) is in the checkpoints, so a
// resumed run continues exactly. The buffer lives on the training device.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include "core/component.h"
#include "core/options.h"

namespace gfn {

enum class Prioritization { kFifo, kReward, kRank };
template <>
const EnumNames<Prioritization>& enum_names<Prioritization>();  // "fifo", "reward", "rank"

struct ReplayOptions : KeyedOptions<ReplayOptions> {
  int64_t capacity = 0;                            // terminal states kept (0: no replay)
  int64_t every = 2;                               // every N-th iteration (1, 3, 5, ... for N = 2) trains on the buffer
  Prioritization prioritization = Prioritization::kRank;
  double beta = 1.0;                               // reward prioritisation: R^beta
  double rank_weight = 0.01;                       // rank prioritisation: k
  int64_t search_every = 0;                        // local search every N iterations (0: none)
  int64_t search_chains = 0;                       // buffer states searched (0: the batch size)
  int64_t search_steps = 200;                      // MALA steps per search
  int64_t search_burn_in = 100;                    // steps before accepted states join the buffer
  double search_step = 0.01;                       // initial MALA step size h
  double search_target = 0.574;                    // target acceptance rate
  double search_adapt = 0.1;                       // h *= 1 +- adapt after each step

  // The config keys (replay.*, local_search.*).
  static const OptionTable<ReplayOptions>& keys();
};

// The buffer: terminal states and their log-rewards, a ring of `capacity` rows.
class ReplayBuffer {
 public:
  ReplayBuffer(int64_t capacity, int64_t discrete_dim, int64_t continuous_dim, const torch::Device& device);
  // Adds states ([N] rows, none the sink) with log R ([N]); the oldest rows go when it is full.
  void add(const States& states, const torch::Tensor& log_reward);
  int64_t size() const { return size_; }
  // `n` row indices drawn with replacement under `options`' prioritisation ([n] int64).
  torch::Tensor draw(int64_t n, const ReplayOptions& options, torch::Generator& generator) const;
  States states(const torch::Tensor& index) const;
  torch::Tensor log_reward(const torch::Tensor& index) const { return log_reward_.index_select(0, index); }
  // Checkpoint entries "<prefix>discrete", ... and their restoration.
  void write(torch::serialize::OutputArchive& archive, const std::string& prefix) const;
  void read(torch::serialize::InputArchive& archive, const std::string& source, const std::string& prefix);

 private:
  int64_t capacity_, size_ = 0, next_ = 0;
  torch::Tensor discrete_, continuous_, initial_, log_reward_;  // [capacity, ...]
};

class ReplayComponent final : public TrainingComponent {
 public:
  // ConfigError for local search on an env without grad log R or continuous coordinates.
  ReplayComponent(const ComponentSetup& setup, const ReplayOptions& options);

  std::string name() const override { return "replay"; }
  bool replaces_rollout(int64_t iteration) const override;
  // A buffer iteration: the batch from the buffer (after a local search when one is due).
  void extend_batch(TrainingBatch& batch, const TrainingContext& context) override;
  // On-policy batches join the buffer.
  void after_step(const TrainingBatch& batch, const TrainingContext& context) override;
  std::vector<std::string> metric_names() const override;
  std::vector<torch::Tensor> metric_values() const override;
  void write_state(torch::serialize::OutputArchive& archive) const override;
  void read_state(torch::serialize::InputArchive& archive, const std::string& source) override;

  const ReplayBuffer& buffer() const { return buffer_; }
  double step_size() const { return step_; }
  // One local search from the buffer (public for tests): returns the acceptance rate over its steps.
  double local_search(const TrainingContext& context);

 private:
  ReplayOptions options_;
  int64_t batch_size_;
  ReplayBuffer buffer_;
  double step_;                  // the MALA step size h
  double acceptance_ = 0.0;      // of the last search
  bool replayed_ = false;        // the last batch came from the buffer
};

}  // namespace gfn

// Bit sequences (Malkin et al., NeurIPS 2022, the TB paper; Madan et al. 2023; shared/REFERENCES.md
// "Bit sequences"): binary strings of n bits built from k-bit words, with a reward that peaks at a
// set M of modes.
//
// Modes: |M| = `modes` strings, each n / 8 blocks drawn uniformly (seeded by `mode_seed`) from the
// five 8-bit blocks 00000000, 11111111, 11110000, 00001111, 00111100. Reward, with d(x, M) the
// distance to the nearest mode:
//     reward = "edit"     R(x) = exp(1 - d_edit(x, M) / n)     (the TB paper's form; Levenshtein)
//     reward = "hamming"  log R(x) = -beta d_Hamming(x, M)     (the TLM code's form, beta = 2)
// The edit distance is computed by Myers' bit-parallel algorithm in one 128-bit word (n <= 128) and
// by the plain dynamic programme beyond. A terminal state finds a mode when its distance to it is
// at most `mode_radius` (in the reward's distance); evaluations log modes_found, the distinct
// modes among every terminal state trained on.
//
// A state is n / k slots, each empty (-1) or a word 0 .. 2^k - 1 (its bits most significant first);
// s0 is all empty, and the terminal states are the full ones (the exit is open exactly then, and
// then the only move). Two forms:
//   append  (autoregressive) forward atoms "w<bits>": the word into the first empty slot; backward
//           one atom "pop": the last word out. A tree: every x has one trajectory, P_B = 1, and
//           log p_T(x) is exact.
//   place   (non-autoregressive) forward atoms "<slot>:<bits>": the word into that empty slot;
//           backward atoms "-<slot>": that slot emptied. A DAG: (n/k)! orders per x; the uniform
//           P_B takes them all.
// Every trajectory has n/k moves and the exit. Features: one-hot over {empty, word 0, ..., word
// 2^k - 1} for each slot ([B, (n/k)(2^k + 1)], slot-major), declared as a token layout (n/k tokens
// of 2^k + 1) for the transformer: a token per word, so attention costs (n/k)^2, not n^2 (one token
// per bit made the transformer 8.7 s per iteration at n = 120).
// The test set (test_per_mode copies of every mode with 0, n/(2c), ..., bits flipped at random,
// seeded by mode_seed + 1) gives the Spearman correlation of log p_T(x) and log R(x).
// Instances of at most 2^20 reachable states enumerate them (exact TV, log Z and the checker's
// partition test): e.g. n = 8, k = 2.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/env.h"
#include "core/options.h"

namespace gfn {

enum class BitSeqForm { kAppend, kPlace };
enum class BitSeqReward { kEdit, kHamming };
template <>
const EnumNames<BitSeqForm>& enum_names<BitSeqForm>();  // "append", "place"
template <>
const EnumNames<BitSeqReward>& enum_names<BitSeqReward>();  // "edit", "hamming"

struct BitSeqOptions : KeyedOptions<BitSeqOptions> {
  int64_t length = 120;                       // n bits: a multiple of 8 and of `word`
  int64_t word = 4;                           // k bits per action, in [1, 10]
  BitSeqForm form = BitSeqForm::kAppend;
  int64_t modes = 60;                         // |M|
  int64_t mode_seed = 0;
  BitSeqReward reward = BitSeqReward::kEdit;
  double beta = 2.0;                          // hamming: log R = -beta d
  int64_t mode_radius = 30;                   // a mode is found within this distance
  int64_t test_per_mode = 5;                  // test set: copies of each mode

  static const OptionTable<BitSeqOptions>& keys();
};

// Levenshtein distance between two bit strings (0/1 bytes).
int64_t edit_distance(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b);

class BitSeqEnv final : public Env {
 public:
  explicit BitSeqEnv(const BitSeqOptions& options);

  std::string name() const override { return "bitseq"; }
  const ActionSpec& action_spec() const override { return spec_; }
  int64_t max_length() const override { return slots_; }
  int64_t discrete_dim() const override { return slots_; }
  int64_t continuous_dim() const override { return 0; }
  int64_t feature_dim() const override { return slots_ * (words_ + 1); }

  States initial_states(int64_t batch, const torch::Device& device) const override;
  torch::Tensor features(const States& states) const override;
  torch::Tensor forward_mask(const States& states) const override;
  torch::Tensor backward_mask(const States& states) const override;
  StepResult step(const States& states, const Actions& actions) const override;
  StepResult backward_step(const States& states, const Actions& actions) const override;
  Actions backward_action(const States& parent, const States& child, const Actions& forward,
                          torch::Tensor* log_jacobian = nullptr) const override;
  Actions forward_action(const States& child, const States& parent, const Actions& backward,
                         torch::Tensor* log_jacobian = nullptr) const override;
  // of full states (a partial one reads its empty bits as 0)
  torch::Tensor log_reward(const States& states) const override;

  int64_t num_modes() const override { return options_.modes; }
  torch::Tensor mode_index(const States& terminal) const override;
  std::optional<States> test_set(const torch::Device& device) const override;
  std::optional<TokenLayout> token_layout() const override { return TokenLayout{slots_, words_ + 1}; }

  bool enumerable() const override { return enumerable_; }
  int64_t num_states() const override;
  States enumerate_states(const torch::Device& device) const override;
  torch::Tensor state_index(const States& states) const override;
  std::optional<double> log_partition() const override;

  const BitSeqOptions& options() const { return options_; }
  // The modes' bits ([modes][n]).
  const std::vector<std::vector<uint8_t>>& modes() const { return modes_; }
  // The bits of each state ([B][n], empty bits 0).
  std::vector<std::vector<uint8_t>> bits(const States& states) const;
  // The distance of each bit string to its nearest mode, and that mode.
  std::pair<std::vector<int64_t>, std::vector<int64_t>> nearest_mode(
      const std::vector<std::vector<uint8_t>>& strings) const;

  static constexpr int64_t kMaxEnumerable = int64_t{1} << 20;

 private:
  BitSeqOptions options_;
  ActionSpec spec_;
  int64_t slots_ = 0, words_ = 0;  // n / k slots, 2^k words
  std::vector<std::vector<uint8_t>> modes_;
  bool enumerable_ = false;
  torch::Tensor codes_;   // [S] int64: reachable states' codes sum_s (v_s + 1) (2^k + 1)^(L-1-s), ascending
  DeviceConstant rank_;   // [(2^k + 1)^L] int64: index of each code among them, -1 if unreachable
  DeviceConstant place_;  // [L] int64: (2^k + 1)^(L-1-s)
  double log_z_ = 0;
};

}  // namespace gfn

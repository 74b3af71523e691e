// Labelled box: a hybrid environment whose trajectories mix a discrete choice and continuous
// moves (issue 3, item 5). A label k in {0, ..., K-1} is chosen first, then the Box's moves
// (envs/box.h, either form) run in layer k; the reward is
//     R(k, x) = rho^k R_box(x),   so   log Z = log sum_{k<K} rho^k + log Z_box.
//
// State: discrete [B, 2] int64 = (label k, phase), continuous x [B, d] float32. The label is -1
// before the choice; the phase is 0 at the origin of the current layer (s0 = (-1, 0, origin) and
// the labelled origins (k, 0, origin)) and 1 once a box move was made. The phase, rather than a
// test x == 0, tells a labelled origin from a moved state: a first box step may round to a point
// with tiny or zero coordinates in float32.
//   forward  0..2   the box's components (ball/first, sphere/step/increment, exit), where the
//                   labelled origin plays the box's s0: the first step only there, the exit
//                   neither there nor at s0
//            3+k    "label_k": atom s0 -> (k, 0, origin), only at s0
//   backward 0..1   the box's (sphere_back/decrement, and "to_origin": back to (k, 0, origin))
//            2      "unlabel": atom (k, 0, origin) -> s0, only at labelled origins (forced)
// Reference measures: nu = atom(s0) + sum_k [atom((k, origin)) + Lebesgue on layer k]; each layer
// is a copy of the Box with its own s0, so consistency follows from the Box's (envs/box.h) and the
// label atoms' (counting measure both ways).
#pragma once

#include <vector>

#include "core/env.h"
#include "core/options.h"
#include "envs/box.h"

namespace gfn {

struct LabelledBoxOptions : KeyedOptions<LabelledBoxOptions> {
  BoxOptions box;            // the Box of every layer (keys dim, delta, form, min_step, r0, r1, r2)
  int64_t labels = 3;        // K, number of labels, in [1, 64]
  double label_ratio = 2.0;  // rho, reward ratio between consecutive labels, > 0 and finite

  // The config keys (under [env]): the Box's, then labels and label_ratio.
  static const OptionTable<LabelledBoxOptions>& keys();
};

class LabelledBoxEnv final : public Env {
 public:
  static constexpr int64_t kFirst = BoxGeometry::kFirst, kMove = BoxGeometry::kMove, kExit = BoxGeometry::kExit;
  static constexpr int64_t kLabel0 = 3;  // forward component of label k: kLabel0 + k
  static constexpr int64_t kBack = BoxGeometry::kBack, kToOrigin = BoxGeometry::kToOrigin, kUnlabel = 2;

  explicit LabelledBoxEnv(const LabelledBoxOptions& options);

  std::string name() const override { return "labelled_box"; }
  const ActionSpec& action_spec() const override { return spec_; }
  int64_t max_length() const override { return 1 + geometry_.max_moves(); }
  int64_t discrete_dim() const override { return 2; }
  int64_t continuous_dim() const override { return geometry_.dim(); }
  // 2x - 1, the one-hot label, the s0 flag, the labelled-origin flag
  int64_t feature_dim() const override { return geometry_.dim() + options_.labels + 2; }

  States initial_states(int64_t batch, const torch::Device& device) const override;
  // [B, d + K + 2] float32: 2x - 1, one-hot of the label (zeros at s0), 1 at s0, 1 at a labelled origin.
  torch::Tensor features(const States& states) const override;
  // [B, 3 + K]: the labels only at s0; the box's components elsewhere.
  torch::Tensor forward_mask(const States& states) const override;
  // [B, 3]: unlabel only at labelled origins; the box's components at moved states; nothing at s0.
  torch::Tensor backward_mask(const States& states) const override;
  StepResult step(const States& states, const Actions& actions) const override;
  StepResult backward_step(const States& states, const Actions& actions) const override;
  Actions backward_action(const States& parent, const States& child, const Actions& forward,
                          torch::Tensor* log_jacobian = nullptr) const override;
  Actions forward_action(const States& child, const States& parent, const Actions& backward,
                         torch::Tensor* log_jacobian = nullptr) const override;
  // k log rho + log R_box(x): [B] float32 (label clamped to >= 0).
  torch::Tensor log_reward(const States& states) const override;
  std::optional<double> log_partition() const override;
  // Every label times the cell centres of [0,1]^d (d <= 2; nullopt otherwise), as terminal
  // (moved) states; the cell's reference measure is its volume (counting on the label).
  std::optional<TerminalGrid> terminal_grid(int64_t points, const torch::Device& device) const override;

  const LabelledBoxOptions& options() const { return options_; }

 private:
  // [B] bool: the row is a labelled origin (k, 0, origin)
  static torch::Tensor at_origin(const States& states);

  LabelledBoxOptions options_;
  BoxGeometry geometry_;
  ActionSpec spec_;
};

}  // namespace gfn

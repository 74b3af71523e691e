// Batched data of the engine. Everything lives on one device.
//
// Shapes: B batch, T = max_length + 1 steps (the exit step included), Dd discrete and Dc
// continuous state coordinates, Da chart coordinates. Padding after a trajectory's end is
// masked by `mask`, never read as data.
#pragma once

#include <memory>

#include <torch/types.h>

#include "core/options.h"

namespace gfn {

// A constant tensor an env builds once on the CPU and reads on whatever device its states are
// on: copied to each device once, at first use, and kept there (a copy per call would be a
// host-to-device transfer in every step of a rollout). Copies of a DeviceConstant share them.
class DeviceConstant {
 public:
  DeviceConstant() = default;
  DeviceConstant(torch::Tensor cpu);  // NOLINT: assigned from the tensor it holds
  const torch::Tensor& cpu() const { return cpu_; }
  torch::Tensor on(const torch::Device& device) const;

 private:
  struct Copies;
  torch::Tensor cpu_;
  std::shared_ptr<Copies> copies_;
};

// How batched code treats the rows that need no work (trajectories that have finished, padding):
//   kCompact     evaluates only the live rows: a boolean compaction per step, which reads a count
//                back to the host. On the CPU that costs nothing and saves the other rows' work.
//   kFixedShape  evaluates every row at every step under masks, with no compaction and no value
//                read back to the host, so that a CUDA stream runs ahead of the host and an
//                iteration can be captured as a CUDA graph. Rows that need no work are made
//                harmless (a full mask, no density) and their results masked out.
//   kAuto        kCompact on the CPU, kFixedShape on every other device.
// A run chooses once, where it is assembled (`train.execution`), and passes the choice down;
// both give the same numbers up to float rounding (tests/core/fixed_shape_test.cc).
enum class Execution { kAuto, kCompact, kFixedShape };
template <>
const EnumNames<Execution>& enum_names<Execution>();  // "auto", "compact", "fixed"

// `execution` with kAuto resolved for `device`.
Execution resolve_execution(Execution execution, const torch::Device& device);

struct States;

// The rows of a batch that a computation evaluates, chosen once per call from a [B] bool `keep`:
// in compact execution the kept rows only (an index, one host sync), in fixed shapes every row
// (the identity: nothing is gathered, and the rows not kept are the caller's to make harmless).
// Code written against it runs unchanged in both modes:
//     RowSelection rows(live, execution);
//     auto out = f(rows.take(x));                  // [N, ...]: N = kept rows, or B
//     auto full = rows.put(out, zeros);            // [B, ...]: `zeros` where not kept
class RowSelection {
 public:
  RowSelection(torch::Tensor keep, Execution execution);  // execution resolved (not kAuto)

  bool fixed() const { return !index_.defined(); }
  // Rows evaluated: the kept ones (compact) or all (fixed shapes).
  int64_t size() const;
  // No row kept (compact only: fixed shapes always evaluate every row, and never ask the host).
  bool empty() const { return !fixed() && index_.numel() == 0; }
  // Rows of `t` along dim 0 ([B, ...] -> [size(), ...]); `t` itself in fixed shapes.
  torch::Tensor take(const torch::Tensor& t) const;
  States take(const States& states) const;
  // take(t), with the unkept rows of a fixed-shape selection replaced by `fill` (an interior
  // point where a density is finite, say).
  torch::Tensor take_or(const torch::Tensor& t, double fill) const { return fill_unkept(take(t), fill); }
  // Evaluated rows' values `t` ([size(), ...]) with the unkept rows of a fixed-shape selection set
  // to `fill`; `t` itself in compact execution.
  torch::Tensor fill_unkept(const torch::Tensor& t, double fill) const;
  // One value per evaluated row ([size(), ...], of `base`'s dtype) in place in `base` ([B, ...])
  // where kept; in fixed shapes the rows not kept get `base`'s values (masking NaN and gradients
  // out).
  torch::Tensor put(const torch::Tensor& values, const torch::Tensor& base) const;
  // The evaluated rows' values as a whole batch: scattered into `base` in compact execution, the
  // values themselves in fixed shapes (where the caller has already given the unkept rows what
  // they should hold).
  torch::Tensor expand(const torch::Tensor& values, const torch::Tensor& base) const {
    return fixed() ? values : base.index_copy(0, index_, values);
  }
  // The evaluated rows that are not kept ([size()] bool): the padding of a fixed-shape selection;
  // undefined in compact execution, where every evaluated row is kept.
  const torch::Tensor& unkept() const { return unkept_; }
  // `mask` ([size(), C] bool) with the unkept rows fully open, so that every row has a choice.
  torch::Tensor open_unkept(const torch::Tensor& mask) const;
  // `flag` ([size()] bool) or'ed with unkept().
  torch::Tensor or_unkept(const torch::Tensor& flag) const;
  // The kept rows' positions ([N] int64, compact only).
  const torch::Tensor& index() const { return index_; }
  const torch::Tensor& keep() const { return keep_; }

 private:
  torch::Tensor keep_;    // [B] bool
  torch::Tensor index_;   // [N] int64, compact only
  torch::Tensor unkept_;  // [B] bool, fixed shapes only
};

// A batch of states. A row is either a state of the environment or the sink sf.
struct States {
  torch::Tensor discrete;    // [B, Dd] int64 (Dd may be 0)
  torch::Tensor continuous;  // [B, Dc] float64 (Dc may be 0)
  torch::Tensor is_initial;  // [B] bool: the row is s0
  torch::Tensor is_sink;     // [B] bool: the row is sf (its coordinates keep the last state's)

  int64_t batch_size() const { return is_sink.size(0); }
  // Rows `index` ([N] int64) of every field.
  States index_select(const torch::Tensor& index) const;
  // Rows start .. start + length - 1 of every field (views).
  States narrow(int64_t start, int64_t length) const;
  // Row-wise choice: where cond ([B] bool) is true take `a`, else `b`.
  static States where(const torch::Tensor& cond, const States& a, const States& b);
  // Stacks T states of batch B into one States of batch T*B (time-major).
  static States cat(const std::vector<States>& parts);
  States to(const torch::Device& device) const;
};

// A batch of actions: a component of the kernel (an atom such as a discrete child or the exit,
// or a continuous piece) and chart coordinates in that piece's standard domain.
struct Actions {
  torch::Tensor component;  // [B] int64: index into the kernel's components
  torch::Tensor coords;     // [B, Da] float64: chart coordinates (zero-width when Da = 0)
};

// A batch of trajectories s0 -> ... -> x -> sf of fixed time extent T = max_length + 1.
// Step t takes states[t] to states[t+1]; for trajectory b the steps t < length[b] are valid,
// the last valid one is the exit (x -> sf). log_pf/log_pb are those seen at sampling time under
// the behaviour policy (for logging); the trainer recomputes them under the training policy.
struct Trajectories {
  torch::Tensor states_discrete;    // [T+1, B, Dd] int64
  torch::Tensor states_continuous;  // [T+1, B, Dc] float64
  torch::Tensor is_initial;         // [T+1, B] bool
  torch::Tensor is_sink;            // [T+1, B] bool
  torch::Tensor action_component;   // [T, B] int64 (-1 on padding)
  torch::Tensor action_coords;      // [T, B, Da] float64: chart coordinates as drawn (or recovered)
  torch::Tensor log_jacobian;       // [T, B] float: log-volume factor of each forward step
  torch::Tensor mask;               // [T, B] bool: valid step
  torch::Tensor length;             // [B] int64: number of valid steps (moves + exit)
  torch::Tensor log_reward;         // [B] float: log R(x) of the terminal state x
  torch::Tensor log_pf_sampled;     // [T, B] float: behaviour log-prob at sampling (0 on padding)
  torch::Tensor terminal_discrete;  // [B, Dd] int64: x, the state before the exit
  torch::Tensor terminal_continuous;  // [B, Dc] float64
  // Trajectories sampled backward (backward_rollout): the backward action undoing each forward
  // step t as it was drawn, and its chart's log J (-1 / 0 on the exit steps and padding).
  // Scoring reads P_B at these coordinates instead of recovering them from the states, so that
  // a draw near a face of its domain is scored at the density it was drawn from. Undefined for
  // trajectories sampled forward.
  torch::Tensor backward_component;     // [T, B] int64
  torch::Tensor backward_coords;        // [T, B, Da] float64
  torch::Tensor backward_log_jacobian;  // [T, B] float

  int64_t num_steps() const { return mask.size(0); }
  int64_t batch_size() const { return mask.size(1); }
  // The states at time t ([B] rows).
  States states_at(int64_t t) const;
  // The terminal states x ([B] rows).
  States terminal_states() const;
};

// What an objective reads: a pure function of these (core/objective.h). Differentiable fields
// carry the autograd graph of the estimators.
struct LossInputs {
  torch::Tensor log_pf;        // [T, B] float: log p_F of each step (0 on padding)
  torch::Tensor log_pb;        // [T, B] float: log p_B of each step (0 on the exit and padding)
  torch::Tensor log_flow;      // [T+1, B] float: log F(s_t) where a flow head exists, else undefined
  torch::Tensor log_reward;    // [B] float: log R(x), clipped as configured
  torch::Tensor log_z;         // [] float: learned log Z (undefined for objectives without one)
  torch::Tensor mask;          // [T, B] bool: valid steps
  torch::Tensor length;        // [B] int64
  torch::Tensor local_credit;  // [T, B] float: per-step credits phi_t (FL/LED; 0 on padding), else undefined
  // Edge flows (flow matching), where asked for: the policy's raw forward logits are the log
  // edge flows log F(s -> s'), so log p_F = log F(s_t -> s_{t+1}) - log_outflow.
  torch::Tensor log_inflow;    // [T, B] float: log sum over parents p of F(p -> s_t) (0 at s0 and padding)
  torch::Tensor log_outflow;   // [T, B] float: log sum over the available edges of F(s_t -> .), exit included
  // Every visited state as a candidate terminal (modified DB, envs where every state may exit).
  torch::Tensor log_pf_exit;        // [T, B] float: log p_F(exit | s_t) (0 on padding)
  torch::Tensor log_reward_states;  // [T, B] float: log R(s_t), clipped as log_reward (0 on padding)
};

}  // namespace gfn

// The environment interface: geometry only, batched, on any device.
//
// The forward kernel kappa(s, .) from a state s is a finite list of components: atoms (a single
// next state: a discrete child, the exit to the sink sf, a jump back to s0) and pieces (a
// continuous family of next states, the image of a chart phi_{s,c}: U_c -> S from a standard
// domain U_c). The backward kernel is described the same way. An action is (component c, chart
// coordinates u); its log-density w.r.t. kappa is
//     log p_F(s -> s') = log pi(c | s) + log q(u | s, c) - log J_{s,c}(u),
// where the engine supplies pi and q (the policy heads, built from the ActionSpec) and the
// environment supplies J through `step` (log_jacobian). Atoms have J = 1.
//
// The reference measures. States carry a reference measure nu (counting measure on discrete
// coordinates, Lebesgue or arc length on continuous ones, an atom at s0); the forward kernel
// kappa(s, .) says where a step from s may land (its atoms count, its pieces carry the
// k-dimensional volume of their image), the backward kernel kappa_b(s', .) likewise. The two must
// be consistent, nu (x) kappa = (nu (x) kappa_b)^T as measures on S x S: then trajectory balance,
// Z prod p_F = R(x) prod p_B, holds for densities w.r.t. them, for any mix of atoms and pieces.
// The checker (core/checker.h) tests that, and the rest below, numerically.
//
// An Env is an immutable definition: every method is const and batched; the data flows through
// States/Actions values. The engine calls `step` on whole batches: rows whose action is the exit
// or that are already at the sink are discarded by the engine, so `step` must not fail on them
// (it may return anything finite there).
//
// What the engine guarantees, and what it expects:
//   - Chart coordinates (Actions::coords: a piece's `dim` first columns, the rest 0), by domain:
//       unit cube, interval  [0, 1]^k, float64. The policy's Beta draws lie in the open
//                            (0, 1), as close as 1e-300 to 0 and 2^-53 to 1; uniform draws (a
//                            uniform P_B, the checker) too. Coordinates an env recovers
//                            (backward_action, forward_action) must lie in [0, 1]; where its
//                            arithmetic can reach or cross a face, the env clamps them into
//                            float64's open interval (a Beta is scored there; envs/box.cc
//                            does). Recover them from the other action's coordinates where the
//                            chart allows (README "Numerics"): points cannot hold a coordinate
//                            within 1e-16 of a face.
//       real                 R^k, any finite value.
//       circle               [-pi, pi)^k (a torus step for k > 1) as the dtype represents pi:
//                            the engine wraps its draws into it, and recovered angles must lie
//                            in it (the von Mises density is -inf outside).
//   - dtypes: training passes int64 discrete and float64 continuous coordinates. The checker's
//     "jacobian" and "normalisation" call step / backward_step with float64 continuous states and
//     chart coordinates and differentiate the charts by central finite differences: an env that
//     keeps float64 there is checked to 1e-4; one that computes in float32 is differentiated in
//     float32 with a coarser step and checked to 100 times that, with a note.
//   - Fixed-shape execution (every device but the CPU; train.execution): the methods also see
//     padding rows, states a finished trajectory stays in, and backward_action of such a state
//     paired with itself under forward component 0. Their results are masked out, so they may be
//     anything, NaN included, but the methods must not throw on them, and must not read values
//     back to the host (.item(), nonzero), which would stall the GPU.
//   - The action spec is checked once, when the registry builds the env (validate_action_spec).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "core/types.h"

namespace gfn {

enum class ComponentKind { kAtom, kPiece };

// Standard chart domains of continuous pieces.
enum class Domain { kNone, kUnitCube, kInterval, kReal, kCircle };

// One component of a kernel.
struct Component {
  std::string name;                          // e.g. "+x0", "exit", "sphere"
  ComponentKind kind = ComponentKind::kAtom;
  int64_t dim = 0;                           // chart dimension k of a piece (0 for atoms)
  Domain domain = Domain::kNone;             // chart domain of a piece
  bool initial_only = false;                 // available only at s0 (its head may differ there)
};

// The components of one kernel (forward or backward).
struct KernelSpec {
  std::vector<Component> components;
  int64_t exit = -1;  // index of the exit atom (forward kernels only; -1 when none)

  int64_t size() const { return static_cast<int64_t>(components.size()); }
  bool has_pieces() const;
};

// What the engine builds policy heads from.
struct ActionSpec {
  KernelSpec forward;
  KernelSpec backward;
  int64_t coord_dim = 0;  // Da: the largest chart dimension over all pieces
};

// ConfigError "env 'NAME': action spec: <problem>" for the first thing wrong with `spec`: a
// kernel without components (the backward kernel may have none), a name empty or used twice in
// a kernel, an atom with a dimension or a domain, a piece without a domain or of dimension < 1,
// a piece wider than coord_dim, a forward
// exit that is not an atom, a backward exit. The registry checks every env it builds; the
// checker and the policy heads rely on it.
void validate_action_spec(const ActionSpec& spec, const std::string& env_name);

// The result of a forward or backward step.
struct StepResult {
  States next;               // [B] rows
  torch::Tensor log_jacobian;  // [B] float: log J of the chart at the taken coordinates (0 for atoms)
};

// What the time-conditioned policy (policy.architecture = "time", core/estimator.h) needs of a
// time-indexed env (diffusion samplers): features() is [t, y_1, ..., y_m] with t = k / steps for
// an integer k in [0, steps] (column 0) and the state's coordinates after it; the forward kernel
// has one piece on R^k whose Gaussian location is the drift f(t, x) times `drift_to_chart` (the
// chart's units per unit of drift: sqrt(dt) / sigma for a step x' = x + f dt + sigma sqrt(dt) u).
struct TimeIndexing {
  int64_t steps = 1;            // t takes the values k / steps, k = 0 .. steps
  double drift_to_chart = 1.0;  // chart units per unit of drift, > 0
};

// Terminal states on a regular grid over their continuous coordinates, for evaluating a
// terminating density against R/Z where the continuous dimension is small (core/evaluation.h).
// The cells may come in any order (the box lists them in row-major order of their coordinates,
// the first one outer); several cells may share continuous coordinates when they differ in a
// discrete one (the labelled box's labels), and the 2-D plots sum them. The grid should cover
// where R/Z has its mass: GridMetrics::mass reports the share of P_F's mass it sees.
struct TerminalGrid {
  States states;                 // [N] terminal states at the cell centres
  torch::Tensor log_cell_volume;  // [N] float64: log of each cell's reference measure
};

// Features that are a sequence of tokens (Env::token_layout): features() is `length` one-hot
// blocks of `vocabulary` entries each, position-major ([B, length * vocabulary]); what
// policy.architecture = "transformer" reads.
struct TokenLayout {
  int64_t length = 0;
  int64_t vocabulary = 0;
};

// A matrix an env computes from terminal samples at every evaluation (Env::sample_matrix_specs).
struct SampleMatrixSpec {
  std::string name;                  // the dataset /matrices/<name>
  int64_t rows = 0, cols = 0;
  torch::Tensor exact;               // [rows, cols] float64 CPU: the exact value, or undefined
};

// backward_action/forward_action of envs whose atoms are undone by the component of the same
// index (+d / -d): `action` itself, with log J = 0 ([B] float) written to `log_jacobian` if asked.
Actions same_index_action(const Actions& action, torch::Tensor* log_jacobian);

class Env;

// The parents of each of `states` ([N] rows, none the sink) through the env's backward atoms,
// one entry per backward component c: the parent reached by c (the row itself where c is not
// available, and at s0), the forward component that leads from it back to the row, and whether
// c is available. For envs whose backward kernel has no continuous pieces (flow matching, the
// state tables).
struct ParentMoves {
  std::vector<States> parents;  // C_b entries of [N] rows
  torch::Tensor component;      // [N, C_b] int64 (0 where unavailable)
  torch::Tensor available;      // [N, C_b] bool (all false at s0)
};
ParentMoves parent_moves(const Env& env, const States& states);
// The max-entropy backward policy of an env with path counts: log p_B(c | s) = log N(parent_c(s))
// - log N(s) for each available backward component c, -inf elsewhere, [N, C_b] float64; the row of
// s0 is all -inf.
torch::Tensor max_entropy_backward_log_probs(const Env& env, const States& states);

class Env {
 public:
  virtual ~Env() = default;

  // Registered name of the kind ("hypergrid").
  virtual std::string name() const = 0;
  // The forward and backward components.
  virtual const ActionSpec& action_spec() const = 0;
  // Largest number of non-exit moves of any trajectory; T = max_length() + 1.
  virtual int64_t max_length() const = 0;
  // Number of discrete (Dd) and continuous (Dc) coordinates of a state.
  virtual int64_t discrete_dim() const = 0;
  virtual int64_t continuous_dim() const = 0;
  // Width F of the policy input.
  virtual int64_t feature_dim() const = 0;

  // B copies of s0 on `device`.
  virtual States initial_states(int64_t batch, const torch::Device& device) const = 0;
  // Policy input: [B, F] float32.
  virtual torch::Tensor features(const States& states) const = 0;
  // Forward components available at each state: [B, C_f] bool (at least one true per row;
  // the exit where allowed). Rows at the sink may hold anything.
  virtual torch::Tensor forward_mask(const States& states) const = 0;
  // Backward components available at each state: [B, C_b] bool (all false at s0).
  virtual torch::Tensor backward_mask(const States& states) const = 0;
  // Applies non-exit forward actions; see the note above on exit and sink rows.
  virtual StepResult step(const States& states, const Actions& actions) const = 0;
  // Applies backward actions (child -> parent); used by the checker and backward sampling.
  virtual StepResult backward_step(const States& states, const Actions& actions) const = 0;
  // The backward action that takes `child` back to `parent`, where child = step(parent, forward).
  // For pieces, `log_jacobian` (if not null) receives the backward chart's log J, [B] float.
  virtual Actions backward_action(const States& parent, const States& child, const Actions& forward,
                                  torch::Tensor* log_jacobian = nullptr) const = 0;
  // The forward action that takes `parent` to `child`, where parent = backward_step(child,
  // backward): the inverse of backward_action, used to score trajectories sampled backward
  // (from terminal states towards s0). For pieces, `log_jacobian` (if not null) receives the
  // forward chart's log J at the recovered coordinates, [B] float.
  virtual Actions forward_action(const States& child, const States& parent, const Actions& backward,
                                 torch::Tensor* log_jacobian = nullptr) const = 0;
  // log R(x) of each state: [B] float (where the exit is allowed).
  virtual torch::Tensor log_reward(const States& states) const = 0;

  // Every state may exit (the exit atom is available everywhere, s0 included): R is defined on
  // every state, which modified detailed balance needs. The checker verifies the claim.
  virtual bool every_state_terminal() const { return false; }
  // Forward-looking credits (optional, Pan et al. 2023): an intermediate log-reward
  // log R~(s) = -E(s) defined on every state, from which the engine credits each move with
  // log R~(s_{t+1}) - log R~(s_t) and the exit with log R(x) - log R~(x) (log R~(s0) taken as
  // 0), so that a trajectory's credits sum to log R(x).
  virtual bool has_intermediate_reward() const { return false; }
  virtual torch::Tensor intermediate_log_reward(const States& states) const;  // [B] float

  // Path counts (optional): log N(s), N(s) the number of paths from s0 to s (N(s0) = 1), [B]
  // float64. They define the max-entropy backward policy p_B(s | s') = N(s) / N(s') (every
  // trajectory into x equally likely under P_B: policy.backward = "maxent").
  virtual bool has_path_counts() const { return false; }
  virtual torch::Tensor log_path_count(const States& states) const;  // [B] float64

  // Env-specific metrics of terminal samples of the trained policy (optional), logged as
  // /eval/<name> at every evaluation: e.g. the sets' error of the inclusion frequencies against
  // the exact probabilities. `terminal` holds on-policy terminal states.
  virtual bool has_sample_metrics() const { return false; }
  virtual std::vector<std::pair<std::string, double>> sample_metrics(const States& /*terminal*/) const { return {}; }

  // Modes (optional): how many the env defines, and the mode each terminal state counts as
  // finding ([B] int64, -1: none). Evaluations log modes_found: the distinct modes among every
  // terminal state trained on so far.
  virtual int64_t num_modes() const { return 0; }
  virtual torch::Tensor mode_index(const States& terminal) const;
  // A fixed test set of terminal states (optional): evaluations log the Spearman correlation
  // between log p_T(x) (estimated through P_B, exact on a tree) and log R(x) on it.
  virtual std::optional<States> test_set(const torch::Device& /*device*/) const { return std::nullopt; }
  // Token features (optional): what policy.architecture = "transformer" reads.
  virtual std::optional<TokenLayout> token_layout() const { return std::nullopt; }

  // Matrices of terminal samples' statistics (optional): computed at every evaluation from the
  // same on-policy samples as sample_metrics, logged as /matrices/<name> ([E, rows, cols], one
  // per evaluation) beside the exact value /matrices/<name>_exact where the env knows it, and
  // drawn by `gfn analyse --plot` side by side (the Bayesian-network env's edge marginals).
  // sample_matrices returns one [rows, cols] float64 CPU tensor per spec, in the specs' order.
  virtual std::vector<SampleMatrixSpec> sample_matrix_specs() const { return {}; }
  virtual std::vector<torch::Tensor> sample_matrices(const States& /*terminal*/) const { return {}; }

  // A fixed backward kernel (optional, DESIGN.md 9c): P_B given by the env rather than learned
  // (policy.backward = "fixed"), e.g. the Brownian bridge of a diffusion sampler. The env returns
  // what a backward head would read at each state ([B, C_b + raw] float32 laid out as KernelHead
  // reads them, core/kernel_head.h, with one mixture component per piece: C_b component logits,
  // then each piece's raw parameters, e.g. [loc | log-scale] of a Gaussian on R^k), computed from
  // the state; scoring, backward sampling, evaluation and the checker use it like a learned head.
  virtual bool has_fixed_backward() const { return false; }
  virtual torch::Tensor fixed_backward_outputs(const States& states) const;  // [B, C_b + raw] float32

  // grad log R at terminal states (optional): w.r.t. the continuous coordinates, [B, Dc] float64,
  // for the Langevin parametrisation of a time-conditioned policy and for local search (MALA).
  // The default differentiates log_reward by autograd on a float64 copy of the coordinates.
  virtual bool has_log_reward_gradient() const { return false; }
  virtual torch::Tensor log_reward_gradient(const States& states) const;
  // Whether the continuous coordinates of terminal states lie where R is defined ([B] bool): local
  // search rejects proposals outside (the Box's unit cube). Default: everywhere.
  virtual torch::Tensor in_support(const States& states) const;
  // Exact samples of terminal states from R / Z (optional): EUBO and the 2-Wasserstein distance.
  virtual bool has_exact_samples() const { return false; }
  virtual States exact_samples(int64_t n, torch::Generator& generator, const torch::Device& device) const;
  // Reward parameters a conditional GFlowNet may set per trajectory (optional, core/condition.h),
  // besides the exponent beta that every env takes: their names (hypergrid: "r0", "r1", "r2"),
  // and log R(x) with the named ones set per row (`values` [B, names.size()] float64) and the
  // others as configured, [B] float. The default throws std::logic_error.
  virtual std::vector<std::string> reward_parameters() const { return {}; }
  virtual torch::Tensor log_reward_given(const States& states, const std::vector<std::string>& names,
                                         const torch::Tensor& values) const;
  // Conditional envs (core/condition.h): the width P of the condition vector c (0: none), each
  // state's c as the log Z(c) network reads it ([B, P] float32), and the initial states of a
  // rollout: initial_states, with a condition drawn for each row from `generator`.
  virtual int64_t condition_dim() const { return 0; }
  virtual torch::Tensor condition_features(const States& states) const;
  virtual States draw_initial_states(int64_t batch, torch::Generator& /*generator*/, const torch::Device& device) const {
    return initial_states(batch, device);
  }
  // Time-indexed envs (optional): what policy.architecture = "time" reads.
  virtual std::optional<TimeIndexing> time_indexing() const { return std::nullopt; }

  // Exact evaluation (optional): enumeration of every state in topological order (every
  // parent before its children), the index of a state in that order, and log Z.
  virtual bool enumerable() const { return false; }
  virtual int64_t num_states() const;
  virtual States enumerate_states(const torch::Device& device) const;
  virtual torch::Tensor state_index(const States& states) const;  // [B] int64
  virtual std::optional<double> log_partition() const { return std::nullopt; }
  // Continuous evaluation (optional): the terminal states on a grid of `points` cells per
  // continuous dimension covering where R/Z has its mass (envs with at most 2 continuous
  // coordinates; nullopt otherwise).
  virtual std::optional<TerminalGrid> terminal_grid(int64_t points, const torch::Device& device) const {
    return std::nullopt;
  }
};

}  // namespace gfn

// The environment checker: the invariants every environment must pass, in one call
// usable from any test and from `gfn check-env NAME`,
//
//     EXPECT_TRUE(check_env(MyEnv{}).passed()) << check_env(MyEnv{}).text();
//
// runs five checks on an environment and reports each with its numbers:
//   inverse        on sampled trajectories, every move parent -(a)-> child is undone exactly:
//                  a is available forward at the parent, b = backward_action(parent, child, a) is
//                  available backward at the child, backward_step(child, b) is the parent and
//                  forward_action(child, parent, b) is a again (same log J); no non-sink state
//                  has an empty forward mask, no non-initial one an empty backward mask; an env
//                  that declares every_state_terminal() offers the exit at every sampled state.
//   jacobian       for every continuous piece (forward and backward), at sampled states and
//                  random interior chart coordinates u, the env's log J equals the numerical
//                  k-volume factor  log sqrt(det(D phi^T D phi))  of u -> continuous coordinates
//                  of the next state, D phi by central finite differences in float64. Any k.
//   normalisation  each policy (P_F; P_B) at sampled states: component probabilities over the
//                  available components sum to 1, and every piece of dimension <= 2 integrates
//                  to 1 w.r.t. its reference measure (the k-volume on its image):
//                      int_U q(u | s, c) / J_env(u) * J_num(u) du = 1,
//                  by Gauss-Legendre quadrature (Boost.Math) over the chart domain. Pieces of
//                  dimension > 2 are skipped with a note ("jacobian" still covers them).
//   partition      when the env knows log Z: for an env that enumerates its (atom-only) states,
//                  log Z equals log sum R(x) over the states where the exit is available (to
//                  1e-4, float32 rewards; importance sampling cannot resolve large grids such as
//                  4-D H=20 with R0 = 1e-3: ESS 26 of 200,000); otherwise the importance-sampling
//                  estimate with the reference policy, log Z_IS = log mean R(x) P_B(tau|x) /
//                  P_F(tau), lies within is_tolerance_se standard errors of log Z. A wrong
//                  Jacobian biases Z_IS. This check is statistical: an estimate beyond the
//                  limit is drawn again from an independent stream, and the check fails only
//                  when both are beyond it (with Gaussian errors a correct env then fails with
//                  probability (2 Phi(-3))^2 = 7e-6 at 3 SE; the message states the level).
//   termination    every sampled trajectory ends with the exit after at most max_length moves.
// An env whose action spec is malformed (validate_action_spec in core/env.h) gets one failed
// check instead, "spec", whose detail is the problem.
//
// The reference policy. Importance weights of an untrained network have heavy or infinite-
// variance tails once trajectories have a few continuous moves, and then the reported standard
// error means nothing (tests/core/consistency_test.cc measured ESS 17-1,400 of 200,000). So the
// checker builds its own estimators (MLP, hidden 32, 2 layers, seeded) and fixes their output
// layers: zero output weights (state-independent policies), component logits 0 (uniform over
// the available components), P_F's Beta-mixture concentrations 1/2 by default (heavier near the faces of
// the cube, where charts degenerate and backward pieces shrink: on the Box this raised the ESS of
// 100,000 draws from 23-180 to 170-580), Gaussian log-scale log 2 for P_F and 0 for P_B (P_F
// broader than P_B keeps the weights' variance finite), von Mises concentration ~0 (uniform on
// the circle). P_B is uniform where the backward kernel allows it and a learned head (fixed as
// above, Betas at concentration 1) where it has a piece on R^k, and the env's own where it has one
// (Env::has_fixed_backward; P_F's Gaussians then have log-scale 0: a diffusion env's reference
// step, for which the weights are R(x) / N(x; 0, sigma^2) whatever the path). The reference policy samples the
// trajectories of every check and the estimate of Z. "normalisation" integrates two other
// policies on the same trunk: the fixed one with every Beta at concentration 1 (Gauss-Legendre
// is exact-grade for it, not for the integrable singularities of concentration 1/2), and the
// network as initialised (random output layer), whose state-dependent densities exercise the
// heads harder.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/env.h"

namespace gfn {

struct CheckOptions {
  uint64_t seed = 0;                    // seed of the network initialisation and of every draw
  int64_t trajectories = 1024;          // sampled trajectories for inverse, jacobian, termination; >= 1
  int64_t is_samples = 200000;          // trajectories of the importance-sampling estimate of Z; >= 2.
                                        // 100,000 left the labelled box inconclusive at seeds 0
                                        // and 1 (ESS 45 and 85); 200,000 gave ESS 139-681 over
                                        // seeds 0-4 (the box: 196-352 at 100,000)
  int64_t is_batch = 10000;             // trajectories per rollout batch of that estimate; >= 1
  double is_tolerance_se = 3.0;         // |log Z_IS - log Z| must be <= this many standard errors; > 0
  double min_ess = 100.0;               // below this effective sample size "partition" fails as
                                        // inconclusive rather than pass by luck; >= 0
  int64_t quadrature_states = 8;        // states per kernel at which densities are integrated; >= 1
  int64_t quadrature_nodes = 40;        // Gauss-Legendre nodes per chart dimension; one of 20, 30, 40, 60
  double quadrature_tolerance = 1e-3;   // |integral - 1| allowed per piece and state; > 0
  int64_t jacobian_states = 256;        // sampled states per piece in "jacobian"; >= 1
  double finite_difference_step = 1e-5;  // step h of the central differences in chart units
                                         // (float64); in (0, 0.01]
  double jacobian_tolerance = 1e-4;     // |log J_env - log J_num| allowed in float64; > 0 (an env that
                                        // computes in float32 gets 100x this, with a note)
  double inverse_tolerance = 1e-3;      // relative-and-absolute tolerance on continuous state
                                        // coordinates, chart coordinates and log J when an action is
                                        // undone (float32 round-off through inverse trigonometric
                                        // charts reaches ~1e-4); > 0
  double reference_concentration = 0.5;  // Beta concentration of the reference P_F (sampling and
                                         // every check but "normalisation"); in [0.01, 5]. Below
                                         // 0.2 draws reach within 1e-30 of the faces: the checks'
                                         // test of boundary numerics (README "Numerics")

  // Throws ConfigError naming the field, its value and the rule.
  void validate() const;
};

// The outcome of one check.
struct CheckResult {
  std::string name;     // "inverse", "jacobian", "normalisation", "partition" or "termination";
                        // "spec" alone for a malformed action spec
  bool passed = false;  // meaningful when not skipped
  bool skipped = false;  // nothing to check (say, no continuous pieces, or log Z unknown)
  std::string detail;   // one line: what was checked, with numbers; on failure, where and why
};

struct CheckReport {
  std::string env;                  // the env's name()
  std::vector<CheckResult> checks;  // in the order above
  // Every non-skipped check passed.
  bool passed() const;
  // One line per check: "PASS inverse: ...", "FAIL jacobian: ...", "SKIP partition: ...".
  std::string text() const;
};

// Runs every check on `env` (on the CPU). Throws ConfigError for invalid options. A malformed
// action spec gives a report of one failed check, "spec", with validate_action_spec's message; an
// exception thrown by the env inside a check fails that check with the exception's message.
CheckReport check_env(const Env& env, const CheckOptions& options = {});

}  // namespace gfn

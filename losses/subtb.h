// Sub-trajectory balance, SubTB(lambda) (Madan et al., ICML 2023), vectorised: every
// sub-trajectory of every trajectory of the batch in one pass from prefix sums.
//
// A trajectory with L valid steps (moves, then the exit) visits s_0 .. s_{L-1} = x and ends in
// the sink; its potentials are phi_t = log F(s_t) for t < L (phi_0 = log Z with s0 = "log_z")
// and phi_L = log R(x) (the exit's P_B is 1). With the prefix sums C_t = sum_{u<t} (log p_F,u -
// log p_B,u), the residual of the sub-trajectory from s_i to s_j (0 <= i < j <= L) is
//     delta_ij = phi_i + C_j - C_i - phi_j = a_i - a_j,   a_t = phi_t - C_t,
// and each trajectory's loss is sum w_ij delta_ij^2 / sum w_ij over its pairs, L = the batch
// mean, with the weighting
//     "geometric": w_ij = lambda^(j-i);  "equal": w_ij = 1;  "tb": only (0, L), i.e. TB;
//     "db": only j = i + 1, i.e. DB with each trajectory's transitions averaged first.
// The sum is a quadratic form in a: with the weights as one symmetric [T+1, T+1] matrix G shared
// by the batch and m_t = [t <= L_b], it takes two small GEMMs and never builds the [T+1, T+1, B]
// pairs (bench/bench_losses: see bench/RESULTS.md). residuals_and_weights/pairwise_loss keep the
// explicit pairs as the reference the tests hold the fast path to.
// lambda -> 0+ tends to "db", lambda -> infinity to "tb" (tests/losses/subtb_test.cc). Takes
// forward-looking credits (losses/credit.h).
#pragma once

#include <string>
#include <vector>

#include "core/objective.h"
#include "core/options.h"

namespace gfn {

enum class SubTbWeighting { kGeometric, kEqual, kTb, kDb };
template <>
const EnumNames<SubTbWeighting>& enum_names<SubTbWeighting>();  // "geometric", "equal", "tb", "db"
// The potential phi_0 at s0: the flow head's log F(s0), or the learned log Z.
enum class SubTbStart { kFlow, kLogZ };
template <>
const EnumNames<SubTbStart>& enum_names<SubTbStart>();  // "flow", "log_z"

struct SubTbOptions : KeyedOptions<SubTbOptions> {
  SubTbWeighting weighting = SubTbWeighting::kGeometric;
  double lambda = 0.9;                  // of the geometric weighting, > 0 and finite
  SubTbStart s0 = SubTbStart::kFlow;    // phi_0

  // The config keys under [objective] for kind "subtb".
  static const OptionTable<SubTbOptions>& keys();
};

class SubTrajectoryBalance final : public Objective {
 public:
  explicit SubTrajectoryBalance(SubTbOptions options = {}) : options_(options) {}
  std::string name() const override { return "subtb"; }
  Requirements requirements() const override {
    Requirements r;
    r.log_z = options_.s0 == SubTbStart::kLogZ;
    r.flow = r.local_credit = true;
    return r;
  }
  torch::Tensor loss(const LossInputs& inputs) const override;
  torch::Tensor log_z_estimate(const LossInputs& inputs) const override;
  // Every pair's residual delta_ij and weight (0 outside i < j <= L_b): [T+1, T+1, B] each.
  std::pair<torch::Tensor, torch::Tensor> residuals_and_weights(const LossInputs& inputs) const;
  // The loss from those pairs: the reference `loss` is tested against (and what it uses for
  // geometric weights with lambda > 1).
  torch::Tensor pairwise_loss(const LossInputs& inputs) const;
  // a_t = phi_t - C_t, [T+1, B] (credits already folded in by the caller).
  torch::Tensor potentials(const LossInputs& inputs) const;
  const SubTbOptions& options() const { return options_; }

 private:
  SubTbOptions options_;
};

}  // namespace gfn

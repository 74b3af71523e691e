// Flow matching, modified DB and forward-looking credits: values by hand, float64 gradient
// checks against finite differences (w.r.t. the loss inputs and, through scoring, the policy's
// parameters), agreement of the per-step and tabular scoring of their LossInputs fields, the
// separate flow trunk, and the config errors of envs that cannot feed them.
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "components/flow_head.h"
#include "core/checker.h"
#include "core/estimator.h"
#include "core/params.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/tabular.h"
#include "core/trainer.h"
#include "envs/box.h"
#include "envs/hypergrid.h"
#include "losses/credit.h"
#include "losses/db.h"
#include "losses/fm.h"
#include "losses/modified_db.h"
#include "losses/subtb.h"
#include "losses/tb.h"
#include "losses/vargrad.h"
#include "tests/losses/loss_testing.h"

namespace gfn {
namespace {

using testing::hand_inputs;
using testing::hand_inputs_with_credits;

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

// The largest |got - expected| over the entries (infinity when the counts differ).
double max_abs_diff(const torch::Tensor& got, const std::vector<double>& expected) {
  auto flat = got.reshape({-1}).to(torch::kFloat64);
  if (flat.numel() != static_cast<int64_t>(expected.size())) return std::numeric_limits<double>::infinity();
  return (flat - torch::tensor(expected, torch::kFloat64)).abs().max().item<double>();
}

// hand_inputs(): visited states other than s0: (t=1, b=0) 1.5 - 1 = 0.5, (2, 0) 0.5 - 0.25 =
// 0.25, (1, 1) 0.75 - 0.5 = 0.25; exit edges -0.7 + 0.25 = -0.45 against log R = -1 (eps 0.55)
// and -0.3 + 0.5 = 0.2 against 0.5 (eps -0.3): L = 0.375 / 3 + (0.3025 + 0.09) / 2.
TEST(FlowMatchingTest, ValueByHand) {
  FlowMatching fm;
  EXPECT_EQ(fm.name(), "fm");
  EXPECT_TRUE(fm.requirements().edge_flows);
  EXPECT_FALSE(fm.requirements().flow);
  EXPECT_FALSE(fm.requirements().log_z);
  EXPECT_FALSE(fm.requirements().local_credit);
  auto in = hand_inputs();
  auto [delta, eps] = FlowMatching::residuals(in);
  EXPECT_LT(max_abs_diff(delta, {0.0, 0.0, 0.5, 0.25, 0.25, 0.0}), 1e-12);
  EXPECT_LT(max_abs_diff(eps, {0.55, -0.3}), 1e-12);
  EXPECT_NEAR(fm.loss(in).item<double>(), 0.125 + 0.19625, 1e-12);
  EXPECT_NEAR(fm.log_z_estimate(in).item<double>(), 2.0, 1e-12);
  // padding never counts
  in.log_inflow[2][1] = 9.0;
  in.log_outflow[2][1] = -4.0;
  EXPECT_NEAR(fm.loss(in).item<double>(), 0.125 + 0.19625, 1e-12);
}

TEST(FlowMatchingTest, GradientMatchesFiniteDifferences) {
  auto inputs = testing::input_gradient_check(
      FlowMatching(), {&LossInputs::log_inflow, &LossInputs::log_outflow, &LossInputs::log_pf, &LossInputs::log_reward});
  EXPECT_EQ(inputs.entries, 6 + 6 + 6 + 2);
  EXPECT_LE(inputs.worst_excess, 0.0) << inputs.worst;
  ScoreOptions o;
  o.edge_flows = true;
  auto policy = testing::policy_gradient_check(FlowMatching(), o);
  EXPECT_GT(policy.entries, 0);
  EXPECT_LE(policy.worst_excess, 0.0) << policy.worst;
  EXPECT_GT(policy.largest_gradient, 1e-6);
}

// hand_inputs(): log F(s) = log R(s) - log p_F(exit | s) = 2.5, 1, -0.75 and 1.25, 1; the moves
// give 2.5 - 1 + 0.2 - 1 = 0.7, 1 - 2 + 0.4 + 0.75 = 0.15 and 1.25 - 0.5 + 0.1 - 1 = -0.15.
TEST(ModifiedDbTest, ValueByHand) {
  ModifiedDetailedBalance mdb;
  EXPECT_EQ(mdb.name(), "modified_db");
  EXPECT_TRUE(mdb.requirements().state_rewards);
  EXPECT_FALSE(mdb.requirements().flow);
  EXPECT_FALSE(mdb.requirements().log_z);
  auto in = hand_inputs();
  EXPECT_LT(max_abs_diff(ModifiedDetailedBalance::residuals(in), {0.7, -0.15, 0.15, 0.0, 0.0, 0.0}), 1e-12);
  EXPECT_NEAR(mdb.loss(in).item<double>(), 0.535 / 3, 1e-12);
  EXPECT_NEAR(mdb.log_z_estimate(in).item<double>(), 1.875, 1e-12);
  // a batch whose trajectories all exit at s0 has no move and loss 0 (not NaN)
  in.length = torch::tensor({1, 1}, torch::kInt64);
  in.mask = torch::tensor({true, true, false, false, false, false}).view({3, 2});
  EXPECT_EQ(mdb.loss(in).item<double>(), 0.0);
}

TEST(ModifiedDbTest, GradientMatchesFiniteDifferences) {
  auto inputs = testing::input_gradient_check(
      ModifiedDetailedBalance(),
      {&LossInputs::log_pf, &LossInputs::log_pb, &LossInputs::log_pf_exit, &LossInputs::log_reward_states});
  EXPECT_EQ(inputs.entries, 4 * 6);
  EXPECT_LE(inputs.worst_excess, 0.0) << inputs.worst;
  ScoreOptions o;
  o.state_rewards = true;
  auto policy = testing::policy_gradient_check(ModifiedDetailedBalance(), o);
  EXPECT_GT(policy.entries, 0);
  EXPECT_LE(policy.worst_excess, 0.0) << policy.worst;
  EXPECT_GT(policy.largest_gradient, 1e-6);
}

// ell (s0 and padding 0): 0, 0.5, -0.2 and 0, 0.3; log R -1 and 0.5. Moves earn the change of
// ell, exits log R(x) - ell(x): 0.5, -0.7, -0.8 (sum -1) and 0.3, 0.2 (sum 0.5).
TEST(LocalCreditTest, ForwardLookingCreditsByHand) {
  auto in = hand_inputs();
  auto ell = torch::tensor({0.0, 0.0, 0.5, 0.3, -0.2, 0.0}, kF64).view({3, 2});
  auto credit = forward_looking_credits(ell, in.log_reward, in.mask, in.length);
  EXPECT_LT(max_abs_diff(credit, {0.5, 0.3, -0.7, 0.2, -0.8, 0.0}), 1e-12);
  EXPECT_LT(max_abs_diff(credit.sum(0), {-1.0, 0.5}), 1e-12);
}

// DB with credits phi: delta_t = log F~(s_t) + log p_F - phi_t - log p_B - log F~(s_{t+1}), the
// exit's target 0: -0.8, 0.4, -0.7 and 0.1, -0.3.
TEST(LocalCreditTest, DetailedBalanceByHand) {
  auto in = hand_inputs_with_credits();
  EXPECT_LT(max_abs_diff(DetailedBalance::residuals(in), {-0.8, 0.1, 0.4, -0.3, -0.7, 0.0}), 1e-12);
  EXPECT_NEAR(DetailedBalance().loss(in).item<double>(), 1.39 / 5, 1e-12);
}

// The reparametrisation is exact: with credits that sum to log R(x), TB is unchanged, and DB and
// SubTB (every weighting) on log F~ equal the plain losses on log F = log F~ + sum_{k<t} phi_k.
TEST(LocalCreditTest, EqualsThePlainLossOnShiftedFlows) {
  auto credited = hand_inputs_with_credits();
  auto plain = hand_inputs();
  // prefix sums of the credits: 0, 0.5, -0.5 and 0, 0.25
  plain.log_flow = torch::tensor({1.0, 1.0, 1.0, 0.5, -1.0, 0.0, 0.0, 0.0}, kF64).view({4, 2});
  EXPECT_NEAR(TrajectoryBalance().loss(credited).item<double>(), TrajectoryBalance().loss(hand_inputs()).item<double>(),
              1e-12);
  EXPECT_NEAR(DetailedBalance().loss(credited).item<double>(), DetailedBalance().loss(plain).item<double>(), 1e-12);
  for (auto w : {SubTbWeighting::kGeometric, SubTbWeighting::kEqual, SubTbWeighting::kTb, SubTbWeighting::kDb}) {
    for (bool s0_log_z : {false, true}) {
      SubTbOptions o;
      o.weighting = w;
      o.s0 = s0_log_z ? SubTbStart::kLogZ : SubTbStart::kFlow;
      SubTrajectoryBalance subtb(o);
      EXPECT_NEAR(subtb.loss(credited).item<double>(), subtb.loss(plain).item<double>(), 1e-12)
          << static_cast<int>(w) << " " << s0_log_z;
    }
  }
  // the credited inputs read log R only through the credits
  auto folded = with_local_credit(credited);
  EXPECT_LT(max_abs_diff(folded.log_reward, {0.0, 0.0}), 1e-12);
  EXPECT_FALSE(folded.local_credit.defined());
  EXPECT_TRUE(with_local_credit(plain).log_pf.is_same(plain.log_pf));
}

TEST(LocalCreditTest, GradientMatchesFiniteDifferences) {
  const std::vector<torch::Tensor LossInputs::*> fields{&LossInputs::log_flow, &LossInputs::log_pf,
                                                        &LossInputs::log_pb, &LossInputs::local_credit};
  for (const auto& check : {testing::input_gradient_check(DetailedBalance(), fields, hand_inputs_with_credits),
                            testing::input_gradient_check(SubTrajectoryBalance(), fields, hand_inputs_with_credits)}) {
    EXPECT_EQ(check.entries, 8 + 6 + 6 + 6);
    EXPECT_LE(check.worst_excess, 0.0) << check.worst;
  }
  auto tb = testing::input_gradient_check(
      TrajectoryBalance(), {&LossInputs::log_z, &LossInputs::log_pf, &LossInputs::local_credit},
      hand_inputs_with_credits);
  EXPECT_EQ(tb.entries, 1 + 6 + 6);
  EXPECT_LE(tb.worst_excess, 0.0) << tb.worst;
  ScoreOptions o;
  o.credit = Credit::kForwardLooking;
  auto policy = testing::policy_gradient_check(SubTrajectoryBalance(), o);
  EXPECT_GT(policy.entries, 0);
  EXPECT_LE(policy.worst_excess, 0.0) << policy.worst;
  EXPECT_GT(policy.flow_gradient, 1e-8);
}

// The per-step path (parents from the env's backward atoms, one policy pass over them) and the
// tabular path (parents from the state table) give the same optional fields, on 3-D H=3.
TEST(ScoringFieldsTest, PerStepAndTabularAgree) {
  HypergridOptions ho;
  ho.ndim = 3;
  ho.height = 3;
  HypergridEnv env(ho);
  StateTable table(env, torch::kCPU);
  EstimatorOptions eo;
  eo.hidden = 16;
  eo.dtype = torch::kFloat64;
  eo.backward = BackwardPolicy::kLearned;
  auto gen = make_generator(5, torch::kCPU);
  Estimators est(env, eo, gen, torch::kCPU);
  auto sgen = make_generator(6, torch::kCPU);
  auto tr = rollout(env, *est.policy, 64, SamplerOptions{}, sgen, torch::kCPU);
  std::vector<torch::Tensor> rows;
  for (int64_t t = 0; t <= tr.num_steps(); ++t) rows.push_back(env.state_index(tr.states_at(t)).clamp_min(0));
  ScoreOptions o;
  o.edge_flows = o.state_rewards = true;
  o.credit = Credit::kForwardLooking;
  o.log_reward_clip = -2.0;  // clips R0 = 0.1: log R(s) and the exit credits see the clipped value
  auto a = score_trajectories(env, est, tr, o);
  auto b = score_tabular(table, evaluate_table(table, *est.policy), tr, torch::stack(rows), est.log_z, o);
  for (auto f : {&LossInputs::log_pf, &LossInputs::log_pb, &LossInputs::log_inflow, &LossInputs::log_outflow,
                 &LossInputs::log_pf_exit, &LossInputs::log_reward_states, &LossInputs::local_credit}) {
    ASSERT_TRUE((a.*f).defined() && (b.*f).defined());
    EXPECT_TRUE(torch::allclose(a.*f, (b.*f).to(torch::kFloat64), 1e-9, 1e-9));
  }
  EXPECT_TRUE(torch::allclose(a.local_credit.sum(0), a.log_reward, 1e-6, 1e-6));
  EXPECT_GE(a.log_reward_states.masked_select(a.mask).min().item<double>(), -2.0);
  // the states after s0 have a real inflow (s0's edge flow), not the masked dummy 0
  EXPECT_GT(a.log_inflow.narrow(0, 1, 1).masked_select(a.mask[1]).abs().min().item<double>(), 0.0);
}

// The flow head on its own MLP: its parameters all fall in the flow group, and log F(s) does not
// depend on the policy trunk.
TEST(FlowTrunkTest, SeparateTrunkIsIndependent) {
  HypergridEnv env(HypergridOptions{});
  EstimatorOptions eo;
  eo.layers = 3;
  eo.hidden = 32;
  auto g1 = make_generator(3, torch::kCPU);
  Estimators shared(env, eo, g1, torch::kCPU);
  FlowHeadComponent shared_flow(ComponentSetup{env, shared, eo, TrainerOptions{}, Requirements{}, g1, torch::kCPU},
                                FlowOptions{});
  FlowOptions separate_options;
  separate_options.trunk = FlowTrunk::kSeparate;
  auto g2 = make_generator(3, torch::kCPU);
  Estimators separate(env, eo, g2, torch::kCPU);
  FlowHeadComponent separate_flow(ComponentSetup{env, separate, eo, TrainerOptions{}, Requirements{}, g2, torch::kCPU},
                                  separate_options);
  EXPECT_EQ(shared_flow.loss_groups().front().params.size(), 2u);
  EXPECT_EQ(separate_flow.loss_groups().front().params.size(), 2u + 2 * 3);
  EXPECT_EQ(shared.policy_parameters().size(), separate.policy_parameters().size());
  auto features = env.features(env.enumerate_states(torch::kCPU));
  auto hidden = separate.policy->trunk(features);
  auto f = separate.flow->log_flow(hidden, features);
  EXPECT_TRUE(torch::equal(f, separate.flow->log_flow(torch::zeros_like(hidden), features)));
  auto grads = torch::autograd::grad({f.sum()}, separate.policy_parameters(), {}, {}, false, /*allow_unused=*/true);
  for (const auto& g : grads) EXPECT_TRUE(!g.defined() || g.abs().max().item<double>() == 0.0);
  // the shared head reads the trunk
  auto h = shared.policy->trunk(features);
  EXPECT_FALSE(torch::equal(shared.flow->log_flow(h, features), shared.flow->log_flow(torch::zeros_like(h), features)));
}

// The ConfigError text of building a trainer for `objective` on `env` ("no error" if none).
std::string trainer_config_error(const Env& env, Objective& objective, bool credit) {
  EstimatorOptions eo;
  eo.hidden = 8;
  auto gen = make_generator(1, torch::kCPU);
  Estimators est(env, eo, gen, torch::kCPU);
  TrainerOptions opts;
  opts.score.credit = credit ? Credit::kForwardLooking : Credit::kNone;
  try {
    const auto components = testing::components_for(env, est, eo, objective, opts, gen);
    Trainer trainer(env, est, objective, opts, 0, torch::kCPU, component_pointers(components));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

// objectives an env cannot feed are refused at construction, naming the key, value and env
TEST(FlowLossesConfigTest, EnvsThatCannotFeedAnObjective) {
  BoxEnv box(BoxOptions{});
  HypergridEnv grid(HypergridOptions{});
  FlowMatching fm;
  ModifiedDetailedBalance mdb;
  VarGrad vargrad;
  DetailedBalance db;
  EXPECT_EQ(trainer_config_error(box, fm, false),
            "objective.kind = \"fm\" matches edge flows over each state's parents, which env 'box' cannot "
            "enumerate (its kernels have continuous pieces): use a discrete env or another objective");
  EXPECT_EQ(trainer_config_error(box, mdb, false),
            "objective.kind = \"modified_db\" needs an env where every state may exit, which env 'box' is "
            "not: use db or subtb");
  EXPECT_EQ(trainer_config_error(grid, vargrad, true),
            "objective.credit = \"fl\": objective.kind = \"vargrad\" takes no local credits (tb, db and "
            "subtb do)");
  EXPECT_EQ(trainer_config_error(box, db, true),
            "objective.credit = \"fl\": env 'box' defines no intermediate reward for forward-looking credits");
  // and an env that can feed them all builds
  EXPECT_EQ(trainer_config_error(grid, fm, false), "no error");
}

// A hypergrid that claims every state may exit but closes the exit at s0.
class ClaimsEveryStateTerminal final : public Env {
 public:
  std::string name() const override { return "claims_terminal"; }
  const ActionSpec& action_spec() const override { return grid_.action_spec(); }
  int64_t max_length() const override { return grid_.max_length(); }
  int64_t discrete_dim() const override { return grid_.discrete_dim(); }
  int64_t continuous_dim() const override { return 0; }
  int64_t feature_dim() const override { return grid_.feature_dim(); }
  bool every_state_terminal() const override { return true; }
  States initial_states(int64_t b, const torch::Device& d) const override { return grid_.initial_states(b, d); }
  torch::Tensor features(const States& s) const override { return grid_.features(s); }
  torch::Tensor forward_mask(const States& s) const override {
    auto m = grid_.forward_mask(s).clone();
    m.select(1, action_spec().forward.exit).masked_fill_(s.is_initial, false);
    return m;
  }
  torch::Tensor backward_mask(const States& s) const override { return grid_.backward_mask(s); }
  StepResult step(const States& s, const Actions& a) const override { return grid_.step(s, a); }
  StepResult backward_step(const States& s, const Actions& a) const override { return grid_.backward_step(s, a); }
  Actions backward_action(const States& p, const States& c, const Actions& f, torch::Tensor* lj) const override {
    return grid_.backward_action(p, c, f, lj);
  }
  Actions forward_action(const States& c, const States& p, const Actions& b, torch::Tensor* lj) const override {
    return grid_.forward_action(c, p, b, lj);
  }
  torch::Tensor log_reward(const States& s) const override { return grid_.log_reward(s); }

 private:
  HypergridEnv grid_{HypergridOptions{}};
};

// the checker holds an env to its every_state_terminal() claim; the hypergrid keeps it
TEST(FlowLossesConfigTest, CheckerVerifiesEveryStateTerminal) {
  auto report = check_env(ClaimsEveryStateTerminal{});
  EXPECT_FALSE(report.passed());
  EXPECT_NE(report.text().find("every_state_terminal() is true but"), std::string::npos) << report.text();
  EXPECT_TRUE(check_env(HypergridEnv(HypergridOptions{})).passed());
}

}  // namespace
}  // namespace gfn

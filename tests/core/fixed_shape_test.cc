// The fixed-shape path (every row at every step under masks, no compaction, no host reads: what
// runs on CUDA) against the CPU's compact path, both on the CPU through Execution: the same
// rollouts where the draws coincide, the same scores, gradients and potentials on every built-in
// env, a von Mises sampler with the right law, and the same training runs (train.execution).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "apps/run.h"
#include "core/estimator.h"
#include "components/flow_head.h"
#include "components/led.h"
#include "core/component.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/trainer.h"
#include "envs/box.h"
#include "envs/hypergrid.h"
#include "envs/labelled_box.h"
#include "envs/line.h"
#include "envs/sets.h"
#include "measures/densities.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

namespace fs = std::filesystem;

// Largest |a - b| of two tensors of one shape, as float64 (0 for two undefined tensors; equal
// infinities count as equal, anything else infinite or NaN as infinitely far).
double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined() && !b.defined()) return 0.0;
  if (!a.defined() || !b.defined() || a.sizes() != b.sizes()) return INFINITY;
  if (a.numel() == 0) return 0.0;
  auto x = a.to(torch::kFloat64), y = b.to(torch::kFloat64);
  auto d = (x - y).abs().masked_fill(x.eq(y), 0.0);
  return d.nan_to_num(INFINITY).max().item<double>();
}

EstimatorOptions options(BackwardPolicy backward) {
  EstimatorOptions o;
  o.hidden = 32;
  o.backward = backward;
  return o;
}

// Estimators with a flow head and, when asked for, LED's potential, drawn from `init`.
struct Model {
  Estimators est;
  Components components;
  PotentialNetImpl* potential = nullptr;

  Model(const Env& env, BackwardPolicy backward, bool potential, torch::Generator& init)
      : est(env, options(backward), init, torch::kCPU) {
    const EstimatorOptions eo = options(backward);
    const ComponentSetup setup{env, est, eo, TrainerOptions{}, Requirements{}, init, torch::kCPU};
    components.push_back(std::make_unique<FlowHeadComponent>(setup, FlowOptions{}));
    if (potential) {
      auto led = std::make_unique<LedComponent>(setup, LedOptions{});
      this->potential = &led->potential();
      components.push_back(std::move(led));
    }
  }
};

// One case: an env, its estimators and the optional fields of LossInputs it supports.
struct Case {
  std::string name;
  std::unique_ptr<Env> env;
  BackwardPolicy backward;
  ScoreOptions score;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  HypergridOptions grid;
  grid.ndim = 2;
  grid.height = 5;
  ScoreOptions all_fields;
  all_fields.edge_flows = true;
  all_fields.state_rewards = true;
  all_fields.credit = Credit::kForwardLooking;
  for (auto b : {BackwardPolicy::kUniform, BackwardPolicy::kLearned, BackwardPolicy::kMaxEnt})
    out.push_back({"hypergrid", std::make_unique<HypergridEnv>(grid), b, all_fields});
  SetsOptions sets;
  sets.universe = 6;
  sets.size = 3;
  out.push_back({"sets", std::make_unique<SetsEnv>(sets), BackwardPolicy::kLearned, all_fields});
  out.push_back({"box polar", std::make_unique<BoxEnv>(BoxOptions{}), BackwardPolicy::kLearned, {}});
  out.push_back({"box polar, uniform P_B", std::make_unique<BoxEnv>(BoxOptions{}), BackwardPolicy::kUniform, {}});
  BoxOptions cartesian;
  cartesian.form = BoxForm::kCartesian;
  out.push_back({"box cartesian", std::make_unique<BoxEnv>(cartesian), BackwardPolicy::kLearned, {}});
  out.push_back({"line", std::make_unique<LineEnv>(LineOptions{}), BackwardPolicy::kLearned, {}});
  out.push_back({"labelled box", std::make_unique<LabelledBoxEnv>(LabelledBoxOptions{}), BackwardPolicy::kLearned, {}});
  return out;
}

// Gradients w.r.t. every estimator parameter of a scalar that reads every field of `in`.
std::vector<torch::Tensor> gradients(Estimators& est, const Components& components, const LossInputs& in) {
  auto loss = (in.log_pf.sum(0) - in.log_pb.sum(0) + in.log_z - in.log_reward).square().mean();
  if (in.log_flow.defined()) loss = loss + in.log_flow.square().mean();
  if (in.log_inflow.defined()) loss = loss + (in.log_inflow - in.log_outflow).square().mean();
  if (in.log_pf_exit.defined()) {  // -inf where exiting is not allowed
    auto exit = in.log_pf_exit.masked_fill(in.log_pf_exit.isinf(), 0.0);
    loss = loss + (exit - in.log_reward_states).square().mean();
  }
  auto params = est.policy_parameters();
  auto flows = testing::loss_parameters(components);
  params.insert(params.end(), flows.begin(), flows.end());
  params.push_back(est.log_z);
  auto g = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                 /*allow_unused=*/true);
  for (size_t i = 0; i < g.size(); ++i)
    if (!g[i].defined()) g[i] = torch::zeros_like(params[i]);
  return g;
}

// Scores, gradients and LED potentials of the same trajectories agree between the two paths
// on every built-in env (float32 sums over differently shaped batches: 1e-5).
TEST(FixedShapeTest, ScoresAndGradientsMatchCompact) {
  for (auto& c : cases()) {
    SCOPED_TRACE(c.name + " backward " + std::to_string(static_cast<int>(c.backward)));
    auto init = make_generator(7, torch::kCPU);
    Model model(*c.env, c.backward, true, init);
    auto& est = model.est;
    auto gen = make_generator(11, torch::kCPU);
    SamplerOptions so;
    so.epsilon = 0.2;  // off-policy: some long, some short trajectories
    auto traj = rollout(*c.env, *est.policy, 64, so, gen, torch::kCPU);
    if (c.name == "hypergrid" || c.name.rfind("box", 0) == 0) {
      ASSERT_GT(traj.length.max().item<int64_t>(), traj.length.min().item<int64_t>()) << "padding is exercised";
    }

    LossInputs compact = score_trajectories(*c.env, est, traj, c.score, Execution::kCompact);
    auto compact_grads = gradients(est, model.components, compact);
    auto compact_phi = model.potential->values(*c.env, traj, Execution::kCompact).detach();
    LossInputs fixed = score_trajectories(*c.env, est, traj, c.score, Execution::kFixedShape);
    auto fixed_grads = gradients(est, model.components, fixed);
    auto fixed_phi = model.potential->values(*c.env, traj, Execution::kFixedShape).detach();
    const double tol = 1e-5;
    EXPECT_LE(max_diff(compact.log_pf, fixed.log_pf), tol) << "log_pf";
    EXPECT_LE(max_diff(compact.log_pb, fixed.log_pb), tol) << "log_pb";
    EXPECT_LE(max_diff(compact.log_flow, fixed.log_flow), tol) << "log_flow";
    EXPECT_LE(max_diff(compact.log_reward, fixed.log_reward), 0.0) << "log_reward";
    EXPECT_LE(max_diff(compact.log_inflow, fixed.log_inflow), tol) << "log_inflow";
    EXPECT_LE(max_diff(compact.log_outflow, fixed.log_outflow), tol) << "log_outflow";
    EXPECT_LE(max_diff(compact.log_pf_exit, fixed.log_pf_exit), tol) << "log_pf_exit";
    EXPECT_LE(max_diff(compact.log_reward_states, fixed.log_reward_states), tol) << "log_reward_states";
    EXPECT_LE(max_diff(compact.local_credit, fixed.local_credit), tol) << "local_credit";
    EXPECT_LE(max_diff(compact_phi, fixed_phi), tol) << "potential";
    ASSERT_EQ(compact_grads.size(), fixed_grads.size());
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < compact_grads.size(); ++i) {
      EXPECT_TRUE(torch::isfinite(fixed_grads[i]).all().item<bool>()) << "gradient " << i;
      scale = std::max(scale, compact_grads[i].abs().max().item<double>());
      worst = std::max(worst, max_diff(compact_grads[i], fixed_grads[i]));
    }
    EXPECT_GT(scale, 0.0);
    EXPECT_LE(worst, 1e-4 * std::max(1.0, scale)) << "gradients (largest entry " << scale << ")";
  }
}

// On discrete envs the two paths draw the same rollouts: one Gumbel draw for the whole
// rollout, and no coordinates.
TEST(FixedShapeTest, DiscreteRolloutsMatchCompact) {
  for (auto& c : cases()) {
    if (c.env->action_spec().coord_dim > 0 || c.backward != BackwardPolicy::kLearned) continue;
    SCOPED_TRACE(c.name);
    auto init = make_generator(3, torch::kCPU);
    Model model(*c.env, c.backward, false, init);
    auto& est = model.est;
    for (double epsilon : {0.0, 0.3}) {
      SamplerOptions so;
      so.epsilon = epsilon;
      so.record_log_pf = true;
      auto gen = make_generator(5, torch::kCPU);
      auto a = rollout(*c.env, *est.policy, 128, so, gen, torch::kCPU, Execution::kCompact);
      auto gen2 = make_generator(5, torch::kCPU);
      auto b = rollout(*c.env, *est.policy, 128, so, gen2, torch::kCPU, Execution::kFixedShape);
      EXPECT_TRUE(torch::equal(a.states_discrete, b.states_discrete));
      EXPECT_TRUE(torch::equal(a.action_component, b.action_component));
      EXPECT_TRUE(torch::equal(a.mask, b.mask));
      EXPECT_TRUE(torch::equal(a.is_sink, b.is_sink));
      EXPECT_TRUE(torch::equal(a.terminal_discrete, b.terminal_discrete));
      EXPECT_LE(max_diff(a.log_pf_sampled, b.log_pf_sampled), 1e-5);
      EXPECT_LE(max_diff(a.log_reward, b.log_reward), 0.0);
    }
  }
}

// The continuous envs' fixed-shape rollouts are valid trajectories: finite log p_F on valid
// steps, 0 on padding, every row ends, and their scoring reproduces the sampled log p_F.
TEST(FixedShapeTest, ContinuousRolloutsAreConsistent) {
  for (auto& c : cases()) {
    if (c.env->action_spec().coord_dim == 0 || c.backward != BackwardPolicy::kLearned) continue;
    SCOPED_TRACE(c.name);
    auto init = make_generator(3, torch::kCPU);
    Model model(*c.env, c.backward, false, init);
    auto& est = model.est;
    SamplerOptions so;
    so.record_log_pf = true;
    auto gen = make_generator(5, torch::kCPU);
    auto t = rollout(*c.env, *est.policy, 128, so, gen, torch::kCPU, Execution::kFixedShape);
    EXPECT_TRUE(t.is_sink[t.num_steps()].all().item<bool>());
    EXPECT_TRUE(torch::isfinite(t.log_pf_sampled).all().item<bool>());
    EXPECT_EQ(t.log_pf_sampled.masked_select(t.mask.logical_not()).abs().sum().item<double>(), 0.0);
    auto in = score_trajectories(*c.env, est, t, ScoreOptions{}, Execution::kFixedShape);
    EXPECT_LE(max_diff(in.log_pf, t.log_pf_sampled), 1e-4);
  }
}

// The fixed-round von Mises sampler: angles in [-pi, pi) with E cos(x - mu) = I1(k) / I0(k).
TEST(FixedShapeTest, VonMisesFixedRounds) {
  auto gen = make_generator(9, torch::kCPU);
  const int64_t n = 40000;
  for (double kappa : {0.05, 0.5, 4.0, 50.0}) {
    SCOPED_TRACE(kappa);
    VonMises q{torch::full({n, 1}, 1.0), torch::full({n, 1}, kappa), /*fixed_rounds=*/true};
    auto x = q.sample(gen).to(torch::kFloat64);
    EXPECT_TRUE(x.ge(-M_PI).all().item<bool>());
    EXPECT_TRUE(x.lt(M_PI).all().item<bool>());
    const double expected = std::cyl_bessel_i(1.0, kappa) / std::cyl_bessel_i(0.0, kappa);
    const double mean_cos = torch::cos(x - 1.0).mean().item<double>();
    // standard error sqrt(Var cos / n) <= 1 / sqrt(2 n) = 0.0035: 5 sigma
    EXPECT_NEAR(mean_cos, expected, 0.018);
    EXPECT_NEAR(torch::sin(x - 1.0).mean().item<double>(), 0.0, 0.018);
  }
}

// Training through `gfn train`'s library entry in both modes gives the same run on the
// discrete envs (the same draws; float sums in another order: bounds measured < 1e-6).
TEST(FixedShapeTest, TrainingRunsMatchCompact) {
  const auto registry = Registry::builtin();
  const fs::path dir = fs::temp_directory_path() / ("gfn_fixed_shape_" + std::to_string(getpid()));
  fs::remove_all(dir);
  auto run = [&](const std::string& name, const std::string& toml, const std::string& execution) {
    TrainOptions o;
    o.out_dir = (dir / name).string();
    o.progress = ProgressStyle::kNone;
    return train(load_config(toml, {"train.execution=" + execution}, run_schema(registry), "<test>"), o, registry);
  };
  const std::vector<std::string> configs = {
      "[env]\nkind = \"hypergrid\"\nndim = 2\nheight = 6\n[objective]\nkind = \"subtb\"\ncredit = \"led\"\n"
      "[train]\niterations = 40\nbatch_size = 32\ntabular = \"off\"\nepsilon = 0.1\n[eval]\nevery = 0\n",
      "[env]\nkind = \"sets\"\nuniverse = 6\nsize = 3\n[objective]\nkind = \"db\"\n[policy]\nbackward = \"learned\"\n"
      "[train]\niterations = 40\nbatch_size = 32\ntabular = \"off\"\n[eval]\nevery = 0\n",
      "[env]\nkind = \"hypergrid\"\nndim = 2\nheight = 6\n[objective]\nkind = \"tb\"\n[policy]\nbackward = \"tlm\"\n"
      "[train]\niterations = 40\nbatch_size = 32\ntabular = \"off\"\n[eval]\nevery = 0\n"};
  for (size_t i = 0; i < configs.size(); ++i) {
    SCOPED_TRACE(configs[i]);
    RunSummary a = run("compact" + std::to_string(i), configs[i], "compact");
    RunSummary b = run("fixed" + std::to_string(i), configs[i], "fixed");
    ASSERT_TRUE(a.exact.has_value() && b.exact.has_value());
    EXPECT_NEAR(a.log_z, b.log_z, 1e-4);
    EXPECT_NEAR(a.final_loss, b.final_loss, 1e-4 * std::max(1.0, std::fabs(a.final_loss)));
    EXPECT_NEAR(a.exact->tv, b.exact->tv, 1e-4);
    ASSERT_TRUE(a.l1.has_value() && b.l1.has_value());
    EXPECT_EQ(*a.l1, *b.l1) << "the same terminal states";
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gfn

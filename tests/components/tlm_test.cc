// The TLM component: P_B's own network and its EMA target, its likelihood step in the trainer,
// its modules in the saved model, and Beta backward pieces at the paper's concentration floor.
#include "components/tlm.h"

#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/component.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"
#include "envs/labelled_box.h"
#include "losses/tb.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

// The TLM component of estimators `est` built with `eo`, drawn from `gen` after them.
std::unique_ptr<TlmComponent> tlm_for(const Env& env, Estimators& est, const EstimatorOptions& eo, torch::Generator& gen,
                                      const TlmOptions& options = {}) {
  return testing::component_for<TlmComponent>(env, est, eo, gen, options);
}

// Beta backward pieces at the paper's concentration floor 0.1 are accepted: their draws are
// scored in float64 (README "Numerics"), so TLM needs no floor of its own
TEST(TlmTest, AcceptsThePapersConcentrationFloor) {
  LabelledBoxEnv env(LabelledBoxOptions{});
  auto eo = testing::small_net(8, torch::kFloat32, BackwardPolicy::kTlm);
  eo.backward_min_concentration = 0.1;
  auto gen = make_generator(0, torch::kCPU);
  Estimators est(env, eo, gen, torch::kCPU);
  auto tlm = tlm_for(env, est, eo, gen);
  EXPECT_EQ(&est.backward_policy(), &tlm->target());
}

// without its component a TLM policy has no P_B to score with, and says so
TEST(TlmTest, EstimatorsWithoutTheComponentRefuseToScore) {
  HypergridEnv env(HypergridOptions{});
  auto gen = make_generator(0, torch::kCPU);
  Estimators est(env, testing::small_net(8, torch::kFloat32, BackwardPolicy::kTlm), gen, torch::kCPU);
  try {
    est.backward_policy();
    FAIL() << "no error";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("TLM's network, which is not set"), std::string::npos) << e.what();
  }
}

// P_B's own network starts exactly uniform (zero output layer), is kept out of the policy's
// parameter groups, and its target moves by the EMA rule
TEST(TlmTest, StartsUniformAndTracksItsTarget) {
  auto env = testing::make_grid(3, 4);
  auto eo = testing::small_net(16, torch::kFloat64, BackwardPolicy::kTlm);
  auto gen = make_generator(3, torch::kCPU);
  Estimators est(env, eo, gen, torch::kCPU);
  auto tlm = tlm_for(env, est, eo, gen);
  EXPECT_FALSE(est.policy->learned_backward());
  EXPECT_EQ(&est.backward_policy(), &tlm->target());
  eo.backward = BackwardPolicy::kUniform;
  auto gen2 = make_generator(3, torch::kCPU);
  Estimators uniform(env, eo, gen2, torch::kCPU);
  auto sgen = make_generator(4, torch::kCPU);
  auto tr = rollout(env, *uniform.policy, 32, SamplerOptions{}, sgen, torch::kCPU);
  auto a = score_trajectories(env, est, tr, ScoreOptions{}), b = score_trajectories(env, uniform, tr, ScoreOptions{});
  EXPECT_TRUE(torch::allclose(a.log_pb, b.log_pb, 0.0, 1e-12));  // uniform, not just close
  EXPECT_TRUE(torch::equal(a.log_pf, b.log_pf));                  // the same forward policy
  // psi's trained parameters: its trunk and backward head, none of the policy's
  auto params = tlm->parameters();
  EXPECT_EQ(params.size(), 2u * 2 + 2);  // two hidden layers, the backward head
  for (const auto& p : est.policy_parameters())
    for (const auto& q : params) EXPECT_FALSE(p.is_same(q));
  for (const auto& p : tlm->target().parameters()) EXPECT_FALSE(p.requires_grad());
  // EMA: with the target at 0 and psi at 1, kappa = 0.25 gives 0.25, then 0.4375
  {
    torch::NoGradGuard no_grad;
    for (auto& p : tlm->online().parameters()) p.fill_(1.0);
    for (auto& p : tlm->target().parameters()) p.zero_();
  }
  tlm->update_target(0.25);
  for (const auto& p : tlm->target().parameters()) EXPECT_TRUE(torch::allclose(p, torch::full_like(p, 0.25)));
  tlm->update_target(0.25);
  for (const auto& p : tlm->target().parameters()) EXPECT_TRUE(torch::allclose(p, torch::full_like(p, 0.4375)));
}

// one TLM iteration: psi takes a likelihood step (the loss is -mean sum log p_B, positive), the
// target follows it, and neither moves the forward policy's parameters through the TLM loss
TEST(TlmTest, TrainerStep) {
  HypergridEnv env(HypergridOptions{});
  for (auto mode : {TabularMode::kOn, TabularMode::kOff}) {
    auto eo = testing::small_net(16, torch::kFloat32, BackwardPolicy::kTlm);
    auto gen = make_generator(5, torch::kCPU);
    Estimators est(env, eo, gen, torch::kCPU);
    TlmOptions to;
    to.ema = 0.5;
    auto tlm = tlm_for(env, est, eo, gen, to);
    // the head moves first: the zero output layer leaves the trunk's gradient 0 at step one
    auto before = tlm->target().named_parameters()["backward_weight"].clone();
    TrajectoryBalance tb;
    TrainerOptions opts;
    opts.tabular = mode;
    Trainer trainer(env, est, tb, opts, 0, torch::kCPU, {tlm.get()});
    ASSERT_EQ(trainer.metric_names(), std::vector<std::string>{"backward_loss"});
    auto r = trainer.step();
    ASSERT_EQ(r.metrics.size(), 1u);
    EXPECT_GT(r.metrics[0].item<double>(), 0.0);
    auto online = tlm->online().named_parameters()["backward_weight"];
    auto target = tlm->target().named_parameters()["backward_weight"];
    EXPECT_FALSE(torch::equal(target, before));  // moved
    EXPECT_TRUE(torch::allclose(target, 0.5 * before + 0.5 * online, 1e-6, 1e-7));
    EXPECT_NEAR(trainer.current_lr(), 1e-3, 1e-12);  // the policy's own rate is untouched
    EXPECT_NEAR(tlm->optimizer().groups().front().lr, 1e-3 * 0.999, 1e-12);  // psi's decays
  }
}

// the TLM networks are part of the saved model
TEST(TlmTest, SaveLoadRoundTrip) {
  HypergridEnv env(HypergridOptions{});
  auto eo = testing::small_net(8, torch::kFloat32, BackwardPolicy::kTlm);
  auto g1 = make_generator(1, torch::kCPU), g2 = make_generator(2, torch::kCPU);
  Estimators a(env, eo, g1, torch::kCPU), b(env, eo, g2, torch::kCPU);
  Components ca, cb;
  ca.push_back(tlm_for(env, a, eo, g1));
  cb.push_back(tlm_for(env, b, eo, g2));
  auto& ta = static_cast<TlmComponent&>(*ca[0]);
  auto& tb = static_cast<TlmComponent&>(*cb[0]);
  {
    torch::NoGradGuard no_grad;
    ta.online().parameters().back().fill_(0.5);
    ta.target().parameters().back().fill_(-0.5);
  }
  auto path = std::filesystem::temp_directory_path() / ("gfn_tlm_" + std::to_string(::getpid()) + ".pt");
  save_model(path.string(), a, ca, 3);
  EXPECT_EQ(load_model(path.string(), b, cb), 3);
  std::filesystem::remove(path);
  auto pa = ta.online().parameters(), pb = tb.online().parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  EXPECT_TRUE(torch::equal(ta.target().parameters().back(), tb.target().parameters().back()));
}

}  // namespace
}  // namespace gfn

// Labelled box: options, the action spec, forced and unforced masks, inverses along sampled
// trajectories, the exact log Z and the terminating density's unit mass (importance sampling
// through P_B).
#include "envs/labelled_box.h"

#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/sampler.h"
#include "core/scoring.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

using testing::validate_error;

LabelledBoxOptions labelled(int64_t dim, int64_t labels = 3, double ratio = 2.0, BoxForm form = BoxForm::kPolar) {
  LabelledBoxOptions o;
  o.box.dim = dim;
  o.box.form = form;
  o.labels = labels;
  o.label_ratio = ratio;
  return o;
}

// states (label, phase, x), s0 where label = -1
States make(const std::vector<int64_t>& label, const std::vector<int64_t>& phase, const std::vector<float>& x,
            int64_t d) {
  const int64_t b = static_cast<int64_t>(label.size());
  auto l = torch::tensor(label, torch::kInt64);
  return {torch::stack({l, torch::tensor(phase, torch::kInt64)}, 1), torch::tensor(x).view({b, d}), l.eq(-1),
          torch::zeros({b}, torch::kBool)};
}

torch::Tensor rows(const std::vector<int64_t>& flat, int64_t width) {
  return torch::tensor(flat, torch::kInt64).view({-1, width});
}

// a small untrained network with its output layer shrunk towards uniform Betas (see box_test.cc)
Estimators near_uniform(const Env& env, uint64_t seed) {
  auto init = make_generator(seed, torch::kCPU);
  Estimators est(env, testing::small_net(16), init, torch::kCPU);
  torch::NoGradGuard no_grad;
  for (auto& p : est.policy->named_parameters()) {
    if (p.key() == "forward_weight") p.value().mul_(0.1);
    if (p.key() == "forward_bias") p.value().fill_(std::log(0.18 / 0.82));
  }
  return est;
}

TEST(LabelledBoxTest, OptionsValidation) {
  EXPECT_EQ(validate_error(LabelledBoxOptions{}), "");
  auto o = labelled(2, 0);
  auto msg = validate_error(o);
  EXPECT_NE(msg.find("'labels' = 0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1, 64]"), std::string::npos) << msg;
  msg = validate_error(labelled(2, 65));
  EXPECT_NE(msg.find("'labels' = 65"), std::string::npos) << msg;
  msg = validate_error(labelled(2, 3, 0.0));
  EXPECT_NE(msg.find("'label_ratio' = 0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("> 0"), std::string::npos) << msg;
  msg = validate_error(labelled(2, 3, INFINITY));
  EXPECT_NE(msg.find("label_ratio"), std::string::npos) << msg;
  msg = validate_error(labelled(0));
  EXPECT_NE(msg.find("'dim' = 0"), std::string::npos) << msg;
  EXPECT_THROW(LabelledBoxEnv{labelled(2, 3, -1.0)}, ConfigError);
  auto specs = LabelledBoxOptions::specs();
  for (const auto& s : specs) EXPECT_EQ(s.check(s.default_value), "") << s.key;
  Params given;
  given.set("labels", int64_t{5});
  given.set("form", std::string("cartesian"));
  auto r = LabelledBoxOptions::from_params(resolve_params(specs, given, "env"));
  EXPECT_EQ(r.labels, 5);
  EXPECT_EQ(r.box.form, BoxForm::kCartesian);
  EXPECT_EQ(r.label_ratio, 2.0);
}

TEST(LabelledBoxTest, ActionSpecAndLogZ) {
  LabelledBoxEnv env(labelled(2, 3));
  const auto& f = env.action_spec().forward.components;
  const auto& b = env.action_spec().backward.components;
  std::vector<std::string> fn, bn;
  for (const auto& c : f) fn.push_back(c.name);
  for (const auto& c : b) bn.push_back(c.name);
  EXPECT_EQ(fn, (std::vector<std::string>{"ball", "sphere", "exit", "label_0", "label_1", "label_2"}));
  EXPECT_EQ(bn, (std::vector<std::string>{"sphere_back", "to_origin", "unlabel"}));
  EXPECT_EQ(env.action_spec().forward.exit, 2);
  EXPECT_EQ(env.max_length(), 10);  // the label, then at most 1 + 8 box moves
  EXPECT_EQ(env.feature_dim(), 2 + 3 + 2);
  EXPECT_EQ(env.discrete_dim(), 2);
  // log Z = log(1 + 2 + 4) + log(0.1 + 0.5/4 + 2/25)
  EXPECT_NEAR(*env.log_partition(), std::log(7.0) + std::log(0.305), 1e-12);
  EXPECT_NEAR(*LabelledBoxEnv(labelled(2, 3, 0.5)).log_partition(), std::log(1.75) + std::log(0.305), 1e-12);
  EXPECT_NEAR(*LabelledBoxEnv(labelled(2, 64, 3.0)).log_partition(),
              63 * std::log(3.0) + std::log(1.5 * (1 - std::pow(3.0, -64))) + std::log(0.305), 1e-9);
  // R(k, x) = 2^k R_box(x)
  auto s = make({0, 1, 2}, {1, 1, 1}, {0.05f, 0.05f, 0.05f, 0.05f, 0.85f, 0.15f}, 2);
  auto lr = env.log_reward(s);
  EXPECT_NEAR(lr[0].item<double>(), std::log(0.6), 1e-6);
  EXPECT_NEAR(lr[1].item<double>(), std::log(2.0) + std::log(0.6), 1e-6);
  EXPECT_NEAR(lr[2].item<double>(), std::log(4.0) + std::log(2.6), 1e-6);
  // features: 2x - 1, one-hot label, s0 flag, origin flag
  auto feat = env.features(make({-1, 1, 2}, {0, 0, 1}, {0, 0, 0, 0, 0.5f, 0.75f}, 2));
  auto expect = torch::tensor({-1.0f, -1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f,   //
                               -1.0f, -1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f,   //
                               0.0f, 0.5f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f})
                    .view({3, 7});
  EXPECT_TRUE(torch::equal(feat, expect)) << feat;
}

// s0: the labels only (a learned choice); a labelled origin: the first box step only (forced);
// moved states: the box's moves and exit; the corner: the exit only (forced). Backward: unlabel
// only at labelled origins, the box's single component elsewhere, nothing at s0.
TEST(LabelledBoxTest, Masks) {
  LabelledBoxEnv env(labelled(2, 3));
  auto s = make({-1, 1, 2, 0, 1}, {0, 0, 1, 1, 1}, {0, 0, 0, 0, 0.3f, 0.3f, 0.95f, 0.95f, 0.1f, 0.1f}, 2);
  EXPECT_TRUE(torch::equal(env.forward_mask(s).to(torch::kInt64),
                           rows({0, 0, 0, 1, 1, 1,  //
                                 1, 0, 0, 0, 0, 0,  //
                                 0, 1, 1, 0, 0, 0,  //
                                 0, 0, 1, 0, 0, 0,  //
                                 0, 1, 1, 0, 0, 0},
                                6)));
  EXPECT_TRUE(torch::equal(env.backward_mask(s).to(torch::kInt64),
                           rows({0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0}, 3)));
  // cartesian layers: both backward box components at moved states
  LabelledBoxEnv cart(labelled(2, 2, 2.0, BoxForm::kCartesian));
  auto c = make({0, 1}, {1, 0}, {0.5f, 0.5f, 0, 0}, 2);
  EXPECT_TRUE(torch::equal(cart.backward_mask(c).to(torch::kInt64), rows({1, 1, 0, 0, 0, 1}, 3)));
}

// along sampled trajectories: backward_action is available and backward_step recovers the parent
// (label, phase, position, s0 flag); forward_action recovers the forward component and a step
// back to the child
TEST(LabelledBoxTest, Inverses) {
  for (auto form : {BoxForm::kPolar, BoxForm::kCartesian}) {
    for (int64_t d : {1, 2, 3}) {
      SCOPED_TRACE(std::to_string(d));
      LabelledBoxEnv env(labelled(d, 4, 2.0, form));
      auto est = near_uniform(env, d);
      auto gen = make_generator(10 + d, torch::kCPU);
      auto tr = rollout(env, *est.policy, 256, SamplerOptions{}, gen, torch::kCPU);
      EXPECT_TRUE(tr.is_sink[tr.num_steps()].all().item<bool>());
      for (int64_t t = 0; t < tr.num_steps(); ++t) {
        auto comp = tr.action_component[t];
        auto idx = comp.ge(0).logical_and(comp.ne(LabelledBoxEnv::kExit)).nonzero().squeeze(1);
        if (idx.numel() == 0) continue;
        auto parent = tr.states_at(t).index_select(idx), child = tr.states_at(t + 1).index_select(idx);
        Actions fwd{comp.index_select(0, idx), tr.action_coords[t].index_select(0, idx)};
        torch::Tensor bjac, fjac;
        auto bwd = env.backward_action(parent, child, fwd, &bjac);
        EXPECT_TRUE(env.backward_mask(child).gather(1, bwd.component.unsqueeze(1)).all().item<bool>());
        EXPECT_TRUE(torch::equal(bwd.component.eq(LabelledBoxEnv::kUnlabel), parent.is_initial));
        auto back = env.backward_step(child, bwd).next;
        EXPECT_TRUE(torch::equal(back.discrete, parent.discrete)) << "t=" << t;
        EXPECT_TRUE(torch::equal(back.is_initial, parent.is_initial));
        EXPECT_LT((back.continuous - parent.continuous).abs().max().item<double>(), 1e-5);
        auto again = env.forward_action(child, parent, bwd, &fjac);
        EXPECT_TRUE(torch::equal(again.component, fwd.component)) << "t=" << t;
        auto redo = env.step(parent, again).next;
        EXPECT_TRUE(torch::equal(redo.discrete, child.discrete));
        EXPECT_LT((redo.continuous - child.continuous).abs().max().item<double>(), 1e-5);
        EXPECT_TRUE(torch::isfinite(fjac).all().item<bool>() && torch::isfinite(bjac).all().item<bool>());
      }
    }
  }
}

// E_{k ~ U{0..K-1}, x ~ U[0,1]^d, tau ~ P_B}[P_F(tau) / P_B(tau | k, x)] = 1 / K: the terminating
// density (with the label's counting measure) has unit mass, within 3 standard errors
TEST(LabelledBoxTest, TerminatingDensityHasUnitMass) {
  for (auto form : {BoxForm::kPolar, BoxForm::kCartesian}) {
    LabelledBoxEnv env(labelled(2, 3, 2.0, form));
    auto est = near_uniform(env, 4);
    auto gen = make_generator(5, torch::kCPU);
    const int64_t n = 100000, k = 3;
    auto label = torch::randint(0, k, {n}, gen, torch::kInt64);
    States s{torch::stack({label, torch::ones_like(label)}, 1), torch::rand({n, 2}, gen), torch::zeros({n}, torch::kBool),
             torch::zeros({n}, torch::kBool)};
    auto tr = backward_rollout(env, *est.policy, s, gen);
    auto in = score_trajectories(env, est, tr, ScoreOptions{});
    auto w = (in.log_pf - in.log_pb).sum(0).detach().to(torch::kFloat64).exp() * k;
    const double mass = w.mean().item<double>(), se = w.std().item<double>() / std::sqrt(double(n));
    std::printf("labelled box %s: terminating mass %.4f +- %.4f\n", form == BoxForm::kPolar ? "polar" : "cartesian",
                mass, se);
    EXPECT_LT(se, 0.05);
    EXPECT_NEAR(mass, 1.0, 3 * se);
    // every backward trajectory ends at s0 through the unlabel atom
    EXPECT_TRUE(tr.is_initial[0].all().item<bool>());
  }
}

}  // namespace
}  // namespace gfn

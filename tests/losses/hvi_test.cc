// The hierarchical variational objectives (losses/hvi.h): values and input gradients by hand, the
// exact identity between the reverse-KL gradient and TB's expected gradient on a hypergrid small
// enough to enumerate every trajectory (float64, exact expectations), the score-function
// estimators' unbiasedness by Monte Carlo (within three standard errors of the exact gradient, on
// P_F's batches and on exact target batches), and the config errors of off-policy use.
#include "losses/hvi.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include "apps/run.h"
#include "components/target_sampler.h"
#include "core/evaluation.h"
#include "core/params.h"
#include "core/scoring.h"
#include "core/tabular.h"
#include "io/config.h"
#include "losses/tb.h"
#include "tests/losses/loss_testing.h"

namespace gfn {
namespace {

using testing::hand_inputs;

HierarchicalVariational hvi(HviKind kind, HviBaseline baseline = HviBaseline::kBatch,
                            HviSamples samples = HviSamples::kForward) {
  HviOptions o;
  o.baseline = baseline;
  o.samples = samples;
  return HierarchicalVariational(kind, o);
}

// hand_inputs(): s_b = sum log p_F - sum log p_B - log R = -2.1 and -1.2 (VarGrad's estimates, negated)
TEST(HviTest, ValuesByHand) {
  const auto in = hand_inputs();
  auto s = HierarchicalVariational::log_ratio(in);
  EXPECT_NEAR(s[0].item<double>(), -2.1, 1e-12);
  EXPECT_NEAR(s[1].item<double>(), -1.2, 1e-12);
  // reverse KL on P_F's batch: the value is E_PF[s] = -ELBO, log Z the importance estimate
  auto reverse = hvi(HviKind::kReverseKl);
  EXPECT_EQ(reverse.name(), "reverse_kl");
  EXPECT_NEAR(reverse.loss(in).item<double>(), -1.65, 1e-12);
  const double is = std::log((std::exp(2.1) + std::exp(1.2)) / 2);
  EXPECT_NEAR(reverse.log_z_estimate(in).item<double>(), is, 1e-12);
  // forward KL on P_F's batch: E_PB[-s] under the weights softmax(-s)
  const double w0 = std::exp(2.1) / (std::exp(2.1) + std::exp(1.2));
  EXPECT_NEAR(hvi(HviKind::kForwardKl).loss(in).item<double>(), w0 * 2.1 + (1 - w0) * 1.2, 1e-12);
  // on target batches the roles of the weights swap, and log Z is the harmonic estimate
  auto target = hvi(HviKind::kForwardKl, HviBaseline::kBatch, HviSamples::kTarget);
  EXPECT_NEAR(target.loss(in).item<double>(), 1.65, 1e-12);
  EXPECT_NEAR(target.log_z_estimate(in).item<double>(), -std::log((std::exp(-2.1) + std::exp(-1.2)) / 2), 1e-12);
  EXPECT_NEAR(hvi(HviKind::kReverseWakeSleep, HviBaseline::kBatch, HviSamples::kTarget).loss(in).item<double>(),
              (1 - w0) * -2.1 + w0 * -1.2, 1e-12);
  // what each kind asks of the trainer
  EXPECT_TRUE(reverse.requirements().on_policy);
  EXPECT_FALSE(reverse.requirements().target_batches);
  EXPECT_FALSE(reverse.requirements().log_z);
  EXPECT_EQ(reverse.requirements().min_batch_size, 2);
  EXPECT_TRUE(target.requirements().target_batches);
  auto with_log_z = hvi(HviKind::kWakeSleep, HviBaseline::kLogZ);
  EXPECT_TRUE(with_log_z.requirements().log_z);
  EXPECT_EQ(with_log_z.requirements().min_batch_size, 1);
  EXPECT_FALSE(with_log_z.log_z_estimate(in).defined());
}

// The gradients w.r.t. the step log-probabilities, by hand (B = 2, P_F's batch, weights 1/2):
// reverse KL with the leave-one-out baseline gives d/d log p_F = (s_b - s_other) / 2 = -0.45 and
// +0.45 on every entry of trajectory 0 and 1, d/d log p_B = -1/2; wake-sleep's P_F term is forward
// KL, -w_b with w = softmax(-s). The value itself carries no gradient (its weights are detached and
// its s enters through the surrogate terms only), so these are the whole gradient.
TEST(HviTest, InputGradientsByHand) {
  auto grads = [](const Objective& objective) {
    LossInputs in = hand_inputs();
    in.log_pf = in.log_pf.clone().set_requires_grad(true);
    in.log_pb = in.log_pb.clone().set_requires_grad(true);
    return torch::autograd::grad({objective.loss(in)}, {in.log_pf, in.log_pb});
  };
  auto g = grads(hvi(HviKind::kReverseKl));
  EXPECT_NEAR(g[0][0][0].item<double>(), -0.45, 1e-12);
  EXPECT_NEAR(g[0][2][0].item<double>(), -0.45, 1e-12);
  EXPECT_NEAR(g[0][1][1].item<double>(), 0.45, 1e-12);
  EXPECT_NEAR(g[1][0][0].item<double>(), -0.5, 1e-12);
  EXPECT_NEAR(g[1][1][1].item<double>(), -0.5, 1e-12);
  const double w0 = std::exp(2.1) / (std::exp(2.1) + std::exp(1.2));
  g = grads(hvi(HviKind::kWakeSleep));
  EXPECT_NEAR(g[0][0][0].item<double>(), -w0, 1e-12);
  EXPECT_NEAR(g[0][0][1].item<double>(), -(1 - w0), 1e-12);
  EXPECT_NEAR(g[1][0][0].item<double>(), -0.5, 1e-12);
  // no baseline: d/d log p_F = s_b / 2
  g = grads(hvi(HviKind::kReverseKl, HviBaseline::kNone));
  EXPECT_NEAR(g[0][0][0].item<double>(), -1.05, 1e-12);
  EXPECT_NEAR(g[0][0][1].item<double>(), -0.6, 1e-12);
  // the log Z baseline: (s_b + log Z) / 2 with log Z = 1.5, and log Z's own gradient E[s + log Z]
  LossInputs in = hand_inputs();
  in.log_pf = in.log_pf.clone().set_requires_grad(true);
  in.log_z = in.log_z.clone().set_requires_grad(true);
  auto lz = torch::autograd::grad({hvi(HviKind::kReverseKl, HviBaseline::kLogZ).loss(in)}, {in.log_pf, in.log_z});
  EXPECT_NEAR(lz[0][0][0].item<double>(), (-2.1 + 1.5) / 2, 1e-12);
  EXPECT_NEAR(lz[1].item<double>(), ((-2.1 + 1.5) + (-1.2 + 1.5)) / 2, 1e-12);
}

// ---------------------------------------------------------------------------------------------
// exact expectations over every trajectory of hypergrid 2-D H=4 (69 trajectories)

// Every complete trajectory of an env with state tables, as one batch.
Trajectories all_trajectories(const Env& env, const StateTable& table) {
  auto fmask = table.forward_mask.accessor<bool, 2>();
  auto child = table.child.accessor<int64_t, 2>();
  std::vector<std::vector<int64_t>> paths, actions;
  std::vector<int64_t> path{table.initial}, acts;
  std::function<void(int64_t)> walk = [&](int64_t s) {
    for (int64_t c = 0; c < table.forward_mask.size(1); ++c) {
      if (!fmask[s][c]) continue;
      acts.push_back(c);
      if (c == table.exit) {
        paths.push_back(path);
        actions.push_back(acts);
      } else {
        path.push_back(child[s][c]);
        walk(child[s][c]);
        path.pop_back();
      }
      acts.pop_back();
    }
  };
  walk(table.initial);
  const int64_t B = static_cast<int64_t>(paths.size());
  int64_t T = 0;
  for (const auto& a : actions) T = std::max<int64_t>(T, static_cast<int64_t>(a.size()));
  const int64_t Dd = table.states.discrete.size(1);
  Trajectories tr;
  tr.states_discrete = torch::zeros({T + 1, B, Dd}, torch::kInt64);
  tr.states_continuous = torch::zeros({T + 1, B, 0}, torch::kFloat64);
  tr.is_initial = torch::zeros({T + 1, B}, torch::kBool);
  tr.is_sink = torch::zeros({T + 1, B}, torch::kBool);
  tr.action_component = torch::full({T, B}, -1, torch::kInt64);
  tr.action_coords = torch::zeros({T, B, 0}, torch::kFloat64);
  tr.log_jacobian = torch::zeros({T, B});
  tr.mask = torch::zeros({T, B}, torch::kBool);
  tr.length = torch::zeros({B}, torch::kInt64);
  tr.log_pf_sampled = torch::zeros({T, B});
  tr.terminal_discrete = torch::zeros({B, Dd}, torch::kInt64);
  tr.terminal_continuous = torch::zeros({B, 0}, torch::kFloat64);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(actions[b].size());
    const int64_t x = paths[b].back();
    for (int64_t t = 0; t <= T; ++t) {
      tr.states_discrete[t][b] = table.states.discrete[t < n ? paths[b][t] : x];
      tr.is_sink[t][b] = t >= n;
    }
    for (int64_t t = 0; t < n; ++t) {
      tr.action_component[t][b] = actions[b][t];
      tr.mask[t][b] = true;
    }
    tr.length[b] = n;
    tr.terminal_discrete[b] = table.states.discrete[x];
  }
  tr.is_initial[0].fill_(true);
  tr.log_reward = env.log_reward(tr.terminal_states());
  return tr;
}

// hypergrid 2-D H=4, a float64 MLP 1x8 (ELU), the uniform P_B, and every trajectory scored
struct Exact {
  HypergridEnv env = testing::make_grid(2, 4);
  StateTable table{env, torch::kCPU};
  torch::Generator init = make_generator(5, torch::kCPU);
  EstimatorOptions eo = [] {
    auto o = testing::small_net(8, torch::kFloat64);
    o.layers = 1;
    o.activation = Activation::kElu;
    return o;
  }();
  Estimators est{env, eo, init, torch::kCPU};
  Trajectories all = all_trajectories(env, table);
  double log_z = 0;  // the true one

  Exact() { target_distribution(table, &log_z); }
  std::vector<torch::Tensor> params() const { return est.policy_parameters(); }
  LossInputs score() { return score_trajectories(env, est, all, ScoreOptions{}); }
  // the flat gradient of `value` w.r.t. the policy's parameters
  torch::Tensor gradient(const torch::Tensor& value) {
    auto g = torch::autograd::grad({value}, params(), {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
    std::vector<torch::Tensor> flat;
    for (size_t k = 0; k < g.size(); ++k)
      flat.push_back(g[k].defined() ? g[k].reshape({-1}) : torch::zeros({params()[k].numel()}, torch::kFloat64));
    return torch::cat(flat);
  }
};

// Seed 001's identity (Malkin et al. 2023, Prop. 1): on-policy, the expected TB gradient w.r.t.
// P_F's parameters is twice the reverse-KL gradient, here with exact expectations over all 69
// trajectories in float64: d D_KL(P_F || P_B) = 1/2 E_PF[d L_TB] at the log Z that minimises the
// expected TB loss (the ELBO), and, since E_PF[d log P_F] = 0, at any other log Z too.
TEST(HviTest, ReverseKlGradientIsHalfTheExpectedTbGradient) {
  Exact e;
  ASSERT_EQ(e.all.length.size(0), 69);
  auto in = e.score();
  auto lpf = in.log_pf.sum(0);
  auto p = lpf.exp();
  EXPECT_NEAR(p.sum().item<double>(), 1.0, 1e-12);  // the enumeration is complete
  auto s = HierarchicalVariational::log_ratio(in);
  auto kl = (p * s).sum() + e.log_z;  // D_KL(P_F || P_B) exactly
  EXPECT_GT(kl.item<double>(), 0.05);
  auto g_kl = e.gradient(kl);
  EXPECT_GT(g_kl.abs().max().item<double>(), 1e-2);
  const double elbo = -(p * s).sum().item<double>();
  for (double log_z : {elbo, elbo + 1.0}) {
    LossInputs at = in;
    at.log_z = torch::tensor(log_z, torch::kFloat64);
    auto delta = TrajectoryBalance::residuals(at);
    auto g_tb = e.gradient(0.5 * (p.detach() * delta.square()).sum());
    EXPECT_LT((g_kl - g_tb).abs().max().item<double>(), 1e-12 * (1 + g_kl.abs().max().item<double>()))
        << "log Z = " << log_z;
  }
}

// Monte Carlo over K batches of B: the mean and the standard error of the projected gradient u.g
struct Estimate {
  double mean = 0, se = 0, variance = 0;
};
Estimate monte_carlo(int64_t K, const std::function<double()>& draw) {
  std::vector<double> v;
  for (int64_t k = 0; k < K; ++k) v.push_back(draw());
  Estimate out;
  for (double x : v) out.mean += x / K;
  for (double x : v) out.variance += (x - out.mean) * (x - out.mean) / (K - 1);
  out.se = std::sqrt(out.variance / K);
  return out;
}

// The score-function estimators of d D_KL(P_F || P_B) on on-policy batches of 16 are unbiased
// with each baseline (leave-one-out batch mean, a constant log Z, none), and so is TB's: 400
// batches each, projected on a fixed random direction, within three standard errors of the exact
// gradient. The measured variances are printed (bench/RESULTS.md).
TEST(HviTest, ReverseKlScoreFunctionIsUnbiased) {
  Exact e;
  auto in = e.score();
  auto p = in.log_pf.sum(0).exp();
  auto s = HierarchicalVariational::log_ratio(in);
  const double elbo = -(p * s).sum().item<double>();
  auto exact = e.gradient((p * s).sum());
  auto u_gen = make_generator(9, torch::kCPU);
  auto u = torch::randn({exact.numel()}, u_gen, torch::kFloat64);
  const double target = (u * exact).sum().item<double>();
  ASSERT_GT(std::fabs(target), 1e-3);
  auto tb = TrajectoryBalance();
  struct Case {
    std::string name;
    const Objective* objective;
  };
  auto batch = hvi(HviKind::kReverseKl, HviBaseline::kBatch);
  auto none = hvi(HviKind::kReverseKl, HviBaseline::kNone);
  auto log_z = hvi(HviKind::kReverseKl, HviBaseline::kLogZ);
  for (const auto& c : std::vector<Case>{{"batch", &batch}, {"log_z", &log_z}, {"none", &none}, {"tb", &tb}}) {
    auto gen = make_generator(17, torch::kCPU);
    auto est = monte_carlo(400, [&] {
      auto tr = rollout(e.env, *e.est.policy, 16, SamplerOptions{}, gen, torch::kCPU);
      auto b = score_trajectories(e.env, e.est, tr, ScoreOptions{});
      b.log_z = torch::tensor(elbo, torch::kFloat64);
      auto loss = c.objective->loss(b);
      if (c.name == "tb") loss = 0.5 * loss;  // 1/2 E[d L_TB] = d KL
      return (u * e.gradient(loss)).sum().item<double>();
    });
    std::printf("reverse KL gradient, batch 16, %-5s: mean %.5f (exact %.5f), se %.5f, variance %.5f\n",
                c.name.c_str(), est.mean, target, est.se, est.variance);
    EXPECT_LT(std::fabs(est.mean - target), 3 * est.se) << c.name;
    EXPECT_GT(est.se, 0.0) << c.name;
  }
}

// Forward KL's P_F gradient, -E_PB[d log P_F], estimated on exact target batches (x ~ R / Z from
// the table, walked back through P_B by the target sampler) is unbiased; on P_F's own batches
// with self-normalised importance weights it is consistent but slow to converge where P_F is far
// from the target (an untrained policy here): relative errors of 0.19-0.36 at B = 256, 0.05-0.21
// at 4,096 and 0.012-0.028 at 65,536 (three draws each); asserted: below 0.1 at 65,536.
TEST(HviTest, ForwardKlOnTargetBatchesIsUnbiased) {
  Exact e;
  auto in = e.score();
  auto lpf = in.log_pf.sum(0);
  auto target_p = (in.log_reward + in.log_pb.sum(0) - e.log_z).exp();  // P_B(tau) = R(x) P_B(tau | x) / Z
  EXPECT_NEAR(target_p.sum().item<double>(), 1.0, 1e-12);
  auto exact = e.gradient(-(target_p * lpf).sum());
  auto u_gen = make_generator(9, torch::kCPU);
  auto u = torch::randn({exact.numel()}, u_gen, torch::kFloat64);
  const double target = (u * exact).sum().item<double>();
  ASSERT_GT(std::fabs(target), 1e-3);

  auto forward = hvi(HviKind::kForwardKl, HviBaseline::kBatch, HviSamples::kTarget);
  TrainerOptions to;
  to.batch_size = 16;
  const Requirements r = forward.requirements();
  TargetSamplerComponent sampler(ComponentSetup{e.env, e.est, e.eo, to, r, e.init, torch::kCPU});
  auto gen = make_generator(23, torch::kCPU);
  auto est = monte_carlo(400, [&] {
    auto tr = backward_rollout(e.env, e.est.backward_policy(), sampler.draw(16, gen), gen);
    return (u * e.gradient(forward.loss(score_trajectories(e.env, e.est, tr, ScoreOptions{})))).sum().item<double>();
  });
  std::printf("forward KL gradient on target batches of 16: mean %.5f (exact %.5f), se %.5f\n", est.mean, target,
              est.se);
  EXPECT_LT(std::fabs(est.mean - target), 3 * est.se);

  auto weighted = hvi(HviKind::kForwardKl, HviBaseline::kBatch, HviSamples::kForward);
  auto big = rollout(e.env, *e.est.policy, 65536, SamplerOptions{}, gen, torch::kCPU);
  auto g = e.gradient(weighted.loss(score_trajectories(e.env, e.est, big, ScoreOptions{})));
  EXPECT_LT((g - exact).norm().item<double>(), 0.1 * exact.norm().item<double>());
}

// ---------------------------------------------------------------------------------------------
// config errors: refused by name before anything is written

std::string train_error(const std::string& config, const std::vector<std::string>& sets) {
  const auto registry = Registry::builtin();
  auto cfg = load_config_file(config, sets, run_schema(registry));
  TrainOptions options;
  options.out_dir = (std::filesystem::temp_directory_path() / ("gfn-hvi-" + std::to_string(::getpid()))).string();
  options.progress = ProgressStyle::kNone;
  std::string message;
  try {
    train(cfg, options, registry);
  } catch (const ConfigError& e) {
    message = e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(options.out_dir)) << message;
  return message;
}

TEST(HviTest, OffPolicyBatchesAreConfigErrors) {
  EXPECT_EQ(train_error("configs/hypergrid.toml", {"objective.kind=reverse_kl", "train.temperature=2.0"}),
            "train.epsilon = 0, train.temperature = 2: objective.kind = \"reverse_kl\" estimates its gradients from "
            "batches drawn from P_F itself, which exploration would bias: set train.epsilon = 0 and "
            "train.temperature = 1 (tb, db, subtb and vargrad train off-policy)");
  EXPECT_EQ(train_error("configs/box.toml", {"objective.kind=wake_sleep", "replay.capacity=1000"}),
            "objective.kind = \"wake_sleep\" estimates its gradients from batches drawn from P_F itself: the "
            "'replay' component changes them (turn off replay.capacity) (tb, db, subtb and vargrad train "
            "off-policy)");
  EXPECT_EQ(train_error("configs/box.toml", {"objective.kind=forward_kl", "objective.samples=\"target\""}),
            "objective.samples = \"target\": exact samples of R / Z need an env that samples its target or "
            "enumerates its states, and env 'box' does neither; set objective.samples = \"forward\" "
            "(self-normalised importance weights on P_F's batches)");
  EXPECT_EQ(train_error("configs/hypergrid.toml",
                        {"objective.kind=forward_kl", "objective.samples=\"target\"", "train.tabular=\"on\""}),
            "train.tabular = \"on\": objective.kind = \"forward_kl\" trains on backward trajectories from target "
            "samples, which tabular training does not draw (set train.tabular = \"off\" or \"auto\")");
  EXPECT_EQ(train_error("configs/hypergrid.toml", {"objective.kind=reverse_kl", "train.batch_size=1"}),
            "train.batch_size = 1: objective.kind = \"reverse_kl\" needs at least 2 trajectories per batch");
}

}  // namespace
}  // namespace gfn

// The bit-sequence env (envs/bitseq.h): Myers' edit distance against the dynamic programme, the
// modes, both forms' kernels and their inverses, the exact log Z of small instances against a
// brute force over every bit string, the checker, the test set, the transformer trunk on its
// tokens (shape, order sensitivity, float64 gradients), and a short run logging modes_found and
// test_spearman.
#include "envs/bitseq.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include "apps/run.h"
#include "core/checker.h"
#include "core/estimator.h"
#include "core/evaluation.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/trainer.h"
#include "io/config.h"
#include "io/run_log.h"
#include "losses/tb.h"
#include "tests/testing/fixtures.h"
#include "tests/testing/runs.h"

namespace gfn {
namespace {

BitSeqEnv make(int64_t n, int64_t k, BitSeqForm form, BitSeqReward reward = BitSeqReward::kEdit,
               int64_t modes = 4) {
  BitSeqOptions o;
  o.length = n;
  o.word = k;
  o.form = form;
  o.reward = reward;
  o.modes = modes;
  o.mode_radius = std::min<int64_t>(n / 4, 30);
  o.test_per_mode = 3;
  return BitSeqEnv(o);
}

int64_t dp(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  std::vector<std::vector<int64_t>> d(a.size() + 1, std::vector<int64_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = static_cast<int64_t>(i);
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j)
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
  return d[a.size()][b.size()];
}

// Myers' bit-parallel distance (patterns of up to 128 bits) equals the dynamic programme on random
// strings of every pattern length 1..130 and texts of other lengths, and on the extremes
TEST(BitSeqTest, EditDistanceMatchesTheDynamicProgramme) {
  auto gen = make_generator(3, torch::kCPU);
  int64_t compared = 0;
  for (int64_t m = 1; m <= 130; ++m)
    for (int64_t n : {m, m / 2 + 1, m + 7}) {
      auto a = torch::randint(2, {m}, gen, torch::kInt64), b = torch::randint(2, {n}, gen, torch::kInt64);
      std::vector<uint8_t> va(m), vb(n);
      for (int64_t i = 0; i < m; ++i) va[i] = static_cast<uint8_t>(a[i].item<int64_t>());
      for (int64_t i = 0; i < n; ++i) vb[i] = static_cast<uint8_t>(b[i].item<int64_t>());
      ASSERT_EQ(edit_distance(va, vb), dp(va, vb)) << "m " << m << " n " << n;
      ++compared;
    }
  EXPECT_EQ(compared, 390);
  const std::vector<uint8_t> zeros(120, 0), ones(120, 1);
  EXPECT_EQ(edit_distance(zeros, ones), 120);
  EXPECT_EQ(edit_distance(zeros, zeros), 0);
  std::vector<uint8_t> shifted(zeros);
  shifted[0] = 1;  // one substitution
  EXPECT_EQ(edit_distance(zeros, shifted), 1);
  std::vector<uint8_t> alternating(120), rotated(120);
  for (int i = 0; i < 120; ++i) alternating[i] = i % 2, rotated[i] = (i + 1) % 2;
  EXPECT_EQ(edit_distance(alternating, rotated), 2);  // delete the first bit, append one
}

// the modes are n/8 of the five blocks; at a mode R = e (edit) or 1 (Hamming)
TEST(BitSeqTest, ModesAndRewards) {
  BitSeqOptions o;  // n = 120, k = 4, 60 modes
  BitSeqEnv env(o);
  const std::set<int> blocks{0x00, 0xFF, 0xF0, 0x0F, 0x3C};
  ASSERT_EQ(env.modes().size(), 60u);
  std::set<std::vector<uint8_t>> distinct;
  for (const auto& m : env.modes()) {
    ASSERT_EQ(m.size(), 120u);
    for (int b = 0; b < 15; ++b) {
      int v = 0;
      for (int i = 0; i < 8; ++i) v = (v << 1) | m[b * 8 + i];
      EXPECT_TRUE(blocks.count(v)) << v;
    }
    distinct.insert(m);
  }
  EXPECT_EQ(distinct.size(), 60u);
  auto test = env.test_set(torch::kCPU);
  ASSERT_TRUE(test.has_value());
  ASSERT_EQ(test->batch_size(), 300);
  auto lr = env.log_reward(*test);
  EXPECT_FLOAT_EQ(lr[0].item<float>(), 1.0f);  // copy 0 of mode 0 is the mode
  auto index = env.mode_index(*test);
  EXPECT_EQ(index[0].item<int64_t>(), 0);
  EXPECT_EQ(index[5].item<int64_t>(), 1);
  // the copy with 4 * 120 / 10 = 48 flips lies beyond the radius of 30 unless another mode is near
  const auto bits = env.bits(*test);
  auto [dist, mode] = env.nearest_mode({bits[4]});
  EXPECT_EQ(lr[4].item<float>(), static_cast<float>(1.0 - dist[0] / 120.0));
  EXPECT_EQ(index[4].item<int64_t>(), dist[0] <= 30 ? mode[0] : -1);
  o.reward = BitSeqReward::kHamming;
  BitSeqEnv hamming(o);
  EXPECT_FLOAT_EQ(hamming.log_reward(*test)[0].item<float>(), 0.0f);
  // with the Hamming form the 12-flip copy is at distance at most 12: log R >= -24
  EXPECT_GE(hamming.log_reward(*test)[1].item<float>(), -24.0f);
}

// the two forms' kernels: masks, a step and its inverse, features
TEST(BitSeqTest, AppendAndPlaceKernels) {
  auto append = make(8, 2, BitSeqForm::kAppend);
  EXPECT_EQ(append.action_spec().forward.components.size(), 5u);  // 4 words + exit
  EXPECT_EQ(append.action_spec().backward.components.size(), 1u);
  auto s0 = append.initial_states(2, torch::kCPU);
  auto f = append.features(s0);  // 4 slots, one-hot over {empty, 00, 01, 10, 11}
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{2, 20}));
  EXPECT_EQ(f.sum().item<float>(), 8.0f);  // every slot empty
  EXPECT_EQ(f[0][5].item<float>(), 1.0f);
  auto mask = append.forward_mask(s0);
  EXPECT_EQ(mask[0].sum().item<int64_t>(), 4);
  EXPECT_FALSE(mask[0][4].item<bool>());
  Actions a{torch::tensor({2, 1}, torch::kInt64), torch::zeros({2, 0})};  // words 10 and 01
  auto s1 = append.step(s0, a).next;
  EXPECT_EQ(s1.discrete[0][0].item<int64_t>(), 2);
  EXPECT_EQ(s1.discrete[0][1].item<int64_t>(), -1);
  auto f1 = append.features(s1);
  EXPECT_EQ(f1[0][3].item<float>(), 1.0f);  // slot 0 of row 0 holds 10
  EXPECT_EQ(f1[1][2].item<float>(), 1.0f);  // row 1's holds 01
  EXPECT_EQ(f1[0][5].item<float>(), 1.0f);  // slot 1 is empty
  EXPECT_EQ(f1.sum().item<float>(), 8.0f);
  auto s2 = append.step(s1, a).next;
  EXPECT_EQ(s2.discrete[0][1].item<int64_t>(), 2);
  auto back = append.backward_step(s2, append.backward_action(s1, s2, a)).next;
  EXPECT_TRUE(back.discrete.equal(s1.discrete));
  EXPECT_TRUE(append.forward_action(s2, s1, append.backward_action(s1, s2, a)).component.equal(a.component));

  auto place = make(8, 2, BitSeqForm::kPlace);
  EXPECT_EQ(place.action_spec().forward.components.size(), 17u);  // 4 slots x 4 words + exit
  EXPECT_EQ(place.action_spec().backward.components.size(), 4u);
  Actions p{torch::tensor({3 * 4 + 1, 0 * 4 + 3}, torch::kInt64), torch::zeros({2, 0})};  // 3:01 and 0:11
  auto t1 = place.step(place.initial_states(2, torch::kCPU), p).next;
  EXPECT_EQ(t1.discrete[0][3].item<int64_t>(), 1);
  EXPECT_EQ(t1.discrete[1][0].item<int64_t>(), 3);
  auto pm = place.forward_mask(t1);
  EXPECT_EQ(pm[0].sum().item<int64_t>(), 12);
  EXPECT_FALSE(pm[0][13].item<bool>());
  auto bm = place.backward_mask(t1);
  EXPECT_TRUE(bm[0][3].item<bool>());
  EXPECT_EQ(bm[0].sum().item<int64_t>(), 1);
  auto b = place.backward_action(place.initial_states(2, torch::kCPU), t1, p);
  EXPECT_EQ(b.component[0].item<int64_t>(), 3);
  EXPECT_TRUE(place.forward_action(t1, place.initial_states(2, torch::kCPU), b).component.equal(p.component));
}

// log Z of the enumerated states against a brute force over all 2^n strings (the same for both
// forms), and the state counts
TEST(BitSeqTest, ExactLogZAgainstBruteForce) {
  for (auto reward : {BitSeqReward::kEdit, BitSeqReward::kHamming}) {
    auto append = make(8, 2, BitSeqForm::kAppend, reward);
    auto place = make(8, 2, BitSeqForm::kPlace, reward);
    ASSERT_TRUE(append.enumerable());
    EXPECT_EQ(append.num_states(), 1 + 4 + 16 + 64 + 256);
    EXPECT_EQ(place.num_states(), 625);
    std::vector<double> lr;
    for (int x = 0; x < 256; ++x) {
      std::vector<uint8_t> s(8);
      for (int i = 0; i < 8; ++i) s[i] = (x >> (7 - i)) & 1;
      auto [dist, mode] = append.nearest_mode({s});
      lr.push_back(reward == BitSeqReward::kEdit ? 1.0 - dist[0] / 8.0 : -2.0 * dist[0]);
    }
    const double brute = torch::logsumexp(torch::tensor(lr, torch::kFloat64), 0).item<double>();
    EXPECT_NEAR(*append.log_partition(), brute, 1e-5);
    EXPECT_NEAR(*place.log_partition(), brute, 1e-5);
    // enumeration order: parents first, and state_index inverts it
    auto all = place.enumerate_states(torch::kCPU);
    EXPECT_TRUE(place.state_index(all).equal(torch::arange(625, torch::kInt64)));
  }
}

TEST(BitSeqTest, PassesTheChecker) {
  CheckOptions o;
  o.is_samples = 20000;
  for (auto form : {BitSeqForm::kAppend, BitSeqForm::kPlace})
    for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{8, 2}, {8, 4}, {24, 6}}) {
      auto report = check_env(make(n, k, form), o);
      EXPECT_TRUE(report.passed()) << n << " " << k << "\n" << report.text();
    }
}

TEST(BitSeqTest, BadLengthIsAConfigError) {
  BitSeqOptions o;
  o.length = 20;
  o.word = 4;
  EXPECT_EQ(testing::validate_error(o), "env.length = 20: expected a multiple of 8 (the modes are 8-bit blocks)");
  o.length = 24;
  o.word = 5;
  EXPECT_EQ(testing::validate_error(o), "env.length = 24: expected a multiple of env.word = 5");
}

// The transformer trunk reads the tokens (a word per slot): [N, hidden], sensitive to the order
// of the tokens (the position embedding), and its float64 gradients through TB agree with finite differences.
TEST(BitSeqTest, TransformerTrunk) {
  auto env = make(8, 2, BitSeqForm::kPlace);
  auto eo = testing::small_net(8, torch::kFloat64);
  eo.architecture = Architecture::kTransformer;
  eo.heads = 2;
  eo.layers = 2;
  auto init = make_generator(4, torch::kCPU);
  Estimators est(env, eo, init, torch::kCPU);
  Actions a{torch::tensor({0 * 4 + 1, 3 * 4 + 1}, torch::kInt64), torch::zeros({2, 0})};
  auto s = env.step(env.initial_states(2, torch::kCPU), a).next;  // 01 in slot 0; 01 in slot 3
  auto h = est.policy->trunk(env.features(s));
  ASSERT_EQ(h.sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_GT((h[0] - h[1]).abs().max().item<double>(), 1e-4);
  auto gen = make_generator(5, torch::kCPU);
  auto tr = rollout(env, *est.policy, 8, SamplerOptions{}, gen, torch::kCPU);
  TrajectoryBalance tb;
  auto loss = [&] { return tb.loss(score_trajectories(env, est, tr, ScoreOptions{})); };
  auto params = est.policy_parameters();
  auto grads = torch::autograd::grad({loss()}, params, {}, {}, false, /*allow_unused=*/true);
  int64_t checked = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    auto flat = params[k].detach().view({-1});
    for (int64_t i : {int64_t{0}, flat.numel() - 1}) {
      const double fd = testing::central_difference(flat, i, loss);
      const double g = grads[k].defined() ? grads[k].reshape({-1})[i].item<double>() : 0.0;
      EXPECT_NEAR(g, fd, 1e-6 + 1e-5 * std::fabs(fd)) << "parameter " << k << " entry " << i;
      ++checked;
    }
  }
  EXPECT_GE(checked, 2 * 20);
  // an env without tokens is refused by name
  auto grid = testing::make_grid(2, 4);
  try {
    Estimators bad(grid, eo, init, torch::kCPU);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "policy.architecture = \"transformer\": the env's features are not a sequence of tokens "
              "(Env::token_layout; the bitseq env's are): use mlp");
  }
}

// a short run of the shipped config (with a radius of 50, which random strings reach) logs
// modes_found (non-decreasing, at most |M|), test_spearman and the top-k reward
TEST(BitSeqTest, RunLogsModesAndSpearman) {
  const auto registry = Registry::builtin();
  auto cfg = load_config_file("configs/bitseq.toml", {"train.iterations=40", "eval.every=20", "env.mode_radius=50"}, run_schema(registry));
  TrainOptions options;
  options.out_dir = (std::filesystem::temp_directory_path() / ("gfn-bitseq-" + std::to_string(::getpid()))).string();
  options.progress = ProgressStyle::kNone;
  train(cfg, options, registry);
  auto data = testing::datasets_of(std::filesystem::path(options.out_dir) / "log.h5");
  ASSERT_TRUE(data.count("eval/modes_found"));
  ASSERT_TRUE(data.count("eval/test_spearman"));
  ASSERT_TRUE(data.count("eval/top_k_mean_reward"));
  const auto& found = data["eval/modes_found"];
  ASSERT_EQ(found.size(), 2u);  // iterations 20 and 40
  EXPECT_GE(found[0], 1.0);     // 320 strings of 120 bits: some within edit distance 50 of a mode
  EXPECT_LE(found[0], found[1]);
  EXPECT_LE(found[1], 60.0);
  for (double rho : data["eval/test_spearman"]) EXPECT_TRUE(rho >= -1.0 && rho <= 1.0) << rho;
  std::filesystem::remove_all(options.out_dir);
}

TEST(BitSeqTest, SpearmanByHand) {
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0, 1e-12);
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0, 1e-12);
  // ties: ranks (1.5, 1.5, 3, 4) against (1, 2, 3, 4): r = 0.9486832980505138
  EXPECT_NEAR(spearman({5, 5, 6, 7}, {1, 2, 3, 4}), 0.9486832980505138, 1e-12);
}

}  // namespace
}  // namespace gfn

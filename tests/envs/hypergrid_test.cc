#include "envs/hypergrid.h"

#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

using testing::make_grid;
using testing::validate_error;

// A batch of states from coordinate vectors (s0 flagged where all coordinates are 0).
States make_states(const std::vector<std::vector<int64_t>>& rows) {
  const int64_t b = static_cast<int64_t>(rows.size()), n = static_cast<int64_t>(rows[0].size());
  auto x = torch::zeros({b, n}, torch::kInt64);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t d = 0; d < n; ++d) x[i][d] = rows[i][d];
  return {x, torch::zeros({b, 0}), x.eq(0).all(1), torch::zeros({b}, torch::kBool)};
}

// All coordinate vectors of {0..H-1}^n in lexicographic order.
std::vector<std::vector<int64_t>> all_points(int64_t n, int64_t h) {
  std::vector<std::vector<int64_t>> out;
  std::vector<int64_t> x(n, 0);
  while (true) {
    out.push_back(x);
    int64_t d = n - 1;
    while (d >= 0 && ++x[d] == h) x[d--] = 0;
    if (d < 0) break;
  }
  return out;
}

// R by hand on 2-D H=8: corners are in the outer region, x=1 in the ring, x=3 in neither.
TEST(HypergridTest, RewardByHand) {
  auto env = make_grid(2, 8);
  const auto& o = env.options();
  EXPECT_DOUBLE_EQ(env.reward({0, 0}), o.r0 + o.r1);
  EXPECT_DOUBLE_EQ(env.reward({7, 7}), o.r0 + o.r1);
  EXPECT_DOUBLE_EQ(env.reward({1, 1}), o.r0 + o.r1 + o.r2);
  EXPECT_DOUBLE_EQ(env.reward({6, 1}), o.r0 + o.r1 + o.r2);
  EXPECT_DOUBLE_EQ(env.reward({3, 3}), o.r0);
  EXPECT_DOUBLE_EQ(env.reward({0, 3}), o.r0);  // every coordinate must be in the region
  EXPECT_DOUBLE_EQ(env.reward({0, 1}), o.r0 + o.r1);

  auto lr = env.log_reward(make_states({{0, 0}, {1, 1}, {3, 3}, {0, 3}, {6, 1}}));
  ASSERT_EQ(lr.scalar_type(), torch::kFloat32);
  std::vector<double> expect{o.r0 + o.r1, o.r0 + o.r1 + o.r2, o.r0, o.r0, o.r0 + o.r1 + o.r2};
  for (size_t i = 0; i < expect.size(); ++i)
    EXPECT_NEAR(lr[i].item<double>(), std::log(expect[i]), 1e-6) << "row " << i;
}

// log_reward on every state agrees with the host reference reward().
TEST(HypergridTest, LogRewardMatchesReward) {
  for (auto [n, h] : std::vector<std::pair<int64_t, int64_t>>{{2, 8}, {3, 5}, {1, 11}}) {
    auto env = make_grid(n, h);
    auto pts = all_points(n, h);
    auto lr = env.log_reward(make_states(pts));
    for (size_t i = 0; i < pts.size(); ++i)
      ASSERT_NEAR(lr[i].item<double>(), std::log(env.reward(pts[i])), 1e-6) << "n=" << n << " H=" << h << " i=" << i;
  }
}

// log Z in closed form equals the log of the brute-force sum of R over all H^n states.
TEST(HypergridTest, LogPartitionBruteForce) {
  for (auto [n, h] : std::vector<std::pair<int64_t, int64_t>>{{1, 2}, {2, 4}, {2, 8}, {3, 5}, {3, 7}, {4, 6}, {2, 11}}) {
    auto env = make_grid(n, h);
    double z = 0.0;
    for (const auto& x : all_points(n, h)) z += env.reward(x);
    ASSERT_TRUE(env.log_partition().has_value());
    EXPECT_NEAR(*env.log_partition(), std::log(z), 1e-12) << "n=" << n << " H=" << h;
  }
  // 3-D H=5: a = 0.25 at x=1 and x=3 is excluded from the outer region, the ring is empty
  auto env = make_grid(3, 5);
  const auto& o = env.options();
  EXPECT_DOUBLE_EQ(env.reward({1, 1, 1}), o.r0);
  EXPECT_DOUBLE_EQ(env.reward({0, 4, 0}), o.r0 + o.r1);
  EXPECT_NEAR(*env.log_partition(), std::log(o.r0 * 125 + o.r1 * 8), 1e-12);
}

// Forward masks close the moves at H-1 and always allow the exit; backward masks close at 0.
TEST(HypergridTest, MasksAtCorners) {
  auto env = make_grid(2, 4);
  auto s = make_states({{0, 0}, {3, 0}, {0, 3}, {3, 3}, {1, 2}});
  auto fm = env.forward_mask(s).to(torch::kInt64);
  auto bm = env.backward_mask(s).to(torch::kInt64);
  auto f_expect = torch::tensor({1, 1, 1, 0, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1}, torch::kInt64).view({5, 3});
  auto b_expect = torch::tensor({0, 0, 1, 0, 0, 1, 1, 1, 1, 1}, torch::kInt64).view({5, 2});
  EXPECT_TRUE(torch::equal(fm, f_expect)) << fm;
  EXPECT_TRUE(torch::equal(bm, b_expect)) << bm;
  EXPECT_EQ(env.action_spec().forward.exit, 2);
  EXPECT_EQ(env.action_spec().forward.size(), 3);
  EXPECT_EQ(env.action_spec().backward.size(), 2);
  EXPECT_EQ(env.max_length(), 6);
}

// step increments the chosen coordinate; backward_step with backward_action recovers the parent.
TEST(HypergridTest, StepThenBackwardStep) {
  auto env = make_grid(3, 4);
  auto parent = make_states({{0, 0, 0}, {1, 2, 0}, {2, 2, 2}, {0, 3, 1}});
  auto comp = torch::tensor({0, 1, 2, 2}, torch::kInt64);
  Actions fwd{comp, torch::zeros({4, 0})};
  auto res = env.step(parent, fwd);
  auto expect = torch::tensor({1, 0, 0, 1, 3, 0, 2, 2, 3, 0, 3, 2}, torch::kInt64).view({4, 3});
  EXPECT_TRUE(torch::equal(res.next.discrete, expect)) << res.next.discrete;
  EXPECT_FALSE(res.next.is_initial.any().item<bool>());
  EXPECT_EQ(res.log_jacobian.abs().sum().item<double>(), 0.0);

  torch::Tensor bjac;
  auto bwd = env.backward_action(parent, res.next, fwd, &bjac);
  EXPECT_TRUE(torch::equal(bwd.component, comp));  // "-d" undoes "+d"
  EXPECT_EQ(bjac.size(0), 4);
  EXPECT_EQ(bjac.abs().sum().item<double>(), 0.0);
  auto back = env.backward_step(res.next, bwd);
  EXPECT_TRUE(torch::equal(back.next.discrete, parent.discrete));
  EXPECT_TRUE(torch::equal(back.next.is_initial, parent.is_initial));  // s0 is recognised again
}

// Enumeration: H^n states, state_index inverts it, and every move goes to a larger index.
TEST(HypergridTest, EnumerationIsTopological) {
  for (auto [n, h] : std::vector<std::pair<int64_t, int64_t>>{{2, 4}, {3, 5}, {1, 6}}) {
    auto env = make_grid(n, h);
    ASSERT_TRUE(env.enumerable());
    const int64_t S = static_cast<int64_t>(std::llround(std::pow(h, n)));
    EXPECT_EQ(env.num_states(), S);
    auto st = env.enumerate_states(torch::kCPU);
    ASSERT_EQ(st.batch_size(), S);
    EXPECT_TRUE(torch::equal(env.state_index(st), torch::arange(S, torch::kInt64)));
    EXPECT_EQ(st.is_initial.sum().item<int64_t>(), 1);
    EXPECT_TRUE(st.is_initial[0].item<bool>());
    EXPECT_EQ(st.discrete.min().item<int64_t>(), 0);
    EXPECT_EQ(st.discrete.max().item<int64_t>(), h - 1);
    // every available move goes to a larger index
    auto parent_idx = torch::arange(S, torch::kInt64);
    auto fm = env.forward_mask(st);
    for (int64_t d = 0; d < n; ++d) {
      Actions a{torch::full({S}, d, torch::kInt64), torch::zeros({S, 0})};
      auto allowed = fm.select(1, d);
      auto child = env.step(st, a).next;
      auto child_idx = env.state_index(child);
      auto ok = child_idx.gt(parent_idx).logical_or(allowed.logical_not());
      EXPECT_TRUE(ok.all().item<bool>()) << "n=" << n << " H=" << h << " d=" << d;
      EXPECT_GT(allowed.sum().item<int64_t>(), 0);
    }
  }
}

// Features are one-hot per coordinate: n ones per row at d*H + x_d.
TEST(HypergridTest, FeaturesOneHot) {
  auto env = make_grid(3, 5);
  auto st = env.enumerate_states(torch::kCPU);
  auto f = env.features(st);
  ASSERT_EQ(f.size(0), 125);
  ASSERT_EQ(f.size(1), 15);
  EXPECT_EQ(f.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(f.sum(1), torch::full({125}, 3.0f)));
  EXPECT_TRUE(f.eq(0).logical_or(f.eq(1)).all().item<bool>());
  auto one = env.features(make_states({{4, 0, 2}}));
  std::vector<int64_t> hot{4, 5, 12};
  for (int64_t j = 0; j < 15; ++j) {
    bool expect = std::find(hot.begin(), hot.end(), j) != hot.end();
    EXPECT_EQ(one[0][j].item<float>(), expect ? 1.0f : 0.0f) << "column " << j;
  }
}

// rewards whose largest value overflows a double are refused by the keys that set them; log Z
// is computed in log space, finite where R0 H^n itself overflows (H^n = 2^640)
TEST(HypergridTest, RewardsThatOverflowRefusedAndLogZInLogSpace) {
  HypergridOptions o;
  o.r1 = 1e308;
  o.r2 = 1e308;
  EXPECT_EQ(validate_error(o),
            "env.r0 + env.r1 + env.r2 = 0.1 + 1e+308 + 1e+308: the largest reward overflows a double (log R = inf); "
            "expected a sum below 1.798e+308");
  o.r2 = 1e307;
  EXPECT_EQ(validate_error(o), "");
  HypergridEnv big(o);
  // Z = R0 H^n + R1 4^n + R2 2^n on 2-D H=8 (outer cells 0, 1, 6, 7; ring cells 1, 6)
  EXPECT_NEAR(*big.log_partition(), std::log(1e308) + std::log(16.0 + 0.4), 1e-12);
  EXPECT_NEAR(big.log_reward(make_states({{1, 1}}))[0].item<double>(), std::log(1.1e308), 1e-3);  // float32
  HypergridOptions wide;
  wide.ndim = 32;
  wide.height = 1 << 20;
  HypergridEnv huge(wide);
  const double log_z = *huge.log_partition();
  // R0 H^n dominates: log Z = log R0 + n log H + log(1 + ~1e-9)
  EXPECT_TRUE(std::isfinite(log_z));
  EXPECT_NEAR(log_z, std::log(0.1) + 32 * std::log(1 << 20), 1e-6);
}

// validate names the field, the value and the rule.
TEST(HypergridTest, ValidateNamesField) {
  HypergridOptions o;
  EXPECT_EQ(validate_error(o), "");
  o.ndim = 0;
  auto msg = validate_error(o);
  EXPECT_NE(msg.find("ndim"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1, 32]"), std::string::npos) << msg;
  o = HypergridOptions{};
  o.height = 1;
  msg = validate_error(o);
  EXPECT_NE(msg.find("height"), std::string::npos) << msg;
  o = HypergridOptions{};
  o.r0 = 0.0;
  msg = validate_error(o);
  EXPECT_NE(msg.find("r0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("> 0"), std::string::npos) << msg;
  o = HypergridOptions{};
  o.r2 = -1.0;
  msg = validate_error(o);
  EXPECT_NE(msg.find("r2"), std::string::npos) << msg;
  // the constructor validates too
  HypergridOptions bad;
  bad.ndim = 33;
  EXPECT_THROW(HypergridEnv{bad}, ConfigError);
}

}  // namespace
}  // namespace gfn

#include "envs/line.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

using testing::validate_error;

LineEnv make_line(int64_t steps = 5, double separation = 4.0, double sigma = 0.5, double weight = 0.5,
                  double log_scale = 0.0) {
  LineOptions o;
  o.steps = steps;
  o.separation = separation;
  o.sigma = sigma;
  o.weight = weight;
  o.log_scale = log_scale;
  return LineEnv(o);
}

// A batch of states from (t, x) pairs (s0 flagged where t == 0).
States make_states(const std::vector<int64_t>& t, const std::vector<float>& x) {
  const int64_t b = static_cast<int64_t>(t.size());
  auto td = torch::tensor(t, torch::kInt64).view({b, 1});
  auto xc = torch::tensor(x, torch::kFloat32).view({b, 1});
  return {td, xc, td.select(1, 0).eq(0), torch::zeros({b}, torch::kBool)};
}

// log R(x) by hand in double: log(exp(ls) [w N(x; -m, s) + (1 - w) N(x; m, s)]) as an explicit
// log-sum-exp of the two weighted log-densities.
double log_reward_by_hand(const LineOptions& o, double x) {
  const double m = o.separation / 2, s = o.sigma;
  auto log_normal = [&](double mu) { return -0.5 * std::pow((x - mu) / s, 2) - std::log(s * std::sqrt(2 * M_PI)); };
  double a = std::log(o.weight) + log_normal(-m);
  double b = std::log(1 - o.weight) + log_normal(m);
  double hi = std::max(a, b);
  return o.log_scale + hi + std::log(std::exp(a - hi) + std::exp(b - hi));
}

// validate names the field, the value and the rule; the spec defaults are valid.
TEST(LineTest, ValidateNamesField) {
  LineOptions o;
  EXPECT_EQ(validate_error(o), "");
  o.steps = 0;
  auto msg = validate_error(o);
  EXPECT_NE(msg.find("steps"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1, 100]"), std::string::npos) << msg;
  o = LineOptions{};
  o.steps = 101;
  EXPECT_NE(validate_error(o).find("steps"), std::string::npos);
  o = LineOptions{};
  o.separation = 0.0;
  msg = validate_error(o);
  EXPECT_NE(msg.find("separation"), std::string::npos) << msg;
  EXPECT_NE(msg.find("> 0"), std::string::npos) << msg;
  o = LineOptions{};
  o.sigma = -0.1;
  msg = validate_error(o);
  EXPECT_NE(msg.find("sigma"), std::string::npos) << msg;
  for (double w : {0.0, 1.0, -0.5, 1.5, std::nan("")}) {
    o = LineOptions{};
    o.weight = w;
    msg = validate_error(o);
    EXPECT_NE(msg.find("weight"), std::string::npos) << "w=" << w << ": " << msg;
    EXPECT_NE(msg.find("(0, 1)"), std::string::npos) << msg;
  }
  for (double ls : {double{INFINITY}, -double{INFINITY}, std::nan("")}) {
    o = LineOptions{};
    o.log_scale = ls;
    msg = validate_error(o);
    EXPECT_NE(msg.find("log_scale"), std::string::npos) << msg;
    EXPECT_NE(msg.find("finite"), std::string::npos) << msg;
  }
  o = LineOptions{};
  o.log_scale = -123.5;
  EXPECT_EQ(validate_error(o), "");
  // the constructor validates too
  LineOptions bad;
  bad.sigma = 0.0;
  EXPECT_THROW(LineEnv{bad}, ConfigError);
}

// Every spec's default passes its own rule, and resolving no keys gives LineOptions{}.
TEST(LineTest, SpecDefaultsAreValid) {
  auto specs = LineOptions::specs();
  std::vector<std::string> keys;
  for (const auto& s : specs) {
    EXPECT_EQ(s.check(s.default_value), "") << s.key;
    EXPECT_FALSE(s.doc.empty()) << s.key;
    keys.push_back(s.key);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"steps", "separation", "sigma", "weight", "log_scale"}));
  auto o = LineOptions::from_params(resolve_params(specs, Params{}, "env"));
  LineOptions d;
  EXPECT_EQ(o.steps, d.steps);
  EXPECT_EQ(o.steps, 5);
  EXPECT_EQ(o.separation, 4.0);
  EXPECT_EQ(o.sigma, 0.5);
  EXPECT_EQ(o.weight, 0.5);
  EXPECT_EQ(o.log_scale, 0.0);
  // given values (an integer where a float is expected) come through
  Params given;
  given.set("steps", int64_t{7});
  given.set("separation", int64_t{3});
  given.set("log_scale", -1.25);
  o = LineOptions::from_params(resolve_params(specs, given, "env"));
  EXPECT_EQ(o.steps, 7);
  EXPECT_EQ(o.separation, 3.0);
  EXPECT_EQ(o.log_scale, -1.25);
  // an out-of-range value is rejected naming the key
  given.set("weight", 1.0);
  try {
    resolve_params(specs, given, "env");
    ADD_FAILURE() << "weight = 1 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("weight"), std::string::npos) << e.what();
  }
}

// The action spec: a real-line piece and the exit forward, a real-line piece and the jump to s0 backward.
TEST(LineTest, ActionSpec) {
  auto env = make_line(5, 4.0, 0.5, 0.5, 0.75);
  const auto& spec = env.action_spec();
  ASSERT_EQ(spec.forward.size(), 2);
  ASSERT_EQ(spec.backward.size(), 2);
  EXPECT_EQ(spec.coord_dim, 1);
  EXPECT_EQ(spec.forward.exit, 1);
  EXPECT_EQ(spec.backward.exit, -1);
  const auto& mv = spec.forward.components[0];
  EXPECT_EQ(mv.name, "move");
  EXPECT_EQ(mv.kind, ComponentKind::kPiece);
  EXPECT_EQ(mv.dim, 1);
  EXPECT_EQ(mv.domain, Domain::kReal);
  const auto& ex = spec.forward.components[1];
  EXPECT_EQ(ex.name, "exit");
  EXPECT_EQ(ex.kind, ComponentKind::kAtom);
  EXPECT_EQ(ex.dim, 0);
  const auto& mb = spec.backward.components[0];
  EXPECT_EQ(mb.name, "move_back");
  EXPECT_EQ(mb.kind, ComponentKind::kPiece);
  EXPECT_EQ(mb.dim, 1);
  EXPECT_EQ(mb.domain, Domain::kReal);
  const auto& s0 = spec.backward.components[1];
  EXPECT_EQ(s0.name, "to_s0");
  EXPECT_EQ(s0.kind, ComponentKind::kAtom);
  EXPECT_TRUE(spec.forward.has_pieces());
  EXPECT_TRUE(spec.backward.has_pieces());

  EXPECT_EQ(env.name(), "line");
  EXPECT_EQ(env.max_length(), 5);
  EXPECT_EQ(env.discrete_dim(), 1);
  EXPECT_EQ(env.continuous_dim(), 1);
  EXPECT_EQ(env.feature_dim(), 7);
  EXPECT_FALSE(env.enumerable());
  ASSERT_TRUE(env.log_partition().has_value());
  EXPECT_EQ(*env.log_partition(), 0.75);

  auto s = env.initial_states(3, torch::kCPU);
  EXPECT_EQ(s.discrete.sizes(), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(s.continuous.sizes(), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(s.discrete.scalar_type(), torch::kInt64);
  EXPECT_EQ(s.continuous.scalar_type(), torch::kFloat64);
  EXPECT_TRUE(s.discrete.eq(0).all().item<bool>());
  EXPECT_TRUE(s.continuous.eq(0).all().item<bool>());
  EXPECT_TRUE(s.is_initial.all().item<bool>());
  EXPECT_FALSE(s.is_sink.any().item<bool>());
}

// Forward: move iff t < n, exit iff t == n. Backward: move_back iff t >= 2, to_s0 iff t == 1.
TEST(LineTest, Masks) {
  auto env = make_line(5);
  auto s = make_states({0, 1, 2, 4, 5}, {0.0f, -1.5f, 2.25f, 7.0f, -3.0f});
  auto fm = env.forward_mask(s).to(torch::kInt64);
  auto bm = env.backward_mask(s).to(torch::kInt64);
  auto f_expect = torch::tensor({1, 0, 1, 0, 1, 0, 1, 0, 0, 1}, torch::kInt64).view({5, 2});
  auto b_expect = torch::tensor({0, 0, 0, 1, 1, 0, 1, 0, 1, 0}, torch::kInt64).view({5, 2});
  EXPECT_TRUE(torch::equal(fm, f_expect)) << fm;
  EXPECT_TRUE(torch::equal(bm, b_expect)) << bm;
  EXPECT_EQ(env.forward_mask(s).scalar_type(), torch::kBool);
  EXPECT_EQ(env.backward_mask(s).scalar_type(), torch::kBool);
  // every state other than s0 has exactly one component each way: the choices are forced
  EXPECT_TRUE(torch::equal(fm.sum(1), torch::ones({5}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(bm.sum(1).narrow(0, 1, 4), torch::ones({4}, torch::kInt64)));

  // n = 1: s0 moves, the first layer exits and goes back to s0 only
  auto one = make_line(1);
  auto s1 = make_states({0, 1}, {0.0f, 0.5f});
  EXPECT_TRUE(torch::equal(one.forward_mask(s1).to(torch::kInt64),
                           torch::tensor({1, 0, 0, 1}, torch::kInt64).view({2, 2})));
  EXPECT_TRUE(torch::equal(one.backward_mask(s1).to(torch::kInt64),
                           torch::tensor({0, 0, 0, 1}, torch::kInt64).view({2, 2})));
}

// Applies step, backward_action and backward_step from parents at layers t, checking the child
// and returning the recovered parent.
States round_trip(const LineEnv& env, const States& parent, const torch::Tensor& u) {
  const int64_t b = parent.batch_size();
  Actions fwd{torch::zeros({b}, torch::kInt64), u.view({b, 1})};
  auto res = env.step(parent, fwd);
  EXPECT_TRUE(torch::equal(res.next.discrete, parent.discrete + 1));
  EXPECT_TRUE(torch::equal(res.next.continuous, parent.continuous + u.view({b, 1})));
  EXPECT_FALSE(res.next.is_initial.any().item<bool>());
  EXPECT_FALSE(res.next.is_sink.any().item<bool>());
  EXPECT_EQ(res.log_jacobian.sizes(), (std::vector<int64_t>{b}));
  EXPECT_EQ(res.log_jacobian.abs().sum().item<double>(), 0.0);

  torch::Tensor bjac;
  auto bwd = env.backward_action(parent, res.next, fwd, &bjac);
  // move_back from layer >= 2, to_s0 from layer 1
  auto expect_comp = parent.discrete.select(1, 0).eq(0).to(torch::kInt64);
  EXPECT_TRUE(torch::equal(bwd.component, expect_comp)) << bwd.component;
  EXPECT_EQ(bwd.coords.sizes(), (std::vector<int64_t>{b, 1}));
  EXPECT_EQ(bjac.sizes(), (std::vector<int64_t>{b}));
  EXPECT_EQ(bjac.abs().sum().item<double>(), 0.0);
  // the backward action is available at the child
  auto bm = env.backward_mask(res.next);
  EXPECT_TRUE(bm.gather(1, bwd.component.unsqueeze(1)).all().item<bool>());
  // to_s0 carries no coordinates
  auto at_s0 = expect_comp.eq(1);
  EXPECT_TRUE(bwd.coords.select(1, 0).masked_select(at_s0).eq(0).all().item<bool>());

  auto back = env.backward_step(res.next, bwd);
  EXPECT_TRUE(torch::equal(back.next.discrete, parent.discrete));
  EXPECT_TRUE(torch::equal(back.next.is_initial, parent.is_initial));
  EXPECT_FALSE(back.next.is_sink.any().item<bool>());
  EXPECT_EQ(back.log_jacobian.abs().sum().item<double>(), 0.0);
  return back.next;
}

// step -> backward_action -> backward_step recovers the parent from every layer, including s0.
TEST(LineTest, StepThenBackwardStepRecoversParent) {
  auto env = make_line(5);
  auto gen = make_generator(17, torch::kCPU);
  const int64_t per_layer = 64;
  std::vector<int64_t> t;
  for (int64_t layer = 0; layer < 5; ++layer)
    for (int64_t i = 0; i < per_layer; ++i) t.push_back(layer);
  const int64_t b = static_cast<int64_t>(t.size());
  auto td = torch::tensor(t, torch::kInt64).view({b, 1});
  auto at_s0 = td.select(1, 0).eq(0);

  // dyadic positions and increments (multiples of 1/1024 below 16 in size): every sum and
  // difference is exact in float32, so the parent must come back bit for bit
  {
    auto x = (torch::randint(-8192, 8192, {b, 1}, gen, torch::kInt64).to(torch::kFloat32) / 1024.0)
                 .masked_fill(at_s0.unsqueeze(1), 0.0);
    auto u = torch::randint(-8192, 8192, {b}, gen, torch::kInt64).to(torch::kFloat32) / 1024.0;
    States parent{td, x, at_s0, torch::zeros({b}, torch::kBool)};
    auto back = round_trip(env, parent, u);
    EXPECT_TRUE(torch::equal(back.continuous, parent.continuous));
  }
  // Gaussian positions and increments: exact where the child and parent are within a factor 2
  // (Sterbenz), within a few float32 roundings otherwise
  {
    auto x = (3.0 * torch::randn({b, 1}, gen)).masked_fill(at_s0.unsqueeze(1), 0.0);
    auto u = 2.0 * torch::randn({b}, gen);
    States parent{td, x, at_s0, torch::zeros({b}, torch::kBool)};
    auto back = round_trip(env, parent, u);
    auto scale = x.select(1, 0).abs() + u.abs() + 1.0;
    auto err = (back.continuous - parent.continuous).select(1, 0).abs();
    EXPECT_TRUE(err.le(scale * 2.4e-7).all().item<bool>()) << err.max();
    // from s0 the parent is (0, 0) exactly
    EXPECT_TRUE(back.continuous.select(1, 0).masked_select(at_s0).eq(0).all().item<bool>());
  }
}

// step ignores the exit and padding rows (whatever their coordinates) and stays finite there.
TEST(LineTest, StepIgnoresExitRows) {
  auto env = make_line(3);
  auto s = make_states({3, 3, 1}, {1.5f, -2.0f, 0.25f});
  auto coords = torch::tensor({NAN, INFINITY, 0.5f}, torch::kFloat32).view({3, 1});
  auto res = env.step(s, Actions{torch::tensor({1, -1, 0}, torch::kInt64), coords});
  EXPECT_TRUE(torch::equal(res.next.discrete, torch::tensor({3, 3, 2}, torch::kInt64).view({3, 1})));
  EXPECT_TRUE(torch::equal(res.next.continuous, torch::tensor({1.5f, -2.0f, 0.75f}).view({3, 1})));
  EXPECT_TRUE(torch::isfinite(res.log_jacobian).all().item<bool>());
}

// log R against the hand formula, in the bulk and the far tails (finite at x = +-30).
TEST(LineTest, LogRewardByHand) {
  std::vector<float> xs{-30.0f, -7.5f, -2.0f, -1.0f, -0.25f, 0.0f, 0.7f, 2.0f, 3.5f, 12.0f, 30.0f};
  std::vector<LineOptions> cases;
  cases.push_back(LineOptions{});
  cases.push_back(make_line(3, 6.0, 0.3, 0.2, 1.7).options());
  cases.push_back(make_line(2, 1.0, 2.0, 0.9, -2.5).options());
  for (const auto& o : cases) {
    LineEnv env(o);
    auto lr = env.log_reward(make_states(std::vector<int64_t>(xs.size(), o.steps), xs));
    ASSERT_EQ(lr.scalar_type(), torch::kFloat32);
    ASSERT_EQ(lr.sizes(), (std::vector<int64_t>{static_cast<int64_t>(xs.size())}));
    EXPECT_TRUE(torch::isfinite(lr).all().item<bool>()) << lr;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double ref = log_reward_by_hand(o, xs[i]);
      EXPECT_NEAR(lr[i].item<double>(), ref, 2e-6 * std::max(1.0, std::fabs(ref)))
          << "x=" << xs[i] << " sep=" << o.separation << " sigma=" << o.sigma;
    }
  }
  // the default target in the bulk, against the plain (non-log) formula
  LineEnv env(LineOptions{});
  auto lr = env.log_reward(make_states({5, 5, 5}, {-2.0f, 0.0f, 1.0f}));
  auto pdf = [](double x, double mu) { return std::exp(-2.0 * (x - mu) * (x - mu)) / (0.5 * std::sqrt(2 * M_PI)); };
  EXPECT_NEAR(lr[0].item<double>(), std::log(0.5 * pdf(-2, -2) + 0.5 * pdf(-2, 2)), 1e-6);
  EXPECT_NEAR(lr[1].item<double>(), std::log(pdf(0, -2)), 1e-6);  // both modes contribute equally
  EXPECT_NEAR(lr[2].item<double>(), std::log(0.5 * pdf(1, -2) + 0.5 * pdf(1, 2)), 1e-6);
  // symmetric modes with equal weights give a symmetric reward; the far tail is about -(28/0.5)^2/2
  auto sym = env.log_reward(make_states({5, 5}, {-30.0f, 30.0f}));
  EXPECT_EQ(sym[0].item<float>(), sym[1].item<float>());
  EXPECT_NEAR(sym[0].item<double>(), -0.5 * 56.0 * 56.0 + std::log(0.5 / (0.5 * std::sqrt(2 * M_PI))), 1e-3);
  // reward ignores t
  auto by_t = env.log_reward(make_states({0, 2, 5}, {0.7f, 0.7f, 0.7f}));
  EXPECT_EQ(by_t[0].item<float>(), by_t[1].item<float>());
  EXPECT_EQ(by_t[0].item<float>(), by_t[2].item<float>());
}

// The integral of exp(log R) over [-40, 40] (trapezoid rule on a 2^-10 grid, exact in float32,
// summed in float64 on the host) equals exp(log_scale) = Z.
TEST(LineTest, LogRewardIntegratesToZ) {
  std::vector<LineOptions> cases;
  cases.push_back(LineOptions{});
  cases.push_back(make_line(3, 6.0, 0.3, 0.2, 1.7).options());
  cases.push_back(make_line(2, 1.0, 2.0, 0.9, -2.5).options());
  cases.push_back(make_line(4, 30.0, 0.05, 0.5, 0.0).options());
  const double h = 1.0 / 1024.0;
  const int64_t points = 80 * 1024 + 1;  // -40, -40 + h, ..., 40
  const int64_t chunk = 8192;
  for (const auto& o : cases) {
    LineEnv env(o);
    double sum = 0.0;
    for (int64_t start = 0; start < points; start += chunk) {
      const int64_t m = std::min(chunk, points - start);
      auto x = (torch::arange(start, start + m, torch::kFloat64) * h - 40.0).to(torch::kFloat32).view({m, 1});
      States s{torch::full({m, 1}, o.steps, torch::kInt64), x, torch::zeros({m}, torch::kBool),
               torch::zeros({m}, torch::kBool)};
      auto r = env.log_reward(s).to(torch::kFloat64).exp().contiguous();
      ASSERT_TRUE(torch::isfinite(env.log_reward(s)).all().item<bool>());
      const double* p = r.data_ptr<double>();
      for (int64_t i = 0; i < m; ++i) {
        const int64_t k = start + i;
        sum += (k == 0 || k == points - 1) ? 0.5 * p[i] : p[i];
      }
    }
    const double integral = sum * h;
    const double z = std::exp(*env.log_partition());
    EXPECT_NEAR(integral / z, 1.0, 1e-6) << "sep=" << o.separation << " sigma=" << o.sigma << " w=" << o.weight
                                         << " log_scale=" << o.log_scale << " integral=" << integral;
  }
}

// Features: one-hot of t in columns 0..n, x / separation in column n + 1.
TEST(LineTest, Features) {
  auto env = make_line(4, 8.0);
  std::vector<int64_t> t{0, 1, 2, 3, 4, 4};
  std::vector<float> x{0.0f, -2.0f, 4.0f, 12.0f, -0.5f, 1.0f};
  auto f = env.features(make_states(t, x));
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{6, 6}));
  EXPECT_EQ(f.scalar_type(), torch::kFloat32);
  for (int64_t i = 0; i < 6; ++i) {
    for (int64_t j = 0; j <= 4; ++j)
      EXPECT_EQ(f[i][j].item<float>(), j == t[i] ? 1.0f : 0.0f) << "row " << i << " column " << j;
    EXPECT_FLOAT_EQ(f[i][5].item<float>(), x[i] / 8.0f) << "row " << i;
  }
  auto onehot = f.narrow(1, 0, 5);
  EXPECT_TRUE(torch::equal(onehot.sum(1), torch::ones({6})));
  EXPECT_TRUE(torch::equal(onehot.argmax(1), torch::tensor(t, torch::kInt64)));
  EXPECT_EQ(env.features(env.initial_states(3, torch::kCPU)).size(1), env.feature_dim());
}

// A rollout by hand: n moves with fixed increments, then only the exit; then back to s0.
TEST(LineTest, ManualRollout) {
  const int64_t n = 4;
  auto env = make_line(n, 4.0, 0.5, 0.3, 0.5);
  const std::vector<float> incs{0.5f, -1.25f, 2.0f, 0.75f};
  auto s = env.initial_states(2, torch::kCPU);
  std::vector<States> path{s};
  float x = 0.0f;
  for (int64_t k = 0; k < n; ++k) {
    auto fm = env.forward_mask(s);
    EXPECT_TRUE(torch::equal(fm.to(torch::kInt64), torch::tensor({1, 0, 1, 0}, torch::kInt64).view({2, 2})))
        << "step " << k;
    auto u = torch::full({2, 1}, incs[k]);
    u[1][0] = -incs[k];  // the second row mirrors the first
    auto res = env.step(s, Actions{torch::zeros({2}, torch::kInt64), u});
    s = res.next;
    x += incs[k];
    EXPECT_EQ(s.discrete[0][0].item<int64_t>(), k + 1);
    EXPECT_EQ(s.continuous[0][0].item<float>(), x);
    EXPECT_EQ(s.continuous[1][0].item<float>(), -x);
    EXPECT_FALSE(s.is_initial.any().item<bool>());
    path.push_back(s);
  }
  EXPECT_TRUE(s.discrete.eq(n).all().item<bool>());
  EXPECT_FLOAT_EQ(x, 2.0f);
  // at t = n only the exit is allowed
  auto fm = env.forward_mask(s);
  EXPECT_TRUE(torch::equal(fm.to(torch::kInt64), torch::tensor({0, 1, 0, 1}, torch::kInt64).view({2, 2})));
  EXPECT_EQ(fm.select(1, env.action_spec().forward.exit).sum().item<int64_t>(), 2);
  auto lr = env.log_reward(s);
  EXPECT_NEAR(lr[0].item<double>(), log_reward_by_hand(env.options(), 2.0), 1e-6);
  EXPECT_NEAR(lr[1].item<double>(), log_reward_by_hand(env.options(), -2.0), 1e-6);
  // the exit step leaves the state finite (the engine discards it)
  auto exited = env.step(s, Actions{torch::ones({2}, torch::kInt64), torch::zeros({2, 1})}).next;
  EXPECT_TRUE(torch::isfinite(exited.continuous).all().item<bool>());
  // and back: the backward actions walk the same path to s0
  for (int64_t k = n; k >= 1; --k) {
    auto bwd = env.backward_action(path[k - 1], path[k], Actions{torch::zeros({2}, torch::kInt64), torch::zeros({2, 1})});
    EXPECT_EQ(bwd.component[0].item<int64_t>(), k >= 2 ? LineEnv::kMoveBack : LineEnv::kToS0);
    if (k >= 2) {
      EXPECT_EQ(bwd.coords[0][0].item<float>(), incs[k - 1]);
    }
    auto prev = env.backward_step(path[k], bwd).next;
    EXPECT_TRUE(torch::equal(prev.discrete, path[k - 1].discrete));
    EXPECT_TRUE(torch::equal(prev.continuous, path[k - 1].continuous));
    EXPECT_TRUE(torch::equal(prev.is_initial, path[k - 1].is_initial));
  }
}

}  // namespace
}  // namespace gfn

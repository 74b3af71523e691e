// Torus: option validation, the action spec, masks, exact round trips across the wrap at -pi/pi,
// log R against the hand formula with Bessel's I0, R integrating to exp(log_scale) on the grid,
// and features.
#include "envs/torus.h"

#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/trainer.h"
#include "measures/densities.h"
#include "tests/testing/fixtures.h"

namespace gfn {
namespace {

using testing::validate_error;

TorusEnv make_torus(int64_t dim, int64_t steps = 2, double weight = 0.5, double log_scale = 0.0) {
  TorusOptions o;
  o.dim = dim;
  o.steps = steps;
  o.weight = weight;
  o.log_scale = log_scale;
  return TorusEnv(o);
}

TEST(TorusTest, ValidateNamesFieldAndRange) {
  EXPECT_EQ(validate_error(TorusOptions{}), "");
  struct Case {
    void (*set)(TorusOptions*);
    const char* key;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {[](TorusOptions* o) { o->dim = 0; }, "dim", "[1, 4]"},
      {[](TorusOptions* o) { o->dim = 5; }, "dim", "[1, 4]"},
      {[](TorusOptions* o) { o->steps = 33; }, "steps", "[1, 32]"},
      {[](TorusOptions* o) { o->separation = 0.0; }, "separation", "in (0, 6.28"},
      {[](TorusOptions* o) { o->separation = 2 * M_PI; }, "separation", "in (0, 6.28"},
      {[](TorusOptions* o) { o->concentration = 0.0; }, "concentration", "in (0, 500]"},
      {[](TorusOptions* o) { o->concentration = 501.0; }, "concentration", "in (0, 500]"},
      {[](TorusOptions* o) { o->weight = 1.0; }, "weight", "(0, 1)"},
      {[](TorusOptions* o) { o->log_scale = INFINITY; }, "log_scale", "finite"}};
  for (const auto& c : cases) {
    TorusOptions o;
    c.set(&o);
    const auto msg = validate_error(o);
    EXPECT_NE(msg.find(c.key), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
  }
  TorusOptions bad;
  bad.dim = 0;
  EXPECT_THROW(TorusEnv{bad}, ConfigError);
}

// one circle piece of dimension k each way, coord_dim k; the exit forward, the jump to s0 backward
TEST(TorusTest, ActionSpecAndMasks) {
  for (int64_t k : {1, 2, 4}) {
    auto env = make_torus(k, 3);
    const auto& spec = env.action_spec();
    EXPECT_EQ(spec.coord_dim, k);
    ASSERT_EQ(spec.forward.size(), 2);
    EXPECT_EQ(spec.forward.components[0].domain, Domain::kCircle);
    EXPECT_EQ(spec.forward.components[0].dim, k);
    EXPECT_EQ(spec.forward.exit, TorusEnv::kExit);
    EXPECT_EQ(spec.backward.components[0].domain, Domain::kCircle);
    EXPECT_EQ(spec.backward.components[0].dim, k);
    EXPECT_NO_THROW(validate_action_spec(spec, "torus"));
    EXPECT_EQ(env.feature_dim(), 3 + 1 + 2 * k);
  }
  auto env = make_torus(2, 3);
  auto t = torch::tensor({0, 1, 2, 3}, torch::kInt64).view({4, 1});
  States s{t, torch::zeros({4, 2}, torch::kFloat64), t.select(1, 0).eq(0), torch::zeros({4}, torch::kBool)};
  EXPECT_TRUE(torch::equal(env.forward_mask(s), torch::tensor({1, 0, 1, 0, 1, 0, 0, 1}, torch::kBool).view({4, 2})));
  EXPECT_TRUE(torch::equal(env.backward_mask(s), torch::tensor({0, 0, 0, 1, 1, 0, 1, 0}, torch::kBool).view({4, 2})));
}

// step -> backward_action -> backward_step gives the parent back to rounding, on both sides of the
// wrap; every angle stays in [-pi, pi); forward_action recovers the forward rotation
TEST(TorusTest, RoundTripsAcrossTheWrap) {
  auto env = make_torus(3, 4);
  auto gen = make_generator(5, torch::kCPU);
  const int64_t b = 4000;
  auto t = torch::randint(1, 4, {b, 1}, gen, torch::kInt64);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  // angles and rotations near the ends of [-pi, pi) as well as in the bulk
  auto theta = wrap_angle((torch::rand({b, 3}, gen, f64) * 2 - 1) * M_PI);
  auto u = wrap_angle((torch::rand({b, 3}, gen, f64) * 2 - 1) * M_PI);
  theta.narrow(0, 0, 100).fill_(-M_PI);
  u.narrow(0, 50, 100).fill_(std::nextafter(M_PI, 0.0));
  States parent{t, theta, torch::zeros({b}, torch::kBool), torch::zeros({b}, torch::kBool)};
  Actions forward{torch::zeros({b}, torch::kInt64), u};
  auto child = env.step(parent, forward).next;
  EXPECT_TRUE(((child.continuous >= -M_PI) & (child.continuous < M_PI)).all().item<bool>());
  EXPECT_TRUE(torch::equal(child.discrete, t + 1));
  torch::Tensor lj;
  auto back = env.backward_action(parent, child, forward, &lj);
  EXPECT_TRUE(back.component.eq(TorusEnv::kMoveBack).all().item<bool>());
  EXPECT_TRUE(lj.eq(0).all().item<bool>());
  auto again = env.backward_step(child, back).next;
  // the circular distance to the parent
  auto err = wrap_angle(again.continuous - theta).abs().max().item<double>();
  EXPECT_LT(err, 1e-14);
  EXPECT_TRUE(((again.continuous >= -M_PI) & (again.continuous < M_PI)).all().item<bool>());
  auto fwd = env.forward_action(child, again, back, &lj);
  EXPECT_LT(wrap_angle(fwd.coords - u).abs().max().item<double>(), 1e-14);
  // from s0 and back to it
  auto s0 = env.initial_states(3, torch::kCPU);
  Actions first{torch::zeros({3}, torch::kInt64), u.narrow(0, 0, 3)};
  auto one = env.step(s0, first).next;
  auto to_s0 = env.backward_action(s0, one, first);
  EXPECT_TRUE(to_s0.component.eq(TorusEnv::kToS0).all().item<bool>());
  auto home = env.backward_step(one, to_s0).next;
  EXPECT_TRUE(home.is_initial.all().item<bool>());
  EXPECT_TRUE(home.continuous.eq(0).all().item<bool>());
}

// log R = log_scale + log(w prod VM(-a) + (1 - w) prod VM(a)) with I0 from the standard library
TEST(TorusTest, LogRewardByHandAndTotalMass) {
  const double a = M_PI / 2, kappa = 4.0;
  for (int64_t k : {1, 2}) {
    auto env = make_torus(k, 2, 0.3, -0.75);
    const std::vector<double> th = {-M_PI, -1.5, 0.0, 1.6, 3.0};
    const int64_t b = static_cast<int64_t>(th.size());
    auto theta = torch::tensor(th, torch::kFloat64).view({b, 1}).repeat({1, k});
    theta.select(1, k - 1).mul_(0.5);
    States s{torch::full({b, 1}, 2, torch::kInt64), theta, torch::zeros({b}, torch::kBool),
             torch::zeros({b}, torch::kBool)};
    auto got = env.log_reward(s);
    for (int64_t i = 0; i < b; ++i) {
      double minus = 0.3, plus = 0.7;
      for (int64_t d = 0; d < k; ++d) {
        const double x = theta[i][d].item<double>();
        const double norm = 2 * M_PI * std::cyl_bessel_i(0.0, kappa);
        minus *= std::exp(kappa * std::cos(x + a)) / norm;
        plus *= std::exp(kappa * std::cos(x - a)) / norm;
      }
      EXPECT_NEAR(got[i].item<float>(), -0.75 + std::log(minus + plus), 1e-5) << "k " << k << " row " << i;
    }
    // the midpoint rule is exact to rounding for this periodic integrand: sum R * cell = exp(log_scale)
    auto grid = env.terminal_grid(k == 1 ? 400 : 120, torch::kCPU);
    ASSERT_TRUE(grid.has_value());
    EXPECT_EQ(grid->states.batch_size(), k == 1 ? 400 : 120 * 120);
    auto mass = (env.log_reward(grid->states).to(torch::kFloat64) + grid->log_cell_volume).exp().sum().item<double>();
    EXPECT_NEAR(mass, std::exp(-0.75), 1e-6);
    EXPECT_EQ(env.log_partition().value(), -0.75);
  }
  EXPECT_FALSE(make_torus(3).terminal_grid(10, torch::kCPU).has_value());
}

// one-hot of t, then cos and sin of every angle
TEST(TorusTest, Features) {
  auto env = make_torus(2, 3);
  States s{torch::tensor({0, 3}, torch::kInt64).view({2, 1}), torch::tensor({0.0, 0.0, 1.0, -2.0}).view({2, 2}).to(torch::kFloat64),
           torch::tensor({true, false}), torch::zeros({2}, torch::kBool)};
  auto f = env.features(s);
  ASSERT_EQ(f.sizes(), torch::IntArrayRef({2, 8}));
  auto want = torch::tensor({1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0,  //
                             0.0, 0.0, 0.0, 1.0, std::cos(1.0), std::cos(-2.0), std::sin(1.0), std::sin(-2.0)},
                            torch::kFloat32)
                  .view({2, 8});
  EXPECT_TRUE(torch::allclose(f, want, 1e-6, 1e-6)) << f;
}

}  // namespace
}  // namespace gfn

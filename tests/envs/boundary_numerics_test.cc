// Boundary numerics of continuous steps (README "Numerics"). Chart coordinates drawn from Betas,
// Beta mixtures, Kumaraswamy and truncated normals at concentrations 0.05-0.2 land within 1e-30 of
// their domain's faces, far below float32's smallest normal (1.2e-38). After the step's round
// trip (forward step -> child state -> the backward action undoing it -> the forward action
// undoing that, as scoring reads a backward-sampled trajectory), each coordinate must be scored
// by the density it was drawn from at the value it was drawn at: log q(recovered u) against a
// float64 reference at the drawn u (Boost.Math for Beta and the normal; the closed form in long
// double for Kumaraswamy). Near 1 float64 itself has only ulps of 2^-53, and the charts' arithmetic
// moves a coordinate by a few of them; there the test bounds the coordinate, not the density. With float32 chart coordinates the smallest draws were clamped to
// 1.2e-38, where a Beta of concentration 0.05 has a log-density ~80 below the one it was drawn
// at: the importance weights of a learned P_B and TLM's ELBO read that error.
#include <cfloat>
#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <boost/math/distributions/beta.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/multiprecision/cpp_bin_float.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/kernel_head.h"
#include "core/trainer.h"
#include "core/types.h"
#include "envs/box.h"
#include "measures/densities.h"

namespace gfn {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

double beta_log_pdf(double a, double b, double x) {
  return std::log(boost::math::pdf(boost::math::beta_distribution<double>(a, b), x));
}

double kumaraswamy_log_pdf(double a, double b, double x) {
  const long double xl = x, al = a, bl = b;
  return static_cast<double>(std::log(al) + std::log(bl) + (al - 1) * std::log(xl) +
                             (bl - 1) * std::log1p(-std::pow(xl, al)));
}

// N(loc, scale^2) truncated to [0, 1], in long double
double truncated_normal_log_pdf(double loc, double scale, double x) {
  boost::math::normal_distribution<long double> n;
  const long double z = (x - loc) / scale, lo = (0.0 - loc) / scale, hi = (1.0 - loc) / scale;
  const long double mass = boost::math::cdf(boost::math::complement(n, lo)) - boost::math::cdf(boost::math::complement(n, hi));
  return static_cast<double>(std::log(boost::math::pdf(n, z)) - std::log(static_cast<long double>(scale)) - std::log(mass));
}

// A family of densities on (0, 1)^D, D independent coordinates: draws and the float64 reference.
struct Family {
  std::string name;
  std::function<torch::Tensor(int64_t n, int64_t d, torch::Generator&)> draw;  // [n, d] float64
  std::function<torch::Tensor(const torch::Tensor&)> log_q;                     // the engine's, [n]
  std::function<double(double)> reference;                                     // per coordinate
};

std::vector<Family> families(double c) {
  std::vector<Family> out;
  auto beta = [c](int64_t n, int64_t d) {
    return BetaMixture{torch::zeros({n, 1}, kF64), torch::full({n, 1, d}, c, kF64), torch::full({n, 1, d}, c, kF64)};
  };
  out.push_back({"Beta(" + std::to_string(c) + ", same)",
                 [beta](int64_t n, int64_t d, torch::Generator& g) { return beta(n, d).sample(g); },
                 [beta](const torch::Tensor& u) { return beta(u.size(0), u.size(1)).log_prob(u); },
                 [c](double u) { return beta_log_pdf(c, c, u); }});
  // two components: one piles mass at 0, the other at 1
  auto mixture = [c](int64_t n, int64_t d) {
    auto a = torch::stack({torch::full({n, d}, c, kF64), torch::full({n, d}, 3.0, kF64)}, 1);
    auto b = torch::stack({torch::full({n, d}, 2.0, kF64), torch::full({n, d}, c, kF64)}, 1);
    return BetaMixture{torch::tensor({0.3, -0.2}, kF64).expand({n, 2}), a, b};
  };
  out.push_back({"Beta mixture",
                 [mixture](int64_t n, int64_t d, torch::Generator& g) { return mixture(n, d).sample(g); },
                 [mixture](const torch::Tensor& u) { return mixture(u.size(0), u.size(1)).log_prob(u); },
                 {}});  // not a product over coordinates: checked on the whole row below
  auto kuma = [c](int64_t n, int64_t d) { return Kumaraswamy{torch::full({n, d}, c, kF64), torch::full({n, d}, 1.5, kF64)}; };
  out.push_back({"Kumaraswamy", [kuma](int64_t n, int64_t d, torch::Generator& g) { return kuma(n, d).sample(g); },
                 [kuma](const torch::Tensor& u) { return kuma(u.size(0), u.size(1)).log_prob(u); },
                 [c](double u) { return kumaraswamy_log_pdf(c, 1.5, u); }});
  // a narrow normal centred outside the interval: its mass piles against the face at 0
  const double loc = -0.5, scale = c;
  auto tn = [=](int64_t n, int64_t d) {
    return TruncatedNormal(torch::full({n, d}, loc, kF64), torch::full({n, d}, scale, kF64), 0.0, 1.0);
  };
  out.push_back({"truncated normal", [tn](int64_t n, int64_t d, torch::Generator& g) { return tn(n, d).sample(g); },
                 [tn](const torch::Tensor& u) { return tn(u.size(0), u.size(1)).log_prob(u); },
                 [=](double u) { return truncated_normal_log_pdf(loc, scale, u); }});
  return out;
}

// The log-density reference of each row of u [n, d] (a product over coordinates), or for the
// mixture the mixture of Boost Beta products.
std::vector<double> reference(const Family& f, double c, const torch::Tensor& u) {
  const auto uc = u.contiguous();
  auto acc = uc.accessor<double, 2>();
  std::vector<double> out;
  for (int64_t i = 0; i < u.size(0); ++i) {
    double lp = 0.0;
    if (f.reference) {
      for (int64_t j = 0; j < u.size(1); ++j) lp += f.reference(acc[i][j]);
    } else {
      const double w0 = 1.0 / (1.0 + std::exp(-0.5)), w1 = 1.0 - w0;  // softmax(0.3, -0.2)
      double l0 = std::log(w0), l1 = std::log(w1);
      for (int64_t j = 0; j < u.size(1); ++j) {
        l0 += beta_log_pdf(c, 2.0, acc[i][j]);
        l1 += beta_log_pdf(3.0, c, acc[i][j]);
      }
      lp = std::max(l0, l1) + std::log1p(std::exp(std::min(l0, l1) - std::max(l0, l1)));
    }
    out.push_back(lp);
  }
  return out;
}

// One kind of step of a box: the parent states, the forward component and the piece dimension.
struct StepCase {
  std::string name;
  BoxOptions options;
  bool from_s0;
  int64_t component, dim;
};

std::vector<StepCase> step_cases() {
  auto opts = [](int64_t d, BoxForm form) {
    BoxOptions o;
    o.dim = d;
    o.form = form;
    return o;
  };
  return {{"polar d=2 ball (s0)", opts(2, BoxForm::kPolar), true, 0, 2},
          {"polar d=2 sphere", opts(2, BoxForm::kPolar), false, 1, 1},
          {"polar d=3 sphere", opts(3, BoxForm::kPolar), false, 1, 2},
          {"cartesian d=2 increment", opts(2, BoxForm::kCartesian), false, 1, 2}};
}

// The forward coordinates read back after the round trip of a step with coordinates u [n, dim].
torch::Tensor round_trip(const BoxEnv& env, const StepCase& sc, const torch::Tensor& u) {
  const int64_t n = u.size(0), d = sc.options.dim;
  States parent = env.initial_states(n, torch::kCPU);
  if (!sc.from_s0) {
    parent.continuous = torch::full({n, d}, 0.3, kF64);  // a move of 0.25 fits in every direction
    parent.is_initial = torch::zeros({n}, torch::kBool);
  }
  Actions fwd{torch::full({n}, sc.component, torch::kInt64), torch::constant_pad_nd(u, {0, d - sc.dim})};
  States child = env.step(parent, fwd).next;
  Actions bwd = env.backward_action(parent, child, fwd, nullptr);
  Actions back = env.forward_action(child, parent, bwd, nullptr);
  EXPECT_TRUE(back.component.eq(sc.component).all().item<bool>()) << sc.name;
  EXPECT_EQ(back.coords.scalar_type(), torch::kFloat64) << sc.name;
  return back.coords.narrow(1, 0, sc.dim);
}

// The recovered coordinates against the drawn ones: near 0 to 1e-12 relative (the digits of a
// draw at 1e-300 survive), near 1 to 8 ulps of 1 absolute (float64 has nothing finer there:
// README "Numerics"). Returns the rows whose every coordinate is more than 1e-6 from 1, where
// those ulps move log q by less than 1e-9 and the densities must agree.
torch::Tensor expect_recovered(const torch::Tensor& u, const torch::Tensor& recovered, const std::string& where) {
  auto low = u.lt(0.5);
  auto rel = ((recovered / u) - 1.0).abs().masked_fill(low.logical_not(), 0.0);
  auto abs = (recovered - u).abs().masked_fill(low, 0.0);
  EXPECT_LT(rel.max().item<double>(), 1e-12) << where << ": the coordinates near 0";
  EXPECT_LE(abs.max().item<double>(), 8 * std::ldexp(1.0, -53)) << where << ": the coordinates near 1";
  return (1.0 - u).gt(1e-6).all(1);
}

TEST(BoundaryNumerics, RoundTripScoresEveryDrawAtItsSamplingDensity) {
  const int64_t n = 4096;
  for (double c : {0.05, 0.1, 0.2}) {
    for (const auto& sc : step_cases()) {
      BoxEnv env(sc.options);
      auto families_c = families(c);
      for (size_t fi = 0; fi < families_c.size(); ++fi) {
        const auto& f = families_c[fi];
        auto gen = make_generator(17 + fi, torch::kCPU);
        auto u = f.draw(n, sc.dim, gen);
        ASSERT_EQ(u.scalar_type(), torch::kFloat64);
        auto recovered = round_trip(env, sc, u);
        auto got = f.log_q(recovered);
        auto want = torch::tensor(reference(f, c, u), kF64);
        const std::string where = sc.name + ", " + f.name + ", concentration " + std::to_string(c);
        ASSERT_TRUE(torch::isfinite(got).all().item<bool>()) << where;
        auto away_from_1 = expect_recovered(u, recovered, where);
        EXPECT_GT(away_from_1.sum().item<int64_t>(), n / 2) << where;
        // log q has slope (c - 1) / u near 0: 1e-9 absolute is a relative error of ~1e-9 in u
        const double err = (got - want).abs().masked_fill(away_from_1.logical_not(), 0.0).max().item<double>();
        EXPECT_LT(err, 1e-9) << where;
        // the Betas' and Kumaraswamy's draws do reach below float32's smallest normal
        if (f.name != "truncated normal" && c <= 0.05 && !(sc.name.find("ball") != std::string::npos))
          EXPECT_GT(u.lt(FLT_MIN).sum().item<int64_t>(), 0) << where << ": no draw below float32's range";
      }
    }
  }
}

// The policy head itself: at the bounds of policy.min_concentration = 0.05 its float32 network
// outputs give float64 draws, and it scores the round-tripped coordinates at the density they
// were drawn from (its own log_density at the draw, and Boost's).
TEST(BoundaryNumerics, KernelHeadScoresRoundTrippedDrawsInFloat64) {
  BoxOptions o;
  o.dim = 2;
  BoxEnv env(o);
  HeadOptions h;
  h.mixture_components = 1;
  h.min_concentration = 0.05;
  h.max_concentration = 5.05;
  KernelHead head(env.action_spec().forward, env.action_spec().coord_dim, h);
  // [3 logits | ball: logit, alpha (2), beta (2) | sphere: logit, alpha, beta]
  ASSERT_EQ(head.output_size(), 11);
  const int64_t n = 4096;
  auto out = torch::full({n, 11}, -40.0f);  // sigmoid(-40) ~ 4e-18: every concentration at the floor
  out.narrow(1, 0, 3).zero_();
  out.select(1, 8).zero_();
  const double c = 0.05 + 5.0 / (1.0 + std::exp(40.0));
  auto gen = make_generator(3, torch::kCPU);
  auto comp = torch::ones({n}, torch::kInt64);  // the sphere piece
  auto coords = head.sample_coords(out, comp, gen);
  ASSERT_EQ(coords.scalar_type(), torch::kFloat64);
  EXPECT_GT(coords.select(1, 0).lt(FLT_MIN).sum().item<int64_t>(), 0);
  StepCase sc{"polar d=2 sphere", o, false, 1, 1};
  auto u1 = coords.narrow(1, 0, 1);
  auto back = round_trip(env, sc, u1);
  auto away_from_1 = expect_recovered(u1, back, "the head's sphere draws");
  auto recovered = torch::constant_pad_nd(back, {0, 1});
  auto at_draw = head.log_density(out, comp, coords);
  auto after = head.log_density(out, comp, recovered);
  EXPECT_LT((after - at_draw).abs().masked_fill(away_from_1.logical_not(), 0.0).max().item<double>(), 1e-9);
  auto u = coords.select(1, 0).contiguous();
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if (away_from_1[i].item<bool>())
    {
      const double want = beta_log_pdf(c, c, u[i].item<double>());
      worst = std::max(worst, std::abs(after[i].item<double>() - want) / std::max(1.0, std::abs(want)));
    }
  // the head hands its float64 log-densities to the losses in the network's float32 (|log q| up to
  // ~650 here): agreement to float32's precision, where float32 coordinates were off by up to 80
  EXPECT_LT(worst, 2e-7);
}

}  // namespace
}  // namespace gfn

namespace gfn {
namespace {

// A backward sphere step that lands 1e-17 from the lower face y = 0 (the walk a learned P_B at
// concentration 0.1 makes towards a face, found by the importance-sampled evaluation): the parent
// keeps its digits (it was computed as 1 - (1 - parent) before, which put it on the face), and
// the first step's coordinates read from it are the angle of that point, not the clamped 0 at
// which P_F's Beta density was e^369 (an evaluation read a grid mass of 1e133 from one such
// trajectory). Reference in long double: for d = 2 the mirrored chart's arc runs over [a, b] =
// [0, asin(y / delta)] here (h_0 = x / delta > 1), theta = u b, parent = child - delta (cos, sin).
TEST(BoundaryNumerics, BackwardStepNearALowerFaceKeepsTheParentsDigits) {
  BoxOptions o;
  o.dim = 2;
  BoxEnv env(o);
  const double x = 0.283074, y = 2.35367e-14, u = 0.99933, delta = o.delta;
  States child{torch::zeros({1, 0}, torch::kInt64), torch::tensor({x, y}, kF64).view({1, 2}),
               torch::zeros({1}, torch::kBool), torch::zeros({1}, torch::kBool)};
  Actions back{torch::zeros({1}, torch::kInt64), torch::tensor({u, 0.0}, kF64).view({1, 2})};
  States parent = env.backward_step(child, back).next;
  const long double theta = static_cast<long double>(u) * std::asin(static_cast<long double>(y) / delta);
  const long double px = x - delta * std::cos(theta), py = y - delta * std::sin(theta);
  const double got_x = parent.continuous[0][0].item<double>(), got_y = parent.continuous[0][1].item<double>();
  EXPECT_NEAR(got_x, static_cast<double>(px), 1e-15);
  EXPECT_GT(got_y, 0.0);
  EXPECT_NEAR(got_y / static_cast<double>(py), 1.0, 1e-9) << got_y << " against " << static_cast<double>(py);
  // the first step's coordinates, read from that parent as the only child of s0: the equal-area
  // angle (2 / pi) atan2(y, x) for d = 2, to 1e-9 relative
  States s0 = env.initial_states(1, torch::kCPU);
  Actions to_s0{torch::ones({1}, torch::kInt64), torch::zeros({1, 2}, kF64)};
  Actions first = env.forward_action(parent, s0, to_s0, nullptr);
  const double angle = static_cast<double>(2.0L / M_PI * std::atan2(py, px));
  EXPECT_NEAR(first.coords[0][1].item<double>() / angle, 1.0, 1e-9);
}

// The d = 2 backward arc against a 50-digit reference, at draws next to both ends of the arc
// (u = 2^-53 and 1 - 2^-53, where a Beta of concentration 0.1 puts a visible share of its draws)
// and in the bulk, from children whose arc is bounded by a face at one end, both or neither:
// every parent coordinate to 1e-9 relative, however close to its face (x - delta v in double
// cancelled them to 0 at the ends).
TEST(BoundaryNumerics, BackwardArcMatchesFiftyDigitsAtBothEnds) {
  using Big = boost::multiprecision::cpp_bin_float_50;
  BoxOptions o;
  o.dim = 2;
  BoxEnv env(o);
  const double delta = o.delta;
  const std::vector<std::pair<double, double>> children = {
      {0.034852, 0.249555}, {0.283074, 2.35367e-14}, {0.2, 0.1}, {0.4, 0.3}, {0.05, 0.6}};
  const std::vector<double> us = {std::ldexp(1.0, -53), 1e-9, 0.3, 0.999, 1.0 - std::ldexp(1.0, -53)};
  for (auto [x, y] : children) {
    for (double u : us) {
      States child{torch::zeros({1, 0}, torch::kInt64), torch::tensor({x, y}, kF64).view({1, 2}),
                   torch::zeros({1}, torch::kBool), torch::zeros({1}, torch::kBool)};
      if (!env.backward_mask(child)[0][0].item<bool>()) continue;
      Actions back{torch::zeros({1}, torch::kInt64), torch::tensor({u, 0.0}, kF64).view({1, 2})};
      auto parent = env.backward_step(child, back).next.continuous;
      const Big d(delta);
      const Big h0 = x < delta ? Big(x) / d : Big(1), h1 = y < delta ? Big(y) / d : Big(1);
      const Big a = boost::multiprecision::acos(h0), b = boost::multiprecision::asin(h1);
      const Big theta = a + Big(u) * (b - a);
      const Big px = Big(x) - d * boost::multiprecision::cos(theta), py = Big(y) - d * boost::multiprecision::sin(theta);
      const std::string where = fmt::format("child ({}, {}), u = {}", x, y, u);
      for (int i = 0; i < 2; ++i) {
        const double want = static_cast<double>(i == 0 ? px : py), got = parent[0][i].item<double>();
        EXPECT_NEAR(got, want, 1e-9 * std::abs(want) + 1e-300) << where << ", coordinate " << i;
      }
    }
  }
}

}  // namespace
}  // namespace gfn

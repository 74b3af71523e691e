// The masked categorical: exact zeros for forced moves, finite Gumbel noise, and the host
// inverse-CDF draw never returning a zero-weight entry.
#include "measures/categorical.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/trainer.h"

namespace gfn {
namespace {

// log-probabilities normalise over the mask, are -inf off it, and a forced move is exactly 0
TEST(CategoricalTest, MaskedLogSoftmax) {
  auto logits = torch::tensor({{1.0, 2.0, 3.0}, {0.5, -7.0, 2.0}}, torch::kFloat64);
  auto mask = torch::tensor({{true, false, true}, {false, true, false}});
  auto lp = masked_log_softmax(logits, mask);
  EXPECT_TRUE(std::isinf(lp[0][1].item<double>()) && lp[0][1].item<double>() < 0);
  EXPECT_NEAR(lp[0][0].item<double>(), 1.0 - std::log(std::exp(1.0) + std::exp(3.0)), 1e-15);
  EXPECT_NEAR(std::exp(lp[0][0].item<double>()) + std::exp(lp[0][2].item<double>()), 1.0, 1e-15);
  EXPECT_EQ(lp[1][1].item<double>(), 0.0);  // exactly, not approximately
}

// Gumbel noise is finite even where U = 0 would give -inf, and has the right mean (Euler's gamma)
TEST(CategoricalTest, GumbelNoiseFiniteWithRightMean) {
  auto gen = make_generator(5, torch::kCPU);
  auto g = gumbel_noise({200000}, gen, torch::TensorOptions().dtype(torch::kFloat32));
  EXPECT_TRUE(torch::isfinite(g).all().item<bool>());
  EXPECT_NEAR(g.mean().item<double>(), 0.5772156649, 0.01);  // sd pi/sqrt(6)/sqrt(2e5) = 0.003
  EXPECT_NEAR(g.var().item<double>(), M_PI * M_PI / 6.0, 0.05);
}

// inverse-CDF picks: interior, zero-weight entries skipped, u = 0, and rounding at the top
TEST(CategoricalTest, InverseCdfPick) {
  const double cdf[] = {0.0, 0.25, 0.25, 1.0, 1.0};  // weights 0, .25, 0, .75, 0
  EXPECT_EQ(inverse_cdf_pick(cdf, 5, 0.0), 1);
  EXPECT_EQ(inverse_cdf_pick(cdf, 5, 0.2), 1);
  EXPECT_EQ(inverse_cdf_pick(cdf, 5, 0.25), 3);
  EXPECT_EQ(inverse_cdf_pick(cdf, 5, 0.999999), 3);
  EXPECT_EQ(inverse_cdf_pick(cdf, 5, 1.0), 3);  // beyond the range: the last positive weight
  const double unnormalised[] = {2.0, 2.0, 6.0};
  EXPECT_EQ(inverse_cdf_pick(unnormalised, 3, 0.3), 0);
  EXPECT_EQ(inverse_cdf_pick(unnormalised, 3, 0.34), 2);
}

}  // namespace
}  // namespace gfn

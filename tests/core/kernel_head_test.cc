// KernelHead: output layout from the kernel spec, densities per domain, coordinates drawn in
// their domains, finite gradients whatever other rows' coordinates hold, uniform densities.
#include "core/kernel_head.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/params.h"
#include "core/trainer.h"
#include "measures/densities.h"

namespace gfn {
namespace {

// atoms "a" and "exit", a 2-D cube piece, a 1-D real piece and a torus piece (a circle piece of
// dimension 2)
KernelSpec mixed_spec() {
  KernelSpec k;
  k.components = {{"a", ComponentKind::kAtom, 0, Domain::kNone},
                  {"cube", ComponentKind::kPiece, 2, Domain::kUnitCube},
                  {"line", ComponentKind::kPiece, 1, Domain::kReal},
                  {"torus", ComponentKind::kPiece, 2, Domain::kCircle},
                  {"exit", ComponentKind::kAtom, 0, Domain::kNone}};
  k.exit = 4;
  return k;
}

// 5 logits + Beta mixture (K = 3, D = 2: 3 * 5) + Gaussian (2) + von Mises mixture (K = 3, D = 2:
// 3 * 5)
TEST(KernelHeadTest, OutputLayout) {
  HeadOptions o;
  o.mixture_components = 3;
  KernelHead head(mixed_spec(), 2, o);
  EXPECT_EQ(head.num_components(), 5);
  EXPECT_TRUE(head.has_pieces());
  EXPECT_EQ(head.output_size(), 5 + 15 + 2 + 15);
  auto out = torch::randn({4, head.output_size()});
  EXPECT_TRUE(torch::equal(head.logits(out), out.narrow(1, 0, 5)));
  EXPECT_THROW(KernelHead(mixed_spec(), 1, o), std::invalid_argument);  // a 2-D piece needs Da >= 2
}

// each row's density is its piece's (checked against the density built by hand), atoms get 0
TEST(KernelHeadTest, LogDensityPerRow) {
  HeadOptions o;
  KernelHead head(mixed_spec(), 2, o);
  auto gen = make_generator(1, torch::kCPU);
  auto out = torch::randn({5, head.output_size()}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  auto comp = torch::tensor({0, 1, 2, 3, 4}, torch::kInt64);
  auto coords = torch::tensor({{0.3, 0.3}, {0.2, 0.7}, {-1.5, 0.0}, {2.0, -2.5}, {0.0, 0.0}}, torch::kFloat64);
  auto lq = head.log_density(out, comp, coords);
  EXPECT_EQ(lq[0].item<double>(), 0.0);
  EXPECT_EQ(lq[4].item<double>(), 0.0);
  auto beta = BetaMixture::from_raw(out.narrow(1, 5, 10), 2, 2, 0.1, 5.1).log_prob(coords);
  EXPECT_NEAR(lq[1].item<double>(), beta[1].item<double>(), 1e-12);
  DiagonalGaussian g{out.narrow(1, 15, 1), out.narrow(1, 16, 1).clamp(-7.0, 3.0)};
  EXPECT_NEAR(lq[2].item<double>(), g.log_prob(coords.narrow(1, 0, 1))[2].item<double>(), 1e-12);
  // the von Mises mixture by hand: [logits (2) | locations (2 x 2) | concentrations (2 x 2)] from
  // column 17, each component a product of two von Mises
  auto raw = out.narrow(1, 17, 10);
  auto weights = raw.narrow(1, 0, 2).log_softmax(1);
  std::vector<torch::Tensor> terms;
  for (int64_t k = 0; k < 2; ++k) {
    VonMises v{M_PI * raw.narrow(1, 2 + 2 * k, 2).tanh(), torch::softplus(raw.narrow(1, 6 + 2 * k, 2))};
    terms.push_back(weights.select(1, k) + v.log_prob(coords));
  }
  EXPECT_NEAR(lq[3].item<double>(), torch::logaddexp(terms[0], terms[1])[3].item<double>(), 1e-12);
}

// drawn coordinates lie in each chosen piece's domain, zeros for atoms; gradients are finite
// even where rows of other components hold coordinates outside a piece's support
TEST(KernelHeadTest, SampleInDomainAndFiniteGradients) {
  KernelHead head(mixed_spec(), 2, HeadOptions{});
  auto gen = make_generator(2, torch::kCPU);
  const int64_t n = 500;
  auto comp = torch::arange(n, torch::kInt64).remainder(5);
  auto out = torch::randn({n, head.output_size()}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  auto coords = head.sample_coords(out, comp, gen);
  auto cube = coords.index_select(0, comp.eq(1).nonzero().squeeze(1));
  EXPECT_TRUE((cube.gt(0) & cube.lt(1)).all().item<bool>());
  auto torus = coords.index_select(0, comp.eq(3).nonzero().squeeze(1));
  EXPECT_TRUE((torus.ge(-M_PI) & torus.lt(M_PI)).all().item<bool>());
  EXPECT_GT(torus.select(1, 1).abs().min().item<double>(), 0.0);  // both angles drawn
  auto atoms = coords.index_select(0, (comp.eq(0) | comp.eq(4)).nonzero().squeeze(1));
  EXPECT_EQ(atoms.abs().sum().item<double>(), 0.0);
  // each piece's rows keep their own coordinates, which lie outside the other pieces' domains
  // (real and circle values outside the cube); atom rows hold garbage (7: outside the cube and
  // the circle)
  auto garbage = torch::where((comp.eq(0) | comp.eq(4)).unsqueeze(1), torch::full_like(coords, 7.0), coords);
  garbage = torch::where(comp.eq(2).unsqueeze(1), garbage - 3.0, garbage);  // real rows: below the cube
  auto raw = out.clone().set_requires_grad(true);
  auto lq = head.log_density(raw, comp, garbage);
  EXPECT_TRUE(torch::isfinite(lq).all().item<bool>());
  lq.sum().backward();
  EXPECT_TRUE(torch::isfinite(raw.grad()).all().item<bool>());
}

// uniform densities: 0 on cubes and atoms, -log 2pi on the circle, -2 log 2pi on the torus; none
// on R^k
// Gaussian pieces of one dimension (one per candidate edge in the Bayesian-network env) are
// scored and drawn as a group: each row's density is its own piece's N(loc, e^log_scale) read from
// that piece's columns, in both executions; draws land where the piece's parameters say
TEST(KernelHeadTest, GaussianPiecesOfOneDimensionAsAGroup) {
  KernelSpec k;
  for (int c = 0; c < 4; ++c) k.components.push_back({"w" + std::to_string(c), ComponentKind::kPiece, 1, Domain::kReal});
  k.components.push_back({"cube", ComponentKind::kPiece, 1, Domain::kUnitCube});
  k.components.push_back({"exit", ComponentKind::kAtom, 0, Domain::kNone});
  k.exit = 5;
  KernelHead head(k, 1, HeadOptions{});
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(3);
  auto out = torch::randn({64, head.output_size()}, gen, torch::kFloat64);
  auto component = torch::randint(0, 6, {64}, gen, torch::kInt64);
  auto coords = torch::rand({64, 1}, gen, torch::kFloat64);
  for (Execution e : {Execution::kCompact, Execution::kFixedShape}) {
    auto got = head.log_density(out, component, coords, e);
    for (int64_t b = 0; b < 64; ++b) {
      const int64_t c = component[b].item<int64_t>();
      if (c >= 4) continue;
      const auto& piece = head.pieces()[c];
      const double loc = out[b][piece.offset].item<double>();
      const double log_scale = std::clamp(out[b][piece.offset + 1].item<double>(), -7.0, 3.0);
      const double z = (coords[b][0].item<double>() - loc) / std::exp(log_scale);
      EXPECT_NEAR(got[b].item<double>(), -0.5 * z * z - log_scale - 0.5 * std::log(2 * M_PI), 1e-10) << "row " << b;
    }
  }
  // draws: a piece with scale e^-7 lands at its location
  auto sharp = out.clone();
  for (const auto& piece : head.pieces())
    if (piece.domain == Domain::kReal) sharp.select(1, piece.offset + 1).fill_(-7.0);
  auto drawn = head.sample_coords(sharp, component, gen);
  for (int64_t b = 0; b < 64; ++b) {
    const int64_t c = component[b].item<int64_t>();
    if (c >= 4) continue;
    EXPECT_NEAR(drawn[b][0].item<double>(), sharp[b][head.pieces()[c].offset].item<double>(), 0.01) << "row " << b;
  }
}

TEST(KernelHeadTest, UniformDensities) {
  KernelSpec k;
  k.components = {{"a", ComponentKind::kAtom, 0, Domain::kNone},
                  {"cube", ComponentKind::kPiece, 2, Domain::kUnitCube},
                  {"ring", ComponentKind::kPiece, 1, Domain::kCircle},
                  {"torus", ComponentKind::kPiece, 2, Domain::kCircle}};
  KernelHead head(k, 2, HeadOptions{});
  auto lu = head.log_uniform_density(torch::tensor({0, 1, 2, 3}, torch::kInt64));
  EXPECT_NEAR(lu[3].item<float>(), -2 * std::log(2 * M_PI), 1e-6);
  EXPECT_EQ(lu[0].item<float>(), 0.0f);
  EXPECT_EQ(lu[1].item<float>(), 0.0f);
  EXPECT_NEAR(lu[2].item<float>(), -std::log(2 * M_PI), 1e-6);
  KernelHead real(mixed_spec(), 2, HeadOptions{});
  try {
    real.require_uniform();
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("piece 'line' lives on R^1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gfn

// The fused kernels' row functions (core/kernels/rows.h), run on the CPU by the host loops, agree
// with the LibTorch operations they replace: the masked Gumbel-max draw (ties, finished rows,
// rows without an allowed component) and the hypergrid's features, forward mask and step. The
// CUDA kernels run these same functions, one row per thread.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "core/kernels/kernels.h"
#include "envs/hypergrid.h"

namespace gfn {
namespace {

void expect_same(const fused::CategoricalStep& a, const fused::CategoricalStep& b) {
  EXPECT_TRUE(torch::equal(a.component, b.component));
  EXPECT_TRUE(torch::equal(a.stay, b.stay));
  ASSERT_EQ(a.score.sizes(), b.score.sizes());
  EXPECT_TRUE(torch::equal(a.score.isinf(), b.score.isinf()));
  EXPECT_TRUE(torch::equal(a.score.masked_fill(a.score.isinf(), 0), b.score.masked_fill(b.score.isinf(), 0)));
}

TEST(KernelsTest, CategoricalStepRowsMatchOps) {
  torch::manual_seed(0);
  const int64_t B = 4096, C = 7, exit = C - 1;
  auto logits = torch::randn({B, C});
  auto mask = torch::rand({B, C}).lt(0.6);
  mask.narrow(0, 0, 8).fill_(false);  // rows with nothing allowed: score all -inf, component 0
  auto done = torch::rand({B}).lt(0.3);
  auto gumbel = -torch::log(-torch::log(torch::rand({B, C}).clamp_min(1e-30)));
  expect_same(fused::categorical_step_rows(logits, mask, done, gumbel, exit),
              fused::categorical_step_ops(logits, mask, done, gumbel, exit));
  // ties: integer logits, no noise; the first maximum wins in both
  auto ties = torch::randint(0, 3, {B, C}).to(torch::kFloat32);
  auto zero = torch::zeros({B, C});
  auto r = fused::categorical_step_rows(ties, mask, done, zero, exit);
  expect_same(r, fused::categorical_step_ops(ties, mask, done, zero, exit));
  auto nothing_allowed = done.narrow(0, 0, 8).logical_not();
  ASSERT_GT(nothing_allowed.sum().item<int64_t>(), 0);
  EXPECT_EQ(r.component.narrow(0, 0, 8).masked_select(nothing_allowed).abs().sum().item<int64_t>(), 0);
  // a finished row draws under a full mask and stays; a row that draws the exit stays
  EXPECT_TRUE(torch::equal(r.stay, r.component.eq(exit).logical_or(done)));
  // on the CPU the dispatching entry point is the operations
  expect_same(fused::categorical_step(logits, mask, done, gumbel, exit),
              fused::categorical_step_ops(logits, mask, done, gumbel, exit));
  EXPECT_FALSE(fused::enabled(torch::kCPU));
}

TEST(KernelsTest, HypergridRowsMatchEnv) {
  HypergridOptions o;
  o.ndim = 3;
  o.height = 5;
  HypergridEnv env(o);
  torch::manual_seed(1);
  const int64_t B = 1000;
  auto x = torch::randint(0, o.height, {B, o.ndim}, torch::kInt64);
  auto b = torch::TensorOptions().dtype(torch::kBool);
  States s{x, torch::zeros({B, 0}), x.eq(0).all(1), torch::zeros({B}, b)};
  EXPECT_TRUE(torch::equal(fused::hypergrid_features(x, o.height), env.features(s)));
  EXPECT_TRUE(torch::equal(fused::hypergrid_forward_mask(x, o.height), env.forward_mask(s)));
  // components among the allowed moves and the exit
  auto comp = torch::randint(0, o.ndim + 1, {B}, torch::kInt64);
  comp = torch::where(env.forward_mask(s).gather(1, comp.unsqueeze(1)).squeeze(1), comp, torch::full_like(comp, o.ndim));
  EXPECT_TRUE(torch::equal(fused::hypergrid_step(x, comp), env.step(s, Actions{comp, torch::zeros({B, 0})}).next.discrete));
}

}  // namespace
}  // namespace gfn

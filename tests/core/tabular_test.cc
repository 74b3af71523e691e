// The tabular rollout: both walks (host loop, tensor Gumbel-max) draw terminal states from the
// policy's exact terminating distribution, and never take an unavailable component.
#include "core/tabular.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/evaluation.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"

namespace gfn {
namespace {

void check_backend(TabularBackend backend) {
  HypergridOptions o;
  o.ndim = 2;
  o.height = 5;
  HypergridEnv env(o);
  auto init = make_generator(3, torch::kCPU);
  EstimatorOptions eo;
  eo.hidden = 32;
  Estimators est(env, eo, init, torch::kCPU);
  StateTable table(env, torch::kCPU);
  torch::NoGradGuard no_grad;
  auto pass = evaluate_table(table, *est.policy);
  auto probs = pass.log_pf.exp();
  auto exact = terminating_distribution(table, pass.log_pf);

  // empirical terminal distribution of 40,000 trajectories
  auto gen = make_generator(11, torch::kCPU);
  std::vector<double> counts(table.size(), 0.0);
  const int64_t batch = 4000, rounds = 10;
  for (int64_t r = 0; r < rounds; ++r) {
    torch::Tensor path;
    auto tr = rollout_tabular(env, table, probs, batch, gen, &path, backend);
    // every valid step was available at its state
    auto from = path.narrow(0, 0, tr.num_steps());
    auto comp = tr.action_component.clamp_min(0);
    auto avail = table.forward_mask.reshape({-1}).index_select(
        0, (from * table.forward_mask.size(1) + comp).reshape({-1})).view_as(comp);
    ASSERT_TRUE(avail.logical_or(tr.mask.logical_not()).all().item<bool>());
    auto last = path[path.size(0) - 1];
    ASSERT_TRUE(torch::equal(last, env.state_index(tr.terminal_states())));
    auto acc = last.contiguous();
    for (int64_t i = 0; i < batch; ++i) counts[acc.data_ptr<int64_t>()[i]] += 1.0;
  }
  for (auto& c : counts) c /= static_cast<double>(batch * rounds);
  // 25 states, 40,000 draws: the expected TV is ~0.01; 0.03 is far outside sampling noise
  EXPECT_LT(total_variation(counts, exact), 0.03);
}

TEST(TabularTest, HostWalkSamplesTheExactDistribution) { check_backend(TabularBackend::kHost); }
TEST(TabularTest, TensorWalkSamplesTheExactDistribution) { check_backend(TabularBackend::kTensor); }

}  // namespace
}  // namespace gfn

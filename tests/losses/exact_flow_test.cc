// Every objective vanishes at the exact solution (issue 4's proof on a small DAG): on hypergrid
// 2-D H=4 and 3-D H=3, Eigen solves the state flows of the uniform backward policy,
//     F(s) = R(s) + sum over the children c of s of F(c) P_B(s | c),
// a linear system (I - A) F = R; from F follow the edge flows F(s -> c) = F(c) P_B(s | c) (the
// exit edge carries R(s)), the forward policy P_F(c | s) = F(s -> c) / F(s) and Z = F(s0). These
// go through the tabular scoring path, on trajectories sampled from that P_F, into every
// objective: each is 0 to float64 rounding, and > 0 once the policy is perturbed.
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Dense>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/scoring.h"
#include "core/tabular.h"
#include "core/trainer.h"
#include "envs/hypergrid.h"
#include "losses/db.h"
#include "losses/fm.h"
#include "losses/modified_db.h"
#include "losses/subtb.h"
#include "losses/tb.h"
#include "losses/vargrad.h"
#include "measures/categorical.h"

namespace gfn {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

// The exact solution in table form: log F(s) [S], the log edge flows as forward logits [S, C_f]
// and the uniform log P_B [S, C_b], float64.
struct ExactFlows {
  torch::Tensor log_flow, logits, log_pb;
  double log_z = 0;
};

ExactFlows solve(const StateTable& table) {
  const int64_t S = table.size(), C = table.forward_mask.size(1);
  auto fmask = table.forward_mask.accessor<bool, 2>();
  auto child = table.child.accessor<int64_t, 2>();
  auto root = table.states.is_initial;
  // number of parents of each state (s0: none; its P_B row is never read)
  auto parents = table.backward_mask.sum(1).to(torch::kFloat64);
  auto np = parents.accessor<double, 1>();
  auto reward = table.log_reward.to(torch::kFloat64).exp();
  Eigen::MatrixXd m = Eigen::MatrixXd::Identity(S, S);
  Eigen::VectorXd r(S);
  for (int64_t s = 0; s < S; ++s) {
    r(s) = reward[s].item<double>();
    for (int64_t c = 0; c < C; ++c)
      if (c != table.exit && fmask[s][c]) m(s, child[s][c]) -= 1.0 / np[child[s][c]];
  }
  Eigen::VectorXd f = m.partialPivLu().solve(r);

  ExactFlows out;
  out.log_flow = torch::empty({S}, kF64);
  out.logits = torch::zeros({S, C}, kF64);
  for (int64_t s = 0; s < S; ++s) {
    out.log_flow[s] = std::log(f(s));
    for (int64_t c = 0; c < C; ++c) {
      if (!fmask[s][c]) continue;
      out.logits[s][c] = c == table.exit ? std::log(r(s)) : std::log(f(child[s][c]) / np[child[s][c]]);
    }
  }
  auto bmask = table.backward_mask.logical_or(root.unsqueeze(1));
  out.log_pb = (-bmask.sum(1, /*keepdim=*/true).to(torch::kFloat64).log()).expand({S, bmask.size(1)});
  out.log_z = out.log_flow[table.initial].item<double>();
  return out;
}

struct Case {
  std::string name;
  std::function<std::unique_ptr<Objective>()> make;
  bool credit = false;
};

std::vector<Case> cases() {
  std::vector<Case> out{
      {"tb", [] { return std::make_unique<TrajectoryBalance>(); }},
      {"db", [] { return std::make_unique<DetailedBalance>(); }},
      {"fm", [] { return std::make_unique<FlowMatching>(); }},
      {"modified_db", [] { return std::make_unique<ModifiedDetailedBalance>(); }},
      {"vargrad", [] { return std::make_unique<VarGrad>(); }},
      {"tb+fl", [] { return std::make_unique<TrajectoryBalance>(); }, true},
      {"db+fl", [] { return std::make_unique<DetailedBalance>(); }, true},
  };
  const std::vector<std::pair<std::string, SubTbWeighting>> weightings{{"geometric", SubTbWeighting::kGeometric},
                                                                       {"equal", SubTbWeighting::kEqual},
                                                                       {"tb", SubTbWeighting::kTb},
                                                                       {"db", SubTbWeighting::kDb}};
  for (const auto& [wname, w] : weightings)
    for (bool s0_log_z : {false, true})
      for (bool credit : {false, true}) {
        SubTbOptions o;
        o.weighting = w;
        o.s0 = s0_log_z ? SubTbStart::kLogZ : SubTbStart::kFlow;
        out.push_back({"subtb/" + wname + (s0_log_z ? "/log_z" : "/flow") + (credit ? "+fl" : ""),
                       [o] { return std::make_unique<SubTrajectoryBalance>(o); }, credit});
      }
  return out;
}

// What every objective reads at the exact solution and after a perturbation of the policy.
struct GridResult {
  double log_z_gap = 0;       // |F(s0) - the env's log Z| (the table's rewards are float32)
  int64_t objectives = 0;     // how many objective variants were evaluated
  double largest_exact = 0;   // the largest |loss| at the exact solution, and which objective
  std::string largest_exact_name;
  double smallest_perturbed = std::numeric_limits<double>::infinity();  // the smallest loss after
  std::string smallest_perturbed_name;                                    // perturbing the logits
};

// Every objective's loss on 256 trajectories sampled from the exact P_F, and from the exact P_F
// with its logits perturbed by 0.1 N(0, 1).
GridResult check_grid(int64_t ndim, int64_t height) {
  HypergridOptions ho;
  ho.ndim = ndim;
  ho.height = height;
  HypergridEnv env(ho);
  StateTable table(env, torch::kCPU);
  auto exact = solve(table);
  GridResult result;
  result.log_z_gap = std::fabs(exact.log_z - *env.log_partition());

  auto losses = [&](const torch::Tensor& logits, uint64_t seed) {
    TablePass pass;
    pass.logits = logits;
    pass.log_pf = masked_log_softmax(logits, table.forward_mask);
    pass.log_pb = exact.log_pb;
    auto gen = make_generator(seed, torch::kCPU);
    torch::Tensor path;
    auto traj = rollout_tabular(env, table, pass.log_pf.exp(), 256, gen, &path);
    std::vector<std::pair<std::string, double>> out;
    for (const auto& c : cases()) {
      auto objective = c.make();
      ScoreOptions o;
      o.edge_flows = objective->requirements().edge_flows;
      o.state_rewards = objective->requirements().state_rewards;
      o.credit = c.credit ? Credit::kForwardLooking : Credit::kNone;
      // with credits the flow head carries log F~(s) = log F(s) - log R~(s) (log R~(s0) = 0)
      pass.log_flow = c.credit ? exact.log_flow - table.intermediate_log_reward.to(torch::kFloat64) : exact.log_flow;
      auto in = score_tabular(table, pass, traj, path, torch::tensor(exact.log_z, kF64), o);
      out.emplace_back(c.name, objective->loss(in).item<double>());
    }
    return out;
  };

  for (const auto& [name, loss] : losses(exact.logits, 7)) {
    ++result.objectives;
    if (std::fabs(loss) >= result.largest_exact) {
      result.largest_exact = std::fabs(loss);
      result.largest_exact_name = name;
    }
  }
  auto gen = make_generator(8, torch::kCPU);
  auto noisy = exact.logits + 0.1 * torch::randn(exact.logits.sizes(), gen, kF64);
  for (const auto& [name, loss] : losses(noisy, 7)) {
    if (loss < result.smallest_perturbed) {
      result.smallest_perturbed = loss;
      result.smallest_perturbed_name = name;
    }
  }
  return result;
}

class ExactFlowTest : public ::testing::TestWithParam<std::pair<int64_t, int64_t>> {};

// Z = F(s0) is the env's partition function; all 23 objective variants are 0 to float64
// rounding at the exact flows, and every one of them reads the policy (> 0 once perturbed)
TEST_P(ExactFlowTest, EveryObjectiveVanishesAtTheExactFlows) {
  auto r = check_grid(GetParam().first, GetParam().second);
  EXPECT_LT(r.log_z_gap, 1e-6);
  EXPECT_EQ(r.objectives, 23);
  EXPECT_LT(r.largest_exact, 1e-20) << r.largest_exact_name;
  EXPECT_GT(r.smallest_perturbed, 1e-5) << r.smallest_perturbed_name;
}

// hypergrid 2-D H=4 and 3-D H=3
INSTANTIATE_TEST_SUITE_P(Hypergrids, ExactFlowTest,
                         ::testing::Values(std::make_pair(int64_t{2}, int64_t{4}), std::make_pair(int64_t{3}, int64_t{3})));

}  // namespace
}  // namespace gfn

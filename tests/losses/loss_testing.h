// Shared pieces of the objective tests: the hand-computed batch every loss test starts from and
// the float64 finite-difference checks of a loss's gradient w.r.t. its inputs and, through
// scoring, the policy's parameters (each returns its numbers; the tests assert on them).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/estimator.h"
#include "core/objective.h"
#include "core/sampler.h"
#include "core/scoring.h"
#include "core/tabular.h"
#include "core/trainer.h"
#include "core/types.h"
#include "envs/hypergrid.h"
#include "tests/testing/fixtures.h"

namespace gfn::testing {

// T = 3, B = 2. Trajectory 0: two moves then the exit (length 3). Trajectory 1: one move then
// the exit (length 2), padding at t = 2. The exit steps and the padding hold log_pb = 0.
// log Z = 1.5; log F(s_t) per row (0 on padding): trajectory 0: 1, 0.5, -0.5 (x);
// trajectory 1: 1, 0.25 (x). Edge flows (FM): log outflow 2, 1, 0.25 and 2, 0.5; log inflow
// (0 at s0) 1.5, 0.5 and 0.75. States as terminals (modified DB): log R(s_t) 0.5, -0.5, -1 and
// 0.25, 0.5; log p_F(exit | s_t) -2, -1.5, -0.25 and -1, -0.5. No local credits.
inline LossInputs hand_inputs() {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  LossInputs in;
  in.log_pf = torch::tensor({-1.0, -0.5, -2.0, -0.3, -0.7, 0.0}, f64).view({3, 2});
  in.log_pb = torch::tensor({-0.2, -0.1, -0.4, 0.0, 0.0, 0.0}, f64).view({3, 2});
  in.log_flow = torch::tensor({1.0, 1.0, 0.5, 0.25, -0.5, 0.0, 0.0, 0.0}, f64).view({4, 2});
  in.log_reward = torch::tensor({-1.0, 0.5}, f64);
  in.log_z = torch::tensor(1.5, f64);
  in.mask = torch::tensor({true, true, true, true, true, false}).view({3, 2});
  in.length = torch::tensor({3, 2}, torch::kInt64);
  in.log_outflow = torch::tensor({2.0, 2.0, 1.0, 0.5, 0.25, 0.0}, f64).view({3, 2});
  in.log_inflow = torch::tensor({0.0, 0.0, 1.5, 0.75, 0.5, 0.0}, f64).view({3, 2});
  in.log_reward_states = torch::tensor({0.5, 0.25, -0.5, 0.5, -1.0, 0.0}, f64).view({3, 2});
  in.log_pf_exit = torch::tensor({-2.0, -1.0, -1.5, -0.5, -0.25, 0.0}, f64).view({3, 2});
  return in;
}

// hand_inputs() with forward-looking credits that sum to log R(x) along each trajectory:
// 0.5, -1, -0.5 (sum -1) and 0.25, 0.25 (sum 0.5).
inline LossInputs hand_inputs_with_credits() {
  LossInputs in = hand_inputs();
  in.local_credit = torch::tensor({0.5, 0.25, -1.0, 0.25, -0.5, 0.0}, torch::kFloat64).view({3, 2});
  return in;
}

// The outcome of a gradient check against central finite differences: how many entries were
// compared, the largest excess of |autograd - finite difference| over the tolerance (<= 0 when
// every entry agrees) and where it was; for the policy check also the largest gradient entry and
// |d loss / d flow bias| (objectives that read flows), so a trivially zero gradient shows.
struct GradientCheck {
  int64_t entries = 0;
  double worst_excess = -std::numeric_limits<double>::infinity();
  std::string worst;
  double largest_gradient = 0.0;
  double flow_gradient = 0.0;

  void record(double autograd, double fd, double tolerance, const std::string& where) {
    ++entries;
    const double excess = std::fabs(autograd - fd) - tolerance;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = where + ": autograd " + std::to_string(autograd) + ", finite difference " + std::to_string(fd);
    }
  }
};

// Autograd gradients of objective.loss w.r.t. each of `fields` against central finite
// differences (step 1e-6, tolerance 1e-8) at every entry of make() (hand_inputs()).
inline GradientCheck input_gradient_check(const Objective& objective,
                                          const std::vector<torch::Tensor LossInputs::*>& fields,
                                          LossInputs (*make)() = hand_inputs) {
  GradientCheck check;
  const LossInputs base = make();
  for (size_t f = 0; f < fields.size(); ++f) {
    auto field = fields[f];
    LossInputs in = make();
    auto leaf = (in.*field).clone().set_requires_grad(true);
    in.*field = leaf;
    auto grad = torch::autograd::grad({objective.loss(in)}, {leaf})[0].reshape({-1});
    const double eps = 1e-6;
    for (int64_t i = 0; i < leaf.numel(); ++i) {
      auto eval = [&](double delta) {
        LossInputs p = make();
        auto v = (base.*field).clone().reshape({-1});
        v[i] += delta;
        p.*field = v.view((base.*field).sizes());
        return objective.loss(p).item<double>();
      };
      const double fd = (eval(eps) - eval(-eps)) / (2 * eps);
      check.record(grad[i].item<double>(), fd, 1e-8,
                   objective.name() + " field " + std::to_string(f) + " entry " + std::to_string(i));
    }
  }
  return check;
}

// The gradient of objective.loss through score_trajectories and through the tabular pass, w.r.t.
// every parameter (two entries of each tensor, tolerance 1e-6 + 1e-5 |fd|; the flow head where
// the objective reads flows; log Z where it learns one), against central finite differences, in
// float64 on hypergrid 2-D H=3 with a learned P_B. `options` selects the optional LossInputs
// fields the objective reads.
inline GradientCheck policy_gradient_check(const Objective& objective, const ScoreOptions& options) {
  GradientCheck check;
  HypergridOptions ho;
  ho.ndim = 2;
  ho.height = 3;
  HypergridEnv env(ho);
  StateTable table(env, torch::kCPU);
  for (bool tabular : {false, true}) {
    EstimatorOptions eo;
    eo.hidden = 8;
    eo.dtype = torch::kFloat64;
    eo.activation = Activation::kElu;
    eo.backward = BackwardPolicy::kLearned;
    auto gen = make_generator(31, torch::kCPU);
    Estimators est(env, eo, gen, torch::kCPU);
    const auto components = components_for(env, est, eo, objective, TrainerOptions{}, gen);
    auto sgen = make_generator(32, torch::kCPU);
    auto tr = rollout(env, *est.policy, 16, SamplerOptions{}, sgen, torch::kCPU);
    std::vector<torch::Tensor> rows;
    for (int64_t t = 0; t <= tr.num_steps(); ++t) rows.push_back(env.state_index(tr.states_at(t)).clamp_min(0));
    auto index = torch::stack(rows);
    auto loss_fn = [&] {
      if (!tabular) return objective.loss(score_trajectories(env, est, tr, options));
      auto pass = evaluate_table(table, est);
      return objective.loss(score_tabular(table, pass, tr, index, est.log_z, options));
    };
    auto params = est.policy_parameters();
    const auto flow = loss_parameters(components);
    params.insert(params.end(), flow.begin(), flow.end());
    if (objective.requirements().log_z) params.push_back(est.log_z);
    auto grads = torch::autograd::grad({loss_fn()}, params, {}, {}, false, /*allow_unused=*/true);
    for (size_t k = 0; k < params.size(); ++k) {
      auto flat = params[k].detach().view({-1});
      auto g = grads[k].defined() ? grads[k].reshape({-1}) : torch::zeros_like(flat);
      check.largest_gradient = std::max(check.largest_gradient, g.abs().max().template item<double>());
      if (!flow.empty() && params[k].is_same(flow.back()))
        check.flow_gradient = std::max(check.flow_gradient, g.abs().max().template item<double>());
      for (int64_t i : {int64_t{0}, flat.numel() - 1}) {
        const double fd = central_difference(flat, i, loss_fn);
        check.record(g[i].template item<double>(), fd, 1e-6 + 1e-5 * std::fabs(fd),
                     objective.name() + (tabular ? " tabular" : " per-step") + " parameter " + std::to_string(k) +
                         " entry " + std::to_string(i));
      }
    }
  }
  return check;
}

}  // namespace gfn::testing

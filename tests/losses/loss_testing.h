// Shared pieces of the objective tests: the hand-computed batch every loss test starts from and
// the float64 finite-difference check of a loss's gradient w.r.t. its inputs.
#pragma once

#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/objective.h"
#include "core/types.h"

namespace gfn::testing {

// T = 3, B = 2. Trajectory 0: two moves then the exit (length 3). Trajectory 1: one move then
// the exit (length 2), padding at t = 2. The exit steps and the padding hold log_pb = 0.
// log Z = 1.5; log F(s_t) per row (0 on padding): trajectory 0: 1, 0.5, -0.5 (x);
// trajectory 1: 1, 0.25 (x).
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
  return in;
}

// Autograd gradients of objective.loss w.r.t. each of `fields` agree with central finite
// differences (step 1e-6, tolerance 1e-8) at every entry of hand_inputs().
inline void expect_input_gradients_match_finite_differences(const Objective& objective,
                                                            const std::vector<torch::Tensor LossInputs::*>& fields) {
  const LossInputs base = hand_inputs();
  for (auto field : fields) {
    LossInputs in = hand_inputs();
    auto leaf = (in.*field).clone().set_requires_grad(true);
    in.*field = leaf;
    auto grad = torch::autograd::grad({objective.loss(in)}, {leaf})[0].reshape({-1});
    const double eps = 1e-6;
    for (int64_t i = 0; i < leaf.numel(); ++i) {
      auto eval = [&](double delta) {
        LossInputs p = hand_inputs();
        auto v = (base.*field).clone().reshape({-1});
        v[i] += delta;
        p.*field = v.view((base.*field).sizes());
        return objective.loss(p).item<double>();
      };
      const double fd = (eval(eps) - eval(-eps)) / (2 * eps);
      EXPECT_NEAR(grad[i].item<double>(), fd, 1e-8) << objective.name() << " entry " << i;
    }
  }
}

}  // namespace gfn::testing

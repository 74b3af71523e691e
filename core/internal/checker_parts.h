// The environment checker's parts (core/checker.h), shared by its sources: core/checker.cc
// (options, report, the reference policy, sampling, partition, termination, check_env),
// core/checker_inverse.cc ("inverse") and core/checker_geometry.cc (numerical volume factors,
// "jacobian", quadrature and "normalisation"). Internal to the library: not installed.
#pragma once

#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "core/checker.h"
#include "core/env.h"
#include "core/estimator.h"
#include "core/types.h"

namespace gfn::checker {

inline const torch::Device kCpu(torch::kCPU);
inline const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
inline const auto kI64 = torch::TensorOptions().dtype(torch::kInt64);

// One batch of trajectories sampled with the reference policy and the moves the checks read.
struct Sample {
  Trajectories traj;
  torch::Tensor move_rows;     // [M] int64: flat rows t * B + b of the valid non-exit steps
  States parents, children;    // [M]: the moves' endpoints
  Actions forward;             // [M]: the moves' actions
  torch::Tensor log_jacobian;  // [M] float64: log J reported by step while sampling
  States forward_states;       // non-sink states a step was taken from (the exit's included)
  States backward_states;      // the moves' children: neither initial nor sink
};

// The largest entry of `t`, 0 when it is empty.
double max_or_zero(const torch::Tensor& t);

// The name of component `c` of `kernel`; the number itself when there is no such component.
std::string component_name(const KernelSpec& kernel, int64_t c);

// "(u0, u1, ...)": the first `dim` entries of `row`, 4 significant digits.
std::string fmt_coords(const torch::Tensor& row, int64_t dim);

// The env's log J and the numerical one at chart coordinates u of piece `comp` from `states`.
struct Volume {
  torch::Tensor env_log_j;  // [N] float64
  torch::Tensor num_log_j;  // [N] float64: log sqrt det(D phi^T D phi), central differences
  torch::Tensor same_chart;  // [N] bool: the stencil's discrete coordinates stayed those of u
  torch::Tensor noise;       // [N] float64: bound on num_log_j's rounding error (4 sum_i |e_i| / |D_i|)
  torch::Tensor d;           // [N, Dc, k] float64: the differentiated chart D phi
  bool float32 = false;      // the env computed in float32 (float64 states were not kept)
};

// Central differences of u -> next state's continuous coordinates, step h per chart coordinate
// (float64 states; float32 with h >= 3e-3 when the env does not keep float64), the step shrunk
// near the faces of a cube domain so that the stencil stays inside it.
// `coarse` assumes float32 rounding inside the env whatever the dtype it returns.
Volume chart_volume(const Env& env, bool forward, const States& states, int64_t comp, Domain domain, int64_t dim,
                    const torch::Tensor& u, double h, bool coarse = false);

// The checks (core/checker.h describes each); the env's exceptions propagate.
CheckResult check_inverse(const Env& env, const Sample& s, const CheckOptions& o);
CheckResult check_jacobian(const Env& env, const Sample& s, const CheckOptions& o, torch::Generator& gen);
CheckResult check_normalisation(const Env& env, const Sample& s, Estimators& uniform_policy, Estimators& initial,
                                const CheckOptions& o, torch::Generator& gen);

}  // namespace gfn::checker

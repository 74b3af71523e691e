// Charts: maps from standard domains onto pieces of a state space, with their log-volume
// factors (DESIGN.md §1).
//
// A piece of a kernel is the image of a chart phi: U -> S from a standard domain U (here the
// unit cube [0,1]^k). Its reference measure is the k-dimensional volume on the image, so a
// density q(u) on U becomes q(u) / J(u) on the piece, with J the k-volume factor of phi:
// |det D phi| for a full-dimensional chart, sqrt(det(D phi^T D phi)) for a k-dimensional
// surface in R^d. Every chart here returns the point and log J together (as Stan's constrain
// functions do), is batched over rows ([N, ...] tensors, any device, any float dtype) and has
// an inverse.
//
// Hyperspherical coordinates in R^d with angles phi_0, ..., phi_{d-2}:
//     s_0 = cos phi_0,  s_i = (prod_{j<i} sin phi_j) cos phi_i,  s_{d-1} = prod_{j<d-1} sin phi_j,
// and the surface element of the unit sphere is prod_{i<d-1} sin^{d-2-i}(phi_i) d phi.
#pragma once

#include <utility>

#include <torch/types.h>

namespace gfn {

// A point of a piece and the log-volume factor of the chart at it.
struct ChartPoint {
  torch::Tensor x;             // [N, d]
  torch::Tensor log_jacobian;  // [N]
};

// The box [lo, hi] (rows of lo/hi, [N, k]) as the image of [0,1]^k: x = lo + (hi - lo) u,
// log J = sum_i log(hi_i - lo_i). Used for cartesian increments.
struct AffineChart {
  torch::Tensor lo;  // [N, k]
  torch::Tensor hi;  // [N, k], > lo
  ChartPoint forward(const torch::Tensor& u) const;  // u [N, k]
  torch::Tensor inverse(const torch::Tensor& x) const;  // x [N, k] -> u [N, k]
};

// Unit vectors of R^d from hyperspherical angles: [N, d-1] -> [N, d] (d >= 2), and back
// (angles in [0, pi/2] for vectors in the closed positive orthant).
torch::Tensor unit_vector_from_angles(const torch::Tensor& angles);
torch::Tensor angles_from_unit_vector(const torch::Tensor& v);

// The positive-orthant ball of radius delta around `center` ([N, d]), from [0,1]^d:
// radius delta * u_0 and angles phi_i = (pi/2) u_{i+1}; for d = 1 the segment [c, c + delta].
//     log J = d log delta + (d-1) log u_0 + (d-1) log(pi/2) + sum_i (d-2-i) log sin phi_i.
// For d = 2 this is J = delta^2 r pi/2 (the quarter disk of Lahlou et al.'s first Box step).
struct OrthantBallChart {
  torch::Tensor center;  // [N, d]
  double delta = 0.25;   // radius, > 0
  ChartPoint forward(const torch::Tensor& u) const;     // u [N, d]
  torch::Tensor inverse(const torch::Tensor& x) const;  // x [N, d] -> u [N, d]
};

// The arc of the positive-orthant circle of radius delta around `center` ([N, 2]) that stays
// inside the unit square, from [0,1] (the later steps of Lahlou et al.'s Box in 2-D): with
// g_i = (1 - c_i) / delta, the angle runs over [a, b], a = arccos(min(1, g_0)),
// b = arcsin(min(1, g_1)), and
//     theta = a + u (b - a),   x = c + delta (cos theta, sin theta),   log J = log delta + log(b - a).
// `feasible` reports the rows where a < b (some move fits); elsewhere log J is -inf.
// Only d = 2: in higher dimensions the set of angles that keep every coordinate inside is not a
// product of intervals, and a chart of it needs the projection of that set (the Box issue).
struct OrthantSphereChart {
  torch::Tensor center;  // [N, 2], inside [0, 1]^2
  double delta = 0.25;   // radius, > 0
  ChartPoint forward(const torch::Tensor& u) const;     // u [N, 1]
  torch::Tensor inverse(const torch::Tensor& x) const;  // x [N, 2] on the arc -> u [N, 1]
  torch::Tensor feasible() const;                       // [N] bool
  // The angle range [a, b] of each row: [N] each.
  std::pair<torch::Tensor, torch::Tensor> range() const;
};

}  // namespace gfn

// Charts: maps from standard domains onto pieces of a state space, with their log-volume
// factors (the J in log p_F = log pi + log q - log J; core/env.h).
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
  torch::Tensor offset;        // [N, d]: x - center, as computed before the addition (sphere charts)
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

// Equal-area angles. The sphere's surface element has the factor sin^k(phi_i) in angle i
// (k = d-2-i). A chart linear in the angles carries it into log J, which reaches -inf where a
// tail of the unit vector vanishes, i.e. where float32 states cannot recover the direction of a
// tiny tail: an inverse then returns an angle of exactly 0 and a density 1/J of +inf (on the
// Box in 5-D this put ESS 1 and log Z_IS 424 above log Z in the checker and NaN into training
// after ~450 iterations). So every angle with k >= 1 is parametrised by its share of the area,
//     u_i = S_k(a_i, phi_i) / S_k(a_i, b_i),   S_k(a, phi) = int_a^phi sin^k t dt,
// whose factor d phi_i / d u_i = S_k(a_i, b_i) / sin^k(phi_i) cancels the surface element.
// Angles with k = 0 (the last one) stay linear, so d = 2 is unchanged.

// The positive-orthant ball of radius delta around `center` ([N, d]), from [0,1]^d:
// radius delta * u_0 and equal-area angles over [0, pi/2] from u_1..u_{d-1}; for d = 1 the
// segment [c, c + delta].
//     log J = d log delta + (d-1) log u_0 + log A_d,
// A_d = prod_k S_k(0, pi/2) the area of the positive orthant of the unit sphere in R^d. For d = 2
// this is J = delta^2 r pi/2 (the quarter disk of Lahlou et al.'s first Box step).
struct OrthantBallChart {
  torch::Tensor center;  // [N, d]
  double delta = 0.25;   // radius, > 0
  ChartPoint forward(const torch::Tensor& u) const;     // u [N, d]
  torch::Tensor inverse(const torch::Tensor& x) const;  // x [N, d] -> u [N, d]
};

// The part of the positive-orthant sphere of radius delta around `center` ([N, d], d >= 2) that
// stays inside the unit cube, from [0,1]^(d-1): the later steps of Lahlou et al.'s Box in any
// dimension. The point is x = c + delta v with v a unit vector of the closed positive orthant
// (hyperspherical angles phi_0..phi_{d-2} as above) and x <= 1 componentwise, i.e. v_i <= h_i with
//     h_i = min(1, max(0, (1 - c_i) / delta)).
// That set of angles is not a product of intervals, so the chart is sequential (triangular):
// with rho_0 = 1 the norm of the tail (v_i, ..., v_{d-1}), rho_{i+1} = rho_i sin phi_i and
// H_{i+1} = ||(h_{i+1}, ..., h_{d-1})||_2, angle phi_i runs over [a_i, b_i],
//     a_i = arccos(min(1, h_i / rho_i))      (keeps v_i = rho_i cos phi_i <= h_i),
//     b_i = arcsin(min(1, H_{i+1} / rho_i))  (keeps a feasible tail: rho_{i+1} <= H_{i+1}),
// with phi_i the equal-area angle of u_i in [a_i, b_i] (above; phi_i = a_i + u_i (b_i - a_i) for
// the last, k = 0). Some move fits iff ||h||_2 >= 1; then rho_i <= H_i = sqrt(h_i^2 + H_{i+1}^2)
// at every stage, so sin a_i = sqrt(1 - h_i^2 / rho_i^2) <= H_{i+1} / rho_i = sin b_i and
// a_i <= b_i: the ranges never empty. D phi / D u is triangular with diagonal
// S_k(a_i, b_i) / sin^k(phi_i), so the (d-1)-volume factor is
//     log J = (d-1) log delta + sum_i log S_{d-2-i}(a_i, b_i),
// finite wherever the ranges are not empty. S_k is computed by Gauss-Legendre (10 nodes for
// k <= 6, 20 up to k = 14: double precision for d <= 16), inverted in closed form for k = 1 and
// by 5 + k (at most 12) bracketed Newton steps for k >= 2, with no host sync. For
// d = 2 this is the arc theta in [arccos(min(1, h_0)), arcsin(min(1, h_1))] with
// log J = log delta + log(b - a).
// Rows with no feasible move (`feasible` false) keep finite points; their log J is -inf (an empty
// range has no volume), the only place it is not finite. A zero tail norm (rho_i = 0) is
// guarded. Any float dtype; float64 recommended for states near the feasibility boundary, where
// a_i and b_i nearly meet.
// `room`, when given, is 1 - center exactly: a caller that mirrors a point x (center = 1 - x, the
// chart of a backward step) passes x itself, since 1 - (1 - x) keeps only x's digits above 1e-16
// and a point 1e-14 from a lower face would get its range, and its parent, wrong by a percent or
// more (the parent landing on the face, where the first step's coordinates are then read as 0).
// With the room given, the parent x - offset keeps x's relative precision.
struct OrthantSphereChart {
  torch::Tensor center;  // [N, d], inside [0, 1]^d
  double delta = 0.25;   // radius, > 0
  torch::Tensor room;    // optional [N, d]: 1 - center, exactly (see above); undefined: computed
  ChartPoint forward(const torch::Tensor& u) const;     // u [N, d-1]
  torch::Tensor inverse(const torch::Tensor& x) const;  // x [N, d] on the piece -> u [N, d-1]
  // The hyperspherical angles of the direction v at coordinates u ([N, d-1] -> [N, d-1]), and
  // back: the coordinates of the direction with angles `phi` and the log J of the chart there
  // ({u [N, d-1], log J [N]}). Together they take a step's coordinates to another chart's
  // without the point: a backward step's mirrored chart around 1 - x' holds the forward step's
  // direction, so its coordinates follow from the forward ones exactly, where the points (which
  // round away a coordinate within ~1e-16 of a face) could not give them.
  torch::Tensor angles(const torch::Tensor& u) const;
  std::pair<torch::Tensor, torch::Tensor> coords(const torch::Tensor& phi) const;
  // [N] bool: the moves that fit have positive (d-1)-volume: ||h||_2 > 1 (on ||h||_2 = 1 a single
  // point fits) and every h_i > 0 (a centre on a face c_i = 1, which float32 rounding reaches,
  // leaves only directions with v_i = 0: an empty range and log J = -inf, seen in 3-D).
  torch::Tensor feasible() const;
  // The range [a, b] of the first angle phi_0 (which depends on the center only): [N] each. For
  // d = 2 the whole chart.
  std::pair<torch::Tensor, torch::Tensor> range() const;
  // The ranges [a_i, b_i] of every angle at coordinates u ([N, d-1]): [N, d-1] each.
  std::pair<torch::Tensor, torch::Tensor> ranges(const torch::Tensor& u) const;
  // h = clamp((1 - center) / delta, 0, 1), from `room` where given: [N, d].
  torch::Tensor reach() const;
};

}  // namespace gfn

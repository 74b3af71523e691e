#include "envs/box.h"

#include <cmath>

#include <fmt/format.h>
#include <torch/torch.h>

#include "measures/charts.h"
#include "measures/densities.h"

namespace gfn {

namespace {

// to_s0 iff ||x|| <= delta (1 + kTieMargin): see the header on points at the ball's rim
constexpr double kTieMargin = 1e-14;

// recovered chart coordinates, into float64's open unit interval (where the Betas are finite)
torch::Tensor open_unit(const torch::Tensor& u) { return clamp_open_unit(u.to(torch::kFloat64)); }

torch::Tensor f64(const torch::Tensor& t) { return t.to(torch::kFloat64); }

// The sphere chart of a backward step from x (float64 [N, d]) on the rows of `take`: the forward
// chart around 1 - x, mirrored, with its room 1 - (1 - x) given as x exactly (measures/charts.h);
// other rows get the origin (room 1), where every chart is finite.
OrthantSphereChart mirrored_chart(const torch::Tensor& x, const torch::Tensor& take, double delta) {
  auto rows = take.unsqueeze(1);
  return {torch::where(rows, 1.0 - x, 0.0), delta, torch::where(rows, x, 1.0)};
}

torch::Tensor col(const torch::Tensor& rows) { return rows.unsqueeze(1); }

// sphere coordinates [N, d-1] padded with a zero column to the action width d
torch::Tensor pad_one(const torch::Tensor& u) { return torch::constant_pad_nd(u, {0, 1}); }

}  // namespace

template <>
const EnumNames<BoxForm>& enum_names<BoxForm>() {
  static const EnumNames<BoxForm> names{{BoxForm::kPolar, "polar"}, {BoxForm::kCartesian, "cartesian"}};
  return names;
}

const OptionTable<BoxOptions>& BoxOptions::keys() {
  using O = BoxOptions;
  static const auto table =
      OptionTable<O>("BoxOptions")
          .add("dim", &O::dim, "number d of coordinates", in(1, 16))
          .add("delta", &O::delta, "step radius delta of the polar form (first step: a ball of that radius)",
               above(0).below(1))
          .add("form", &O::form,
               "\"polar\": a ball then sphere steps of radius delta (Lahlou et al.); \"cartesian\": the whole box "
               "then per-coordinate increments of at least min_step")
          .add("min_step", &O::min_step, "minimum increment m of the cartesian form", above(0).at_most(0.5))
          .add("r0", &O::r0, "base reward R0", above(0))
          .add("r1", &O::r1, "reward R1 of the outer region", at_least(0))
          .add("r2", &O::r2, "reward R2 of the ring inside the outer region", at_least(0));
  return table;
}

// ---------------------------------------------------------------------------------------------
// BoxGeometry

BoxGeometry::BoxGeometry(const BoxOptions& options) : options_(options) { options_.validate(); }

std::vector<Component> BoxGeometry::forward_components() const {
  const int64_t d = options_.dim;
  const Component exit{"exit", ComponentKind::kAtom, 0, Domain::kNone, false};
  if (!polar()) {
    return {{"first", ComponentKind::kPiece, d, Domain::kUnitCube, /*initial_only=*/true},
            {"increment", ComponentKind::kPiece, d, Domain::kUnitCube, false},
            exit};
  }
  Component move = d >= 2 ? Component{"sphere", ComponentKind::kPiece, d - 1, Domain::kUnitCube, false}
                          : Component{"step", ComponentKind::kAtom, 0, Domain::kNone, false};
  return {{"ball", ComponentKind::kPiece, d, Domain::kUnitCube, /*initial_only=*/true}, move, exit};
}

std::vector<Component> BoxGeometry::backward_components(const std::string& to_origin_name) const {
  const int64_t d = options_.dim;
  const Component to_origin{to_origin_name, ComponentKind::kAtom, 0, Domain::kNone, false};
  if (!polar()) return {{"decrement", ComponentKind::kPiece, d, Domain::kUnitCube, false}, to_origin};
  if (d == 1) return {{"sphere_back", ComponentKind::kAtom, 0, Domain::kNone, false}, to_origin};
  return {{"sphere_back", ComponentKind::kPiece, d - 1, Domain::kUnitCube, false}, to_origin};
}

int64_t BoxGeometry::max_moves() const {
  const double d = static_cast<double>(options_.dim);
  if (!polar()) return 1 + static_cast<int64_t>(std::ceil(1.0 / options_.min_step));
  // every move after the first adds >= delta - eps to sum x (eps: float32 rounding of the points)
  // and needs sum x < d - delta before it
  const double eps = d * std::ldexp(1.0, -20);
  return 1 + static_cast<int64_t>(std::floor((d - eps) / (options_.delta - eps)));
}

torch::Tensor BoxGeometry::forward_mask(const torch::Tensor& x, const torch::Tensor& at_origin) const {
  auto x64 = f64(x);
  torch::Tensor fits;
  if (!polar()) {
    fits = x64.lt(1.0 - options_.min_step).all(1);
  } else if (options_.dim == 1) {
    fits = (x64.select(1, 0) + options_.delta).le(1.0);
  } else {
    fits = OrthantSphereChart{x64, options_.delta}.feasible();
  }
  auto away = at_origin.logical_not();
  return torch::stack({at_origin, away.logical_and(fits), away}, 1);
}

torch::Tensor BoxGeometry::backward_mask(const torch::Tensor& x) const {
  auto x64 = f64(x);
  if (!polar()) {
    auto back = x64.gt(options_.min_step).all(1);
    return torch::stack({back, torch::ones_like(back)}, 1);
  }
  const double tau = options_.delta * (1.0 + kTieMargin);
  auto back = x64.square().sum(1).gt(tau * tau);
  return torch::stack({back, back.logical_not()}, 1);
}

std::pair<torch::Tensor, torch::Tensor> BoxGeometry::polar_move(const torch::Tensor& x, const torch::Tensor& take,
                                                                const torch::Tensor& coords) const {
  const int64_t d = options_.dim;
  if (d == 1) return {x + options_.delta, torch::zeros({x.size(0)}, x.options())};
  // rows that do not move get the origin, where the whole orthant fits: finite everywhere
  OrthantSphereChart chart{torch::where(col(take), x, 0.0), options_.delta};
  auto p = chart.forward(torch::where(col(take), coords.narrow(1, 0, d - 1), 0.5));
  return {p.x, p.log_jacobian};
}

std::pair<torch::Tensor, torch::Tensor> BoxGeometry::arc_back(const torch::Tensor& x, const torch::Tensor& take,
                                                              const torch::Tensor& coords) const {
  const double delta = options_.delta;
  // the mirrored chart's arc (measures/charts.h, d = 2): h = x / delta, theta over
  // [a, b] = [arccos min(1, h_0), arcsin min(1, h_1)], theta = a + u (b - a); rows that do not
  // move get room 1 (the full quarter circle), finite everywhere
  auto room = torch::where(col(take), x, 1.0);
  auto h = (room / delta).clamp(0.0, 1.0);
  auto h0 = h.select(1, 0), h1 = h.select(1, 1);
  auto a = torch::atan2(((1.0 - h0) * (1.0 + h0)).sqrt(), h0);
  auto b = torch::maximum(a, torch::atan2(h1, ((1.0 - h1) * (1.0 + h1)).sqrt()));
  auto width = b - a;
  auto u = torch::where(take, coords.select(1, 0), 0.5);
  auto theta = a + u * width;
  // parent = x - delta (cos theta, sin theta), each coordinate measured from the face that bounds
  // its end of the arc where one does (x_0 = delta cos a, x_1 = delta sin b):
  //   x_0 - delta cos theta = 2 delta sin((a + theta) / 2) sin(u (b - a) / 2),
  //   x_1 - delta sin theta = 2 delta cos((b + theta) / 2) sin((1 - u) (b - a) / 2),
  // exact to rounding where the difference would cancel to 0 (a draw u = 1 - 2^-53 puts the
  // parent ~1e-18 from the face: read as 0 there, the first step's coordinate became 0 and P_F
  // scored it at e^264)
  auto px = torch::where(h0 < 1.0, 2 * delta * ((a + theta) / 2).sin() * (u * width / 2).sin(),
                         room.select(1, 0) - delta * theta.cos());
  auto py = torch::where(h1 < 1.0, 2 * delta * ((b + theta) / 2).cos() * ((1.0 - u) * width / 2).sin(),
                         room.select(1, 1) - delta * theta.sin());
  auto parent = torch::where(col(take), torch::stack({px, py}, 1), x);
  return {parent, std::log(delta) + width.log()};
}

std::pair<torch::Tensor, torch::Tensor> BoxGeometry::polar_back(const torch::Tensor& x, const torch::Tensor& take,
                                                                const torch::Tensor& coords) const {
  const int64_t d = options_.dim;
  if (d == 1) return {x - options_.delta, torch::zeros({x.size(0)}, x.options())};
  if (d == 2) return arc_back(x, take, coords);
  // the forward chart around 1 - x, mirrored: parent = 1 - (1 - x + delta w) = x - delta w,
  // computed as such, with the chart's room 1 - (1 - x) given as x (measures/charts.h): a parent
  // within 1e-14 of a lower face keeps its digits
  auto p = mirrored_chart(x, take, options_.delta).forward(torch::where(col(take), coords.narrow(1, 0, d - 1), 0.5));
  return {x - p.offset, p.log_jacobian};
}

std::pair<torch::Tensor, torch::Tensor> BoxGeometry::step(const torch::Tensor& x, const torch::Tensor& component,
                                                          const torch::Tensor& coords) const {
  auto x64 = f64(x), u = f64(coords);
  auto first = component.eq(kFirst), move = component.eq(kMove);
  auto zero = torch::zeros({x.size(0)}, x64.options());
  if (polar()) {
    // each chart on its own rows: compact on the CPU (a rollout step is all first steps or none,
    // so half the work was for nothing), every row in fixed shapes (no host read)
    const auto execution = resolve_execution(Execution::kAuto, x.device());
    RowSelection firsts(first, execution), moves(move, execution);
    auto next = x64, log_j = zero;
    if (!firsts.empty()) {
      auto u1 = firsts.take_or(u, 0.5);
      auto p = OrthantBallChart{torch::zeros_like(u1), options_.delta}.forward(u1);
      next = firsts.put(p.x, next);
      log_j = firsts.put(p.log_jacobian, log_j);
    }
    if (!moves.empty()) {
      auto [p2, lj2] = polar_move(moves.take(x64), moves.take(move), moves.take(u));
      next = moves.put(p2, next);
      log_j = moves.put(lj2, log_j);
    }
    return {next.clamp(0.0, 1.0).to(x.scalar_type()), log_j.to(x.scalar_type())};
  }
  // cartesian: the first step's point is its coordinates (log J = 0); a later one is
  // x' = x + m + u (1 - x - m), a box of widths 1 - x - m (1 where the row does not move)
  const double m = options_.min_step;
  auto width = torch::where(col(move), 1.0 - x64 - m, 1.0);
  auto p2 = x64 + m + torch::where(col(move), u, 0.5) * width;
  auto lj2 = width.log().sum(1);
  auto next = torch::where(col(first), u, torch::where(col(move), p2, x64)).clamp(0.0, 1.0);
  auto log_j = torch::where(move, lj2, zero);
  return {next.to(x.scalar_type()), log_j.to(x.scalar_type())};
}

std::pair<torch::Tensor, torch::Tensor> BoxGeometry::backward_step(const torch::Tensor& x,
                                                                   const torch::Tensor& component,
                                                                   const torch::Tensor& coords) const {
  auto x64 = f64(x), u = f64(coords);
  auto back = component.eq(kBack), to_origin = component.eq(kToOrigin);
  auto zero = torch::zeros({x.size(0)}, x64.options());
  torch::Tensor parent, lj;
  if (polar()) {
    std::tie(parent, lj) = polar_back(x64, back, u);
  } else {
    // parent = x - m - u (x - m), a box of widths x - m
    auto width = torch::where(col(back), x64 - options_.min_step, 1.0);
    parent = width * (1.0 - torch::where(col(back), u, 0.5));
    lj = width.log().sum(1);
  }
  auto prev = torch::where(col(to_origin), 0.0, torch::where(col(back), parent, x64)).clamp(0.0, 1.0);
  auto log_j = torch::where(back, lj, zero);
  return {prev.to(x.scalar_type()), log_j.to(x.scalar_type())};
}

Actions BoxGeometry::backward_action(const torch::Tensor& parent, const torch::Tensor& parent_at_origin,
                                     const torch::Tensor& child, const Actions& forward,
                                     torch::Tensor* log_jacobian) const {
  const int64_t d = options_.dim;
  auto p64 = f64(parent), c64 = f64(child), uf = f64(forward.coords);
  auto back = parent_at_origin.logical_not().logical_and(backward_mask(child).select(1, kBack));
  auto zero = torch::zeros({child.size(0)}, c64.options());
  torch::Tensor u, lj;
  if (!polar()) {
    // x' - m - x = u (1 - x - m) = u_b (x' - m): the backward coordinates from the forward ones
    const double m = options_.min_step;
    auto width = torch::where(col(back), c64 - m, 1.0);
    u = torch::where(col(back), uf, 0.0) * (1.0 - p64 - m) / width;
    lj = width.log().sum(1);
  } else if (d == 1) {
    u = torch::zeros_like(c64);
    lj = zero;
  } else {
    // the mirrored chart around 1 - child holds the forward step's direction: its angles
    OrthantSphereChart fchart{torch::where(col(back), p64, 0.0), options_.delta};
    auto phi = fchart.angles(torch::where(col(back), uf.narrow(1, 0, d - 1), 0.5));
    auto [ub, lj_b] = mirrored_chart(c64, back, options_.delta).coords(phi);
    u = pad_one(ub);
    lj = lj_b;
  }
  auto coords = torch::where(col(back), open_unit(u), 0.0);
  if (log_jacobian != nullptr) *log_jacobian = torch::where(back, lj, zero).to(torch::kFloat32);
  // kBack = 0, kToOrigin = 1
  return {back.logical_not().to(torch::kInt64), coords};
}

Actions BoxGeometry::forward_action(const torch::Tensor& child, const torch::Tensor& parent,
                                    const torch::Tensor& parent_at_origin, const Actions& backward,
                                    torch::Tensor* log_jacobian) const {
  const int64_t d = options_.dim;
  auto p64 = f64(parent), c64 = f64(child), ub = f64(backward.coords);
  auto first = parent_at_origin;
  auto zero = torch::zeros({child.size(0)}, c64.options());
  torch::Tensor u1, lj1, u2, lj2;
  if (!polar()) {
    // the first step's coordinates are its point; a later step's follow from the backward ones
    const double m = options_.min_step;
    u1 = open_unit(c64);
    lj1 = zero;
    auto width = torch::where(col(first), 1.0, 1.0 - p64 - m);
    u2 = open_unit(torch::where(col(first), 0.5, ub) * (c64 - m) / width);
    lj2 = width.log().sum(1);
  } else {
    OrthantBallChart ball{torch::zeros_like(c64), options_.delta};
    u1 = open_unit(ball.inverse(c64));
    lj1 = ball.forward(f64(u1)).log_jacobian;
    if (d == 1) {
      u2 = torch::zeros_like(u1);
      lj2 = zero;
    } else {
      // the direction of the backward step, in the forward chart at the parent (the origin where
      // the parent is not a sphere's center, so that every row stays finite)
      auto use = first.logical_not().logical_and(OrthantSphereChart{p64, options_.delta}.feasible());
      auto phi = mirrored_chart(c64, use, options_.delta).angles(torch::where(col(use), ub.narrow(1, 0, d - 1), 0.5));
      OrthantSphereChart fchart{torch::where(col(use), p64, 0.0), options_.delta};
      auto [us, lj_f] = fchart.coords(phi);
      lj2 = torch::where(use, lj_f, zero);
      u2 = pad_one(open_unit(us));
    }
  }
  if (log_jacobian != nullptr) *log_jacobian = torch::where(first, lj1, lj2).to(torch::kFloat32);
  // kFirst = 0, kMove = 1
  return {first.logical_not().to(torch::kInt64), torch::where(col(first), u1, u2)};
}

torch::Tensor BoxGeometry::log_reward(const torch::Tensor& x) const {
  auto a = (f64(x) - 0.5).abs();
  auto outer = a.gt(0.25).all(1).to(torch::kFloat64);
  auto ring = (a.gt(0.3) & a.lt(0.4)).all(1).to(torch::kFloat64);
  return (options_.r0 + options_.r1 * outer + options_.r2 * ring).log().to(torch::kFloat32);
}

double BoxGeometry::log_partition() const {
  const double d = static_cast<double>(options_.dim);
  return std::log(options_.r0 + options_.r1 * std::pow(0.5, d) + options_.r2 * std::pow(0.2, d));
}

torch::Tensor BoxGeometry::features(const torch::Tensor& x) const { return 2.0 * x.to(torch::kFloat32) - 1.0; }

torch::Tensor BoxGeometry::grid(int64_t points, const torch::Device& device) const {
  const int64_t d = options_.dim;
  auto centres = (torch::arange(points, torch::TensorOptions().dtype(torch::kFloat64).device(device)) + 0.5) /
                 static_cast<double>(points);
  std::vector<torch::Tensor> axes(d, centres);
  std::vector<torch::Tensor> cols;
  for (const auto& t : torch::meshgrid(axes, "ij")) cols.push_back(t.reshape({-1}));
  return torch::stack(cols, 1);
}

// ---------------------------------------------------------------------------------------------
// BoxEnv

BoxEnv::BoxEnv(const BoxOptions& options) : geometry_(options) {
  spec_.forward.components = geometry_.forward_components();
  spec_.forward.exit = kExit;
  spec_.backward.components = geometry_.backward_components("to_s0");
  spec_.coord_dim = geometry_.dim();
}

States BoxEnv::initial_states(int64_t batch, const torch::Device& device) const {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64).device(device);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  return {torch::zeros({batch, 0}, i64), torch::zeros({batch, geometry_.dim()}, f64), torch::ones({batch}, b),
          torch::zeros({batch}, b)};
}

torch::Tensor BoxEnv::features(const States& states) const {
  return torch::cat({geometry_.features(states.continuous), col(states.is_initial).to(torch::kFloat32)}, 1);
}

torch::Tensor BoxEnv::forward_mask(const States& states) const {
  return geometry_.forward_mask(states.continuous, states.is_initial);
}

torch::Tensor BoxEnv::backward_mask(const States& states) const {
  return geometry_.backward_mask(states.continuous).logical_and(col(states.is_initial).logical_not());
}

StepResult BoxEnv::step(const States& states, const Actions& actions) const {
  auto [next, log_j] = geometry_.step(states.continuous, actions.component, actions.coords);
  auto moved = actions.component.eq(kFirst).logical_or(actions.component.eq(kMove));
  return {States{states.discrete, next, states.is_initial.logical_and(moved.logical_not()), states.is_sink}, log_j};
}

StepResult BoxEnv::backward_step(const States& states, const Actions& actions) const {
  auto [prev, log_j] = geometry_.backward_step(states.continuous, actions.component, actions.coords);
  const auto& c = actions.component;
  auto initial = c.eq(kToS0).logical_or(states.is_initial.logical_and(c.ne(kBack)));
  return {States{states.discrete, prev, initial, torch::zeros_like(states.is_sink)}, log_j};
}

Actions BoxEnv::backward_action(const States& parent, const States& child, const Actions& forward,
                                torch::Tensor* log_jacobian) const {
  return geometry_.backward_action(parent.continuous, parent.is_initial, child.continuous, forward, log_jacobian);
}

Actions BoxEnv::forward_action(const States& child, const States& parent, const Actions& backward,
                               torch::Tensor* log_jacobian) const {
  return geometry_.forward_action(child.continuous, parent.continuous, parent.is_initial, backward, log_jacobian);
}

std::optional<TerminalGrid> BoxEnv::terminal_grid(int64_t points, const torch::Device& device) const {
  const int64_t d = geometry_.dim();
  if (d > 2 || points < 1) return std::nullopt;
  auto x = geometry_.grid(points, device);
  const int64_t n = x.size(0);
  auto b = torch::TensorOptions().dtype(torch::kBool).device(device);
  States s{torch::zeros({n, 0}, b.dtype(torch::kInt64)), x, torch::zeros({n}, b), torch::zeros({n}, b)};
  const double log_volume = -static_cast<double>(d) * std::log(static_cast<double>(points));
  return TerminalGrid{s, torch::full({n}, log_volume, b.dtype(torch::kFloat64))};
}

torch::Tensor BoxEnv::log_reward(const States& states) const { return geometry_.log_reward(states.continuous); }

torch::Tensor BoxEnv::log_reward_gradient(const States& states) const {
  return torch::zeros_like(states.continuous, torch::kFloat64);
}

torch::Tensor BoxEnv::in_support(const States& states) const {
  const auto& x = states.continuous;
  return x.ge(0.0).logical_and(x.le(1.0)).all(1);
}

}  // namespace gfn

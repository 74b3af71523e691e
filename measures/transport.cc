#include "measures/transport.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include <torch/torch.h>

namespace gfn {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The state of the shortest-augmenting-path solver. Invariant (dual feasibility): for every row
// i and column j, cost[i][j] - u[i] - v[j] >= 0, with equality on the assigned pairs; each
// augmentation assigns one more row and keeps it, so once every row is assigned the assignment
// is optimal (complementary slackness).
struct Assignment {
  explicit Assignment(int64_t n)
      : n(n), u(n, 0.0), v(n, 0.0), col_of_row(n, -1), row_of_col(n, -1), shortest(n), path(n), row_seen(n),
        col_seen(n), col_at(n), v_at(n), shortest_at(n), path_at(n) {}

  int64_t n;
  std::vector<double> u, v;         // [n] row and column potentials
  std::vector<int64_t> col_of_row;  // [n] the column of each row, -1 while free
  std::vector<int64_t> row_of_col;  // [n] the row of each column, -1 while free
  // per augmentation (Dijkstra over columns from one free row), by column
  std::vector<double> shortest;     // [n] reduced length of the shortest alternating path to each settled column
  std::vector<int64_t> path;        // [n] the row before each settled column on that path
  std::vector<char> row_seen;       // [n] rows reached in this augmentation
  std::vector<char> col_seen;       // [n] columns settled in this augmentation
  // the same by position during the search: unsettled columns first, so that the scan reads
  // contiguous memory (only the cost row is gathered)
  std::vector<int64_t> col_at;      // [n] the column at each position
  std::vector<double> v_at;         // [n] its potential
  std::vector<double> shortest_at;  // [n] its tentative distance
  std::vector<int64_t> path_at;     // [n] its tentative predecessor row
};

// Relaxes the first `left` positions from row i (its reduced costs offset by `base`) and returns
// the position of the nearest one (-1 if none is finite).
int64_t relax_row(const double* row, int64_t i, double base, int64_t left, Assignment& s) {
  const int64_t* col = s.col_at.data();
  const double* v = s.v_at.data();
  double* dist = s.shortest_at.data();
  int64_t* from = s.path_at.data();
  // the row is gathered in position order below: fetch it sequentially first
  for (int64_t j = 0; j < s.n; j += 8) __builtin_prefetch(row + j);
  double lowest = kInf;
  for (int64_t k = 0; k < left; ++k) {
    const double r = base + row[col[k]] - v[k];
    // a select, not a branch: this comparison is unpredictable
    const int64_t better = -static_cast<int64_t>(r < dist[k]);
    dist[k] = std::min(r, dist[k]);
    from[k] ^= (from[k] ^ i) & better;
    lowest = std::min(lowest, dist[k]);
  }
  // the first position at that distance, or among ties one whose column is free (it ends the
  // search; costs with many ties, such as duplicated points, would otherwise settle them all)
  int64_t pick = -1;
  for (int64_t k = 0; lowest < kInf && k < left; ++k) {
    if (dist[k] != lowest) continue;
    if (pick < 0) pick = k;
    if (s.row_of_col[col[k]] < 0) return k;
  }
  return pick;
}

// Grows the shortest alternating paths from the free row `start` (Dijkstra on the reduced costs,
// dense: each settled row scans the unsettled columns) until a free column is settled; returns it
// and the path length through `min_val`, with shortest / path / the seen flags filled in.
int64_t shortest_path(const double* cost, int64_t start, Assignment& s, double* min_val) {
  const int64_t n = s.n;
  for (int64_t j = 0; j < n; ++j) {
    s.col_at[j] = j;
    s.v_at[j] = s.v[j];
    s.shortest_at[j] = kInf;
    s.row_seen[j] = 0;
    s.col_seen[j] = 0;
  }
  int64_t left = n, i = start, sink = -1;
  double dist = 0;
  while (sink < 0) {
    s.row_seen[i] = 1;
    const int64_t pick = relax_row(cost + i * n, i, dist - s.u[i], left, s);
    if (pick < 0) throw std::logic_error("solve_assignment: no augmenting path (non-finite costs?)");
    // settle it (move it behind the unsettled ones): a free column ends the search, an assigned
    // one continues from its row
    --left;
    std::swap(s.col_at[pick], s.col_at[left]);
    std::swap(s.v_at[pick], s.v_at[left]);
    std::swap(s.shortest_at[pick], s.shortest_at[left]);
    std::swap(s.path_at[pick], s.path_at[left]);
    const int64_t j = s.col_at[left];
    dist = s.shortest_at[left];
    if (s.row_of_col[j] < 0) {
      sink = j;
    } else {
      i = s.row_of_col[j];
    }
  }
  // back to columns, for the settled ones
  for (int64_t k = left; k < n; ++k) {
    const int64_t j = s.col_at[k];
    s.col_seen[j] = 1;
    s.shortest[j] = s.shortest_at[k];
    s.path[j] = s.path_at[k];
  }
  *min_val = dist;
  return sink;
}

// Updates the potentials after a search of length min_val from `start` (keeping the reduced
// costs non-negative and zero on the new path), then flips the path ending at `sink`.
void augment(int64_t start, int64_t sink, double min_val, Assignment& s) {
  s.u[start] += min_val;
  for (int64_t i = 0; i < s.n; ++i) {
    if (s.row_seen[i] && i != start) s.u[i] += min_val - s.shortest[s.col_of_row[i]];
  }
  for (int64_t j = 0; j < s.n; ++j) {
    if (s.col_seen[j]) s.v[j] -= min_val - s.shortest[j];
  }
  for (int64_t j = sink;;) {
    const int64_t i = s.path[j];
    s.row_of_col[j] = i;
    const int64_t previous = s.col_of_row[i];
    s.col_of_row[i] = j;
    if (i == start) break;
    j = previous;
  }
}

// An epsilon-scaling auction (Bertsekas 1988) as a warm start for the duals. Each free row i bids
// for the column j1 minimising cost[i][j] + price[j], raising its price by (second smallest -
// smallest) + eps and evicting its holder; a phase ends when every row holds a column, and the
// next starts afresh with the same prices and eps / kAuctionShrink, from a quarter of the cost
// range down to kAuctionFinal times the median cost (robust to outliers, which would make the
// range a poor scale). The result is only a start: v = -price, u[i] = min_j (cost[i][j] - v[j]) are
// feasible duals, the pairs of the last phase that are tight under them are kept, and the
// augmentations assign the other rows exactly. Prices near the optimum make their searches short.
// A budget of bids (kAuctionBids per row) bounds the work where prices would climb slowly.
constexpr double kAuctionShrink = 7.0;
constexpr double kAuctionFinal = 1e-4;
constexpr int64_t kAuctionBids = 100;

// One auction phase at `eps` (see warm_start): fills owner (the row of each column, -1 while
// free) and updates the prices; returns false when it ran out of `bids`.
bool auction_phase(const double* cost, int64_t n, double eps, std::vector<double>& price,
                   std::vector<int64_t>& owner, int64_t* bids) {
  std::fill(owner.begin(), owner.end(), -1);
  std::vector<int64_t> bidders(n);  // a stack of free rows
  for (int64_t i = 0; i < n; ++i) bidders[i] = n - 1 - i;
  while (!bidders.empty()) {
    if (--*bids < 0) return false;
    const int64_t i = bidders.back();
    bidders.pop_back();
    // the smallest and second smallest of cost[i][j] + price[j]
    const double* row = cost + i * n;
    double first = kInf, second = kInf;
    int64_t best = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double w = row[j] + price[j];
      if (w < second) {
        if (w < first) {
          second = first;
          first = w;
          best = j;
        } else {
          second = w;
        }
      }
    }
    price[best] += (second - first) + eps;
    if (owner[best] >= 0) bidders.push_back(owner[best]);
    owner[best] = i;
  }
  return true;
}

// The median of up to 65536 costs taken at an even stride (the range where that median is 0).
double typical_cost(const double* cost, int64_t n, double range) {
  const int64_t count = n * n, stride = std::max<int64_t>(1, count / 65536);
  std::vector<double> sample;
  for (int64_t k = 0; k < count; k += stride) sample.push_back(cost[k]);
  auto middle = sample.begin() + static_cast<std::ptrdiff_t>(sample.size() / 2);
  std::nth_element(sample.begin(), middle, sample.end());
  return *middle > 0 ? *middle : range;
}

// Sets feasible duals and a partial assignment from an auction (see kAuctionShrink); returns the
// rows left free. Needs n >= 2.
std::vector<int64_t> warm_start(const double* cost, Assignment& s) {
  const int64_t n = s.n;
  const auto [lo, hi] = std::minmax_element(cost, cost + n * n);
  const double range = *hi - *lo;
  const double final_eps = kAuctionFinal * typical_cost(cost, n, range);
  std::vector<double> price(n, 0.0);
  std::vector<int64_t> owner(n, -1);
  // the phases, eps shrinking to its final value
  int64_t bids = kAuctionBids * n;
  bool done = range <= 0;  // all costs equal: every assignment is optimal
  for (double eps = range / 4; !done; eps = std::max(eps / kAuctionShrink, final_eps)) {
    done = !auction_phase(cost, n, eps, price, owner, &bids) || eps <= final_eps;
  }
  if (range <= 0) {
    for (int64_t j = 0; j < n; ++j) owner[j] = j;
  }
  // the duals, and the pairs tight under them
  for (int64_t j = 0; j < n; ++j) s.v[j] = -price[j];
  for (int64_t i = 0; i < n; ++i) {
    double lowest = kInf;
    for (int64_t j = 0; j < n; ++j) lowest = std::min(lowest, cost[i * n + j] - s.v[j]);
    s.u[i] = lowest;
  }
  for (int64_t j = 0; j < n; ++j) {
    const int64_t i = owner[j];
    if (i >= 0 && cost[i * n + j] - s.v[j] <= s.u[i]) {
      s.col_of_row[i] = j;
      s.row_of_col[j] = i;
    }
  }
  std::vector<int64_t> free_rows;
  for (int64_t i = 0; i < n; ++i) {
    if (s.col_of_row[i] < 0) free_rows.push_back(i);
  }
  return free_rows;
}

// The host float64 copy of a point cloud, after checking it.
torch::Tensor host_points(const torch::Tensor& x, const char* which) {
  if (!x.defined() || x.dim() != 2 || !x.is_floating_point()) {
    throw std::invalid_argument(std::string("squared_wasserstein2: ") + which +
                                " must be a 2-D floating-point tensor [n, d]");
  }
  return x.detach().to(torch::kCPU, torch::kFloat64).contiguous();
}

}  // namespace

std::vector<int64_t> solve_assignment(const std::vector<double>& cost, int64_t n, double* total) {
  if (n < 0 || static_cast<int64_t>(cost.size()) != n * n) {
    throw std::invalid_argument("solve_assignment: cost has " + std::to_string(cost.size()) +
                                " entries, expected n * n with n = " + std::to_string(n));
  }
  for (double c : cost) {
    if (!std::isfinite(c)) throw std::invalid_argument("solve_assignment: costs must be finite");
  }
  // a warm start, then one augmentation per row left free, each adding that row
  Assignment s(n);
  std::vector<int64_t> free_rows(n == 1 ? 1 : 0, 0);
  if (n >= 2) free_rows = warm_start(cost.data(), s);
  for (int64_t start : free_rows) {
    double min_val = 0;
    const int64_t sink = shortest_path(cost.data(), start, s, &min_val);
    augment(start, sink, min_val, s);
  }
  if (total != nullptr) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += cost[i * n + s.col_of_row[i]];
    *total = sum;
  }
  return s.col_of_row;
}

double squared_wasserstein2(const torch::Tensor& a, const torch::Tensor& b) {
  auto ha = host_points(a, "a"), hb = host_points(b, "b");
  const int64_t n = ha.size(0), d = ha.size(1);
  if (hb.size(0) != n || hb.size(1) != d) {
    throw std::invalid_argument("squared_wasserstein2: clouds of " + std::to_string(n) + " x " + std::to_string(d) +
                                " and " + std::to_string(hb.size(0)) + " x " + std::to_string(hb.size(1)) +
                                " points; equal sizes and dims expected");
  }
  if (n == 0) throw std::invalid_argument("squared_wasserstein2: empty point clouds");
  if (!torch::isfinite(ha).all().item<bool>() || !torch::isfinite(hb).all().item<bool>()) {
    throw std::invalid_argument("squared_wasserstein2: coordinates must be finite");
  }
  // the squared distances by a plain loop: exact differences, no cancellation
  const double* pa = ha.data_ptr<double>();
  const double* pb = hb.data_ptr<double>();
  std::vector<double> cost(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sq = 0;
      for (int64_t k = 0; k < d; ++k) {
        const double diff = pa[i * d + k] - pb[j * d + k];
        sq += diff * diff;
      }
      cost[i * n + j] = sq;
    }
  }
  double total = 0;
  solve_assignment(cost, n, &total);
  return total / static_cast<double>(n);
}

}  // namespace gfn

#include "apps/evaluator.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "core/sampler.h"
#include "io/checkpoint.h"
#include "measures/transport.h"

namespace gfn {

const OptionTable<EvalOptions>& EvalOptions::keys() {
  using O = EvalOptions;
  static const auto table =
      OptionTable<O>()
          .add("eval.every", &O::every, "exact evaluation and log flush every N iterations (0: at the end only)",
               at_least(0))
          .add("eval.l1_window", &O::l1_window, "terminal states in the empirical distribution of the papers' L1",
               at_least(1))
          .add("eval.is_samples", &O::is_samples,
               "trajectories for the importance-sampled log Z and ELBO at each evaluation of a non-enumerable env "
               "(0: none; at most 2^20, minutes per evaluation)",
               in(0, 1 << 20))
          .add("eval.grid", &O::grid,
               "cells per continuous dimension of the terminal grid on which the terminating density is compared "
               "with R/Z (envs with a grid, d <= 2; 0: off); eval.grid^d * eval.density_samples is at most 2^22",
               in(0, 4096))
          .add("eval.density_samples", &O::density_samples,
               "backward trajectories per grid cell in the importance-sampled terminating density", in(1, 1 << 16))
          .add("eval.top_k", &O::top_k,
               "the K highest-reward distinct terminal states found in training, for top_k_mean_reward (envs "
               "without continuous coordinates; 0: off)",
               in(0, 1 << 20))
          .add("eval.env_samples", &O::env_samples,
               "on-policy terminal samples for the env's own metrics at each evaluation (sets: inclusion_error)",
               in(1, 1 << 20))
          .add("eval.samples", &O::samples, "terminal samples of the final policy written to /samples",
               in(0, 1 << 24))
          .add("eval.exact_samples", &O::exact_samples,
               "K: exact target samples for the EUBO, and K of them against K model samples for the squared "
               "2-Wasserstein distance (exact assignment, O(K^3)), at each evaluation (envs with exact samples: "
               "diffusion; 0: off)",
               in(0, 20000));
  return table;
}

// A 2-D environment's terminal cells on a grid: the logged reward heatmap and where each of the
// policy's cells (table states or terminal-grid cells) falls on it.
struct Evaluator::Grid2d {
  std::vector<double> xs, ys;      // sorted distinct coordinates
  std::vector<int64_t> cell;       // per source cell: its flat index x * ny + y, -1 when not terminal
  std::vector<double> log_reward;  // [nx * ny]: log R, summed (log-sum-exp) over cells sharing a point

  // The grid of source cells at `coords` ([N, 2], float64) with `log_r` ([N]); `terminal` ([N]
  // bool) marks the cells that count.
  Grid2d(torch::Tensor coords, torch::Tensor log_r, torch::Tensor terminal);
  // The policy's distribution over the source cells, summed onto the grid.
  std::vector<double> on_grid(const std::vector<double>& p) const {
    std::vector<double> out(log_reward.size(), 0.0);
    for (size_t i = 0; i < p.size() && i < cell.size(); ++i)
      if (cell[i] >= 0) out[cell[i]] += p[i];
    return out;
  }
  std::vector<int64_t> shape() const { return {static_cast<int64_t>(xs.size()), static_cast<int64_t>(ys.size())}; }
};

Evaluator::Grid2d::Grid2d(torch::Tensor coords, torch::Tensor log_r, torch::Tensor terminal) {
  coords = coords.to(torch::kCPU, torch::kFloat64).contiguous();
  log_r = log_r.to(torch::kCPU, torch::kFloat64).contiguous();
  terminal = terminal.to(torch::kCPU, torch::kBool).contiguous();
  const int64_t n = coords.size(0);
  const double* c = coords.data_ptr<double>();
  const bool* keep = terminal.data_ptr<bool>();
  for (int64_t i = 0; i < n; ++i)
    if (keep[i]) xs.push_back(c[2 * i]), ys.push_back(c[2 * i + 1]);
  for (auto* v : {&xs, &ys}) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  }
  const int64_t ny = static_cast<int64_t>(ys.size());
  log_reward.assign(xs.size() * ys.size(), -std::numeric_limits<double>::infinity());
  cell.assign(n, -1);
  for (int64_t i = 0; i < n; ++i) {
    if (!keep[i]) continue;
    const int64_t xi = std::lower_bound(xs.begin(), xs.end(), c[2 * i]) - xs.begin();
    const int64_t yi = std::lower_bound(ys.begin(), ys.end(), c[2 * i + 1]) - ys.begin();
    cell[i] = xi * ny + yi;
    double& lr = log_reward[cell[i]];
    const double v = log_r.data_ptr<double>()[i];
    const double hi = std::max(lr, v);
    lr = std::isinf(hi) && hi < 0 ? hi : hi + std::log(std::exp(lr - hi) + std::exp(v - hi));
  }
}

struct Evaluator::AtCondition {
  std::unique_ptr<ConditionedEnv> env;  // the env at the condition
  std::optional<StateTable> table;      // its states (enumerable envs)
};

struct Evaluator::Point {
  int64_t iteration = 0;
  std::vector<std::pair<std::string, double>> row;
  std::string text;
  std::vector<double> cell_probability;  // the policy's distribution on the 2-D grid's cells
  std::vector<torch::Tensor> matrices;   // the env's sample matrices ([rows, cols] float64 CPU each)
  void add(const std::vector<std::string>& columns, const std::vector<double>& values) {
    for (size_t i = 0; i < columns.size(); ++i) row.emplace_back(columns[i], values[i]);
  }
};

Evaluator::Evaluator(const Env& env, Estimators& estimators, const StateTable* table, const EvalOptions& options,
                     uint64_t seed, const torch::Device& device, Execution execution)
    : env_(env),
      estimators_(estimators),
      table_(table),
      options_(options),
      device_(device),
      execution_(resolve_execution(execution, device)),
      generator_(make_generator(seed, device)) {
  options_.validate();
  if (env_.condition_dim() > 0) {
    conditional_ = dynamic_cast<const ConditionedEnv*>(&env_);
    if (conditional_ == nullptr) throw std::logic_error("Evaluator: a conditional env that is not a ConditionedEnv");
    for (const auto& c : conditional_->spec().eval) {
      AtCondition at{conditional_->at(c), std::nullopt};
      if (has_state_table(*at.env)) at.table.emplace(*at.env, device_);
      conditions_.push_back(std::move(at));
    }
  }
  // continuous envs with a terminal grid: the terminating density against R/Z on it
  if (options_.grid > 0 && !env_.enumerable()) grid_ = env_.terminal_grid(options_.grid, device_);
  if (options_.top_k > 0 && env_.continuous_dim() == 0) top_.emplace(options_.top_k);
  if (env_.num_modes() > 0) modes_found_.assign(env_.num_modes(), 0);
  test_set_ = env_.test_set(device_);
  if (table_ != nullptr) {
    target_ = target_distribution(*table_);
    l1_.emplace(table_->size(), options_.l1_window);
  }
  // the 2-D grid: discrete coordinates of an enumerable env (hypergrid ndim = 2), or continuous
  // ones of an env with a terminal grid (box dim = 2; labels merged)
  if (table_ != nullptr && table_->states.discrete.size(1) == 2 && table_->states.continuous.size(1) == 0)
    grid2d_ = std::make_unique<Grid2d>(table_->states.discrete.to(torch::kFloat64), table_->log_reward,
                                       table_->forward_mask.select(1, table_->exit));
  else if (grid_ && grid_->states.continuous.size(1) == 2)
    grid2d_ = std::make_unique<Grid2d>(grid_->states.continuous.to(torch::kFloat64), env_.log_reward(grid_->states),
                                       torch::ones({grid_->states.batch_size()}, torch::kBool));
  add_groups();
}

Evaluator::~Evaluator() = default;

void Evaluator::add_groups() {
  groups_.push_back({{"iteration", "trajectories", "wall_s", "log_z"}, [](Point&) {}});  // filled by evaluate()
  if (table_ != nullptr) {
    std::vector<std::string> columns{"tv", "jsd", "kl", "log_z_error", "log_z_exact", "l1"};
    groups_.push_back({columns, [this, columns](Point& p) {
                         ExactMetrics m = exact_metrics(*table_, estimators_);
                         const double l1 = l1_->l1(target_);
                         p.add(columns, {m.tv, m.jsd, m.kl, m.log_z_error, m.log_z_exact, l1});
                         p.text += fmt::format("  TV {:.3e}  JSD {:.2e}  |dlogZ| {:.2e}  L1 {:.3e}", m.tv, m.jsd,
                                               m.log_z_error, l1);
                         if (grid2d_) p.cell_probability = grid2d_->on_grid(m.terminating);
                         last_.tv = m.tv;
                         last_.l1 = l1;
                         last_.exact = std::move(m);
                       }});
  }
  if (conditional_ != nullptr) return add_condition_groups();  // every metric is per condition
  if (options_.is_samples > 0 && table_ == nullptr) {  // enumerable envs have the exact metrics above
    std::vector<std::string> columns{"log_z_is", "elbo", "ess"};
    const auto exact = env_.log_partition();
    if (exact) columns.insert(columns.end(), {"log_z_is_error", "elbo_error"});
    groups_.push_back({columns, [this, columns, exact](Point& p) {
                         ImportanceEstimate e = importance_log_z(env_, estimators_, options_.is_samples, 4096,
                                                                 generator_, device_, execution_);
                         std::vector<double> values{e.log_z, e.elbo, e.ess};
                         // the diffusion papers' Delta log Z^RW and Delta log Z
                         if (exact) values.insert(values.end(), {std::fabs(e.log_z - *exact), std::fabs(e.elbo - *exact)});
                         p.add(columns, values);
                         p.text += fmt::format("  log Z_IS {:+.4f}  ELBO {:+.4f}", e.log_z, e.elbo);
                         last_.importance = e;
                       }});
  }
  if (options_.exact_samples > 0 && env_.has_exact_samples()) {
    std::vector<std::string> columns{"eubo", "w2_squared"};
    groups_.push_back({columns, [this, columns](Point& p) {
                         const int64_t k = options_.exact_samples;
                         auto target = env_.exact_samples(k, generator_, device_);
                         const double eubo = evidence_upper_bound(env_, estimators_, target, 4096, generator_, execution_);
                         auto model = rollout(env_, *estimators_.policy, k, SamplerOptions{}, generator_, device_,
                                              execution_);
                         const double w2 = squared_wasserstein2(model.terminal_continuous, target.continuous);
                         p.add(columns, {eubo, w2});
                         p.text += fmt::format("  EUBO {:+.4f}  W2^2 {:.4g}", eubo, w2);
                         last_.eubo = eubo;
                         last_.w2 = w2;
                       }});
  }
  if (grid_) {
    std::vector<std::string> columns{"grid_jsd", "grid_kl", "grid_tv", "grid_mass"};
    groups_.push_back({columns, [this, columns](Point& p) {
                         GridMetrics g = grid_metrics(env_, estimators_, *grid_, options_.density_samples, 1 << 15,
                                                      generator_, execution_);
                         p.add(columns, {g.jsd, g.kl, g.tv, g.mass});
                         p.text += fmt::format("  grid JSD {:.3e}  mass {:.3f}", g.jsd, g.mass);
                         if (grid2d_) p.cell_probability = grid2d_->on_grid(g.cell_probability);
                         last_.grid = std::move(g);
                       }});
  }
  if (top_) {
    std::vector<std::string> columns{"top_k_mean_reward", "top_k_found"};
    groups_.push_back({columns, [this, columns](Point& p) {
                         p.add(columns, {top_->mean_reward(), static_cast<double>(top_->size())});
                         p.text += fmt::format("  top-{} mean R {:.4g}", top_->size(), top_->mean_reward());
                       }});
  }
  add_env_groups();
}

// A conditional env's metrics at each condition c_i of condition.eval (columns suffixed _c<i>, the
// conditions in /conditions/values): exact TV, JSD and log Z(c) against the enumerated R(.; c)
// where the env enumerates, else log Z_IS and the ELBO beside the learned log Z(c); then the
// mean TV and the largest |log Z(c) - log Z| over the conditions, and the modes found.
void Evaluator::add_condition_groups() {
  std::vector<std::string> columns;
  const bool exact = conditions_.front().table.has_value();
  if (exact) columns = {"tv", "log_z_error"};
  for (size_t i = 0; i < conditions_.size(); ++i) {
    const std::string c = fmt::format("_c{}", i);
    if (exact) {
      for (const char* n : {"tv", "jsd", "log_z", "log_z_exact", "log_z_error"}) columns.push_back(n + c);
    } else if (options_.is_samples > 0) {
      for (const char* n : {"log_z", "log_z_is", "elbo"}) columns.push_back(n + c);
      if (conditions_[i].env->log_partition()) columns.push_back("log_z_is_error" + c);
    }
  }
  if (columns.empty()) return add_env_groups();
  groups_.push_back({columns, [this, columns, exact](Point& p) {
                       std::vector<double> values;
                       double tv_sum = 0.0, log_z_worst = 0.0;
                       for (size_t i = 0; i < conditions_.size(); ++i) {
                         const auto& at = conditions_[i];
                         Estimators e = estimators_.at_condition(*at.env, device_);
                         if (exact) {
                           ExactMetrics m = exact_metrics(*at.table, e);
                           values.insert(values.end(), {m.tv, m.jsd, m.log_z, m.log_z_exact, m.log_z_error});
                           tv_sum += m.tv;
                           log_z_worst = std::max(log_z_worst, m.log_z_error);
                           p.text += fmt::format("  c{} TV {:.2e}", i, m.tv);
                         } else if (options_.is_samples > 0) {
                           ImportanceEstimate is = importance_log_z(*at.env, e, options_.is_samples, 4096, generator_,
                                                                    device_, execution_);
                           const double log_z = e.log_z.item<double>();
                           values.insert(values.end(), {log_z, is.log_z, is.elbo});
                           if (auto z = at.env->log_partition()) values.push_back(std::fabs(is.log_z - *z));
                           p.text += fmt::format("  c{} log Z {:+.3f} (IS {:+.3f})", i, log_z, is.log_z);
                         }
                       }
                       if (exact) {
                         const double tv = tv_sum / static_cast<double>(conditions_.size());
                         values.insert(values.begin(), {tv, log_z_worst});
                         last_.tv = tv;
                         p.text = fmt::format("  mean TV {:.3e}  max |dlogZ(c)| {:.2e}", tv, log_z_worst) + p.text;
                       }
                       p.add(columns, values);
                     }});
  add_env_groups();
}

// the env's own measures: modes found, the test set's rank correlation, its sample metrics
void Evaluator::add_env_groups() {
  if (!modes_found_.empty()) {
    groups_.push_back({{"modes_found"}, [this](Point& p) {
                         int64_t found = 0;
                         for (auto f : modes_found_) found += f;
                         p.add({"modes_found"}, {static_cast<double>(found)});
                         p.text += fmt::format("  modes {}/{}", found, modes_found_.size());
                       }});
  }
  if (test_set_) {  // log p_T(x) through P_B (one trajectory suffices on a tree), against log R(x)
    groups_.push_back({{"test_spearman"}, [this](Point& p) {
                         auto log_pt = terminating_log_density(env_, estimators_, *test_set_,
                                                               options_.density_samples, 4096, generator_, execution_);
                         auto log_r = env_.log_reward(*test_set_).to(torch::kCPU, torch::kFloat64).contiguous();
                         log_pt = log_pt.contiguous();
                         const double rho = spearman(
                             std::vector<double>(log_pt.data_ptr<double>(), log_pt.data_ptr<double>() + log_pt.numel()),
                             std::vector<double>(log_r.data_ptr<double>(), log_r.data_ptr<double>() + log_r.numel()));
                         p.add({"test_spearman"}, {rho});
                         p.text += fmt::format("  Spearman {:.3f}", rho);
                       }});
  }
  if (env_.has_sample_metrics()) {
    matrix_specs_ = env_.sample_matrix_specs();
    groups_.push_back({{}, [this](Point& p) {
                         auto sampled = rollout(env_, *estimators_.policy, options_.env_samples, SamplerOptions{},
                                                generator_, device_, execution_);
                         const States terminal = sampled.terminal_states();
                         for (const auto& [name, value] : env_.sample_metrics(terminal)) {
                           p.row.emplace_back(name, value);
                           p.text += fmt::format("  {} {:.3e}", name, value);
                         }
                         if (!matrix_specs_.empty()) p.matrices = env_.sample_matrices(terminal);
                       }});
  }
}

void Evaluator::declare(Hdf5Log& log) {
  std::vector<std::string> columns;
  for (const auto& g : groups_) columns.insert(columns.end(), g.columns.begin(), g.columns.end());
  log.declare_columns("eval", columns);
  if (conditional_ != nullptr) {  // the conditions of the _c<i> columns, [n, P]
    std::vector<double> values;
    for (const auto& c : conditional_->spec().eval) values.insert(values.end(), c.begin(), c.end());
    log.write_fixed("conditions", "values", LogDType::kFloat64,
                    {static_cast<int64_t>(conditional_->spec().eval.size()), conditional_->condition_dim()},
                    values.data());
  }
  if (!matrix_specs_.empty()) log.declare("matrices", "iteration", LogDType::kInt64, {});
  for (const auto& m : matrix_specs_) {
    const std::vector<int64_t> shape{m.rows, m.cols};
    if (m.exact.defined()) {
      auto exact = m.exact.to(torch::kCPU, torch::kFloat64).contiguous();
      log.write_fixed("matrices", m.name + "_exact", LogDType::kFloat64, shape, exact.data_ptr<double>());
    }
    log.declare("matrices", m.name, LogDType::kFloat64, shape);
  }
  if (!grid2d_) return;
  const auto shape = grid2d_->shape();
  log.write_fixed("grid", "x", LogDType::kFloat64, {shape[0]}, grid2d_->xs.data());
  log.write_fixed("grid", "y", LogDType::kFloat64, {shape[1]}, grid2d_->ys.data());
  log.write_fixed("grid", "log_reward", LogDType::kFloat64, shape, grid2d_->log_reward.data());
  log.declare("grid", "iteration", LogDType::kInt64, {});
  log.declare("grid", "terminating", LogDType::kFloat64, shape);
}

void Evaluator::observe(const IterationResult& r) {
  if (l1_) l1_->add(r.terminal_index);
  if (top_) top_->add(r.trajectories.terminal_discrete, r.trajectories.log_reward);
  if (!modes_found_.empty()) {
    auto index = env_.mode_index(r.trajectories.terminal_states()).to(torch::kCPU).contiguous();
    const int64_t* m = index.data_ptr<int64_t>();
    for (int64_t i = 0; i < index.numel(); ++i)
      if (m[i] >= 0) modes_found_[m[i]] = 1;
  }
}

bool Evaluator::due(int64_t iteration, bool last) const {
  return (options_.every > 0 && iteration % options_.every == 0) || last;
}

std::string Evaluator::evaluate(Hdf5Log& log, int64_t iteration, int64_t trajectories, double wall_s) {
  const double log_z = estimators_.log_z.item<double>();
  Point p;
  p.iteration = iteration;
  p.add(groups_.front().columns, {static_cast<double>(iteration), static_cast<double>(trajectories), wall_s, log_z});
  for (size_t i = 1; i < groups_.size(); ++i) groups_[i].compute(p);
  log.append_row("eval", p.row);
  if (!p.matrices.empty()) {
    log.append("matrices", "iteration", LogDType::kInt64, {}, &iteration, 1);
    for (size_t k = 0; k < matrix_specs_.size(); ++k) {
      auto m = p.matrices[k].to(torch::kCPU, torch::kFloat64).contiguous();
      log.append("matrices", matrix_specs_[k].name, LogDType::kFloat64, {matrix_specs_[k].rows, matrix_specs_[k].cols},
                 m.data_ptr<double>(), 1);
    }
  }
  if (grid2d_ && !p.cell_probability.empty()) {
    log.append("grid", "iteration", LogDType::kInt64, {}, &iteration, 1);
    log.append("grid", "terminating", LogDType::kFloat64, grid2d_->shape(), p.cell_probability.data(), 1);
  }
  return p.text;
}

void Evaluator::write_state(torch::serialize::OutputArchive& a) {
  a.write("eval.generator", generator_.get_state(), /*is_buffer=*/true);
  if (l1_) a.write("eval.l1_states", l1_->state(), true);
  if (!modes_found_.empty())
    a.write("eval.modes_found", torch::tensor(std::vector<int64_t>(modes_found_.begin(), modes_found_.end())), true);
  if (top_) {
    auto [x, r] = top_->state();
    a.write("eval.top_k.states", x, true);
    a.write("eval.top_k.log_reward", r, true);
  }
}

void Evaluator::read_state(CheckpointReader& checkpoint) {
  generator_.set_state(checkpoint.read("eval.generator"));
  if (l1_) l1_->restore(checkpoint.read("eval.l1_states"));
  if (!modes_found_.empty()) {
    auto found = checkpoint.read("eval.modes_found").to(torch::kCPU, torch::kInt64).contiguous();
    if (found.numel() != static_cast<int64_t>(modes_found_.size()))
      throw ConfigError(fmt::format("checkpoint: eval.modes_found has {} entries, the env {} modes", found.numel(),
                                    modes_found_.size()));
    for (int64_t i = 0; i < found.numel(); ++i) modes_found_[i] = found.data_ptr<int64_t>()[i] != 0;
  }
  if (top_) {
    auto x = checkpoint.read("eval.top_k.states");
    top_->restore(x, checkpoint.read("eval.top_k.log_reward"));
  }
}

}  // namespace gfn

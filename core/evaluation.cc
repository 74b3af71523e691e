#include "core/evaluation.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <torch/torch.h>

#include "core/sampler.h"
#include "core/scoring.h"

namespace gfn {

std::vector<double> terminating_distribution(const StateTable& table, const torch::Tensor& log_pf) {
  const int64_t S = table.size();
  auto lp = log_pf.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  auto child = table.child.to(torch::kCPU).contiguous();
  auto mask = table.forward_mask.to(torch::kCPU).contiguous();
  const int64_t C = lp.size(1);
  const double* lpp = lp.data_ptr<double>();
  const int64_t* cp = child.data_ptr<int64_t>();
  const bool* mp = mask.data_ptr<bool>();

  // push the probability of reaching each state to its children, parents first
  std::vector<double> reach(S, 0.0), term(S, 0.0);
  reach[table.initial] = 1.0;
  for (int64_t s = 0; s < S; ++s) {
    const double r = reach[s];
    if (r == 0.0) continue;
    for (int64_t c = 0; c < C; ++c) {
      if (!mp[s * C + c]) continue;
      const double p = r * std::exp(lpp[s * C + c]);
      if (c == table.exit) {
        term[s] += p;
      } else {
        reach[cp[s * C + c]] += p;
      }
    }
  }
  return term;
}

std::vector<double> target_distribution(const StateTable& table, double* log_z) {
  auto lr = table.log_reward.to(torch::kCPU, torch::kFloat64).contiguous();
  auto can_exit = table.forward_mask.select(1, table.exit).to(torch::kCPU).contiguous();
  const int64_t S = table.size();
  const double* l = lr.data_ptr<double>();
  const bool* e = can_exit.data_ptr<bool>();
  // normalise in log space
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t s = 0; s < S; ++s)
    if (e[s]) m = std::max(m, l[s]);
  std::vector<double> pi(S, 0.0);
  double sum = 0.0;
  for (int64_t s = 0; s < S; ++s)
    if (e[s]) sum += (pi[s] = std::exp(l[s] - m));
  for (auto& v : pi) v /= sum;
  if (log_z != nullptr) *log_z = m + std::log(sum);
  return pi;
}

namespace {

// ranks 1..n, ties given their mean rank
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  for (size_t i = 0; i < v.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double mean = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) r[order[k]] = mean;
    i = j + 1;
  }
  return r;
}

}  // namespace

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const auto ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  double ma = 0, mb = 0;
  for (size_t i = 0; i < ra.size(); ++i) ma += ra[i] / n, mb += rb[i] / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

double total_variation(const std::vector<double>& p, const std::vector<double>& q) {
  double s = 0.0;
  for (size_t i = 0; i < p.size(); ++i) s += std::fabs(p[i] - q[i]);
  return 0.5 * s;
}

double kl_divergence(const std::vector<double>& p, const std::vector<double>& q) {
  double s = 0.0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0.0) continue;
    if (q[i] <= 0.0) return std::numeric_limits<double>::infinity();
    s += p[i] * std::log(p[i] / q[i]);
  }
  return s;
}

double jensen_shannon(const std::vector<double>& p, const std::vector<double>& q) {
  std::vector<double> m(p.size());
  for (size_t i = 0; i < p.size(); ++i) m[i] = 0.5 * (p[i] + q[i]);
  return 0.5 * kl_divergence(p, m) + 0.5 * kl_divergence(q, m);
}

ExactMetrics exact_metrics(const StateTable& table, Estimators& estimators) {
  torch::NoGradGuard no_grad;
  auto& policy = *estimators.policy;
  // the policy on every state, in chunks that bound memory
  constexpr int64_t kChunk = 1 << 16;
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < table.size(); start += kChunk) {
    const int64_t n = std::min(kChunk, table.size() - start);
    auto logits = policy.forward_logits(policy.trunk(table.features.narrow(0, start, n)));
    parts.push_back(masked_log_softmax(logits.to(torch::kFloat64), table.forward_mask.narrow(0, start, n)));
  }
  auto p = terminating_distribution(table, torch::cat(parts));
  ExactMetrics m;
  auto pi = target_distribution(table, &m.log_z_exact);
  m.tv = total_variation(p, pi);
  m.jsd = jensen_shannon(p, pi);
  m.kl = kl_divergence(pi, p);
  m.log_z = estimators.log_z.item<double>();
  m.log_z_error = std::fabs(m.log_z - m.log_z_exact);
  m.terminating = std::move(p);
  return m;
}

ImportanceEstimate importance_log_z(const Env& env, Estimators& estimators, int64_t samples, int64_t batch,
                                    torch::Generator& generator, const torch::Device& device, Execution execution,
                                    States* terminal) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  std::vector<States> ends;
  for (int64_t done = 0; done < samples; done += batch) {
    auto tr = rollout(env, *estimators.policy, std::min(batch, samples - done), SamplerOptions{}, generator, device,
                      execution);
    auto in = score_trajectories(env, estimators, tr, ScoreOptions{}, execution);
    parts.push_back((in.log_reward + (in.log_pb - in.log_pf).sum(0)).to(torch::kCPU, torch::kFloat64));
    if (terminal != nullptr) ends.push_back(tr.terminal_states());
  }
  if (terminal != nullptr) *terminal = States::cat(ends);
  auto log_w = torch::cat(parts);
  const double n = static_cast<double>(log_w.numel());
  const double m = log_w.max().item<double>();
  auto w = (log_w - m).exp();  // weights scaled by exp(-m)
  const double mean = w.mean().item<double>();
  ImportanceEstimate e;
  e.samples = log_w.numel();
  e.log_z = m + std::log(mean);
  e.relative_se = w.std(/*unbiased=*/true).item<double>() / mean / std::sqrt(n);
  e.elbo = log_w.mean().item<double>();
  e.ess = std::pow(w.sum().item<double>(), 2) / w.square().sum().item<double>();
  return e;
}

double evidence_upper_bound(const Env& env, Estimators& estimators, const States& terminal, int64_t batch,
                            torch::Generator& generator, Execution execution) {
  torch::NoGradGuard no_grad;
  const int64_t n = terminal.batch_size();
  double sum = 0.0;
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t m = std::min(batch, n - start);
    auto tr = backward_rollout(env, estimators.backward_policy(), terminal.narrow(start, m), generator, execution);
    auto in = score_trajectories(env, estimators, tr, ScoreOptions{}, execution);
    sum += (in.log_reward + (in.log_pb - in.log_pf).sum(0)).to(torch::kFloat64).sum().item<double>();
  }
  return sum / static_cast<double>(n);
}

torch::Tensor terminating_log_density(const Env& env, Estimators& estimators, const States& terminal,
                                      int64_t samples, int64_t batch, torch::Generator& generator,
                                      Execution execution) {
  torch::NoGradGuard no_grad;
  const int64_t n = terminal.batch_size();
  const int64_t per_chunk = std::max<int64_t>(1, batch / samples);  // states per chunk
  const auto device = terminal.is_sink.device();
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < n; start += per_chunk) {
    const int64_t m = std::min(per_chunk, n - start);
    // each state `samples` times, consecutively
    auto rows = torch::arange(start, start + m, torch::TensorOptions().dtype(torch::kInt64).device(device))
                    .repeat_interleave(samples);
    auto tr = backward_rollout(env, estimators.backward_policy(), terminal.index_select(rows), generator, execution);
    auto in = score_trajectories(env, estimators, tr, ScoreOptions{}, execution);
    auto log_ratio = (in.log_pf - in.log_pb).sum(0).to(torch::kCPU, torch::kFloat64).view({m, samples});
    parts.push_back(log_ratio.logsumexp(1) - std::log(static_cast<double>(samples)));
  }
  return torch::cat(parts);
}

GridMetrics grid_metrics(const Env& env, Estimators& estimators, const TerminalGrid& grid, int64_t samples,
                         int64_t batch, torch::Generator& generator, Execution execution) {
  auto log_p = terminating_log_density(env, estimators, grid.states, samples, batch, generator, execution);
  auto log_vol = grid.log_cell_volume.to(torch::kCPU, torch::kFloat64);
  auto log_r = env.log_reward(grid.states).to(torch::kCPU, torch::kFloat64);
  auto to_vector = [](const torch::Tensor& t) {
    auto c = t.contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  GridMetrics g;
  g.cells = log_p.numel();
  g.mass = (log_p + log_vol).logsumexp(0).exp().item<double>();
  auto p = to_vector((log_p + log_vol).softmax(0));
  auto pi = to_vector((log_r + log_vol).softmax(0));
  g.jsd = jensen_shannon(p, pi);
  g.kl = kl_divergence(pi, p);
  g.tv = total_variation(p, pi);
  g.cell_probability = std::move(p);
  return g;
}

EmpiricalL1::EmpiricalL1(int64_t num_states, int64_t window) : window_(window), counts_(num_states, 0) {}

void EmpiricalL1::add(const torch::Tensor& state_index) {
  // a copy: not a view holding a larger buffer, nor a CUDA graph's output it rewrites
  pending_.push_back(state_index.reshape({-1}).clone());
  if (pending_.size() >= 256) flush();
}

void EmpiricalL1::flush() {
  if (pending_.empty()) return;
  auto idx = torch::cat(pending_).to(torch::kCPU, torch::kInt64).contiguous();
  pending_.clear();
  const int64_t* p = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < idx.numel(); ++i) {
    ring_.push_back(p[i]);
    ++counts_[p[i]];
    if (static_cast<int64_t>(ring_.size()) > window_) {
      --counts_[ring_.front()];
      ring_.pop_front();
    }
  }
}

int64_t EmpiricalL1::count() {
  flush();
  return static_cast<int64_t>(ring_.size());
}

double EmpiricalL1::l1(const std::vector<double>& target) {
  flush();
  const double n = ring_.empty() ? 1.0 : static_cast<double>(ring_.size());
  double s = 0.0;
  for (size_t i = 0; i < target.size(); ++i) s += std::fabs(static_cast<double>(counts_[i]) / n - target[i]);
  return s / static_cast<double>(target.size());
}

torch::Tensor EmpiricalL1::state() {
  flush();
  std::vector<int64_t> ring(ring_.begin(), ring_.end());
  return torch::tensor(ring, torch::kInt64);
}

void EmpiricalL1::restore(const torch::Tensor& state) {
  // a checkpoint's state indices index counts_ unchecked in flush(): out-of-range ones (a
  // damaged or forged checkpoint behind a valid checksum) are refused here
  if (state.dim() != 1 || state.is_floating_point())
    throw std::runtime_error("eval.l1_states is not a 1-D integer tensor");
  if (state.numel() > 0) {
    const auto s = state.to(torch::kCPU, torch::kInt64);
    const int64_t lo = s.min().item<int64_t>(), hi = s.max().item<int64_t>();
    if (lo < 0 || hi >= static_cast<int64_t>(counts_.size()))
      throw std::runtime_error(fmt::format("eval.l1_states holds state index {} outside [0, {})", lo < 0 ? lo : hi,
                                           counts_.size()));
  }
  pending_.clear();
  ring_.clear();
  std::fill(counts_.begin(), counts_.end(), 0);
  add(state);
  flush();
}

TopK::TopK(int64_t k) : k_(k) {}

std::pair<torch::Tensor, torch::Tensor> TopK::state() {
  flush();
  const int64_t n = static_cast<int64_t>(best_.size());
  const int64_t d = n ? static_cast<int64_t>(best_.begin()->second.size()) : 0;
  auto x = torch::zeros({n, d}, torch::kInt64);
  auto r = torch::zeros({n}, torch::kFloat64);
  int64_t b = 0;
  for (const auto& [log_r, s] : best_) {
    std::copy(s.begin(), s.end(), x.data_ptr<int64_t>() + b * d);
    r.data_ptr<double>()[b++] = log_r;
  }
  return {x, r};
}

void TopK::restore(const torch::Tensor& discrete, const torch::Tensor& log_reward) {
  pending_discrete_.clear();
  pending_log_reward_.clear();
  best_.clear();
  kept_.clear();
  // flush() reads one log-reward per row of `discrete`: a damaged checkpoint that breaks that
  // is refused, not read past its buffer
  if (discrete.dim() != 2 || log_reward.dim() != 1 || log_reward.size(0) != discrete.size(0))
    throw std::runtime_error("eval.top_k holds states and log-rewards of mismatched shapes");
  if (discrete.size(0) == 0) return;
  add(discrete, log_reward);
  flush();
}

void TopK::add(const torch::Tensor& discrete, const torch::Tensor& log_reward) {
  // copies: under a CUDA graph the trainer's result tensors are rewritten every iteration
  pending_discrete_.push_back(discrete.detach().clone());
  pending_log_reward_.push_back(log_reward.detach().clone());
  if (pending_discrete_.size() >= 256) flush();  // bounded memory when evaluations are rare
}

void TopK::flush() {
  if (pending_discrete_.empty()) return;
  auto x = torch::cat(pending_discrete_).to(torch::kCPU, torch::kInt64).contiguous();
  auto r = torch::cat(pending_log_reward_).to(torch::kCPU, torch::kFloat64).contiguous();
  pending_discrete_.clear();
  pending_log_reward_.clear();
  const int64_t n = x.size(0), d = x.size(1);
  const int64_t* xp = x.data_ptr<int64_t>();
  const double* rp = r.data_ptr<double>();
  for (int64_t b = 0; b < n; ++b) {
    std::vector<int64_t> state(xp + b * d, xp + (b + 1) * d);
    if (kept_.count(state)) continue;
    if (static_cast<int64_t>(best_.size()) == k_) {
      if (rp[b] <= best_.begin()->first) continue;
      kept_.erase(best_.begin()->second);
      best_.erase(best_.begin());
    }
    kept_.insert(state);
    best_.emplace(rp[b], std::move(state));
  }
}

int64_t TopK::size() {
  flush();
  return static_cast<int64_t>(best_.size());
}

double TopK::mean_reward() {
  flush();
  if (best_.empty()) return std::nan("");
  double sum = 0.0;
  for (const auto& [log_r, state] : best_) sum += std::exp(log_r);
  return sum / static_cast<double>(best_.size());
}

}  // namespace gfn

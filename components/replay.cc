#include "components/replay.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include "core/params.h"
#include "core/sampler.h"
#include "core/trainer.h"

namespace gfn {

template <>
const EnumNames<Prioritization>& enum_names<Prioritization>() {
  static const EnumNames<Prioritization> names{
      {Prioritization::kFifo, "fifo"}, {Prioritization::kReward, "reward"}, {Prioritization::kRank, "rank"}};
  return names;
}

const OptionTable<ReplayOptions>& ReplayOptions::keys() {
  using O = ReplayOptions;
  static const auto table =
      OptionTable<O>()
          .add("replay.capacity", &O::capacity, "terminal states the replay buffer keeps (0: no replay)",
               in(0, 1 << 26))
          .add("replay.every", &O::every, "every N-th iteration trains on states drawn from the buffer", in(2, 1 << 20))
          .add("replay.prioritization", &O::prioritization,
               "how buffer states are drawn: uniformly (fifo), with probability R^beta (reward), or 1 / (k N + rank) "
               "(rank)")
          .add("replay.beta", &O::beta, "reward prioritisation: states drawn with probability R^beta", in(0, 1e3))
          .add("replay.rank_weight", &O::rank_weight, "rank prioritisation: k in 1 / (k N + rank)", above(0))
          .add("local_search.every", &O::search_every,
               "MALA local search on buffer states every N iterations (0: none; needs replay.capacity > 0)",
               at_least(0))
          .add("local_search.chains", &O::search_chains, "buffer states each search starts from (0: train.batch_size)",
               in(0, 1 << 20))
          .add("local_search.steps", &O::search_steps, "MALA steps per search", in(1, 1 << 20))
          .add("local_search.burn_in", &O::search_burn_in,
               "steps of each search before its accepted states join the buffer", at_least(0))
          .add("local_search.step_size", &O::search_step, "initial MALA step size h", above(0).at_most(1e6))
          .add("local_search.target_acceptance", &O::search_target,
               "h grows when a step's acceptance rate exceeds this, shrinks otherwise", above(0).below(1))
          .add("local_search.adapt", &O::search_adapt, "h is multiplied by 1 +- adapt after each step",
               in(0, 0.9))
          .rule([](const O& o) {
            return o.search_burn_in < o.search_steps
                       ? std::string()
                       : fmt::format("local_search.burn_in = {}: expected fewer than local_search.steps = {}",
                                     o.search_burn_in, o.search_steps);
          })
          .rule([](const O& o) {
            return o.search_every == 0 || o.capacity > 0
                       ? std::string()
                       : fmt::format("local_search.every = {}: local search feeds the replay buffer, which is off "
                                     "(replay.capacity = 0)",
                                     o.search_every);
          });
  return table;
}

// ---------------------------------------------------------------------------------------------
// the buffer

ReplayBuffer::ReplayBuffer(int64_t capacity, int64_t discrete_dim, int64_t continuous_dim,
                           const torch::Device& device)
    : capacity_(capacity) {
  auto opts = torch::TensorOptions().device(device);
  discrete_ = torch::zeros({capacity, discrete_dim}, opts.dtype(torch::kInt64));
  continuous_ = torch::zeros({capacity, continuous_dim}, opts.dtype(torch::kFloat64));
  initial_ = torch::zeros({capacity}, opts.dtype(torch::kBool));
  log_reward_ = torch::zeros({capacity}, opts.dtype(torch::kFloat64));
}

void ReplayBuffer::add(const States& states, const torch::Tensor& log_reward) {
  int64_t n = states.batch_size();
  if (n == 0) return;
  const int64_t skip = std::max<int64_t>(0, n - capacity_);  // more than fit: the newest only
  n -= skip;
  auto rows = (torch::arange(n, discrete_.options()) + next_).remainder(capacity_);
  auto take = [&](const torch::Tensor& t) { return t.narrow(0, skip, n); };
  discrete_.index_copy_(0, rows, take(states.discrete).to(discrete_.options()));
  continuous_.index_copy_(0, rows, take(states.continuous).to(continuous_.options()));
  initial_.index_copy_(0, rows, take(states.is_initial).to(initial_.options()));
  log_reward_.index_copy_(0, rows, take(log_reward).to(log_reward_.options()));
  size_ = std::min(capacity_, size_ + n);
  next_ = (next_ + n) % capacity_;
}

torch::Tensor ReplayBuffer::draw(int64_t n, const ReplayOptions& options, torch::Generator& generator) const {
  TORCH_CHECK(size_ > 0, "ReplayBuffer::draw: the buffer is empty");
  if (options.prioritization == Prioritization::kFifo)
    return torch::randint(size_, {n}, generator, discrete_.options());
  auto lr = log_reward_.narrow(0, 0, size_).nan_to_num(-1e300, 1e300, -1e300);
  torch::Tensor weights;
  if (options.prioritization == Prioritization::kReward) {
    weights = ((lr - lr.max()) * options.beta).exp();
  } else {
    auto order = lr.argsort(0, /*descending=*/true);
    auto rank = torch::empty_like(order).index_copy_(0, order, torch::arange(size_, order.options()));
    weights = 1.0 / (options.rank_weight * static_cast<double>(size_) + rank.to(torch::kFloat64));
  }
  return torch::multinomial(weights, n, /*replacement=*/true, generator);
}

States ReplayBuffer::states(const torch::Tensor& index) const {
  return {discrete_.index_select(0, index), continuous_.index_select(0, index), initial_.index_select(0, index),
          torch::zeros({index.size(0)}, initial_.options())};
}

void ReplayBuffer::write(torch::serialize::OutputArchive& a, const std::string& prefix) const {
  a.write(prefix + "discrete", discrete_.narrow(0, 0, size_).cpu(), /*is_buffer=*/true);
  a.write(prefix + "continuous", continuous_.narrow(0, 0, size_).cpu(), true);
  a.write(prefix + "initial", initial_.narrow(0, 0, size_).cpu(), true);
  a.write(prefix + "log_reward", log_reward_.narrow(0, 0, size_).cpu(), true);
  a.write(prefix + "next", torch::tensor(next_), true);
}

void ReplayBuffer::read(torch::serialize::InputArchive& a, const std::string& source, const std::string& prefix) {
  auto read = [&](const std::string& key) { return read_archive_entry(a, source, prefix + key, {}, /*is_buffer=*/true); };
  auto d = read("discrete"), c = read("continuous"), i = read("initial"), r = read("log_reward");
  const int64_t n = d.size(0);
  if (n > capacity_ || d.size(1) != discrete_.size(1) || c.size(1) != continuous_.size(1))
    throw ConfigError(fmt::format("{}: the replay buffer holds {} states of another shape or beyond replay.capacity "
                                  "= {} (not a checkpoint of this config)",
                                  source, n, capacity_));
  discrete_.narrow(0, 0, n).copy_(d);
  continuous_.narrow(0, 0, n).copy_(c);
  initial_.narrow(0, 0, n).copy_(i);
  log_reward_.narrow(0, 0, n).copy_(r);
  size_ = n;
  next_ = read("next").item<int64_t>();
}

// ---------------------------------------------------------------------------------------------
// the component

ReplayComponent::ReplayComponent(const ComponentSetup& setup, const ReplayOptions& options)
    : options_(options),
      batch_size_(setup.trainer.batch_size),
      buffer_(options.capacity, setup.env.discrete_dim(), setup.env.continuous_dim(), setup.device),
      step_(options.search_step) {
  options_.validate();
  if (options_.search_every > 0 && (!setup.env.has_log_reward_gradient() || setup.env.continuous_dim() == 0))
    throw ConfigError(fmt::format("local_search.every = {}: env '{}' supplies no grad log R over continuous "
                                  "coordinates, which the Langevin proposals need",
                                  options_.search_every, setup.env.name()));
}

bool ReplayComponent::replaces_rollout(int64_t iteration) const {
  return iteration % options_.every == options_.every - 1;
}

void ReplayComponent::extend_batch(TrainingBatch& batch, const TrainingContext& context) {
  replayed_ = replaces_rollout(batch.iteration);
  if (!replayed_) return;
  if (context.table != nullptr)
    throw ConfigError("replay.capacity > 0: replayed states are walked back through P_B, which tabular training "
                      "does not do (set train.tabular = \"off\")");
  if (options_.search_every > 0 && batch.iteration % options_.search_every < options_.every)
    acceptance_ = local_search(context);
  auto index = buffer_.draw(batch_size_, options_, context.generator);
  batch.trajectories = backward_rollout(context.env, context.estimators.backward_policy(), buffer_.states(index),
                                        context.generator, context.execution);
}

void ReplayComponent::after_step(const TrainingBatch& batch, const TrainingContext& /*context*/) {
  if (replayed_) return;
  const auto& tr = batch.trajectories;
  buffer_.add(tr.terminal_states(), tr.log_reward.to(torch::kFloat64));
}

double ReplayComponent::local_search(const TrainingContext& context) {
  torch::NoGradGuard no_grad;
  const Env& env = context.env;
  auto& gen = context.generator;
  const int64_t n = options_.search_chains > 0 ? options_.search_chains : batch_size_;
  States s = buffer_.states(buffer_.draw(n, options_, gen));
  auto x = s.continuous;
  auto at = [&](const torch::Tensor& y) { return States{s.discrete, y, s.is_initial, s.is_sink}; };
  auto lr = env.log_reward(s).to(torch::kFloat64);
  auto g = env.log_reward_gradient(s).nan_to_num(0.0);
  std::vector<torch::Tensor> kept_x, kept_rows, kept_lr;
  double accepted = 0.0;
  const double ninf = -std::numeric_limits<double>::infinity();
  for (int64_t k = 0; k < options_.search_steps; ++k) {
    const double h = step_;
    auto proposal = x + h * g + std::sqrt(2 * h) * torch::randn(x.sizes(), gen, x.options());
    auto ps = at(proposal);
    auto ok = env.in_support(ps);
    auto lr_new = torch::where(ok, env.log_reward(ps).to(torch::kFloat64), ninf);
    auto g_new = env.log_reward_gradient(ps).nan_to_num(0.0);
    auto log_q_forward = -(proposal - x - h * g).square().sum(1) / (4 * h);
    auto log_q_backward = -(x - proposal - h * g_new).square().sum(1) / (4 * h);
    auto log_alpha = (lr_new - lr + log_q_backward - log_q_forward).nan_to_num(ninf, 0.0, ninf);
    auto u = torch::rand({x.size(0)}, gen, x.options());
    auto accept = u.log().lt(log_alpha.clamp_max(0.0)).logical_and(ok).logical_and(lr_new.isfinite());
    const double rate = accept.to(torch::kFloat64).mean().item<double>();
    accepted += rate;
    if (k >= options_.search_burn_in) {
      auto rows = accept.nonzero().squeeze(1);
      kept_rows.push_back(rows);
      kept_x.push_back(proposal.index_select(0, rows));
      kept_lr.push_back(lr_new.index_select(0, rows));
    }
    auto col = accept.unsqueeze(1);
    x = torch::where(col, proposal, x);
    g = torch::where(col, g_new, g);
    lr = torch::where(accept, lr_new, lr);
    step_ *= rate > options_.search_target ? 1.0 + options_.search_adapt : 1.0 - options_.search_adapt;
  }
  auto rows = torch::cat(kept_rows);
  buffer_.add(States{s.discrete.index_select(0, rows), torch::cat(kept_x), s.is_initial.index_select(0, rows),
                     s.is_sink.index_select(0, rows)},
              torch::cat(kept_lr));
  return accepted / static_cast<double>(options_.search_steps);
}

std::vector<std::string> ReplayComponent::metric_names() const {
  std::vector<std::string> names{"replay_size"};
  if (options_.search_every > 0) names.insert(names.end(), {"search_acceptance", "search_step"});
  return names;
}

std::vector<torch::Tensor> ReplayComponent::metric_values() const {
  std::vector<torch::Tensor> values{torch::tensor(static_cast<double>(buffer_.size()), torch::kFloat64)};
  if (options_.search_every > 0)
    values.insert(values.end(), {torch::tensor(acceptance_, torch::kFloat64), torch::tensor(step_, torch::kFloat64)});
  return values;
}

void ReplayComponent::write_state(torch::serialize::OutputArchive& archive) const {
  buffer_.write(archive, "replay.");
  archive.write("replay.search", torch::tensor({step_, acceptance_}, torch::kFloat64), /*is_buffer=*/true);
}

void ReplayComponent::read_state(torch::serialize::InputArchive& archive, const std::string& source) {
  buffer_.read(archive, source, "replay.");
  auto t = read_archive_entry(archive, source, "replay.search", torch::zeros({2}, torch::kFloat64), /*is_buffer=*/true);
  step_ = t[0].item<double>();
  acceptance_ = t[1].item<double>();
}

}  // namespace gfn

#include "io/run_log.h"

#include <functional>
#include <utility>

#include <torch/torch.h>

namespace gfn {

const OptionTable<LogOptions>& LogOptions::keys() {
  using O = LogOptions;
  static const auto table =
      OptionTable<O>()
          .add("log.every", &O::every, "a /train row every N iterations", at_least(1))
          .add("log.flush_seconds", &O::flush_seconds,
               "the log is flushed at every evaluation and checkpoint, and at a /train row when this many seconds "
               "passed since the last flush (what a killed run loses at most)",
               in(0, 1e9))
          .resumable()
          .add("log.trajectories_every", &O::trajectories_every,
               "store sampled trajectories every N iterations (0: never)", at_least(0))
          .add("log.trajectories_count", &O::trajectories_count,
               "how many of the batch's trajectories to store each time", at_least(1));
  return table;
}

void append_tensor(Hdf5Log& log, const std::string& group, const std::string& name, torch::Tensor t) {
  t = t.to(torch::kCPU).contiguous();
  LogDType dtype;
  switch (t.scalar_type()) {
    case torch::kFloat64: dtype = LogDType::kFloat64; break;
    case torch::kFloat32: dtype = LogDType::kFloat32; break;
    case torch::kInt64: dtype = LogDType::kInt64; break;
    case torch::kBool: dtype = LogDType::kBool; break;
    default: t = t.to(torch::kFloat64); dtype = LogDType::kFloat64;
  }
  std::vector<int64_t> row_shape(t.sizes().begin() + 1, t.sizes().end());
  for (auto d : row_shape)
    if (d == 0) return;  // zero-width coordinates (e.g. no continuous part) are not stored
  log.append(group, name, dtype, row_shape, t.data_ptr(), t.size(0));
}

void append_samples(Hdf5Log& log, const Trajectories& tr) {
  append_tensor(log, "samples", "states_discrete", tr.terminal_discrete);
  append_tensor(log, "samples", "states_continuous", tr.terminal_continuous);
  append_tensor(log, "samples", "log_reward", tr.log_reward);
  append_tensor(log, "samples", "length", tr.length);
  append_tensor(log, "samples", "trajectory_log_pf", tr.log_pf_sampled.sum(0));
}

namespace {

// The common /train columns, declared and written from this one list.
using Column = std::pair<const char*, std::function<double(const TrainRowInputs&, const IterationResult&)>>;

const std::vector<Column>& train_columns() {
  static const std::vector<Column> columns = {
      {"iteration", [](const TrainRowInputs& in, const IterationResult&) { return static_cast<double>(in.iteration); }},
      {"trajectories",
       [](const TrainRowInputs& in, const IterationResult&) { return static_cast<double>(in.trajectories); }},
      {"wall_s", [](const TrainRowInputs& in, const IterationResult&) { return in.wall_s; }},
      {"loss", [](const TrainRowInputs&, const IterationResult& r) { return r.loss.item<double>(); }},
      {"log_z", [](const TrainRowInputs& in, const IterationResult&) { return in.log_z; }},
      {"lr", [](const TrainRowInputs& in, const IterationResult&) { return in.lr; }},
      {"grad_norm", [](const TrainRowInputs&, const IterationResult& r) { return r.grad_norm; }},
      {"mean_log_reward",
       [](const TrainRowInputs&, const IterationResult& r) { return r.trajectories.log_reward.mean().item<double>(); }},
      {"max_log_reward",
       [](const TrainRowInputs&, const IterationResult& r) { return r.trajectories.log_reward.max().item<double>(); }},
      {"mean_length", [](const TrainRowInputs&, const IterationResult& r) {
         return r.trajectories.length.to(torch::kFloat64).mean().item<double>();
       }},
      {"nonfinite_skips",
       [](const TrainRowInputs& in, const IterationResult&) { return static_cast<double>(in.nonfinite_skips); }}};
  return columns;
}

}  // namespace

TrainLog::TrainLog(Hdf5Log& log, const LogOptions& options, std::vector<std::string> component_metrics)
    : log_(log),
      options_(options),
      component_metrics_(std::move(component_metrics)),
      last_flush_(std::chrono::steady_clock::now()) {
  options_.validate();
}

void TrainLog::declare() {
  std::vector<std::string> names;
  for (const auto& [name, value] : train_columns()) names.push_back(name);
  names.insert(names.end(), component_metrics_.begin(), component_metrics_.end());
  log_.declare_columns("train", names);
}

bool TrainLog::row_due(int64_t iteration, bool last) const { return iteration % options_.every == 0 || last; }

void TrainLog::write_row(const TrainRowInputs& inputs, const IterationResult& r) {
  std::vector<std::pair<std::string, double>> row;
  for (const auto& [name, value] : train_columns()) row.emplace_back(name, value(inputs, r));
  for (size_t i = 0; i < component_metrics_.size() && i < r.metrics.size(); ++i)
    row.emplace_back(component_metrics_[i], r.metrics[i].item<double>());
  log_.append_row("train", row);
}

void TrainLog::write_trajectories(int64_t iteration, const IterationResult& r) {
  if (options_.trajectories_every <= 0 || iteration % options_.trajectories_every != 0) return;
  const auto& tr = r.trajectories;
  const int64_t n = std::min(options_.trajectories_count, tr.batch_size());
  auto first = [n](const torch::Tensor& t) { return t.narrow(1, 0, n).transpose(0, 1); };
  append_tensor(log_, "trajectories", "iteration", torch::full({n}, iteration, torch::kInt64));
  append_tensor(log_, "trajectories", "length", tr.length.narrow(0, 0, n));
  append_tensor(log_, "trajectories", "states_discrete", first(tr.states_discrete));
  append_tensor(log_, "trajectories", "states_continuous", first(tr.states_continuous));
  append_tensor(log_, "trajectories", "states_is_sink", first(tr.is_sink));
  append_tensor(log_, "trajectories", "action_component", first(tr.action_component));
  append_tensor(log_, "trajectories", "action_coords", first(tr.action_coords));
  append_tensor(log_, "trajectories", "log_pf", first(r.log_pf));
  append_tensor(log_, "trajectories", "log_pb", first(r.log_pb));
  append_tensor(log_, "trajectories", "log_reward", tr.log_reward.narrow(0, 0, n));
}

void TrainLog::flush() {
  log_.flush();
  last_flush_ = std::chrono::steady_clock::now();
}

void TrainLog::flush_if_due(bool wrote_row) {
  const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_flush_).count();
  if (wrote_row && since >= options_.flush_seconds) flush();
}

}  // namespace gfn

#include "core/condition.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>
#include <torch/torch.h>

namespace gfn {

template <>
const EnumNames<ConditionDistribution>& enum_names<ConditionDistribution>() {
  static const EnumNames<ConditionDistribution> names{{ConditionDistribution::kUniform, "uniform"},
                                                      {ConditionDistribution::kLogUniform, "log_uniform"}};
  return names;
}

const OptionTable<ConditionOptions>& ConditionOptions::keys() {
  using O = ConditionOptions;
  static const auto table =
      OptionTable<O>()
          .add("condition.parameters", &O::parameters,
               "conditional GFlowNet: the reward parameters drawn per trajectory and fed to every network, "
               "comma-separated: beta (log R -> beta log R, any env) and the env's own (hypergrid: r0, r1, r2); "
               "\"\": unconditional")
          .add("condition.low", &O::low, "lower bound of each condition parameter, comma-separated (e.g. \"0.5\")")
          .add("condition.high", &O::high, "upper bound of each condition parameter, comma-separated (e.g. \"2\")")
          .add("condition.distribution", &O::distribution,
               "how each trajectory's condition is drawn: uniform on [low, high] or log_uniform (low > 0), "
               "independently per parameter")
          .add("condition.eval", &O::eval,
               "conditions evaluated at every evaluation (exact TV and log Z(c) on enumerable envs, log Z_IS "
               "otherwise): conditions separated by ';', their parameters by ',' (e.g. \"0.5; 1; 2\")")
          .add("condition.hidden", &O::hidden, "log Z(c) network: width of each hidden layer", in(1, 4096))
          .add("condition.layers", &O::layers, "log Z(c) network: hidden layers", in(1, 8));
  return table;
}

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const auto end = s.find(sep, start);
    out.push_back(trim(s.substr(start, end == std::string::npos ? std::string::npos : end - start)));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

// `text`'s comma-separated numbers, `count` of them; ConfigError naming `what` otherwise.
std::vector<double> parse_numbers(const std::string& text, size_t count, const std::string& what,
                                  const std::string& names) {
  const auto parts = split(text, ',');
  if (parts.size() != count)
    throw ConfigError(fmt::format("{} = \"{}\": expected {} comma-separated number{}, one per parameter ({})", what,
                                  text, count, count == 1 ? "" : "s", names));
  std::vector<double> out;
  for (const auto& p : parts) {
    errno = 0;
    char* end = nullptr;
    const double v = p.empty() ? 0.0 : std::strtod(p.c_str(), &end);
    if (p.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
      throw ConfigError(fmt::format("{} = \"{}\": \"{}\" is not a finite number", what, text, p));
    out.push_back(v);
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

std::vector<double> ConditionSpec::parse(const std::string& text, const std::string& what) const {
  auto c = parse_numbers(text, names.size(), what, join(names));
  for (size_t i = 0; i < c.size(); ++i)
    if (c[i] < low[i] || c[i] > high[i])
      throw ConfigError(fmt::format("{} = \"{}\": {} = {} lies outside the trained range [{}, {}] (condition.low, "
                                    "condition.high)",
                                    what, text, names[i], c[i], low[i], high[i]));
  return c;
}

ConditionSpec parse_condition(const ConditionOptions& o, const Env& env) {
  ConditionSpec spec;
  spec.distribution = o.distribution;
  const auto own = env.reward_parameters();
  for (const auto& name : split(o.parameters, ',')) {
    if (name != "beta" && std::find(own.begin(), own.end(), name) == own.end())
      throw ConfigError(fmt::format("condition.parameters = \"{}\": \"{}\" is not a reward parameter of env '{}' "
                                    "(expected beta{}{})",
                                    o.parameters, name, env.name(), own.empty() ? "" : ", ", join(own)));
    if (std::find(spec.names.begin(), spec.names.end(), name) != spec.names.end())
      throw ConfigError(fmt::format("condition.parameters = \"{}\": \"{}\" named twice", o.parameters, name));
    spec.names.push_back(name);
  }
  const std::string names = join(spec.names);
  spec.low = parse_numbers(o.low, spec.names.size(), "condition.low", names);
  spec.high = parse_numbers(o.high, spec.names.size(), "condition.high", names);
  for (size_t i = 0; i < spec.names.size(); ++i) {
    if (spec.low[i] > spec.high[i])
      throw ConfigError(fmt::format("condition.low = \"{}\": {} = {} is above condition.high's {}", o.low,
                                    spec.names[i], spec.low[i], spec.high[i]));
    // beta > 0 keeps R^beta a reward; the env's parameters (R0, R1, R2) are scales of a reward
    if (spec.low[i] <= 0)
      throw ConfigError(fmt::format("condition.low = \"{}\": {} = {}: expected > 0 (every condition parameter is "
                                    "a positive exponent or scale)",
                                    o.low, spec.names[i], spec.low[i]));
  }
  if (trim(o.eval).empty()) {
    throw ConfigError("condition.eval = \"" + o.eval + "\": expected at least one condition to evaluate (e.g. \"" + o.low + "\")");
  }
  for (const auto& text : split(o.eval, ';')) spec.eval.push_back(spec.parse(text, "condition.eval"));
  return spec;
}

ConditionedEnv::ConditionedEnv(std::shared_ptr<const Env> base, ConditionSpec spec)
    : base_(std::move(base)), spec_(std::move(spec)) {
  for (int64_t i = 0; i < spec_.size(); ++i) {
    if (spec_.names[i] == "beta") {
      beta_ = i;
    } else {
      env_names_.push_back(spec_.names[i]);
      env_columns_.push_back(i);
    }
  }
  low_ = torch::tensor(spec_.low, torch::kFloat64);
  high_ = torch::tensor(spec_.high, torch::kFloat64);
  const bool log = spec_.distribution == ConditionDistribution::kLogUniform;
  auto lo = log ? low_.log() : low_, hi = log ? high_.log() : high_;
  centre_ = (lo + hi) / 2;
  half_ = ((hi - lo) / 2).clamp_min(1e-300);  // a range of one point: feature 0
}

std::unique_ptr<ConditionedEnv> ConditionedEnv::at(const std::vector<double>& c) const {
  auto view = std::make_unique<ConditionedEnv>(base_, spec_);
  view->fixed_ = c;
  if (base_->enumerable() && base_->num_states() <= (int64_t{1} << 22)) {
    const auto states = view->enumerate_states(torch::kCPU);
    const int64_t exit = action_spec().forward.exit;
    auto terminal = view->forward_mask(states).select(1, exit);
    auto lr = view->log_reward(states).to(torch::kFloat64).masked_select(terminal);
    view->log_partition_ = lr.logsumexp(0).item<double>();
  }
  return view;
}

States ConditionedEnv::strip(const States& s) const {
  return {s.discrete, s.continuous.narrow(1, 0, base_->continuous_dim()), s.is_initial, s.is_sink};
}

States ConditionedEnv::with_condition(const States& s, const torch::Tensor& c) const {
  return {s.discrete, torch::cat({s.continuous.to(torch::kFloat64), c}, 1), s.is_initial, s.is_sink};
}

torch::Tensor ConditionedEnv::condition(const States& states) const {
  return states.continuous.narrow(1, base_->continuous_dim(), spec_.size());
}

States ConditionedEnv::initial_states(int64_t batch, const torch::Device& device) const {
  std::vector<double> c = fixed_.value_or(std::vector<double>{});
  if (!fixed_) {
    for (int64_t i = 0; i < spec_.size(); ++i)
      c.push_back(spec_.distribution == ConditionDistribution::kLogUniform ? std::sqrt(spec_.low[i] * spec_.high[i])
                                                                          : 0.5 * (spec_.low[i] + spec_.high[i]));
  }
  auto row = torch::tensor(c, torch::TensorOptions().dtype(torch::kFloat64)).to(device);
  return with_condition(base_->initial_states(batch, device), row.unsqueeze(0).expand({batch, spec_.size()}));
}

States ConditionedEnv::draw_initial_states(int64_t batch, torch::Generator& generator,
                                           const torch::Device& device) const {
  if (fixed_) return initial_states(batch, device);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  auto u = torch::rand({batch, spec_.size()}, generator, f64);
  auto lo = low_.to(device), hi = high_.to(device);
  torch::Tensor c = spec_.distribution == ConditionDistribution::kLogUniform
                        ? (lo.log() + (hi.log() - lo.log()) * u).exp()
                        : lo + (hi - lo) * u;
  return with_condition(base_->initial_states(batch, device), c);
}

torch::Tensor ConditionedEnv::condition_features(const States& states) const {
  auto c = condition(states).to(torch::kFloat64);
  if (spec_.distribution == ConditionDistribution::kLogUniform) c = c.log();
  // into [-1, 1] over the trained range
  return ((c - centre_.to(c.device())) / half_.to(c.device())).to(torch::kFloat32);
}

torch::Tensor ConditionedEnv::features(const States& states) const {
  return torch::cat({base_->features(strip(states)), condition_features(states)}, 1);
}

StepResult ConditionedEnv::step(const States& states, const Actions& actions) const {
  StepResult r = base_->step(strip(states), actions);
  r.next = with_condition(r.next, condition(states));
  return r;
}

StepResult ConditionedEnv::backward_step(const States& states, const Actions& actions) const {
  StepResult r = base_->backward_step(strip(states), actions);
  r.next = with_condition(r.next, condition(states));
  return r;
}

torch::Tensor ConditionedEnv::log_reward(const States& states) const {
  const States own = strip(states);
  auto c = condition(states);
  torch::Tensor lr = env_names_.empty()
                         ? base_->log_reward(own)
                         : base_->log_reward_given(own, env_names_,
                                                   c.index_select(1, torch::tensor(env_columns_).to(c.device())));
  if (beta_ >= 0) lr = lr * c.select(1, beta_).to(lr.scalar_type());
  return lr;
}

States ConditionedEnv::enumerate_states(const torch::Device& device) const {
  if (!enumerable()) throw std::logic_error("env '" + name() + "': a conditional env enumerates at a fixed condition");
  auto states = base_->enumerate_states(device);
  auto row = torch::tensor(*fixed_, torch::TensorOptions().dtype(torch::kFloat64)).to(device);
  return with_condition(states, row.unsqueeze(0).expand({states.batch_size(), spec_.size()}));
}

}  // namespace gfn

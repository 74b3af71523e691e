// Options that own their config keys.
//
// Every options struct of the engine (the trainer's, the policy's, each environment's, each
// objective's and component's, evaluation, logging, checkpoints) declares its config keys once,
// in an OptionTable: the key, the member it sets, the rule its value must follow and one line of
// documentation. The default of a key is the member's value in a default-constructed struct.
// Everything else is derived from that table:
//   - the ParamSpecs that io/config.h validates a TOML file and `--set` overrides against,
//   - reading a struct from validated Params (OptionTable::read),
//   - validating a struct built in code (OptionTable::validate, with the same rules),
//   - `gfn keys` and the README's key table.
// So a key's name, default and range are written in one place.
//
//     const OptionTable<SamplerOptions>& SamplerOptions::keys() {
//       static const auto table = OptionTable<SamplerOptions>()
//           .add("train.epsilon", &SamplerOptions::epsilon, "probability of a uniform choice", in(0, 1))
//           .add("train.temperature", &SamplerOptions::temperature, "logits are divided by it", above(0));
//       return table;
//     }
//
// Enums are read and written by name: specialise enum_names<E>() once beside the enum; an
// unknown name is a ConfigError that lists the accepted ones.
// Light header: no LibTorch.
#pragma once

#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/params.h"

namespace gfn {

// ---------------------------------------------------------------------------------------------
// enums by name

// The names of an enum's values, in the order `gfn keys` lists them. Specialise once per enum
// (declared beside it, defined in its .cc file):
//     template <> const EnumNames<Activation>& enum_names<Activation>();
template <typename E>
using EnumNames = std::vector<std::pair<E, std::string>>;
template <typename E>
const EnumNames<E>& enum_names();

// The accepted names of E, in order.
template <typename E>
std::vector<std::string> enum_choices() {
  std::vector<std::string> out;
  for (const auto& [value, name] : enum_names<E>()) out.push_back(name);
  return out;
}

// The name of `value`; std::logic_error for a value without one (a missing table entry).
template <typename E>
const std::string& enum_name(E value) {
  for (const auto& [v, name] : enum_names<E>())
    if (v == value) return name;
  throw std::logic_error("enum value without a name");
}

// The value named `name`; ConfigError "<what> = \"name\": expected one of ..." otherwise.
template <typename E>
E enum_value(const std::string& name, const std::string& what) {
  for (const auto& [v, n] : enum_names<E>())
    if (n == name) return v;
  throw ConfigError(what + " = " + to_toml(name) + ": expected " + one_of(enum_choices<E>()));
}

// ---------------------------------------------------------------------------------------------
// numeric rules

// The rule of a numeric key: min <= v <= max (either end strict, either infinite), and
// optionally one special value outside that range (-1 for "automatic"). NaN and +-inf never
// pass (a float key takes finite values only), except an infinity declared as the special
// value: at_most(0).or_value(-inf) reads "-inf: none".
struct Range {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  bool max_exclusive = false;
  std::optional<double> special;

  Range& at_least(double v) { return min = v, min_exclusive = false, *this; }
  Range& above(double v) { return min = v, min_exclusive = true, *this; }
  Range& at_most(double v) { return max = v, max_exclusive = false, *this; }
  Range& below(double v) { return max = v, max_exclusive = true, *this; }
  Range& or_value(double v) { return special = v, *this; }
};
inline Range at_least(double v) { return Range{}.at_least(v); }
inline Range above(double v) { return Range{}.above(v); }
inline Range at_most(double v) { return Range{}.at_most(v); }
inline Range below(double v) { return Range{}.below(v); }
inline Range in(double lo, double hi) { return Range{}.at_least(lo).at_most(hi); }  // [lo, hi]
// Any finite float (what a float key without a rule accepts too; kept to say so where it matters).
inline Range finite() {
  return Range{}.above(-std::numeric_limits<double>::infinity()).below(std::numeric_limits<double>::infinity());
}

// ---------------------------------------------------------------------------------------------
// the table

// The config keys of the options struct T (see the top of this file).
template <typename T>
class OptionTable {
 public:
  // A check over several fields of T: "" when they agree, else the whole message
  // ("env.size = 5: expected at most env.universe = 3").
  using Rule = std::function<std::string(const T&)>;

  // `title` names the struct in validate()'s messages: "HypergridOptions: key 'ndim' = 0: ..."
  // for tables of leaf keys (an env's, an objective's), or, when empty, the key alone:
  // "train.lr = 0: expected a float > 0".
  explicit OptionTable(std::string title = {}) : title_(std::move(title)) {}

  OptionTable& add(std::string key, int64_t T::*member, std::string doc, Range range = {}) {
    ParamSpec s = int_param(std::move(key), 0, std::move(doc));
    apply(range, s);
    return push(std::move(s), member);
  }
  OptionTable& add(std::string key, double T::*member, std::string doc, Range range = {}) {
    ParamSpec s = float_param(std::move(key), 0.0, std::move(doc));
    apply(range, s);
    return push(std::move(s), member);
  }
  OptionTable& add(std::string key, bool T::*member, std::string doc) {
    return push(bool_param(std::move(key), false, std::move(doc)), member);
  }
  OptionTable& add(std::string key, std::string T::*member, std::string doc, std::vector<std::string> choices = {}) {
    return push(string_param(std::move(key), "", std::move(doc), std::move(choices)), member);
  }
  template <typename E, std::enable_if_t<std::is_enum_v<E>, int> = 0>
  OptionTable& add(std::string key, E T::*member, std::string doc) {
    ParamSpec s = string_param(key, "", std::move(doc), enum_choices<E>());
    entries_.push_back({std::move(s), [member](const T& o) { return ParamValue(enum_name(o.*member)); },
                        [member, key](T& o, const ParamValue& v) {
                          o.*member = enum_value<E>(std::get<std::string>(v), key);
                        }});
    return *this;
  }
  // The keys (and rules) of a nested options struct, which set the member `member`.
  template <typename S>
  OptionTable& nest(S T::*member, const OptionTable<S>& table) {
    for (const auto& e : table.entries())
      entries_.push_back({e.spec, [member, get = e.get](const T& o) { return get(o.*member); },
                          [member, set = e.set](T& o, const ParamValue& v) { set(o.*member, v); }});
    for (const auto& rule : table.rules()) rules_.push_back([member, rule](const T& o) { return rule(o.*member); });
    return *this;
  }
  // A rule over several fields, checked by validate() after every key's own rule.
  OptionTable& rule(Rule check) {
    rules_.push_back(std::move(check));
    return *this;
  }
  // Marks the last key added as one a resumed run may change (`gfn train --resume --set`).
  OptionTable& resumable() {
    entries_.back().spec.resumable = true;
    return *this;
  }

  // The keys, their defaults taken from T{}.
  std::vector<ParamSpec> specs() const {
    const T defaults{};
    std::vector<ParamSpec> out;
    for (const auto& e : entries_) {
      ParamSpec s = e.spec;
      s.default_value = e.get(defaults);
      out.push_back(std::move(s));
    }
    return out;
  }
  // T from validated params holding every key of the table (a config section, or an env's keys
  // with their prefix removed), then validate()d.
  T read(const Params& params) const {
    T out{};
    for (const auto& e : entries_) e.set(out, params.get(e.spec.key, e.spec.type));
    validate(out);
    return out;
  }
  // ConfigError naming the first key whose value breaks its rule, the value and the rule; then
  // the first failing rule over several fields.
  void validate(const T& options) const {
    for (const auto& e : entries_) {
      const ParamValue value = e.get(options);
      const std::string problem = e.spec.check(value);
      if (problem.empty()) continue;
      const std::string what = title_.empty() ? e.spec.key + " = " : title_ + ": key '" + e.spec.key + "' = ";
      throw ConfigError(what + value_text(value) + ": " + problem);
    }
    for (const auto& rule : rules_)
      if (std::string problem = rule(options); !problem.empty()) throw ConfigError(problem);
  }
  // Every key's value in `options`.
  Params params(const T& options) const {
    Params out;
    for (const auto& e : entries_) out.set(e.spec.key, e.get(options));
    return out;
  }

  struct Entry {
    ParamSpec spec;  // its default_value is filled by specs()
    std::function<ParamValue(const T&)> get;
    std::function<void(T&, const ParamValue&)> set;
  };
  const std::vector<Entry>& entries() const { return entries_; }
  const std::vector<Rule>& rules() const { return rules_; }

 private:
  static void apply(const Range& r, ParamSpec& s) {
    s.min = r.min;
    s.max = r.max;
    s.min_exclusive = r.min_exclusive;
    s.max_exclusive = r.max_exclusive;
    s.special = r.special;
  }
  template <typename V>
  OptionTable& push(ParamSpec spec, V T::*member) {
    entries_.push_back({std::move(spec), [member](const T& o) { return ParamValue(o.*member); },
                        [member](T& o, const ParamValue& v) { o.*member = std::get<V>(v); }});
    return *this;
  }

  std::string title_;
  std::vector<Entry> entries_;
  std::vector<Rule> rules_;
};

// The common members of an options struct T that declares `static const OptionTable<T>& keys()`:
//     struct HypergridOptions : KeyedOptions<HypergridOptions> { ... };
template <typename T>
struct KeyedOptions {
  // The config keys with their defaults, rules and documentation.
  static std::vector<ParamSpec> specs() { return T::keys().specs(); }
  // The options from validated params (every key present); ConfigError for a bad value.
  static T from_params(const Params& params) { return T::keys().read(params); }
  // ConfigError naming the key of the first bad field, its value and the rule.
  void validate() const { T::keys().validate(static_cast<const T&>(*this)); }
};

}  // namespace gfn

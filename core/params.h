// Typed key/value parameters and their validation rules.
//
// A Params is the flat, validated form of a run's configuration ("train.lr" -> 1e-3). Every
// key a component accepts is declared once as a ParamSpec (type, default, range or choices,
// one line of documentation); io/config.h validates TOML text and `--set` overrides against
// the specs before any work starts, and environments read their parameters from a Params.
// Light header: no LibTorch.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace gfn {

// Thrown for every user-input error (config key, command-line argument, parameter value).
// The message names the key or argument, the value given and what was expected.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The first line of an exception's message, without LibTorch's backtrace and context lines: for
// one-line errors that wrap another ("FILE: not a gfn checkpoint (<this>)").
std::string first_line(const std::exception& e);

enum class ParamType { kBool, kInt, kFloat, kString };

// A parameter value. Integers are accepted where a float is expected.
using ParamValue = std::variant<bool, int64_t, double, std::string>;

// Renders a value as TOML would write it ("1e-3", "\"cpu\"", "true").
std::string to_toml(const ParamValue& value);
// Renders a value for a message: numbers in their shortest form ("1", "0.5", "nan", "inf"),
// strings quoted as in TOML, booleans as true / false.
std::string value_text(const ParamValue& value);
// "one of \"a\", \"b\"": the rule of a key with choices, for messages.
std::string one_of(const std::vector<std::string>& choices);
// The type's name as used in error messages ("integer", "float", "string", "boolean").
std::string type_name(ParamType type);

// One accepted key: its type, default, rule and documentation.
struct ParamSpec {
  std::string key;                 // dotted key, e.g. "train.lr"
  ParamType type = ParamType::kFloat;
  ParamValue default_value = 0.0;  // must itself pass the rule
  std::string doc;                 // one line: meaning and unit
  // numeric rule (ignored for bool/string): min <= v <= max, or strict where flagged. NaN never
  // passes, and neither do +-inf: a float key takes finite values only, unless an infinity is its
  // special value (objective.log_reward_clip = -inf: no clipping)
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  bool max_exclusive = false;
  std::vector<std::string> choices;  // string rule: value must be one of these (if non-empty)
  std::optional<double> special;     // numeric rule: one more accepted value outside [min, max] (-1: "automatic")
  bool resumable = false;            // a resumed run may change it (gfn train --resume --set)

  // Returns an empty string when `value` passes the type and rule, else the rule it breaks in
  // words, e.g. "expected a float > 0" or "expected one of \"uniform\", \"learned\"".
  std::string check(const ParamValue& value) const;
  // The rule in words ("a float > 0", "an integer in [1, 1000000]").
  std::string rule() const;
};

// Convenience constructors for specs.
ParamSpec int_param(std::string key, int64_t def, std::string doc, int64_t min = std::numeric_limits<int64_t>::min(),
                    int64_t max = std::numeric_limits<int64_t>::max());
ParamSpec float_param(std::string key, double def, std::string doc,
                      double min = -std::numeric_limits<double>::infinity(),
                      double max = std::numeric_limits<double>::infinity(), bool min_exclusive = false,
                      bool max_exclusive = false);
ParamSpec bool_param(std::string key, bool def, std::string doc);
ParamSpec string_param(std::string key, std::string def, std::string doc, std::vector<std::string> choices = {});

// Validated values by dotted key.
class Params {
 public:
  void set(const std::string& key, ParamValue value) { values_[key] = std::move(value); }
  bool has(const std::string& key) const { return values_.count(key) != 0; }

  // Typed getters; throw std::out_of_range naming the key when it is missing and
  // ConfigError when the stored type does not match.
  bool get_bool(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // accepts stored integers
  const std::string& get_string(const std::string& key) const;
  // The value as `type` holds it (an integer stored for a float key is converted); ConfigError
  // naming the key when the stored type does not match.
  ParamValue get(const std::string& key, ParamType type) const;

  // The values whose key starts with `prefix` + ".", with the prefix removed.
  Params section(const std::string& prefix) const;

  const std::map<std::string, ParamValue>& values() const { return values_; }

 private:
  const ParamValue& at(const std::string& key) const;
  std::map<std::string, ParamValue> values_;
};

// Fills defaults for keys missing from `given` and checks every value against its spec.
// Throws ConfigError naming the key, the value and the rule for the first bad value, and for
// any key in `given` that has no spec ("unknown key").
Params resolve_params(const std::vector<ParamSpec>& specs, const Params& given, const std::string& where);

}  // namespace gfn

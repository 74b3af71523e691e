#include "core/params.h"

#include <cmath>
#include <sstream>

#include <c10/util/Exception.h>
#include <fmt/format.h>

namespace gfn {

std::string first_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  const std::string text = c10 != nullptr ? c10->what_without_backtrace() : e.what();
  return text.substr(0, text.find('\n'));
}

namespace {

std::string format_number(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (std::isnan(v)) return "nan";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{:.1f}", v);
  // shortest round-trip form; "1000000000000000" would read back as an integer
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

std::string to_toml(const ParamValue& value) {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return format_number(d); }
    std::string operator()(const std::string& s) const {
      std::string out = "\"";
      for (char c : s) {
        switch (c) {
          case '"': out += "\\\""; break;
          case '\\': out += "\\\\"; break;
          case '\b': out += "\\b"; break;
          case '\t': out += "\\t"; break;
          case '\n': out += "\\n"; break;
          case '\f': out += "\\f"; break;
          case '\r': out += "\\r"; break;
          default:
            // other control characters are not allowed raw in a TOML basic string
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
              out += fmt::format("\\u{:04X}", static_cast<int>(c));
            } else {
              out += c;
            }
        }
      }
      return out + "\"";
    }
  };
  return std::visit(Visitor{}, value);
}

std::string value_text(const ParamValue& value) {
  if (const auto* d = std::get_if<double>(&value)) return fmt::format("{}", *d);
  return to_toml(value);
}

std::string type_name(ParamType type) {
  switch (type) {
    case ParamType::kBool: return "boolean";
    case ParamType::kInt: return "integer";
    case ParamType::kFloat: return "float";
    case ParamType::kString: return "string";
  }
  return "?";
}

std::string one_of(const std::vector<std::string>& choices) {
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + to_toml(c);
  return "one of " + list;
}

std::string ParamSpec::rule() const {
  std::string article = type == ParamType::kInt ? "an " : "a ";
  std::string base = article + type_name(type);
  if (type == ParamType::kString && !choices.empty()) return one_of(choices);
  if (type != ParamType::kInt && type != ParamType::kFloat) return base;
  auto num = [&](double v) {
    return type == ParamType::kInt ? std::to_string(static_cast<int64_t>(v)) : fmt::format("{}", v);
  };
  bool has_min = std::isfinite(min) && !(type == ParamType::kInt && min <= -9.2e18);
  bool has_max = std::isfinite(max) && !(type == ParamType::kInt && max >= 9.2e18);
  // strict infinite ends on both sides: any finite float
  if (type == ParamType::kFloat && !has_min && !has_max && min_exclusive && max_exclusive) base = "a finite float";
  std::string range = base;
  if (has_min && has_max) {
    range = fmt::format("{} in {}{}, {}{}", base, min_exclusive ? "(" : "[", num(min), num(max),
                        max_exclusive ? ")" : "]");
  } else if (has_min) {
    range = fmt::format("{} {} {}", base, min_exclusive ? ">" : ">=", num(min));
  } else if (has_max) {
    range = fmt::format("{} {} {}", base, max_exclusive ? "<" : "<=", num(max));
  }
  return special ? fmt::format("{}, or {}", range, num(*special)) : range;
}

std::string ParamSpec::check(const ParamValue& value) const {
  const std::string expected = "expected " + rule();
  switch (type) {
    case ParamType::kBool:
      return std::holds_alternative<bool>(value) ? "" : expected;
    case ParamType::kString: {
      if (!std::holds_alternative<std::string>(value)) return expected;
      if (choices.empty()) return "";
      for (const auto& c : choices)
        if (c == std::get<std::string>(value)) return "";
      return expected;
    }
    case ParamType::kInt:
    case ParamType::kFloat: {
      double v;
      if (std::holds_alternative<int64_t>(value)) {
        v = static_cast<double>(std::get<int64_t>(value));
      } else if (type == ParamType::kFloat && std::holds_alternative<double>(value)) {
        v = std::get<double>(value);
      } else {
        return expected;
      }
      if (std::isnan(v)) return expected;
      if (special && v == *special) return "";
      if (min_exclusive ? !(v > min) : !(v >= min)) return expected;
      if (max_exclusive ? !(v < max) : !(v <= max)) return expected;
      // a float key takes finite values only: TOML's inf would reach the maths as an overflow;
      // a key that means something by an infinity declares it as its special value
      if (std::isinf(v)) {
        std::string r = rule();
        if (r.rfind("a float", 0) == 0) r = "a finite float" + r.substr(7);
        return "expected " + r;
      }
      return "";
    }
  }
  return expected;
}

ParamSpec int_param(std::string key, int64_t def, std::string doc, int64_t min, int64_t max) {
  ParamSpec s;
  s.key = std::move(key);
  s.type = ParamType::kInt;
  s.default_value = def;
  s.doc = std::move(doc);
  s.min = static_cast<double>(min);
  s.max = static_cast<double>(max);
  return s;
}

ParamSpec float_param(std::string key, double def, std::string doc, double min, double max, bool min_exclusive,
                      bool max_exclusive) {
  ParamSpec s;
  s.key = std::move(key);
  s.type = ParamType::kFloat;
  s.default_value = def;
  s.doc = std::move(doc);
  s.min = min;
  s.max = max;
  s.min_exclusive = min_exclusive;
  s.max_exclusive = max_exclusive;
  return s;
}

ParamSpec bool_param(std::string key, bool def, std::string doc) {
  ParamSpec s;
  s.key = std::move(key);
  s.type = ParamType::kBool;
  s.default_value = def;
  s.doc = std::move(doc);
  return s;
}

ParamSpec string_param(std::string key, std::string def, std::string doc, std::vector<std::string> choices) {
  ParamSpec s;
  s.key = std::move(key);
  s.type = ParamType::kString;
  s.default_value = std::move(def);
  s.doc = std::move(doc);
  s.choices = std::move(choices);
  return s;
}

const ParamValue& Params::at(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw std::out_of_range("missing parameter '" + key + "'");
  return it->second;
}

bool Params::get_bool(const std::string& key) const {
  const auto& v = at(key);
  if (!std::holds_alternative<bool>(v)) throw ConfigError("parameter '" + key + "' is not a boolean");
  return std::get<bool>(v);
}

int64_t Params::get_int(const std::string& key) const {
  const auto& v = at(key);
  if (!std::holds_alternative<int64_t>(v)) throw ConfigError("parameter '" + key + "' is not an integer");
  return std::get<int64_t>(v);
}

double Params::get_float(const std::string& key) const {
  const auto& v = at(key);
  if (std::holds_alternative<int64_t>(v)) return static_cast<double>(std::get<int64_t>(v));
  if (!std::holds_alternative<double>(v)) throw ConfigError("parameter '" + key + "' is not a float");
  return std::get<double>(v);
}

const std::string& Params::get_string(const std::string& key) const {
  const auto& v = at(key);
  if (!std::holds_alternative<std::string>(v)) throw ConfigError("parameter '" + key + "' is not a string");
  return std::get<std::string>(v);
}

ParamValue Params::get(const std::string& key, ParamType type) const {
  switch (type) {
    case ParamType::kBool: return get_bool(key);
    case ParamType::kInt: return get_int(key);
    case ParamType::kFloat: return get_float(key);
    case ParamType::kString: return get_string(key);
  }
  throw std::logic_error("Params::get: unknown type");
}

Params Params::section(const std::string& prefix) const {
  Params out;
  const std::string p = prefix + ".";
  for (const auto& [k, v] : values_)
    if (k.compare(0, p.size(), p) == 0) out.set(k.substr(p.size()), v);
  return out;
}

Params resolve_params(const std::vector<ParamSpec>& specs, const Params& given, const std::string& where) {
  Params out;
  for (const auto& [key, value] : given.values()) {
    const ParamSpec* spec = nullptr;
    for (const auto& s : specs)
      if (s.key == key) spec = &s;
    if (spec == nullptr) {
      std::string known;
      for (const auto& s : specs) known += (known.empty() ? "" : ", ") + s.key;
      throw ConfigError(fmt::format("{}: unknown key '{}' (known keys: {})", where, key, known));
    }
    std::string problem = spec->check(value);
    if (!problem.empty())
      throw ConfigError(fmt::format("{}: key '{}' = {}: {}", where, key, to_toml(value), problem));
  }
  for (const auto& s : specs) {
    if (given.has(s.key)) {
      ParamValue v = given.values().at(s.key);
      // store integers given for float keys as floats, so typed getters see one type
      if (s.type == ParamType::kFloat && std::holds_alternative<int64_t>(v))
        v = static_cast<double>(std::get<int64_t>(v));
      out.set(s.key, v);
    } else {
      out.set(s.key, s.default_value);
    }
  }
  return out;
}

}  // namespace gfn

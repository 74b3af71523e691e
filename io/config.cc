#include "io/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <utility>

#include <fmt/format.h>
#include <toml++/toml.h>

namespace gfn {

namespace {

// A value given for a key, and where it was given (the source, or "--set key=value").
struct Entry {
  ParamValue value;
  std::string origin;
};
using Entries = std::map<std::string, Entry>;

// One `--set key=value`, split.
struct Override {
  std::string key;
  std::string text;    // the value as typed
  std::string origin;  // "--set key=value", for messages
};

// A section whose keys depend on its "<name>.kind" key.
struct KindedSection {
  std::string name;  // "env", "objective"
  const std::map<std::string, std::vector<ParamSpec>>* kinds;
};

std::vector<KindedSection> kinded_sections(const ConfigSchema& schema) {
  return {{"env", &schema.env_kinds}, {"objective", &schema.objective_kinds}};
}

const ParamSpec* find_spec(const std::vector<ParamSpec>& specs, const std::string& key) {
  for (const auto& s : specs)
    if (s.key == key) return &s;
  return nullptr;
}

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::vector<std::string> q;
  for (const auto& s : items) q.push_back(to_toml(s));
  return join(q);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// "train.lr" -> "train", "a.b.c" -> "a.b", "seed" -> "".
std::string section_of(const std::string& key) {
  size_t dot = key.rfind('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}

// "train.lr" -> "train", "seed" -> "".
std::string first_component(const std::string& key) {
  size_t dot = key.find('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// Edit distance with adjacent transpositions (optimal string alignment).
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// A key as TOML writes it: bare when it can be, else quoted.
std::string toml_key(const std::string& key) {
  bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return bare ? key : to_toml(key);
}

// A dotted key as TOML writes it ("a.b" -> "a.b", "a.b c" -> "a.\"b c\"").
std::string toml_dotted(const std::string& key) {
  std::string out;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    out += toml_key(key.substr(start, dot - start));
    if (dot == std::string::npos) break;
    out += '.';
    start = dot + 1;
  }
  return out;
}

// A documentation line fit for a TOML comment.
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  return s;
}

// Where and why TOML text failed to parse.
struct SyntaxError {
  uint32_t line, column;
  std::string description;
};

// toml++ quotes the characters it saw, control characters included ("saw 't\n'"): those are
// written as escapes, so that the error stays one line
SyntaxError syntax_error(const toml::parse_error& e) {
  std::string description;
  for (const char c : e.description()) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') description += "\\n";
    else if (c == '\r') description += "\\r";
    else if (c == '\t') description += "\\t";
    else if (u < 0x20 || u == 0x7f) description += fmt::format("\\x{:02x}", u);
    else description += c;
  }
  return {e.source().begin.line, e.source().begin.column, description};
}

// Parses TOML text into `out`; returns the syntax error if there is one.
std::optional<SyntaxError> parse_toml(std::string_view text, std::string_view source, toml::table* out) {
#if TOML_EXCEPTIONS
  try {
    *out = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return syntax_error(e);
  }
#else
  toml::parse_result result = toml::parse(text, source);
  if (!result) return syntax_error(result.error());
  *out = std::move(result).table();
#endif
  return std::nullopt;
}

// The scalar in a TOML node, or nullopt for arrays, tables, dates and times.
std::optional<ParamValue> scalar_of(const toml::node& node) {
  if (const auto* v = node.as_integer()) return ParamValue(static_cast<int64_t>(v->get()));
  if (const auto* v = node.as_floating_point()) return ParamValue(v->get());
  if (const auto* v = node.as_boolean()) return ParamValue(v->get());
  if (const auto* v = node.as_string()) return ParamValue(v->get());
  return std::nullopt;
}

// Why a non-scalar TOML node cannot be a value, with the node as text: {"[1, 2]", "arrays"}.
std::pair<std::string, std::string> describe_unsupported(const toml::node& node) {
  std::ostringstream text;
  std::string what = "values of this type";
  if (const auto* a = node.as_array()) {
    text << *a;
    what = "arrays";
  } else if (const auto* t = node.as_table()) {
    text << *t;
    what = "tables";
  } else if (const auto* d = node.as_date()) {
    text << *d;
    what = "dates";
  } else if (const auto* tm = node.as_time()) {
    text << *tm;
    what = "times";
  } else if (const auto* dt = node.as_date_time()) {
    text << *dt;
    what = "date-times";
  }
  std::string s = text.str();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return {s, what};
}

// Flattens `table` into dotted keys ("train.lr"); arrays, dates and times are errors.
void flatten(const toml::table& table, const std::string& prefix, const std::string& source, Entries* out) {
  for (auto&& [k, node] : table) {
    std::string key = prefix + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      flatten(*sub, key + ".", source, out);
      continue;
    }
    std::optional<ParamValue> value = scalar_of(node);
    if (!value) {
      auto [text, what] = describe_unsupported(node);
      throw ConfigError(fmt::format("{}: key '{}' = {}: {} are not supported here", source, key, text, what));
    }
    // a quoted dotted key ("train.lr" = 1) can collide with a table's key
    if (out->count(key)) throw ConfigError(fmt::format("{}: key '{}' is given twice", source, key));
    (*out)[key] = Entry{std::move(*value), source};
  }
}

// Splits "key=value" at the first '='.
Override split_override(const std::string& text) {
  size_t eq = text.find('=');
  std::string key = eq == std::string::npos ? "" : trim(text.substr(0, eq));
  if (key.empty()) throw ConfigError(fmt::format("--set '{}': expected key=value", text));
  return Override{key, trim(text.substr(eq + 1)), "--set " + text};
}

// The value of an override: the text read as a TOML scalar, else (or for string keys) the
// text itself with one pair of surrounding double quotes removed.
ParamValue override_value(const std::string& text, const ParamSpec* spec) {
  bool string_key = spec != nullptr && spec->type == ParamType::kString;
  toml::table parsed;
  if (!parse_toml("v = " + text, "--set", &parsed) && parsed.size() == 1) {
    if (const toml::node* node = parsed.get("v")) {
      std::optional<ParamValue> value = scalar_of(*node);
      if (value && (!string_key || std::holds_alternative<std::string>(*value))) return *value;
    }
  }
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') return text.substr(1, text.size() - 2);
  return text;
}

// A hint for a value that a common TOML slip made a string, a float or a syntax error: a float
// without a digit on one side of its point (.5, 1., 1.e-3), a decimal comma (0,5), a boolean
// not in lowercase (True); for an integer key, a whole float (1e5, 100.0); a number in quotes.
// `text` is the value as typed, `value` as read (nullptr for a syntax error), `spec` the key's
// (nullptr when unknown). "" when no slip is recognised.
std::string toml_slip_hint(const std::string& text, const ParamValue* value, const ParamSpec* spec) {
  static const std::regex leading_dot(R"(([+-]?)\.([0-9][0-9_]*([eE][+-]?[0-9]+)?))");
  static const std::regex trailing_dot(R"(([+-]?[0-9][0-9_]*)\.([eE][+-]?[0-9]+)?)");
  static const std::regex decimal_comma(R"(([+-]?[0-9]+),([0-9]+))");
  const bool numeric = spec == nullptr || spec->type == ParamType::kInt || spec->type == ParamType::kFloat;
  std::smatch m;
  if (numeric && std::regex_match(text, m, leading_dot))
    return fmt::format("TOML needs a digit before a float's point: write {}0.{}", m[1].str(), m[2].str());
  if (numeric && std::regex_match(text, m, trailing_dot))
    return fmt::format("TOML needs a digit after a float's point: write {}.0{}", m[1].str(), m[2].str());
  if (numeric && std::regex_match(text, m, decimal_comma))
    return fmt::format("TOML's decimal mark is a point: write {}.{}", m[1].str(), m[2].str());
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if ((spec == nullptr || spec->type == ParamType::kBool) && (lower == "true" || lower == "false") && lower != text)
    return fmt::format("TOML's booleans are lowercase: write {}", lower);
  if (spec == nullptr || value == nullptr) return "";
  // an integer key given a whole float: 1e5 and 100.0 are floats in TOML
  const auto* d = std::get_if<double>(value);
  if (spec->type == ParamType::kInt && d != nullptr && std::isfinite(*d) && *d == std::floor(*d) &&
      std::fabs(*d) < 9.007199254740992e15)
    return fmt::format("{} is a float in TOML: write the integer {}", text, static_cast<int64_t>(*d));
  // a number in quotes is a string
  const auto* str = std::get_if<std::string>(value);
  toml::table parsed;
  if (numeric && str != nullptr && !parse_toml("v = " + *str, "hint", &parsed) && parsed.size() == 1 &&
      (parsed.get("v")->is_integer() || parsed.get("v")->is_floating_point()))
    return fmt::format("a quoted value is a string in TOML: write {} without quotes", *str);
  return "";
}

// " (hint)" for toml_slip_hint's hint, "" without one.
std::string with_hint(const std::string& hint) { return hint.empty() ? "" : " (" + hint + ")"; }

// The value text of line `line` (1-based) of `text`: after its first '=', before a '#', trimmed.
std::string value_text_at(const std::string& text, uint32_t line) {
  std::istringstream in(text);
  std::string l;
  for (uint32_t i = 0; i < line && std::getline(in, l); ++i) {
  }
  const size_t eq = l.find('=');
  if (eq == std::string::npos) return "";
  const std::string v = l.substr(eq + 1);
  return trim(v.substr(0, v.find('#')));
}

// The names of a section's kinds: the kind key's choices first (their order), then the rest.
std::vector<std::string> kind_names(const ParamSpec* kind_spec,
                                    const std::map<std::string, std::vector<ParamSpec>>& kinds) {
  std::vector<std::string> names;
  if (kind_spec != nullptr) names = kind_spec->choices;
  for (const auto& [name, specs] : kinds)
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  return names;
}

// The specs of the common keys plus those of the chosen kinds, with their section prefix.
struct ActiveSchema {
  std::vector<ParamSpec> specs;
  std::map<std::string, std::string> kind_of;  // section name -> chosen kind, kinded sections only
};

// The kind chosen for each kinded section, checked against the schema.
ActiveSchema choose_kinds(const ConfigSchema& schema, const Entries& entries, const std::string& source) {
  ActiveSchema active;
  active.specs = schema.common;
  for (const KindedSection& section : kinded_sections(schema)) {
    const std::string kind_key = section.name + ".kind";
    const ParamSpec* spec = find_spec(schema.common, kind_key);
    if (spec == nullptr && section.kinds->empty()) continue;
    std::vector<std::string> names = kind_names(spec, *section.kinds);

    auto it = entries.find(kind_key);
    if (it == entries.end() && spec == nullptr) {
      throw ConfigError(fmt::format("{}: missing key '{}' (one of {})", source, kind_key, quoted_list(names)));
    }
    const ParamValue& value = it != entries.end() ? it->second.value : spec->default_value;
    const std::string& origin = it != entries.end() ? it->second.origin : source;
    std::string problem = spec != nullptr ? spec->check(value) : "";
    const auto* kind = std::get_if<std::string>(&value);
    if (problem.empty() && (kind == nullptr || (!section.kinds->empty() && !section.kinds->count(*kind))))
      problem = "expected one of " + quoted_list(names);
    if (!problem.empty())
      throw ConfigError(fmt::format("{}: key '{}' = {}: {}", origin, kind_key, to_toml(value), problem));

    active.kind_of[section.name] = *kind;
    // without a spec in `common` the kind key is still accepted (its value is the one given)
    if (spec == nullptr) active.specs.push_back(string_param(kind_key, *kind, "which " + section.name, names));
    auto specs = section.kinds->find(*kind);
    if (specs == section.kinds->end()) continue;
    for (ParamSpec s : specs->second) {
      s.key = section.name + "." + s.key;
      active.specs.push_back(std::move(s));
    }
  }
  return active;
}

// The message for a key that no active spec declares.
std::string unknown_key_message(const std::string& key, const std::string& origin, const ConfigSchema& schema,
                                const ActiveSchema& active) {
  // the closest known key within edit distance 2
  const ParamSpec* closest = nullptr;
  size_t best = 3;
  for (const auto& s : active.specs) {
    size_t d = edit_distance(key, s.key);
    if (d < best) best = d, closest = &s;
  }
  const std::string suggestion = closest ? fmt::format(" (did you mean '{}'?)", closest->key) : "";

  // a key of a kinded section: name the kind, and the kind the key belongs to if any
  const std::string head = first_component(key);
  for (const KindedSection& section : kinded_sections(schema)) {
    auto chosen = active.kind_of.find(section.name);
    if (head != section.name || chosen == active.kind_of.end()) continue;
    const std::string leaf = key.substr(head.size() + 1);
    std::string msg = fmt::format("{}: unknown key '{}' for {}.kind = {}", origin, key, section.name,
                                  to_toml(chosen->second));
    // the chosen kind's keys first, then the section's common keys ("kind")
    std::vector<std::string> known, owners;
    auto kind_specs = section.kinds->find(chosen->second);
    if (kind_specs != section.kinds->end())
      for (const auto& s : kind_specs->second) known.push_back(s.key);
    for (const auto& s : active.specs) {
      if (!starts_with(s.key, section.name + ".")) continue;
      std::string k = s.key.substr(section.name.size() + 1);
      if (std::find(known.begin(), known.end(), k) == known.end()) known.push_back(k);
    }
    for (const auto& [name, specs] : *section.kinds)
      if (find_spec(specs, leaf) != nullptr) owners.push_back(to_toml(name));
    if (!owners.empty()) {
      return msg + fmt::format(" (known: {}; '{}' is a key of {}.kind = {})", join(known), leaf, section.name,
                               join(owners, " or "));
    }
    return msg + (closest ? suggestion : fmt::format(" (known: {})", join(known)));
  }

  std::string msg = fmt::format("{}: unknown key '{}'", origin, key);
  if (closest) return msg + suggestion;
  const std::string section = section_of(key);
  std::vector<std::string> in_section, sections;
  for (const auto& s : active.specs) {
    std::string sec = section_of(s.key);
    if (sec == section) in_section.push_back(section.empty() ? s.key : s.key.substr(section.size() + 1));
    if (!sec.empty() && std::find(sections.begin(), sections.end(), sec) == sections.end()) sections.push_back(sec);
  }
  if (section.empty())
    return msg + fmt::format(" (known top-level keys: {}; sections: {})", join(in_section), join(sections));
  if (in_section.empty()) return msg + fmt::format(" (no section [{}]; sections: {})", section, join(sections));
  return msg + fmt::format(" (known keys in [{}]: {})", section, join(in_section));
}

using SectionGroups = std::vector<std::pair<std::string, std::vector<const ParamSpec*>>>;

// Groups specs by section, sections in order of first appearance, specs in their order.
SectionGroups group_by_section(const std::vector<ParamSpec>& specs) {
  SectionGroups groups;
  for (const auto& s : specs) {
    std::string sec = section_of(s.key);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == sec; });
    if (it == groups.end()) it = groups.insert(groups.end(), {sec, {}});
    it->second.push_back(&s);
  }
  // top-level keys first: TOML puts them before any [table]
  std::stable_partition(groups.begin(), groups.end(), [](const auto& g) { return g.first.empty(); });
  return groups;
}

// The resolved configuration as TOML: top-level keys, then one [section] per section.
std::string render_resolved(const std::vector<ParamSpec>& specs, const Params& params) {
  std::string out = "# resolved configuration: every key, defaults included\n";
  for (const auto& [section, group] : group_by_section(specs)) {
    if (!section.empty()) out += fmt::format("\n[{}]\n", toml_dotted(section));
    for (const ParamSpec* s : group) {
      const std::string leaf = section.empty() ? s->key : s->key.substr(section.size() + 1);
      out += fmt::format("{} = {}", toml_key(leaf), to_toml(params.values().at(s->key)));
      out += s->doc.empty() ? "\n" : "  # " + one_line(s->doc) + "\n";
    }
  }
  return out;
}

std::string describe_line(const ParamSpec& s, const std::string& key) {
  std::string doc = one_line(s.doc);
  return fmt::format("{} = {}  # {}{}({})\n", key, to_toml(s.default_value), doc, doc.empty() ? "" : " ", s.rule());
}

RunConfig load_config_impl(const std::string& toml_text, const std::vector<std::string>& overrides,
                           const ConfigSchema& schema, const std::string& source) {
  // syntax: the text, then the overrides' shape
  toml::table table;
  if (auto e = parse_toml(toml_text, source, &table))
    throw ConfigError(fmt::format("{}:{}:{}: TOML syntax error: {}{}", source, e->line, e->column, e->description,
                                  with_hint(toml_slip_hint(value_text_at(toml_text, e->line), nullptr, nullptr))));
  Entries entries;
  flatten(table, "", source, &entries);
  std::vector<Override> split;
  for (const auto& text : overrides) split.push_back(split_override(text));

  // overrides: the kind keys first (they decide which specs type the others), later wins
  auto is_kind_key = [&](const std::string& key) {
    for (const KindedSection& section : kinded_sections(schema))
      if (key == section.name + ".kind") return true;
    return false;
  };
  for (const Override& o : split)
    if (is_kind_key(o.key)) entries[o.key] = Entry{override_value(o.text, find_spec(schema.common, o.key)), o.origin};
  ActiveSchema typing = choose_kinds(schema, entries, source);
  for (const Override& o : split)
    if (!is_kind_key(o.key)) entries[o.key] = Entry{override_value(o.text, find_spec(typing.specs, o.key)), o.origin};

  // kinds, then unknown keys, then types and ranges
  ActiveSchema active = choose_kinds(schema, entries, source);
  for (const auto& [key, entry] : entries)
    if (find_spec(active.specs, key) == nullptr)
      throw ConfigError(unknown_key_message(key, entry.origin, schema, active));
  Params given;
  for (const auto& [key, entry] : entries) {
    const ParamSpec* spec = find_spec(active.specs, key);
    std::string problem = spec->check(entry.value);
    if (!problem.empty()) {
      // the value as typed: an override's text, else the value as TOML writes it
      const std::string typed = starts_with(entry.origin, "--set ") ? trim(entry.origin.substr(entry.origin.find('=') + 1))
                                                                    : to_toml(entry.value);
      throw ConfigError(fmt::format("{}: key '{}' = {}: {}{}", entry.origin, key, to_toml(entry.value), problem,
                                    with_hint(toml_slip_hint(typed, &entry.value, spec))));
    }
    given.set(key, entry.value);
  }

  RunConfig config;
  config.params = resolve_params(active.specs, given, source);
  config.resolved_toml = render_resolved(active.specs, config.params);
  return config;
}

}  // namespace

RunConfig load_config(const std::string& toml_text, const std::vector<std::string>& overrides,
                      const ConfigSchema& schema, const std::string& source) {
  try {
    return load_config_impl(toml_text, overrides, schema, source);
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("{}: {}", source, e.what()));
  } catch (...) {
    throw ConfigError(fmt::format("{}: unexpected error while reading the configuration", source));
  }
}

RunConfig load_config_file(const std::string& path, const std::vector<std::string>& overrides,
                           const ConfigSchema& schema) {
  std::string text;
  try {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
      throw ConfigError(fmt::format("cannot read config file '{}': it is a directory", path));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(fmt::format("cannot read config file '{}': no such file or not readable", path));
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) throw ConfigError(fmt::format("cannot read config file '{}': read error", path));
    text = buffer.str();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw ConfigError(fmt::format("cannot read config file '{}': {}", path, e.what()));
  }
  return load_config(text, overrides, schema, path);
}

namespace {

// Calls `section(title)` then `key(spec, dotted key)` for every key of the schema: the common
// sections in order, each kinded section's kinds after it.
void walk_schema(const ConfigSchema& schema, const std::function<void(const std::string&)>& section,
                 const std::function<void(const ParamSpec&, const std::string&)>& key) {
  auto kinded = kinded_sections(schema);
  std::vector<std::string> described;  // kinded sections already listed
  auto describe_kinds = [&](const KindedSection& k) {
    const ParamSpec* kind_spec = find_spec(schema.common, k.name + ".kind");
    for (const std::string& kind : kind_names(kind_spec, *k.kinds)) {
      section(fmt::format("[{}] for {}.kind = {}", k.name, k.name, to_toml(kind)));
      auto specs = k.kinds->find(kind);
      if (specs != k.kinds->end())
        for (const ParamSpec& s : specs->second) key(s, k.name + "." + s.key);
    }
    described.push_back(k.name);
  };
  for (const auto& [name, group] : group_by_section(schema.common)) {
    section(name.empty() ? "top-level" : "[" + name + "]");
    for (const ParamSpec* s : group) key(*s, s->key);
    for (const KindedSection& k : kinded)
      if (k.name == name) describe_kinds(k);
  }
  for (const KindedSection& k : kinded)
    if (!k.kinds->empty() && std::find(described.begin(), described.end(), k.name) == described.end())
      describe_kinds(k);
}

// Text fit for a Markdown table cell.
std::string cell(std::string s) {
  s = one_line(s);
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : c == '<' ? std::string("&lt;") : std::string(1, c);
  return out;
}

}  // namespace

std::string describe_schema(const ConfigSchema& schema) {
  std::string out;
  bool first = true, empty = false;
  walk_schema(
      schema,
      [&](const std::string& title) {
        if (empty) out += "# (no keys)\n";
        out += fmt::format("{}# {}\n", first ? "" : "\n", title);
        first = false;
        empty = title.rfind("[", 0) == 0 && title.find(" for ") != std::string::npos;
      },
      [&](const ParamSpec& s, const std::string& key) {
        out += describe_line(s, key);
        empty = false;
      });
  if (empty) out += "# (no keys)\n";
  return out;
}

std::string describe_schema_markdown(const ConfigSchema& schema) {
  std::string out;
  bool empty = false;
  walk_schema(
      schema,
      [&](const std::string& title) {
        if (empty) out += "| (no keys) | | | |\n";
        out += fmt::format("{}**{}**\n\n| key | default | rule | meaning |\n|---|---|---|---|\n",
                           out.empty() ? "" : "\n", title);
        empty = true;
      },
      [&](const ParamSpec& s, const std::string& key) {
        out += fmt::format("| `{}` | `{}` | {} | {} |\n", key, to_toml(s.default_value), cell(s.rule()), cell(s.doc));
        empty = false;
      });
  if (empty) out += "| (no keys) | | | |\n";
  return out;
}

std::string override_key(const std::string& text) { return split_override(text).key; }

}  // namespace gfn

// Run configuration: TOML text plus `--set key=value` overrides, validated against a schema.
//
// A run's configuration is a TOML document whose tables flatten to dotted keys
// (`[train] lr = 1e-3` is "train.lr"). Every key is declared in a ConfigSchema as a ParamSpec;
// the keys of the [env] and [objective] sections depend on the chosen `env.kind` and
// `objective.kind`. load_config checks everything before any work starts and reports the first
// problem as a ConfigError naming the source, the key, the value and what was expected.
// Light header: no LibTorch, no toml++.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/params.h"

namespace gfn {

// The keys a run accepts. `common` holds dotted keys such as "seed", "train.lr", "env.kind",
// "objective.kind". The keys of env.kind = K are env_kinds[K] (spec keys WITHOUT the "env."
// prefix, e.g. "ndim"), likewise objective_kinds for objective.kind (without "objective.").
struct ConfigSchema {
  std::vector<ParamSpec> common;
  std::map<std::string, std::vector<ParamSpec>> env_kinds;
  std::map<std::string, std::vector<ParamSpec>> objective_kinds;
};

// A validated run configuration.
struct RunConfig {
  // Every key of the schema that applies (common keys and those of the chosen kinds), defaults
  // filled, validated; env/objective keys carry their "env."/"objective." prefix.
  Params params;
  // The full resolved config as TOML text (all keys, defaults included, one `key = value  # doc`
  // line each), which load_config reads back to the identical Params.
  std::string resolved_toml;
};

// The key of an override "key=value" (trimmed, as load_config reads it); ConfigError naming the
// override when there is no key.
std::string override_key(const std::string& text);

// Parses TOML text, applies overrides ("key=value", in order, later wins) and validates
// everything: syntax, then env.kind / objective.kind, then that every key is known (for the
// chosen kinds), then types and ranges. `source` names the text in messages (a file path, or
// "<string>"); errors from an override name the override ("--set train.lr=abc: ...").
// An override's value is read as a TOML value; when that fails, or when the key is a string
// key, the raw text is the string (one pair of surrounding double quotes removed).
// Throws ConfigError for every problem; nothing else escapes.
RunConfig load_config(const std::string& toml_text, const std::vector<std::string>& overrides,
                      const ConfigSchema& schema, const std::string& source);

// Reads the file at `path`, then load_config with `path` as the source. A missing or unreadable
// file is a ConfigError naming the path.
RunConfig load_config_file(const std::string& path, const std::vector<std::string>& overrides,
                           const ConfigSchema& schema);

// The schema rendered as documentation: one line per key, `key = default  # doc (rule)`, with
// the full dotted key, grouped by section; the keys of each env/objective kind listed per kind.
std::string describe_schema(const ConfigSchema& schema);
// The same as Markdown: one table (key, default, rule, meaning) per section and per kind, as the
// README's key tables (`gfn keys --markdown`; a test holds the README to it).
std::string describe_schema_markdown(const ConfigSchema& schema);

}  // namespace gfn

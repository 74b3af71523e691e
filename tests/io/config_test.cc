#include "io/config.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace gfn {
namespace {

ConfigSchema test_schema() {
  ConfigSchema schema;
  schema.common = {
      int_param("seed", 0, "random seed", 0),
      string_param("device", "cpu", "torch device"),
      float_param("train.lr", 1e-3, "learning rate", 0.0, std::numeric_limits<double>::infinity(), true),
      int_param("train.iterations", 1000, "training iterations", 1),
      string_param("env.kind", "hypergrid", "environment", {"hypergrid", "box"}),
      string_param("objective.kind", "tb", "training objective", {"tb"}),
  };
  schema.env_kinds["hypergrid"] = {
      int_param("ndim", 2, "dimensions", 1, 16),
      int_param("height", 8, "cells per dimension", 2),
      float_param("r0", 1e-2, "base reward", 0.0, std::numeric_limits<double>::infinity(), true),
  };
  schema.env_kinds["box"] = {int_param("dim", 2, "dimensions", 1)};
  schema.objective_kinds["tb"] = {float_param("log_reward_clip", -100.0, "lower clip of log rewards")};
  return schema;
}

RunConfig load(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return load_config(text, overrides, test_schema(), "config.toml");
}

// The message of the ConfigError that loading throws ("" when it does not throw).
std::string load_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    load(text, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_CONTAINS(haystack, needle)                                          \
  do {                                                                             \
    const std::string h_ = (haystack);                                             \
    EXPECT_NE(h_.find(needle), std::string::npos) << "'" << needle << "' not in: " << h_; \
  } while (0)

TEST(ConfigTest, FillsDefaults) {
  Params p = load("").params;
  EXPECT_EQ(p.get_int("seed"), 0);
  EXPECT_EQ(p.get_string("device"), "cpu");
  EXPECT_DOUBLE_EQ(p.get_float("train.lr"), 1e-3);
  EXPECT_EQ(p.get_int("train.iterations"), 1000);
  EXPECT_EQ(p.get_string("env.kind"), "hypergrid");
  EXPECT_EQ(p.get_int("env.ndim"), 2);
  EXPECT_EQ(p.get_int("env.height"), 8);
  EXPECT_DOUBLE_EQ(p.get_float("objective.log_reward_clip"), -100.0);
  EXPECT_FALSE(p.has("env.dim"));  // a key of the other kind
  EXPECT_EQ(p.values().size(), 10u);
}

TEST(ConfigTest, FlattensTables) {
  Params p = load("seed = 7\n[train]\nlr = 0.5\n[env]\nndim = 4\n").params;
  EXPECT_EQ(p.get_int("seed"), 7);
  EXPECT_DOUBLE_EQ(p.get_float("train.lr"), 0.5);
  EXPECT_EQ(p.get_int("env.ndim"), 4);
  // dotted keys are the same keys
  EXPECT_EQ(load("train.iterations = 5\n").params.get_int("train.iterations"), 5);
}

TEST(ConfigTest, DeeperTablesFlattenToDottedKeys) {
  EXPECT_CONTAINS(load_error("[a.b]\nc = 1\n"), "config.toml: unknown key 'a.b.c'");
}

TEST(ConfigTest, AcceptsIntegerForFloat) {
  Params p = load("[train]\nlr = 2\n").params;
  EXPECT_DOUBLE_EQ(p.get_float("train.lr"), 2.0);
  EXPECT_TRUE(std::holds_alternative<double>(p.values().at("train.lr")));
}

TEST(ConfigTest, UnknownKeySuggestsClosest) {
  EXPECT_EQ(load_error("[train]\nlrr = 0.1\n"), "config.toml: unknown key 'train.lrr' (did you mean 'train.lr'?)");
  EXPECT_CONTAINS(load_error("sede = 1\n"), "unknown key 'sede' (did you mean 'seed'?)");
}

TEST(ConfigTest, UnknownKeyWithoutCloseMatchListsSectionKeys) {
  EXPECT_EQ(load_error("[train]\nmomentum = 0.9\n"),
            "config.toml: unknown key 'train.momentum' (known keys in [train]: lr, iterations)");
  EXPECT_CONTAINS(load_error("verbosity = 3\n"), "known top-level keys: seed, device");
  EXPECT_CONTAINS(load_error("[model]\nwidth = 3\n"), "unknown key 'model.width' (no section [model]");
}

TEST(ConfigTest, WrongType) {
  EXPECT_EQ(load_error("seed = \"x\"\n"), "config.toml: key 'seed' = \"x\": expected an integer >= 0");
  EXPECT_EQ(load_error("[train]\niterations = 1.5\n"),
            "config.toml: key 'train.iterations' = 1.5: expected an integer >= 1");
  EXPECT_EQ(load_error("device = true\n"), "config.toml: key 'device' = true: expected a string");
}

TEST(ConfigTest, OutOfRange) {
  EXPECT_EQ(load_error("[train]\nlr = -1.0\n"), "config.toml: key 'train.lr' = -1.0: expected a float > 0");
  EXPECT_EQ(load_error("[env]\nndim = 17\n"), "config.toml: key 'env.ndim' = 17: expected an integer in [1, 16]");
}

TEST(ConfigTest, UnknownEnvKindListsKinds) {
  EXPECT_EQ(load_error("[env]\nkind = \"hypergrd\"\n"),
            "config.toml: key 'env.kind' = \"hypergrd\": expected one of \"hypergrid\", \"box\"");
}

TEST(ConfigTest, KindIsCheckedBeforeOtherKeys) {
  EXPECT_CONTAINS(load_error("[env]\nkind = \"cube\"\nbogus = 1\n"), "key 'env.kind' = \"cube\"");
}

TEST(ConfigTest, EnvKeyOfOtherKind) {
  std::string msg = load_error("[env]\ndim = 3\n");
  EXPECT_CONTAINS(msg, "config.toml: unknown key 'env.dim' for env.kind = \"hypergrid\" (known: ndim, height, r0");
  EXPECT_CONTAINS(msg, "'dim' is a key of env.kind = \"box\"");
  EXPECT_EQ(load_error("[env]\nkind = \"box\"\nfoo = 1\n"),
            "config.toml: unknown key 'env.foo' for env.kind = \"box\" (known: dim, kind)");
  EXPECT_CONTAINS(load_error("[env]\nndimm = 3\n"), "(did you mean 'env.ndim'?)");
}

TEST(ConfigTest, SelectsEnvKind) {
  Params p = load("[env]\nkind = \"box\"\ndim = 5\n").params;
  EXPECT_EQ(p.get_int("env.dim"), 5);
  EXPECT_FALSE(p.has("env.ndim"));
}

TEST(ConfigTest, KindKeyWithoutCommonSpecMustBeGiven) {
  ConfigSchema schema = test_schema();
  schema.common.pop_back();  // objective.kind
  std::string msg;
  try {
    load_config("", {}, schema, "<string>");
  } catch (const ConfigError& e) {
    msg = e.what();
  }
  EXPECT_EQ(msg, "<string>: missing key 'objective.kind' (one of \"tb\")");
  RunConfig config = load_config("[objective]\nkind = \"tb\"\n", {}, schema, "<string>");
  EXPECT_EQ(config.params.get_string("objective.kind"), "tb");
  EXPECT_EQ(load_config(config.resolved_toml, {}, schema, "x").params.values(), config.params.values());
}

TEST(ConfigTest, OverridesParseTomlValues) {
  Params p = load("[train]\nlr = 0.5\n", {"train.lr=0.25", "seed=42", "train.iterations = 3"}).params;
  EXPECT_DOUBLE_EQ(p.get_float("train.lr"), 0.25);
  EXPECT_EQ(p.get_int("seed"), 42);
  EXPECT_EQ(p.get_int("train.iterations"), 3);
  // an integer for a float key
  EXPECT_DOUBLE_EQ(load("", {"train.lr=1"}).params.get_float("train.lr"), 1.0);
}

TEST(ConfigTest, OverridesLaterWins) {
  EXPECT_EQ(load("", {"seed=1", "seed=2"}).params.get_int("seed"), 2);
}

TEST(ConfigTest, OverridesStrings) {
  EXPECT_EQ(load("", {"device=cuda:0"}).params.get_string("device"), "cuda:0");
  EXPECT_EQ(load("", {"device=\"cuda\""}).params.get_string("device"), "cuda");
  EXPECT_EQ(load("", {"device=123"}).params.get_string("device"), "123");  // a string key keeps the text
  EXPECT_EQ(load("", {"device=true"}).params.get_string("device"), "true");
  EXPECT_EQ(load("", {"device=\"a\\q\""}).params.get_string("device"), "a\\q");  // not TOML: quotes stripped
}

TEST(ConfigTest, OverridesBool) {
  ConfigSchema schema = test_schema();
  schema.common.push_back(bool_param("train.amp", false, "mixed precision"));
  EXPECT_TRUE(load_config("", {"train.amp=true"}, schema, "<string>").params.get_bool("train.amp"));
  std::string msg;
  try {
    load_config("", {"train.amp=yes"}, schema, "<string>");
  } catch (const ConfigError& e) {
    msg = e.what();
  }
  EXPECT_EQ(msg, "--set train.amp=yes: key 'train.amp' = \"yes\": expected a boolean");
}

TEST(ConfigTest, OverrideErrorsNameTheOverride) {
  EXPECT_EQ(load_error("", {"train.lr=abc"}), "--set train.lr=abc: key 'train.lr' = \"abc\": expected a float > 0");
  EXPECT_EQ(load_error("", {"train.lrr=0.1"}),
            "--set train.lrr=0.1: unknown key 'train.lrr' (did you mean 'train.lr'?)");
}

TEST(ConfigTest, OverrideChangesEnvKind) {
  Params p = load("[env]\nkind = \"hypergrid\"\n", {"env.dim=4", "env.kind=box"}).params;
  EXPECT_EQ(p.get_string("env.kind"), "box");
  EXPECT_EQ(p.get_int("env.dim"), 4);
  EXPECT_FALSE(p.has("env.ndim"));
  // a key of the previous kind is reported, not dropped
  EXPECT_CONTAINS(load_error("[env]\nndim = 3\n", {"env.kind=box"}),
                  "config.toml: unknown key 'env.ndim' for env.kind = \"box\"");
  EXPECT_EQ(load_error("", {"env.kind=cube"}),
            "--set env.kind=cube: key 'env.kind' = \"cube\": expected one of \"hypergrid\", \"box\"");
}

// the common TOML slips get a hint with the value as TOML writes it: a float without a digit on
// one side of its point, a decimal comma, a capitalised boolean, a whole float for an integer
// key, a quoted number; in a file too, where a slip is a syntax error
TEST(ConfigTest, TomlSlipsGetAHint) {
  EXPECT_EQ(load_error("", {"train.lr=.5"}),
            "--set train.lr=.5: key 'train.lr' = \".5\": expected a float > 0 (TOML needs a digit before a float's "
            "point: write 0.5)");
  EXPECT_CONTAINS(load_error("", {"train.lr=-.5e-3"}), "(TOML needs a digit before a float's point: write -0.5e-3)");
  EXPECT_EQ(load_error("", {"train.lr=1."}),
            "--set train.lr=1.: key 'train.lr' = \"1.\": expected a float > 0 (TOML needs a digit after a float's "
            "point: write 1.0)");
  EXPECT_CONTAINS(load_error("", {"train.lr=1.e-3"}), "(TOML needs a digit after a float's point: write 1.0e-3)");
  EXPECT_CONTAINS(load_error("", {"train.lr=0,5"}), "(TOML's decimal mark is a point: write 0.5)");
  EXPECT_EQ(load_error("", {"train.iterations=1e5"}),
            "--set train.iterations=1e5: key 'train.iterations' = 100000.0: expected an integer >= 1 (1e5 is a float "
            "in TOML: write the integer 100000)");
  EXPECT_EQ(load_error("[train]\niterations = 200.0\n"),
            "config.toml: key 'train.iterations' = 200.0: expected an integer >= 1 (200.0 is a float in TOML: write "
            "the integer 200)");
  EXPECT_EQ(load_error("[train]\nlr = \"0.5\"\n"),
            "config.toml: key 'train.lr' = \"0.5\": expected a float > 0 (a quoted value is a string in TOML: write "
            "0.5 without quotes)");
  // in a file, .5 and True do not parse: the syntax error carries the hint
  std::string msg = load_error("[train]\nlr = .5  # a comment\n");
  EXPECT_EQ(msg.rfind("config.toml:2:", 0), 0u) << msg;
  EXPECT_CONTAINS(msg, "(TOML needs a digit before a float's point: write 0.5)");
  EXPECT_CONTAINS(load_error("seed = 1\namp = True\n"), "(TOML's booleans are lowercase: write true)");
  // no hint where there is no slip
  EXPECT_EQ(load_error("", {"train.lr=abc"}), "--set train.lr=abc: key 'train.lr' = \"abc\": expected a float > 0");
  EXPECT_EQ(load_error("[train]\niterations = 1.5\n"),
            "config.toml: key 'train.iterations' = 1.5: expected an integer >= 1");
}

// every float key refuses nan and +-inf, whatever its range (TOML reads inf and nan)
TEST(ConfigTest, NonFiniteFloatsRefused) {
  EXPECT_EQ(load_error("", {"env.r0=inf"}), "--set env.r0=inf: key 'env.r0' = inf: expected a finite float > 0");
  EXPECT_EQ(load_error("[env]\nr0 = +inf\n"), "config.toml: key 'env.r0' = inf: expected a finite float > 0");
  EXPECT_EQ(load_error("", {"train.lr=nan"}), "--set train.lr=nan: key 'train.lr' = nan: expected a float > 0");
  EXPECT_EQ(load_error("", {"objective.log_reward_clip=-inf"}),
            "--set objective.log_reward_clip=-inf: key 'objective.log_reward_clip' = -inf: expected a finite float");
}

TEST(ConfigTest, MalformedOverride) {
  EXPECT_EQ(load_error("", {"abc"}), "--set 'abc': expected key=value");
  EXPECT_EQ(load_error("", {"=3"}), "--set '=3': expected key=value");
}

TEST(ConfigTest, SyntaxErrorHasLineNumber) {
  std::string msg = load_error("seed = 1\n[train\nlr = 2\n");
  EXPECT_EQ(msg.rfind("config.toml:2:", 0), 0u) << msg;
  EXPECT_CONTAINS(msg, ": TOML syntax error: ");
  // a value cut at the end of its line: toml++ quotes the newline it saw, written as an escape
  // so that the message stays one line (a fuzzer finding: tests/fuzz/config/crash-*-newline.toml)
  for (const char* value : {"t", "f", "i", "n"}) {
    msg = load_error(std::string("[train]\nlr = ") + value + "\n");
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_CONTAINS(msg, std::string("saw '") + value + "\\n'");
  }
}

TEST(ConfigTest, ArraysAndDatesRejected) {
  EXPECT_EQ(load_error("[train]\nlr = [1, 2]\n"),
            "config.toml: key 'train.lr' = [ 1, 2 ]: arrays are not supported here");
  EXPECT_CONTAINS(load_error("[[runs]]\nseed = 1\n"), "key 'runs' = ");
  EXPECT_CONTAINS(load_error("when = 1979-05-27\n"), "key 'when' = 1979-05-27: dates are not supported here");
}

TEST(ConfigTest, DuplicateKeyThroughQuotedDots) {
  EXPECT_EQ(load_error("\"train.lr\" = 0.1\n[train]\nlr = 0.2\n"), "config.toml: key 'train.lr' is given twice");
}

TEST(ConfigTest, ResolvedTomlRoundTrips) {
  ConfigSchema schema = test_schema();
  schema.common.push_back(float_param("train.big", 1e15, "a large float"));
  schema.common.push_back(bool_param("train.amp", false, "mixed precision"));
  RunConfig first = load_config("seed = 3\n[train]\nlr = 2\n", {"device=\"tab\\there \\\"q\\\"\"", "env.kind=box"},
                                schema, "config.toml");
  EXPECT_EQ(first.params.get_string("device"), "tab\there \"q\"");
  RunConfig second = load_config(first.resolved_toml, {}, schema, "x");
  EXPECT_EQ(second.params.values(), first.params.values()) << first.resolved_toml;
  EXPECT_EQ(second.resolved_toml, first.resolved_toml);
  EXPECT_CONTAINS(first.resolved_toml, "lr = 2.0  # learning rate\n");
  EXPECT_CONTAINS(first.resolved_toml, "[env]\nkind = \"box\"  # environment\ndim = 2  # dimensions\n");
  // top-level keys come before any table
  EXPECT_LT(first.resolved_toml.find("seed = 3"), first.resolved_toml.find("[train]"));
}

TEST(ConfigTest, MissingFileNamesPath) {
  std::string msg;
  try {
    load_config_file("/nonexistent/dir/run.toml", {}, test_schema());
  } catch (const ConfigError& e) {
    msg = e.what();
  }
  EXPECT_CONTAINS(msg, "/nonexistent/dir/run.toml");
}

TEST(ConfigTest, LoadsFile) {
  std::string path = ::testing::TempDir() + "config_test_run.toml";
  {
    std::ofstream out(path);
    out << "[train]\nlr = -2.0\n";
  }
  std::string msg;
  try {
    load_config_file(path, {}, test_schema());
  } catch (const ConfigError& e) {
    msg = e.what();
  }
  std::remove(path.c_str());
  EXPECT_EQ(msg, path + ": key 'train.lr' = -2.0: expected a float > 0");
}

TEST(ConfigTest, DescribeSchemaMentionsEveryKey) {
  ConfigSchema schema = test_schema();
  std::string doc = describe_schema(schema);
  for (const auto& s : schema.common) EXPECT_CONTAINS(doc, s.key + " = ");
  for (const auto& [kind, specs] : schema.env_kinds)
    for (const auto& s : specs) EXPECT_CONTAINS(doc, "env." + s.key + " = ");
  for (const auto& [kind, specs] : schema.objective_kinds)
    for (const auto& s : specs) EXPECT_CONTAINS(doc, "objective." + s.key + " = ");
  EXPECT_CONTAINS(doc, "train.lr = 0.001  # learning rate (a float > 0)\n");
  EXPECT_CONTAINS(doc, "# [env] for env.kind = \"box\"\nenv.dim = 2");
}

}  // namespace
}  // namespace gfn

#include "core/params.h"

#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace gfn {
namespace {

// The ConfigError message of resolve_params ("" when it does not throw).
std::string resolve_error(const std::vector<ParamSpec>& specs, const Params& given) {
  try {
    resolve_params(specs, given, "test");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::vector<ParamSpec> sample_specs() {
  return {int_param("n", 4, "count", 1, 32),
          float_param("lr", 1e-3, "rate", 0.0, 1.0, /*min_exclusive=*/true, /*max_exclusive=*/true),
          bool_param("flag", false, "switch"),
          string_param("kind", "uniform", "policy", {"uniform", "learned"}),
          float_param("scale", 2.5, "any float")};
}

// An integer range is inclusive at both ends and its rule is written as [min, max].
TEST(ParamSpecTest, IntRange) {
  auto s = int_param("n", 4, "count", 1, 32);
  EXPECT_EQ(s.rule(), "an integer in [1, 32]");
  EXPECT_EQ(s.check(int64_t{1}), "");
  EXPECT_EQ(s.check(int64_t{32}), "");
  EXPECT_EQ(s.check(int64_t{0}), "expected an integer in [1, 32]");
  EXPECT_EQ(s.check(int64_t{33}), "expected an integer in [1, 32]");
  // a float is not an integer, even a whole one
  EXPECT_EQ(s.check(2.0), "expected an integer in [1, 32]");
  // one-sided rules
  EXPECT_EQ(int_param("m", 1, "", 1).rule(), "an integer >= 1");
  EXPECT_EQ(int_param("m", 1, "").rule(), "an integer");
}

// Exclusive float bounds reject the bound itself and are written with ( ) and > / <.
TEST(ParamSpecTest, FloatExclusiveBounds) {
  auto s = float_param("lr", 0.5, "rate", 0.0, 1.0, true, true);
  EXPECT_EQ(s.rule(), "a float in (0, 1)");
  EXPECT_EQ(s.check(0.0), "expected a float in (0, 1)");
  EXPECT_EQ(s.check(1.0), "expected a float in (0, 1)");
  EXPECT_EQ(s.check(1e-300), "");
  EXPECT_EQ(s.check(0.999), "");
  // integers are accepted for floats and checked against the same bounds
  EXPECT_EQ(s.check(int64_t{1}), "expected a float in (0, 1)");
  EXPECT_EQ(s.check(std::numeric_limits<double>::quiet_NaN()), "expected a float in (0, 1)");
  auto pos = float_param("r0", 0.1, "", 0.0, std::numeric_limits<double>::infinity(), true);
  EXPECT_EQ(pos.rule(), "a float > 0");
  EXPECT_EQ(pos.check(0.0), "expected a float > 0");
  EXPECT_EQ(pos.check(int64_t{3}), "");
  auto below = float_param("x", -1.0, "", -std::numeric_limits<double>::infinity(), 0.0, false, true);
  EXPECT_EQ(below.rule(), "a float < 0");
  EXPECT_EQ(float_param("y", 0.0, "", 0.0).rule(), "a float >= 0");
}

// A float key takes finite values only: +-inf breaks every rule (named "a finite float" in the
// message), unless an infinity is the key's special value ("-inf: none").
TEST(ParamSpecTest, InfinitiesRefusedUnlessSpecial) {
  const double inf = std::numeric_limits<double>::infinity();
  auto r1 = float_param("r1", 0.5, "", 0.0);
  EXPECT_EQ(r1.check(inf), "expected a finite float >= 0");
  EXPECT_EQ(r1.check(-inf), "expected a float >= 0");
  EXPECT_EQ(r1.check(1e308), "");
  auto any = float_param("scale", 2.5, "");
  EXPECT_EQ(any.rule(), "a float");
  EXPECT_EQ(any.check(inf), "expected a finite float");
  EXPECT_EQ(any.check(-inf), "expected a finite float");
  EXPECT_EQ(any.check(std::numeric_limits<double>::quiet_NaN()), "expected a float");
  EXPECT_EQ(float_param("lr", 1e-3, "", 0.0, 10.0, true).check(inf), "expected a float in (0, 10]");
  // an infinity as the special value passes, the other one does not
  auto clip = float_param("clip", -inf, "", -inf, 0.0);
  clip.special = -inf;
  EXPECT_EQ(clip.rule(), "a float <= 0, or -inf");
  EXPECT_EQ(clip.check(-inf), "");
  EXPECT_EQ(clip.check(-12.0), "");
  EXPECT_EQ(clip.check(inf), "expected a float <= 0, or -inf");
}

// A string with choices accepts only those and lists them, quoted, in the rule.
TEST(ParamSpecTest, StringChoices) {
  auto s = string_param("kind", "uniform", "policy", {"uniform", "learned"});
  EXPECT_EQ(s.rule(), "one of \"uniform\", \"learned\"");
  EXPECT_EQ(s.check(std::string("learned")), "");
  EXPECT_EQ(s.check(std::string("Learned")), "expected one of \"uniform\", \"learned\"");
  auto free = string_param("name", "x", "any");
  EXPECT_EQ(free.rule(), "a string");
  EXPECT_EQ(free.check(std::string("anything")), "");
}

// A value of the wrong type breaks the rule whatever the spec.
TEST(ParamSpecTest, WrongType) {
  EXPECT_EQ(bool_param("flag", true, "").check(int64_t{1}), "expected a boolean");
  EXPECT_EQ(bool_param("flag", true, "").check(true), "");
  EXPECT_EQ(string_param("kind", "a", "", {"a"}).check(int64_t{1}), "expected one of \"a\"");
  EXPECT_EQ(string_param("name", "a", "").check(1.5), "expected a string");
  EXPECT_EQ(float_param("lr", 1.0, "").check(std::string("1e-3")), "expected a float");
  EXPECT_EQ(float_param("lr", 1.0, "").check(true), "expected a float");
  EXPECT_EQ(int_param("n", 1, "").check(false), "expected an integer");
}

// resolve_params fills every missing key with its default.
TEST(ResolveParamsTest, DefaultsFilled) {
  Params given;
  given.set("n", int64_t{7});
  auto p = resolve_params(sample_specs(), given, "test");
  EXPECT_EQ(p.values().size(), 5u);
  EXPECT_EQ(p.get_int("n"), 7);
  EXPECT_DOUBLE_EQ(p.get_float("lr"), 1e-3);
  EXPECT_FALSE(p.get_bool("flag"));
  EXPECT_EQ(p.get_string("kind"), "uniform");
  EXPECT_DOUBLE_EQ(p.get_float("scale"), 2.5);
}

// An unknown key is rejected by name, with the context and the known keys.
TEST(ResolveParamsTest, UnknownKeyNamed) {
  Params given;
  given.set("nn", int64_t{7});
  auto msg = resolve_error(sample_specs(), given);
  EXPECT_NE(msg.find("test"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'nn'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("known keys: n, lr, flag, kind, scale"), std::string::npos) << msg;
}

// A bad value is rejected with its key, its value as TOML and the rule.
TEST(ResolveParamsTest, BadValueNamed) {
  Params given;
  given.set("lr", 1.0);
  EXPECT_EQ(resolve_error(sample_specs(), given), "test: key 'lr' = 1.0: expected a float in (0, 1)");
  Params g2;
  g2.set("kind", std::string("greedy"));
  EXPECT_EQ(resolve_error(sample_specs(), g2),
            "test: key 'kind' = \"greedy\": expected one of \"uniform\", \"learned\"");
  Params g3;
  g3.set("n", int64_t{0});
  EXPECT_EQ(resolve_error(sample_specs(), g3), "test: key 'n' = 0: expected an integer in [1, 32]");
}

// An integer given for a float key is stored as a float, so get_float and the variant agree.
TEST(ResolveParamsTest, IntForFloatConverted) {
  Params given;
  given.set("scale", int64_t{3});
  auto p = resolve_params(sample_specs(), given, "test");
  ASSERT_TRUE(std::holds_alternative<double>(p.values().at("scale")));
  EXPECT_EQ(std::get<double>(p.values().at("scale")), 3.0);
  EXPECT_EQ(p.get_float("scale"), 3.0);
}

// Typed getters throw ConfigError naming the key on a type mismatch.
TEST(ParamsTest, GetterTypeMismatch) {
  Params p;
  p.set("i", int64_t{2});
  p.set("f", 0.5);
  p.set("b", true);
  p.set("s", std::string("x"));
  EXPECT_EQ(p.get_int("i"), 2);
  EXPECT_EQ(p.get_float("i"), 2.0);  // a stored integer reads as a float
  EXPECT_EQ(p.get_float("f"), 0.5);
  EXPECT_TRUE(p.get_bool("b"));
  EXPECT_EQ(p.get_string("s"), "x");
  EXPECT_THROW(p.get_int("f"), ConfigError);
  EXPECT_THROW(p.get_float("b"), ConfigError);
  EXPECT_THROW(p.get_bool("i"), ConfigError);
  EXPECT_THROW(p.get_string("i"), ConfigError);
  try {
    p.get_int("f");
    FAIL() << "get_int on a float did not throw";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "parameter 'f' is not an integer");
  }
}

// A missing key throws std::out_of_range naming the key.
TEST(ParamsTest, MissingKeyThrows) {
  Params p;
  EXPECT_FALSE(p.has("absent"));
  EXPECT_THROW(p.get_float("absent"), std::out_of_range);
  try {
    p.get_string("absent");
    FAIL() << "get_string on a missing key did not throw";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("'absent'"), std::string::npos) << e.what();
  }
}

// section keeps exactly the keys under the prefix and strips "prefix.".
TEST(ParamsTest, Section) {
  Params p;
  p.set("env.ndim", int64_t{3});
  p.set("env.height", int64_t{5});
  p.set("environment.x", 1.0);  // shares the letters but not the prefix "env."
  p.set("env", 2.0);
  p.set("train.lr", 0.1);
  auto s = p.section("env");
  EXPECT_EQ(s.values().size(), 2u);
  EXPECT_EQ(s.get_int("ndim"), 3);
  EXPECT_EQ(s.get_int("height"), 5);
  EXPECT_FALSE(s.has("x"));
  EXPECT_TRUE(p.section("nothing").values().empty());
}

}  // namespace
}  // namespace gfn

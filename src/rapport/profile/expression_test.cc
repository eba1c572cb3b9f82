#include "rapport/profile/expression.h"

#include <gtest/gtest.h>

#include <map>

#include "rapport/base/error.h"

namespace rapport::profile {
namespace {

constexpr base::Micros kDay = base::kMicrosPerDay;
constexpr base::Micros kNow = 1'800'000'000LL * base::kMicrosPerSecond;

class TestSchema final : public Schema {
 public:
  bool Allows(Root root) const override {
    return root == Root::kTraits || root == Root::kComputed || root == Root::kProfile;
  }
  std::optional<Type> ComputedType(std::string_view name, std::string_view part, std::string* why) const override {
    if (name == "orders" && part.empty()) return Type::kNumber;
    if (name == "last_order_at" && part.empty()) return Type::kTime;
    *why = "no such computed trait";
    return std::nullopt;
  }
  bool HasSegment(std::string_view name, std::string* why) const override {
    if (name == "churned") return true;
    *why = "no such segment";
    return false;
  }
};

class TestEnv final : public Env {
 public:
  std::map<std::string, Value> traits;
  std::map<std::string, Value> computed;
  bool churned = false;
  base::Micros now = kNow;

  Value Field(Root root, const std::vector<std::string>& path, int) const override {
    const auto& map = root == Root::kTraits ? traits : computed;
    auto it = map.find(path[0]);
    return it == map.end() ? Value::Missing() : it->second;
  }
  bool InSegment(std::string_view name) const override { return name == "churned" && churned; }
  base::Micros Now() const override { return now; }
};

std::unique_ptr<const Expression> MustParse(std::string_view text) {
  auto e = Expression::Parse(text, TestSchema());
  EXPECT_TRUE(e.ok()) << text << ": " << e.status();
  return e.ok() ? *std::move(e) : nullptr;
}

bool Matches(std::string_view text, const TestEnv& env) {
  auto e = MustParse(text);
  return e && e->Evaluate(env).matched;
}

TEST(Expression, TheIssueExampleEvaluates) {
  TestEnv env;
  env.traits["plan"] = Value::String("pro");
  env.computed["orders"] = Value::Number(3);
  const std::string text = R"(traits.plan == "pro" && computed.orders >= 3 && !segment("churned"))";
  EXPECT_TRUE(Matches(text, env));
  env.churned = true;
  EXPECT_FALSE(Matches(text, env));
  env.churned = false;
  env.computed["orders"] = Value::Number(2);
  EXPECT_FALSE(Matches(text, env));
}

TEST(Expression, OperatorsAndPrecedence) {
  TestEnv env;
  env.traits["country"] = Value::String("NL");
  env.traits["email"] = Value::String("ann@example.com");
  env.traits["age"] = Value::Number(41);
  env.traits["vip"] = Value::Bool(true);
  EXPECT_TRUE(Matches(R"(traits.country in ["NL", "BE"])", env));
  EXPECT_FALSE(Matches(R"(traits.country in ["DE"])", env));
  EXPECT_TRUE(Matches(R"(startsWith(traits.email, "ann") && endsWith(traits.email, ".com"))", env));
  EXPECT_TRUE(Matches(R"(contains(traits.email, "@example"))", env));
  EXPECT_TRUE(Matches("traits.age + 1 == 42 && traits.age - 1 < 41", env));
  EXPECT_TRUE(Matches("traits.vip", env));
  EXPECT_TRUE(Matches("false || true && true", env));     // && binds tighter
  EXPECT_FALSE(Matches("(false || true) && false", env));
  EXPECT_TRUE(Matches("!(traits.age < 18)", env));
  EXPECT_TRUE(Matches("traits.age in [40, 41, -3]", env));
}

TEST(Expression, MissingValuesCompareAsNullAndOrderNothing) {
  TestEnv env;
  EXPECT_FALSE(Matches(R"(traits.plan == "pro")", env));
  EXPECT_TRUE(Matches(R"(traits.plan != "pro")", env));
  EXPECT_TRUE(Matches("traits.plan == null", env));
  EXPECT_FALSE(Matches("traits.age > 3", env));
  EXPECT_FALSE(Matches("traits.age <= 3", env));
  EXPECT_FALSE(Matches("exists(traits.plan)", env));
  env.traits["plan"] = Value::Null();
  EXPECT_FALSE(Matches("exists(traits.plan)", env));
  env.traits["plan"] = Value::String("x");
  EXPECT_TRUE(Matches("exists(traits.plan)", env));
  // A number in a trait is not a string: no silent coercion.
  env.traits["zip"] = Value::Number(1234);
  EXPECT_FALSE(Matches(R"(traits.zip == "1234")", env));
}

TEST(Expression, DateArithmeticAndWhenItChanges) {
  TestEnv env;
  env.computed["last_order_at"] = Value::Time(kNow - 10 * kDay);
  auto e = MustParse("now() - computed.last_order_at > 14d");
  Evaluation r = e->Evaluate(env);
  EXPECT_FALSE(r.matched);
  // It becomes true just after 14 days since the last order: 4 days from now.
  EXPECT_EQ(r.next_change, kNow + 4 * kDay + 1);
  env.now = r.next_change;
  r = e->Evaluate(env);
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.next_change, Evaluation::kNever);
  // A time as ISO text in a trait works too.
  env.traits["signed_up"] = Value::String("2020-01-01T00:00:00Z");
  EXPECT_TRUE(Matches("now() - traits.signed_up > 365d", env));
  EXPECT_TRUE(Matches("computed.last_order_at < now() - 1h", env));
  EXPECT_FALSE(MustParse("computed.orders > 1")->Evaluate(env).next_change != Evaluation::kNever);
}

struct BadCase {
  std::string text;
  int64_t position;
  std::string expected_contains;
};

TEST(Expression, SyntaxErrorsSayWhereAndWhat) {
  const BadCase cases[] = {
      {"traits.plan == ", 15, "operand"},
      {"traits.plan = \"pro\"", 12, "'=='"},
      {"(traits.a == 1", 14, "')'"},
      {"traits.a == 1 &", 14, "'&&'"},
      {"trait.plan == 1", 0, "field"},
      {"computed.nope > 1", 0, "defined computed trait"},
      {"segment(\"nope\")", 8, "defined segment"},
      {"computed.orders == \"3\"", 16, "number"},
      {"computed.orders", 0, "condition"},
      {"traits.a in 3", 12, "'['"},
      {"exists(1)", 7, "field"},
      {"frobnicate(1)", 0, "function"},
      {"traits.a > 3x", 12, "duration unit"},
      {"\"open", 0, "'\"'"},
      {"now() - 3", 6, "times and durations"},
      {"traits.a == 1 traits.b", 14, "operator or the end"},
  };
  for (const BadCase& c : cases) {
    auto e = Expression::Parse(c.text, TestSchema());
    ASSERT_FALSE(e.ok()) << c.text;
    const base::ErrorDetails d = base::GetErrorDetails(e.status());
    EXPECT_EQ(d.code, "invalid_expression") << c.text;
    EXPECT_EQ(d.position, c.position) << c.text << ": " << e.status();
    EXPECT_NE(d.expected.find(c.expected_contains), std::string::npos) << c.text << ": " << d.expected;
  }
}

TEST(Expression, SizeAndDepthAreBounded) {
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "(";
  deep += "true";
  for (int i = 0; i < 40; ++i) deep += ")";
  auto e = Expression::Parse(deep, TestSchema());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(std::string(e.status().message()).find("nests deeper"), std::string::npos);

  std::string nots(100, '!');
  EXPECT_FALSE(Expression::Parse(nots + "true", TestSchema()).ok());

  std::string wide = "traits.a == 1";
  for (int i = 0; i < 200; ++i) wide += " || traits.a == 1";
  e = Expression::Parse(wide, TestSchema());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(std::string(e.status().message()).find("more than 256 parts"), std::string::npos);

  EXPECT_EQ(base::GetErrorDetails(Expression::Parse(std::string(5000, ' '), TestSchema()).status()).code,
            "expression_too_long");
}

TEST(Expression, NamesWhatItUses) {
  auto e = MustParse(R"(computed.orders > 1 && segment("churned") || computed.orders < 0)");
  EXPECT_EQ(e->computed(), std::vector<std::string>{"orders"});
  EXPECT_EQ(e->segments(), std::vector<std::string>{"churned"});
}

TEST(Expression, EachFieldIsReadThroughTheCallersSlot) {
  auto e = MustParse("computed.orders >= 1 && computed.orders < 5 && traits.plan == \"pro\"");
  ASSERT_EQ(e->fields().size(), 2u);  // computed.orders once
  class SlotEnv final : public Env {
   public:
    Value Field(Root root, const std::vector<std::string>&, int slot) const override {
      seen.push_back(slot);
      return root == Root::kComputed ? Value::Number(2) : Value::String("pro");
    }
    bool InSegment(std::string_view) const override { return false; }
    base::Micros Now() const override { return kNow; }
    mutable std::vector<int> seen;
  } env;
  const int slots[] = {7, 3};
  EXPECT_TRUE(e->Evaluate(env, slots).matched);
  EXPECT_EQ(env.seen, (std::vector<int>{7, 7, 3}));
  env.seen.clear();
  EXPECT_TRUE(e->Evaluate(env).matched);
  EXPECT_EQ(env.seen, (std::vector<int>{-1, -1, -1}));
}

TEST(Duration, ParsesUnitsAndRefusesTheRest) {
  EXPECT_EQ(*ParseDuration("30d"), 30 * kDay);
  EXPECT_EQ(*ParseDuration("1.5h"), 90 * 60 * base::kMicrosPerSecond);
  EXPECT_EQ(*ParseDuration("2w"), 14 * kDay);
  for (const char* bad : {"", "30", "d", "-3d", "0s", "3y", "3d 4h"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace rapport::profile

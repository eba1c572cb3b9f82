// libFuzzer target: the segment expression language (profile::Expression). Input: an
// expression. Each one that parses is evaluated against profiles whose traits take every kind
// of value, and checked for what the engine relies on:
//   - an error names a code and, for a syntax error, a position inside the text;
//   - the text it keeps parses again;
//   - the next time its result may change is after now (or never).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "rapport/base/error.h"
#include "rapport/profile/expression.h"

namespace {

using namespace rapport;
using profile::Root;
using profile::Type;
using profile::Value;

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "expression_fuzz: broken promise: %s\n", what);
    __builtin_trap();
  }
}

constexpr base::Micros kNow = 1'800'000'000LL * base::kMicrosPerSecond;

class FuzzSchema final : public profile::Schema {
 public:
  bool Allows(Root) const override { return true; }
  std::optional<Type> ComputedType(std::string_view name, std::string_view part, std::string* why) const override {
    if (part.empty()) {
      if (name == "orders" || name == "spent") return Type::kNumber;
      if (name == "last_order_at") return Type::kTime;
      if (name == "favourite") return Type::kString;
      if (name == "active") return Type::kBool;
    } else if (name == "rfm" && (part == "recency" || part == "frequency" || part == "monetary")) {
      return Type::kNumber;
    }
    *why = "no such computed trait";
    return std::nullopt;
  }
  bool HasSegment(std::string_view name, std::string* why) const override {
    if (name == "churned" || name == "vip") return true;
    *why = "no such segment";
    return false;
  }
};

// A profile whose every field has the value of kind `variant` (shifted per field).
class FuzzEnv final : public profile::Env {
 public:
  explicit FuzzEnv(int variant) : variant_(variant) {}
  Value Field(Root, const std::vector<std::string>& path, int) const override {
    switch ((variant_ + (path.empty() ? 0 : path.back().size())) % 8) {
      case 0: return Value::Missing();
      case 1: return Value::Null();
      case 2: return Value::Bool(variant_ % 2);
      case 3: return Value::Number(variant_ == 3 ? std::nan("") : 42.5);
      case 4: return Value::String("ann@example.com");
      case 5: return Value::Time(kNow - 3 * base::kMicrosPerDay);
      case 6: return Value::Number(-1e308);
      default: {
        Value v = Value::Of(Value::Kind::kComposite);
        v.text = "[\"NL\",\"BE\",3]";
        return v;
      }
    }
  }
  bool InSegment(std::string_view name) const override { return (name.size() + variant_) % 2; }
  base::Micros Now() const override { return kNow; }

 private:
  int variant_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const FuzzSchema schema;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = profile::Expression::Parse(text, schema);
  if (!parsed.ok()) {
    const base::ErrorDetails d = base::GetErrorDetails(parsed.status());
    Require(!d.code.empty(), "an error without a code");
    Require(!d.position || (*d.position >= 0 && static_cast<size_t>(*d.position) <= text.size()),
            "an error position outside the text");
    return 0;
  }
  const profile::Expression& e = **parsed;
  Require(profile::Expression::Parse(e.text(), schema).ok(), "its own text does not parse again");
  for (int variant = 0; variant < 8; ++variant) {
    const profile::Evaluation r = e.Evaluate(FuzzEnv(variant));
    Require(r.next_change > kNow, "a next change that is not in the future");
  }
  return 0;
}

// The segment language: a small, closed expression language over a profile (traits, computed
// traits, other segments) or over one event (computed traits' `where`). Text is parsed into an
// AST of a fixed set of operators with bounded size and depth; evaluating it reads values
// through an Env and can do nothing else (no calls out, no loops, no reflection).
//
//   traits.plan == "pro" && computed.orders_30d >= 3 && !segment("churned")
//   now() - computed.last_order_at > 14d
//   traits.country in ["NL", "BE"] || startsWith(traits.email, "ann")
//
// docs/segments.md is the reference: grammar, types, how missing values compare, and the
// limits below. Syntax and type errors are InvalidArgument with code `invalid_expression`,
// the character `position` and what was `expected` there.
//
// Time: `now()` is the evaluation time. A comparison whose truth depends on it (the only way
// time enters) reports when it will next change, so membership can be swept exactly when it
// changes rather than recomputed on a timer.
//
// Thread safety: an Expression is immutable after Parse and may be evaluated from any thread.
#ifndef RAPPORT_PROFILE_EXPRESSION_H_
#define RAPPORT_PROFILE_EXPRESSION_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rapport/base/time.h"

namespace rapport::profile {

// Limits of one expression.
inline constexpr size_t kMaxExpressionBytes = 4096;
inline constexpr size_t kMaxExpressionNodes = 256;
inline constexpr size_t kMaxExpressionDepth = 32;
inline constexpr size_t kMaxListItems = 256;

// What a value is. kAny: only known at evaluation (a trait, an event property).
enum class Type : uint8_t { kAny, kBool, kNumber, kString, kTime, kDuration, kNull, kList };
std::string_view TypeName(Type type);

// A value during evaluation. kMissing: the field is absent (compares as null with == and !=,
// and makes every other comparison false).
struct Value {
  enum class Kind : uint8_t { kMissing, kNull, kBool, kNumber, kString, kTime, kDuration, kComposite };
  Kind kind = Kind::kMissing;
  bool boolean = false;
  double number = 0;
  base::Micros micros = 0;  // kTime: the instant; kDuration: the length
  int now_factor = 0;       // kTime/kDuration: how many times now() is in it (its rate of change)
  std::string text;         // kString: the string; kComposite: JSON text of an array or object

  static Value Missing() { return {}; }
  static Value Null() { return Of(Kind::kNull); }
  static Value Bool(bool b) {
    Value v = Of(Kind::kBool);
    v.boolean = b;
    return v;
  }
  static Value Number(double n) {
    Value v = Of(Kind::kNumber);
    v.number = n;
    return v;
  }
  static Value String(std::string s) {
    Value v = Of(Kind::kString);
    v.text = std::move(s);
    return v;
  }
  static Value Time(base::Micros t) {
    Value v = Of(Kind::kTime);
    v.micros = t;
    return v;
  }
  static Value Of(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

// The roots a field path may start with.
enum class Root : uint8_t {
  kTraits,      // traits.NAME… (open: any name)
  kComputed,    // computed.NAME[.PART] (must be defined)
  kProfile,     // profile.first_seen | last_seen | event_count
  kProperties,  // properties.NAME… (events only; open)
  kEvent,       // event: the event's name (events only)
  kType,        // type: "track", "page", … (events only)
};

// What a parse may refer to: which roots, which computed traits (with the type of each of their
// parts) and which segments. Unknown names are errors, not silent falses.
class Schema {
 public:
  virtual ~Schema() = default;
  virtual bool Allows(Root root) const = 0;
  // The type of computed.NAME (`part` "" ) or computed.NAME.PART; nullopt with `why` filled in
  // if there is no such computed trait or part.
  virtual std::optional<Type> ComputedType(std::string_view name, std::string_view part,
                                           std::string* why) const = 0;
  // Whether segment("name") may be used; `why` says why not.
  virtual bool HasSegment(std::string_view name, std::string* why) const = 0;
};

// What an evaluation reads.
class Env {
 public:
  virtual ~Env() = default;
  // `path` are the member names after the root (after `computed`: the name, then the part).
  // `slot` is the caller's number for the field (Expression::Evaluate's `slots`: the same for
  // the same field in every expression evaluated with them, e.g. to cache values), or -1.
  virtual Value Field(Root root, const std::vector<std::string>& path, int slot) const = 0;
  virtual bool InSegment(std::string_view name) const = 0;
  virtual base::Micros Now() const = 0;
};

struct Evaluation {
  bool matched = false;
  // The earliest instant after Now() at which the result may change with time alone;
  // kNever if it cannot.
  base::Micros next_change = kNever;
  static constexpr base::Micros kNever = std::numeric_limits<base::Micros>::max();
};

class Expression {
 public:
  // Parses `text` against `schema`. The result must be boolean (or a trait, true when it is
  // the JSON value true).
  static absl::StatusOr<std::unique_ptr<const Expression>> Parse(std::string_view text,
                                                                 const Schema& schema);
  ~Expression();

  // `slots`: empty, or the caller's number for each of fields(), passed on to Env::Field.
  Evaluation Evaluate(const Env& env, std::span<const int> slots = {}) const;
  // The segments and computed traits it names (each once, in order of appearance).
  const std::vector<std::string>& segments() const { return segments_; }
  const std::vector<std::string>& computed() const { return computed_; }
  // The fields it reads, each once: root and path in one string (a key that is the same for
  // the same field in every expression).
  const std::vector<std::string>& fields() const { return fields_; }
  // The key fields() holds for the field `root`.`path`.
  static std::string FieldKey(Root root, std::span<const std::string> path);
  const std::string& text() const { return text_; }
  // Whether a field under `root` is read.
  bool Reads(Root root) const { return (roots_ >> static_cast<int>(root)) & 1; }

  struct Node;

 private:
  Expression() = default;
  std::string text_;
  std::vector<Node> nodes_;  // nodes_.back() is the root
  std::vector<std::string> segments_;
  std::vector<std::string> computed_;
  std::vector<std::string> fields_;
  uint32_t roots_ = 0;  // bit per Root read
  friend class Parser;
  friend class Evaluator;
};

// Durations in definitions: a positive number and a unit, s m h d w ("30d", "1.5h").
absl::StatusOr<base::Micros> ParseDuration(std::string_view text);

}  // namespace rapport::profile

#endif  // RAPPORT_PROFILE_EXPRESSION_H_

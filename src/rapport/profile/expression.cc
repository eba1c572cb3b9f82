#include "rapport/profile/expression.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "rapport/base/check.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"
#include "rapport/base/utf8.h"

namespace rapport::profile {

enum class Op : uint8_t {
  kLiteral, kField, kList, kNow, kSegment, kExists, kContains, kStartsWith, kEndsWith,
  kNot, kAnd, kOr, kNeg, kAdd, kSub, kEq, kNe, kLt, kLe, kGt, kGe, kIn,
};

struct Expression::Node {
  Op op = Op::kLiteral;
  Type type = Type::kAny;
  uint32_t pos = 0;
  int a = -1;
  int b = -1;
  Value literal;             // kLiteral
  Root root = Root::kTraits;  // kField
  std::vector<std::string> path;
  int field = -1;            // kField: its index in Expression::fields()
  std::vector<Value> items;  // kList
  std::string name;          // kSegment
};

std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kAny: return "any";
    case Type::kBool: return "boolean";
    case Type::kNumber: return "number";
    case Type::kString: return "string";
    case Type::kTime: return "time";
    case Type::kDuration: return "duration";
    case Type::kNull: return "null";
    case Type::kList: return "list";
  }
  return "any";
}

namespace {

absl::Status SyntaxError(size_t pos, std::string_view expected, std::string_view message) {
  return base::WithPosition(
      base::InvalidField("invalid_expression", "expression",
                         fmt::format("at character {}: {}", pos, message)),
      static_cast<int64_t>(pos), expected);
}

absl::StatusOr<base::Micros> DurationOf(double amount, char unit) {
  double scale = 0;
  switch (unit) {
    case 's': scale = 1; break;
    case 'm': scale = 60; break;
    case 'h': scale = 3600; break;
    case 'd': scale = 86400; break;
    case 'w': scale = 7 * 86400; break;
    default: return absl::InvalidArgumentError("unknown unit");
  }
  const double micros = amount * scale * base::kMicrosPerSecond;
  if (!(micros >= 0) || micros > 1e17) return absl::InvalidArgumentError("duration out of range");
  return static_cast<base::Micros>(std::llround(micros));
}

struct Token {
  enum class Kind { kEnd, kIdent, kNumber, kDuration, kString, kSymbol };
  Kind kind = Kind::kEnd;
  std::string text;  // kIdent, kString (decoded), kSymbol
  double number = 0;
  base::Micros micros = 0;
  size_t pos = 0;
};

class Lexer {
 public:
  explicit Lexer(std::string_view in) : in_(in) {}

  absl::StatusOr<Token> Next() {
    while (i_ < in_.size() && std::isspace(static_cast<unsigned char>(in_[i_]))) ++i_;
    Token t;
    t.pos = i_;
    if (i_ == in_.size()) return t;
    const char c = in_[i_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i_;
      while (j < in_.size() && (std::isalnum(static_cast<unsigned char>(in_[j])) || in_[j] == '_')) ++j;
      t.kind = Token::Kind::kIdent;
      t.text = std::string(in_.substr(i_, j - i_));
      i_ = j;
      return t;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i_;
      while (j < in_.size() && (std::isdigit(static_cast<unsigned char>(in_[j])) || in_[j] == '.')) ++j;
      if (j < in_.size() && (in_[j] == 'e' || in_[j] == 'E') && j + 1 < in_.size() &&
          (std::isdigit(static_cast<unsigned char>(in_[j + 1])) || in_[j + 1] == '-' || in_[j + 1] == '+')) {
        j += 2;
        while (j < in_.size() && std::isdigit(static_cast<unsigned char>(in_[j]))) ++j;
      }
      double value = 0;
      auto [end, ec] = std::from_chars(in_.data() + i_, in_.data() + j, value);
      if (ec != std::errc() || end != in_.data() + j) {
        return SyntaxError(i_, "a number", fmt::format("'{}' is not a number", in_.substr(i_, j - i_)));
      }
      t.number = value;
      t.kind = Token::Kind::kNumber;
      if (j < in_.size() && std::isalpha(static_cast<unsigned char>(in_[j]))) {
        size_t k = j;
        while (k < in_.size() && std::isalnum(static_cast<unsigned char>(in_[k]))) ++k;
        auto micros = k == j + 1 ? DurationOf(value, in_[j]) : absl::InvalidArgumentError("unit");
        if (!micros.ok()) {
          return SyntaxError(j, "a duration unit: s, m, h, d or w",
                             fmt::format("'{}' is not a duration (use e.g. 30s, 15m, 12h, 14d, 2w)",
                                         in_.substr(i_, k - i_)));
        }
        t.kind = Token::Kind::kDuration;
        t.micros = *micros;
        j = k;
      }
      i_ = j;
      return t;
    }
    if (c == '"') return String();
    static constexpr std::string_view kTwo[] = {"==", "!=", "<=", ">=", "&&", "||"};
    for (std::string_view op : kTwo) {
      if (in_.substr(i_, 2) == op) {
        t.kind = Token::Kind::kSymbol;
        t.text = std::string(op);
        i_ += 2;
        return t;
      }
    }
    if (std::string_view("<>!()[],.+-").find(c) != std::string_view::npos) {
      t.kind = Token::Kind::kSymbol;
      t.text = std::string(1, c);
      ++i_;
      return t;
    }
    if (c == '=') return SyntaxError(i_, "'=='", "'=' is not an operator; compare with '=='");
    if (c == '&' || c == '|') {
      return SyntaxError(i_, c == '&' ? "'&&'" : "'||'",
                         fmt::format("'{}' is not an operator; use '{}{}'", c, c, c));
    }
    return SyntaxError(i_, "an operand or operator", fmt::format("unexpected character '{}'", c));
  }

 private:
  absl::StatusOr<Token> String() {
    Token t;
    t.kind = Token::Kind::kString;
    t.pos = i_;
    size_t j = i_ + 1;
    while (j < in_.size() && in_[j] != '"') {
      if (in_[j] == '\\') {
        if (j + 1 >= in_.size()) break;
        const char e = in_[j + 1];
        if (e == '"' || e == '\\' || e == '/') {
          t.text += e;
        } else if (e == 'n') {
          t.text += '\n';
        } else if (e == 't') {
          t.text += '\t';
        } else {
          return SyntaxError(j, "an escape: \\\" \\\\ \\/ \\n or \\t",
                             fmt::format("'\\{}' is not an escape in a string", e));
        }
        j += 2;
      } else {
        t.text += in_[j++];
      }
    }
    if (j >= in_.size()) return SyntaxError(i_, "'\"'", "the string is not closed");
    i_ = j + 1;
    return t;
  }

  std::string_view in_;
  size_t i_ = 0;
};

bool Numeric(Type t) { return t == Type::kNumber || t == Type::kAny; }
bool Known(Type t) { return t != Type::kAny; }

}  // namespace

class Parser {
 public:
  Parser(std::string_view text, const Schema& schema, Expression& out)
      : lexer_(text), schema_(schema), out_(out) {}

  absl::Status Run() {
    RAPPORT_RETURN_IF_ERROR(Advance());
    RAPPORT_ASSIGN_OR_RETURN(int root, Or());
    if (tok_.kind != Token::Kind::kEnd) {
      return SyntaxError(tok_.pos, "an operator or the end", fmt::format("unexpected {}", Describe(tok_)));
    }
    const Type t = out_.nodes_[root].type;
    if (t != Type::kBool && t != Type::kAny) {
      return SyntaxError(0, "a condition",
                         fmt::format("the expression is a {}, not a condition (compare it with something)",
                                     TypeName(t)));
    }
    // The evaluator walks from the root: make it the last node.
    if (root != static_cast<int>(out_.nodes_.size()) - 1) {
      return absl::InternalError("expression root is not the last node");
    }
    return absl::OkStatus();
  }

 private:
  using Node = Expression::Node;

  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case Token::Kind::kEnd: return "end of the expression";
      case Token::Kind::kIdent: return fmt::format("'{}'", t.text);
      case Token::Kind::kNumber:
      case Token::Kind::kDuration: return "a number";
      case Token::Kind::kString: return "a string";
      case Token::Kind::kSymbol: return fmt::format("'{}'", t.text);
    }
    return "?";
  }

  absl::Status Advance() {
    RAPPORT_ASSIGN_OR_RETURN(tok_, lexer_.Next());
    return absl::OkStatus();
  }
  bool Is(std::string_view symbol) const { return tok_.kind == Token::Kind::kSymbol && tok_.text == symbol; }
  absl::Status Expect(std::string_view symbol) {
    if (!Is(symbol)) {
      return SyntaxError(tok_.pos, fmt::format("'{}'", symbol),
                         fmt::format("expected '{}' but found {}", symbol, Describe(tok_)));
    }
    return Advance();
  }

  absl::StatusOr<int> Add(Node node) {
    if (out_.nodes_.size() >= kMaxExpressionNodes) {
      return SyntaxError(node.pos, "a shorter expression",
                         fmt::format("the expression has more than {} parts", kMaxExpressionNodes));
    }
    out_.nodes_.push_back(std::move(node));
    return static_cast<int>(out_.nodes_.size()) - 1;
  }
  Type TypeOf(int i) const { return out_.nodes_[i].type; }

  // Depth guard for the recursive descent.
  absl::Status Enter(size_t pos) {
    if (++depth_ > kMaxExpressionDepth) {
      return SyntaxError(pos, "less nesting",
                         fmt::format("the expression nests deeper than {} levels", kMaxExpressionDepth));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int> Binary(Op op, int a, int b, Type type, size_t pos) {
    Node n;
    n.op = op;
    n.a = a;
    n.b = b;
    n.type = type;
    n.pos = static_cast<uint32_t>(pos);
    return Add(std::move(n));
  }

  absl::Status RequireCondition(int i, std::string_view op) {
    const Type t = TypeOf(i);
    if (t == Type::kBool || t == Type::kAny) return absl::OkStatus();
    return SyntaxError(out_.nodes_[i].pos, "a condition",
                       fmt::format("'{}' needs conditions, not a {}", op, TypeName(t)));
  }

  absl::StatusOr<int> Or() {
    RAPPORT_ASSIGN_OR_RETURN(int left, And());
    while (Is("||")) {
      const size_t pos = tok_.pos;
      RAPPORT_RETURN_IF_ERROR(Advance());
      RAPPORT_ASSIGN_OR_RETURN(int right, And());
      RAPPORT_RETURN_IF_ERROR(RequireCondition(left, "||"));
      RAPPORT_RETURN_IF_ERROR(RequireCondition(right, "||"));
      RAPPORT_ASSIGN_OR_RETURN(left, Binary(Op::kOr, left, right, Type::kBool, pos));
    }
    return left;
  }

  absl::StatusOr<int> And() {
    RAPPORT_ASSIGN_OR_RETURN(int left, Not());
    while (Is("&&")) {
      const size_t pos = tok_.pos;
      RAPPORT_RETURN_IF_ERROR(Advance());
      RAPPORT_ASSIGN_OR_RETURN(int right, Not());
      RAPPORT_RETURN_IF_ERROR(RequireCondition(left, "&&"));
      RAPPORT_RETURN_IF_ERROR(RequireCondition(right, "&&"));
      RAPPORT_ASSIGN_OR_RETURN(left, Binary(Op::kAnd, left, right, Type::kBool, pos));
    }
    return left;
  }

  absl::StatusOr<int> Not() {
    if (Is("!")) {
      const size_t pos = tok_.pos;
      RAPPORT_RETURN_IF_ERROR(Enter(pos));
      RAPPORT_RETURN_IF_ERROR(Advance());
      RAPPORT_ASSIGN_OR_RETURN(int inner, Not());
      --depth_;
      RAPPORT_RETURN_IF_ERROR(RequireCondition(inner, "!"));
      return Binary(Op::kNot, inner, -1, Type::kBool, pos);
    }
    return Comparison();
  }

  absl::StatusOr<int> Comparison() {
    RAPPORT_ASSIGN_OR_RETURN(int left, Sum());
    static constexpr std::pair<std::string_view, Op> kOps[] = {
        {"==", Op::kEq}, {"!=", Op::kNe}, {"<", Op::kLt}, {"<=", Op::kLe}, {">", Op::kGt}, {">=", Op::kGe}};
    for (const auto& [symbol, op] : kOps) {
      if (!Is(symbol)) continue;
      const size_t pos = tok_.pos;
      RAPPORT_RETURN_IF_ERROR(Advance());
      RAPPORT_ASSIGN_OR_RETURN(int right, Sum());
      const Type a = TypeOf(left);
      const Type b = TypeOf(right);
      const bool equality = op == Op::kEq || op == Op::kNe;
      if (equality) {
        if (Known(a) && Known(b) && a != b && a != Type::kNull && b != Type::kNull) {
          return SyntaxError(pos, fmt::format("a {} to compare with", TypeName(a)),
                             fmt::format("'{}' compares a {} with a {}: never equal", symbol,
                                         TypeName(a), TypeName(b)));
        }
      } else {
        for (Type t : {a, b}) {
          if (t == Type::kBool || t == Type::kNull || t == Type::kList) {
            return SyntaxError(pos, "numbers, strings, times or durations",
                               fmt::format("'{}' cannot order a {}", symbol, TypeName(t)));
          }
        }
        if (Known(a) && Known(b) && a != b) {
          return SyntaxError(pos, fmt::format("a {} to compare with", TypeName(a)),
                             fmt::format("'{}' compares a {} with a {}", symbol, TypeName(a), TypeName(b)));
        }
      }
      return Binary(op, left, right, Type::kBool, pos);
    }
    if (tok_.kind == Token::Kind::kIdent && tok_.text == "in") {
      const size_t pos = tok_.pos;
      RAPPORT_RETURN_IF_ERROR(Advance());
      if (!Is("[")) return SyntaxError(tok_.pos, "'['", "'in' needs a list: in [\"a\", \"b\"]");
      RAPPORT_ASSIGN_OR_RETURN(int list, List());
      return Binary(Op::kIn, left, list, Type::kBool, pos);
    }
    return left;
  }

  absl::StatusOr<int> Sum() {
    RAPPORT_ASSIGN_OR_RETURN(int left, Negation());
    while (Is("+") || Is("-")) {
      const bool plus = Is("+");
      const size_t pos = tok_.pos;
      RAPPORT_RETURN_IF_ERROR(Advance());
      RAPPORT_ASSIGN_OR_RETURN(int right, Negation());
      RAPPORT_ASSIGN_OR_RETURN(Type t, ArithmeticType(plus, TypeOf(left), TypeOf(right), pos));
      RAPPORT_ASSIGN_OR_RETURN(left, Binary(plus ? Op::kAdd : Op::kSub, left, right, t, pos));
    }
    return left;
  }

  static absl::StatusOr<Type> ArithmeticType(bool plus, Type a, Type b, size_t pos) {
    using T = Type;
    if (a == T::kNumber && b == T::kNumber) return T::kNumber;
    if (a == T::kDuration && b == T::kDuration) return T::kDuration;
    if (a == T::kTime && b == T::kDuration) return T::kTime;
    if (plus && a == T::kDuration && b == T::kTime) return T::kTime;
    if (!plus && a == T::kTime && b == T::kTime) return T::kDuration;
    const bool arith_a = a == T::kAny || a == T::kNumber || a == T::kTime || a == T::kDuration;
    const bool arith_b = b == T::kAny || b == T::kNumber || b == T::kTime || b == T::kDuration;
    if ((a == T::kAny || b == T::kAny) && arith_a && arith_b) {
      // now() - traits.signed_up_at: a time minus a time (as text) is a duration.
      if (!plus && a == T::kTime) return T::kDuration;
      return T::kAny;
    }
    return SyntaxError(pos, "numbers, or times and durations",
                       fmt::format("cannot {} a {} {} a {}", plus ? "add" : "subtract",
                                   TypeName(b), plus ? "to" : "from", TypeName(a)));
  }

  absl::StatusOr<int> Negation() {
    if (Is("-")) {
      const size_t pos = tok_.pos;
      RAPPORT_RETURN_IF_ERROR(Enter(pos));
      RAPPORT_RETURN_IF_ERROR(Advance());
      RAPPORT_ASSIGN_OR_RETURN(int inner, Negation());
      --depth_;
      const Type t = TypeOf(inner);
      if (!Numeric(t) && t != Type::kDuration) {
        return SyntaxError(pos, "a number", fmt::format("cannot negate a {}", TypeName(t)));
      }
      return Binary(Op::kNeg, inner, -1, t, pos);
    }
    return Primary();
  }

  absl::StatusOr<Value> Literal() {
    Value v;
    switch (tok_.kind) {
      case Token::Kind::kNumber: v = Value::Number(tok_.number); break;
      case Token::Kind::kString: v = Value::String(tok_.text); break;
      case Token::Kind::kDuration:
        v.kind = Value::Kind::kDuration;
        v.micros = tok_.micros;
        break;
      case Token::Kind::kIdent:
        if (tok_.text == "true" || tok_.text == "false") {
          v = Value::Bool(tok_.text == "true");
          break;
        }
        if (tok_.text == "null") {
          v = Value::Null();
          break;
        }
        [[fallthrough]];
      default:
        return SyntaxError(tok_.pos, "a literal: a number, string, duration, true, false or null",
                           fmt::format("expected a literal but found {}", Describe(tok_)));
    }
    RAPPORT_RETURN_IF_ERROR(Advance());
    return v;
  }

  absl::StatusOr<int> List() {
    Node n;
    n.op = Op::kList;
    n.type = Type::kList;
    n.pos = static_cast<uint32_t>(tok_.pos);
    RAPPORT_RETURN_IF_ERROR(Expect("["));
    while (!Is("]")) {
      if (n.items.size() == kMaxListItems) {
        return SyntaxError(tok_.pos, "']'", fmt::format("a list holds at most {} items", kMaxListItems));
      }
      if (tok_.kind == Token::Kind::kSymbol && tok_.text == "-") {
        RAPPORT_RETURN_IF_ERROR(Advance());
        RAPPORT_ASSIGN_OR_RETURN(Value v, Literal());
        if (v.kind != Value::Kind::kNumber) return SyntaxError(tok_.pos, "a number", "only numbers can be negative");
        v.number = -v.number;
        n.items.push_back(std::move(v));
      } else {
        RAPPORT_ASSIGN_OR_RETURN(Value v, Literal());
        n.items.push_back(std::move(v));
      }
      if (Is("]")) break;
      RAPPORT_RETURN_IF_ERROR(Expect(","));
    }
    RAPPORT_RETURN_IF_ERROR(Expect("]"));
    return Add(std::move(n));
  }

  absl::StatusOr<int> Primary() {
    const size_t pos = tok_.pos;
    if (Is("(")) {
      RAPPORT_RETURN_IF_ERROR(Enter(pos));
      RAPPORT_RETURN_IF_ERROR(Advance());
      RAPPORT_ASSIGN_OR_RETURN(int inner, Or());
      RAPPORT_RETURN_IF_ERROR(Expect(")"));
      --depth_;
      return inner;
    }
    if (Is("[")) {
      return SyntaxError(pos, "an operand", "a list can only follow 'in'");
    }
    if (tok_.kind == Token::Kind::kIdent && tok_.text != "true" && tok_.text != "false" &&
        tok_.text != "null") {
      std::string name = tok_.text;
      RAPPORT_RETURN_IF_ERROR(Advance());
      if (Is("(")) return Call(name, pos);
      return Field(name, pos);
    }
    if (tok_.kind == Token::Kind::kEnd) {
      return SyntaxError(pos, "an operand", "the expression ends where an operand was expected");
    }
    if (tok_.kind == Token::Kind::kSymbol) {
      return SyntaxError(pos, "an operand", fmt::format("expected an operand but found {}", Describe(tok_)));
    }
    Node n;
    n.pos = static_cast<uint32_t>(pos);
    RAPPORT_ASSIGN_OR_RETURN(n.literal, Literal());
    switch (n.literal.kind) {
      case Value::Kind::kNumber: n.type = Type::kNumber; break;
      case Value::Kind::kString: n.type = Type::kString; break;
      case Value::Kind::kDuration: n.type = Type::kDuration; break;
      case Value::Kind::kBool: n.type = Type::kBool; break;
      default: n.type = Type::kNull;
    }
    return Add(std::move(n));
  }

  // A member name after '.': an identifier, or a quoted string for names with other characters.
  absl::StatusOr<std::string> MemberName() {
    if (tok_.kind != Token::Kind::kIdent && tok_.kind != Token::Kind::kString) {
      return SyntaxError(tok_.pos, "a name after '.'",
                         fmt::format("expected a name after '.' but found {}", Describe(tok_)));
    }
    std::string name = tok_.text;
    RAPPORT_RETURN_IF_ERROR(Advance());
    return name;
  }

  absl::StatusOr<int> Field(const std::string& root_name, size_t pos) {
    static constexpr std::pair<std::string_view, Root> kRoots[] = {
        {"traits", Root::kTraits},     {"computed", Root::kComputed}, {"profile", Root::kProfile},
        {"properties", Root::kProperties}, {"event", Root::kEvent},   {"type", Root::kType}};
    Node n;
    n.op = Op::kField;
    n.pos = static_cast<uint32_t>(pos);
    bool found = false;
    for (const auto& [name, root] : kRoots) {
      if (name == root_name && schema_.Allows(root)) {
        n.root = root;
        found = true;
      }
    }
    if (!found) {
      std::string known;
      for (const auto& [name, root] : kRoots) {
        if (schema_.Allows(root)) known += (known.empty() ? "" : ", ") + std::string(name);
      }
      return SyntaxError(pos, fmt::format("a field ({}) or a function", known),
                         fmt::format("unknown field '{}' (fields start with {})", root_name, known));
    }
    out_.roots_ |= 1u << static_cast<int>(n.root);
    while (Is(".")) {
      RAPPORT_RETURN_IF_ERROR(Advance());
      if (n.path.size() == 8) return SyntaxError(tok_.pos, "a shorter path", "a field path has at most 8 parts");
      RAPPORT_ASSIGN_OR_RETURN(std::string member, MemberName());
      n.path.push_back(std::move(member));
    }
    std::string key = Expression::FieldKey(n.root, n.path);
    auto known = std::find(out_.fields_.begin(), out_.fields_.end(), key);
    n.field = static_cast<int>(known - out_.fields_.begin());
    if (known == out_.fields_.end()) out_.fields_.push_back(std::move(key));
    switch (n.root) {
      case Root::kEvent:
      case Root::kType:
        if (!n.path.empty()) return SyntaxError(pos, "an operator", fmt::format("'{}' has no members", root_name));
        n.type = Type::kString;
        break;
      case Root::kTraits:
      case Root::kProperties:
        if (n.path.empty()) {
          return SyntaxError(tok_.pos, "'.' and a name", fmt::format("name one of the {}: {}.name", root_name, root_name));
        }
        n.type = Type::kAny;
        break;
      case Root::kProfile: {
        static constexpr std::pair<std::string_view, Type> kParts[] = {
            {"first_seen", Type::kTime}, {"last_seen", Type::kTime}, {"event_count", Type::kNumber}};
        bool ok = false;
        for (const auto& [name, type] : kParts) {
          if (n.path.size() == 1 && n.path[0] == name) {
            n.type = type;
            ok = true;
          }
        }
        if (!ok) {
          return SyntaxError(pos, "profile.first_seen, profile.last_seen or profile.event_count",
                             "unknown profile field");
        }
        break;
      }
      case Root::kComputed: {
        if (n.path.empty() || n.path.size() > 2) {
          return SyntaxError(pos, "computed.NAME", "name a computed trait: computed.NAME (or computed.NAME.PART)");
        }
        std::string why;
        auto type = schema_.ComputedType(n.path[0], n.path.size() == 2 ? n.path[1] : "", &why);
        if (!type) return SyntaxError(pos, "a defined computed trait", why);
        n.type = *type;
        if (std::find(out_.computed_.begin(), out_.computed_.end(), n.path[0]) == out_.computed_.end()) {
          out_.computed_.push_back(n.path[0]);
        }
        break;
      }
    }
    return Add(std::move(n));
  }

  absl::StatusOr<int> Call(const std::string& name, size_t pos) {
    RAPPORT_RETURN_IF_ERROR(Enter(pos));
    RAPPORT_RETURN_IF_ERROR(Expect("("));
    Node n;
    n.pos = static_cast<uint32_t>(pos);
    n.type = Type::kBool;
    if (name == "now") {
      n.op = Op::kNow;
      n.type = Type::kTime;
    } else if (name == "segment") {
      n.op = Op::kSegment;
      if (tok_.kind != Token::Kind::kString) {
        return SyntaxError(tok_.pos, "a segment name in quotes", "segment() takes a name: segment(\"churned\")");
      }
      n.name = tok_.text;
      std::string why;
      if (!schema_.HasSegment(n.name, &why)) return SyntaxError(tok_.pos, "a defined segment", why);
      if (std::find(out_.segments_.begin(), out_.segments_.end(), n.name) == out_.segments_.end()) {
        out_.segments_.push_back(n.name);
      }
      RAPPORT_RETURN_IF_ERROR(Advance());
    } else if (name == "exists") {
      n.op = Op::kExists;
      const size_t arg_pos = tok_.pos;
      RAPPORT_ASSIGN_OR_RETURN(n.a, Sum());
      if (out_.nodes_[n.a].op != Op::kField) {
        return SyntaxError(arg_pos, "a field", "exists() takes a field: exists(traits.email)");
      }
    } else if (name == "contains" || name == "startsWith" || name == "endsWith") {
      n.op = name == "contains" ? Op::kContains : name == "startsWith" ? Op::kStartsWith : Op::kEndsWith;
      RAPPORT_ASSIGN_OR_RETURN(n.a, Sum());
      RAPPORT_RETURN_IF_ERROR(Expect(","));
      RAPPORT_ASSIGN_OR_RETURN(n.b, Sum());
      for (int arg : {n.a, n.b}) {
        const Type t = TypeOf(arg);
        if (t != Type::kString && t != Type::kAny) {
          return SyntaxError(out_.nodes_[arg].pos, "a string",
                             fmt::format("{}() compares strings, not a {}", name, TypeName(t)));
        }
      }
    } else {
      return SyntaxError(pos, "a function: now, segment, exists, contains, startsWith or endsWith",
                         fmt::format("unknown function '{}'", name));
    }
    RAPPORT_RETURN_IF_ERROR(Expect(")"));
    --depth_;
    return Add(std::move(n));
  }

  Lexer lexer_;
  const Schema& schema_;
  Expression& out_;
  Token tok_;
  size_t depth_ = 0;
};

class Evaluator {
 public:
  Evaluator(const Expression& e, const Env& env, std::span<const int> slots)
      : e_(e), env_(env), slots_(slots), now_(env.Now()) {}

  Evaluation Run() {
    Evaluation out;
    out.matched = Truthy(Eval(static_cast<int>(e_.nodes_.size()) - 1));
    out.next_change = next_;
    return out;
  }

 private:
  using Node = Expression::Node;
  using K = Value::Kind;

  static bool Truthy(const Value& v) { return v.kind == K::kBool && v.boolean; }

  // A time given as text (ISO 8601) becomes a time where one is expected.
  static Value AsTime(Value v) {
    if (v.kind == K::kString) {
      auto t = base::ParseIso8601(v.text);
      if (t.ok()) return Value::Time(*t);
      return Value::Missing();
    }
    return v;
  }

  void Coerce(Value& a, Value& b) const {
    if (a.kind == K::kTime && b.kind == K::kString) b = AsTime(std::move(b));
    if (b.kind == K::kTime && a.kind == K::kString) a = AsTime(std::move(a));
  }

  // Notes when a comparison of two time-dependent values flips: diff(t) = diff + rate·(t − now).
  void Crossing(base::Micros diff, int rate) {
    if (rate == 0) return;
    // zero at t* = now − diff / rate
    const long double t = static_cast<long double>(now_) - static_cast<long double>(diff) / rate;
    if (t < static_cast<long double>(now_) || t > 9e18L) return;
    const base::Micros at = static_cast<base::Micros>(std::ceil(t)) + 1;
    if (at > now_) next_ = std::min(next_, at);
  }

  // <0, 0, >0, or nullopt when the two do not compare.
  std::optional<int> Order(Value a, Value b) {
    Coerce(a, b);
    if (a.kind != b.kind) return std::nullopt;
    switch (a.kind) {
      case K::kNumber:
        if (std::isnan(a.number) || std::isnan(b.number)) return std::nullopt;
        return a.number < b.number ? -1 : a.number > b.number ? 1 : 0;
      case K::kString: return a.text.compare(b.text) < 0 ? -1 : a.text == b.text ? 0 : 1;
      case K::kTime:
      case K::kDuration: {
        Crossing(a.micros - b.micros, a.now_factor - b.now_factor);
        return a.micros < b.micros ? -1 : a.micros > b.micros ? 1 : 0;
      }
      default: return std::nullopt;
    }
  }

  bool Equal(const Value& a, const Value& b) {
    const bool a_none = a.kind == K::kMissing || a.kind == K::kNull;
    const bool b_none = b.kind == K::kMissing || b.kind == K::kNull;
    if (a_none || b_none) return a_none && b_none;
    // Only a time compared with text needs converting: copy then, not for every list item.
    if ((a.kind == K::kTime && b.kind == K::kString) || (a.kind == K::kString && b.kind == K::kTime)) {
      Value ca = a, cb = b;
      Coerce(ca, cb);
      return ca.kind == cb.kind && Order(std::move(ca), std::move(cb)) == 0;
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
      case K::kBool: return a.boolean == b.boolean;
      case K::kString:
      case K::kComposite: return a.text == b.text;
      default: {
        auto o = Order(a, b);
        return o && *o == 0;
      }
    }
  }

  Value Arithmetic(bool plus, Value a, Value b) {
    if (a.kind == K::kNumber && b.kind == K::kNumber) {
      return Value::Number(plus ? a.number + b.number : a.number - b.number);
    }
    if (a.kind == K::kTime || b.kind == K::kTime) {
      if (a.kind == K::kString) a = AsTime(std::move(a));
      if (b.kind == K::kString) b = AsTime(std::move(b));
    }
    const int sign = plus ? 1 : -1;
    Value out;
    if (a.kind == K::kTime && b.kind == K::kDuration) {
      out.kind = K::kTime;
    } else if (plus && a.kind == K::kDuration && b.kind == K::kTime) {
      out.kind = K::kTime;
    } else if (!plus && a.kind == K::kTime && b.kind == K::kTime) {
      out.kind = K::kDuration;
    } else if (a.kind == K::kDuration && b.kind == K::kDuration) {
      out.kind = K::kDuration;
    } else {
      return Value::Missing();
    }
    out.micros = a.micros + sign * b.micros;
    out.now_factor = a.now_factor + sign * b.now_factor;
    return out;
  }

  Value Eval(int i) {
    const Node& n = e_.nodes_[i];
    switch (n.op) {
      case Op::kLiteral: return n.literal;
      case Op::kList: return Value::Missing();
      case Op::kField: return env_.Field(n.root, n.path, slots_.empty() ? -1 : slots_[n.field]);
      case Op::kNow: {
        Value v = Value::Time(now_);
        v.now_factor = 1;
        return v;
      }
      case Op::kSegment: return Value::Bool(env_.InSegment(n.name));
      case Op::kExists: {
        const Value v = Eval(n.a);
        return Value::Bool(v.kind != K::kMissing && v.kind != K::kNull);
      }
      case Op::kContains:
      case Op::kStartsWith:
      case Op::kEndsWith: {
        const Value a = Eval(n.a);
        const Value b = Eval(n.b);
        if (a.kind != K::kString || b.kind != K::kString) return Value::Bool(false);
        if (n.op == Op::kContains) return Value::Bool(a.text.find(b.text) != std::string::npos);
        if (n.op == Op::kStartsWith) return Value::Bool(std::string_view(a.text).starts_with(b.text));
        return Value::Bool(std::string_view(a.text).ends_with(b.text));
      }
      case Op::kNot: return Value::Bool(!Truthy(Eval(n.a)));
      case Op::kAnd: return Value::Bool(Truthy(Eval(n.a)) && Truthy(Eval(n.b)));
      case Op::kOr: return Value::Bool(Truthy(Eval(n.a)) || Truthy(Eval(n.b)));
      case Op::kNeg: {
        Value v = Eval(n.a);
        if (v.kind == K::kNumber) return Value::Number(-v.number);
        if (v.kind == K::kDuration) {
          v.micros = -v.micros;
          v.now_factor = -v.now_factor;
          return v;
        }
        return Value::Missing();
      }
      case Op::kAdd:
      case Op::kSub: return Arithmetic(n.op == Op::kAdd, Eval(n.a), Eval(n.b));
      case Op::kEq: return Value::Bool(Equal(Eval(n.a), Eval(n.b)));
      case Op::kNe: return Value::Bool(!Equal(Eval(n.a), Eval(n.b)));
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: {
        auto o = Order(Eval(n.a), Eval(n.b));
        if (!o) return Value::Bool(false);
        switch (n.op) {
          case Op::kLt: return Value::Bool(*o < 0);
          case Op::kLe: return Value::Bool(*o <= 0);
          case Op::kGt: return Value::Bool(*o > 0);
          default: return Value::Bool(*o >= 0);
        }
      }
      case Op::kIn: {
        const Value v = Eval(n.a);
        for (const Value& item : e_.nodes_[n.b].items) {
          if (Equal(v, item)) return Value::Bool(true);
        }
        return Value::Bool(false);
      }
    }
    return Value::Missing();
  }

  const Expression& e_;
  const Env& env_;
  const std::span<const int> slots_;
  const base::Micros now_;
  base::Micros next_ = Evaluation::kNever;
};

Expression::~Expression() = default;

absl::StatusOr<std::unique_ptr<const Expression>> Expression::Parse(std::string_view text,
                                                                    const Schema& schema) {
  if (text.size() > kMaxExpressionBytes) {
    return base::InvalidField("expression_too_long", "expression",
                              fmt::format("an expression has at most {} bytes", kMaxExpressionBytes),
                              static_cast<int64_t>(kMaxExpressionBytes));
  }
  if (auto bad = base::FindInvalidUtf8(text)) {
    return SyntaxError(*bad, "UTF-8 text", "the expression is not valid UTF-8");
  }
  std::unique_ptr<Expression> e(new Expression());
  e->text_ = std::string(text);
  Parser parser(text, schema, *e);
  RAPPORT_RETURN_IF_ERROR(parser.Run());
  return std::unique_ptr<const Expression>(std::move(e));
}

std::string Expression::FieldKey(Root root, std::span<const std::string> path) {
  std::string key(1, static_cast<char>(root));
  for (const std::string& part : path) {
    key += '\0';
    key += part;
  }
  return key;
}

Evaluation Expression::Evaluate(const Env& env, std::span<const int> slots) const {
  RAPPORT_CHECK(slots.empty() || slots.size() == fields_.size());
  return Evaluator(*this, env, slots).Run();
}

absl::StatusOr<base::Micros> ParseDuration(std::string_view text) {
  Lexer lexer(text);
  auto token = lexer.Next();
  auto end = token.ok() ? lexer.Next() : token;
  if (!token.ok() || !end.ok() || token->kind != Token::Kind::kDuration ||
      end->kind != Token::Kind::kEnd || token->micros <= 0) {
    return base::InvalidField("invalid_duration", "window",
                              fmt::format("'{}' is not a duration: a positive number and a unit, "
                                          "s m h d or w (e.g. 30d, 12h)",
                                          text));
  }
  return token->micros;
}

}  // namespace rapport::profile

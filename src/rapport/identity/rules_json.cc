#include "rapport/identity/rules_json.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <set>

#include "absl/strings/ascii.h"
#include "rapport/base/error.h"
#include "rapport/base/strings.h"
#include "rapport/base/utf8.h"
#include "rapport/wire/json_text.h"

namespace rapport::identity {
namespace json = boost::json;
namespace {

absl::Status Bad(std::string_view code, std::string_view field, std::string message) {
  return base::InvalidField(code, field, message);
}

std::string_view View(const json::string& s) { return {s.data(), s.size()}; }

absl::StatusOr<int> Limit(const json::value& v, std::string_view field) {
  if (!v.is_int64() || v.get_int64() < 1 || v.get_int64() > kMaxPerTypeLimit) {
    return Bad("invalid_value", field,
               fmt::format("'{}' must be a whole number from 1 to {}", field, kMaxPerTypeLimit));
  }
  return static_cast<int>(v.get_int64());
}

}  // namespace

absl::StatusOr<MergeRules> ParseMergeRules(std::string_view text, UnknownMembers unknown) {
  if (auto bad = base::FindInvalidUtf8(text)) {
    return Bad("invalid_utf8", "", fmt::format("the settings are not valid UTF-8 (first bad byte at offset {})", *bad));
  }
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) return Bad("malformed_json", "", fmt::format("the settings are not valid JSON: {}", ec.message()));
  if (!v.is_object()) return Bad("invalid_type", "", "merge protection settings must be a JSON object");
  MergeRules rules;
  for (const auto& [key, value] : v.get_object()) {
    const std::string_view name(key.data(), key.size());
    if (name == "priority") {
      if (!value.is_array()) return Bad("invalid_type", name, "'priority' must be a list of identifier types");
      if (value.get_array().empty() || value.get_array().size() > kMaxPriorityTypes) {
        return Bad("invalid_value", name,
                   fmt::format("'priority' must be a list of 1 to {} identifier types, most trusted first",
                               kMaxPriorityTypes));
      }
      rules.priority.clear();
      std::set<std::string> seen;
      for (const json::value& item : value.get_array()) {
        if (!item.is_string() || (View(item.get_string()) != "*" && !IsIdentifierType(View(item.get_string())))) {
          return Bad("invalid_value", name,
                     "each 'priority' entry must be an identifier type (lower-case letters, digits, '_', "
                     "'.', '-') or \"*\" for every type not named");
        }
        std::string type(View(item.get_string()));
        if (!seen.insert(type).second) {
          return Bad("invalid_value", name, fmt::format("'priority' names '{}' twice", type));
        }
        rules.priority.push_back(std::move(type));
      }
    } else if (name == "max_per_type") {
      if (!value.is_object()) {
        return Bad("invalid_type", name, "'max_per_type' must be an object of identifier type → limit");
      }
      // Types named here change their limit; the others keep theirs (user_id 1 unless named).
      // The limit counts the types with a limit after that, defaults included: what is
      // accepted must read back when stored.
      for (const auto& [type, limit] : value.get_object()) {
        const std::string_view t(type.data(), type.size());
        if (!IsIdentifierType(t)) {
          return Bad("invalid_value", name, fmt::format("'{}' in 'max_per_type' is not an identifier type", t));
        }
        auto n = Limit(limit, fmt::format("max_per_type.{}", t));
        if (!n.ok()) return n.status();
        rules.max_per_type[std::string(t)] = *n;
        if (rules.max_per_type.size() > kMaxPriorityTypes) {
          return Bad("invalid_value", name,
                     fmt::format("'max_per_type' names at most {} types (user_id's default included)", kMaxPriorityTypes));
        }
      }
    } else if (name == "default_max") {
      auto n = Limit(value, name);
      if (!n.ok()) return n.status();
      rules.default_max = *n;
    } else if (name == "blocked_values") {
      if (!value.is_array()) return Bad("invalid_type", name, "'blocked_values' must be a list of strings");
      if (value.get_array().size() > kMaxBlockedValues) {
        return Bad("invalid_value", name,
                   fmt::format("'blocked_values' lists at most {} values", kMaxBlockedValues));
      }
      // Added to the built-in placeholders, which stay blocked whatever a workspace sets.
      for (const json::value& item : value.get_array()) {
        if (!item.is_string() || item.get_string().size() > kMaxBlockedValueBytes) {
          return Bad("invalid_value", name,
                     fmt::format("each blocked value must be a string of at most {} bytes", kMaxBlockedValueBytes));
        }
        std::string folded = absl::AsciiStrToLower(
            absl::StripAsciiWhitespace(base::AsAbsl(View(item.get_string()))));
        if (std::find(rules.blocked_values.begin(), rules.blocked_values.end(), folded) ==
            rules.blocked_values.end()) {
          rules.blocked_values.push_back(std::move(folded));
        }
      }
    } else if (name == "default_country_code") {
      const bool ok = value.is_string() && value.get_string().size() <= 3 &&
                      std::all_of(value.get_string().begin(), value.get_string().end(),
                                  [](char c) { return c >= '0' && c <= '9'; }) &&
                      (value.get_string().empty() || value.get_string()[0] != '0');
      if (!ok) {
        return Bad("invalid_value", name,
                   "'default_country_code' must be \"\" or a country calling code of 1 to 3 digits, e.g. \"31\"");
      }
      rules.default_country_code = std::string(View(value.get_string()));
    } else if (unknown == UnknownMembers::kRefuse) {
      return Bad("unknown_field", name,
                 fmt::format("'{}' is not a merge protection setting (known: priority, max_per_type, "
                             "default_max, blocked_values, default_country_code)",
                             name));
    }
  }
  return rules;
}

std::string MergeRulesJson(const MergeRules& rules) {
  std::string out = "{\"priority\":[";
  for (size_t i = 0; i < rules.priority.size(); ++i) {
    if (i) out += ',';
    wire::AppendQuoted(&out, rules.priority[i]);
  }
  out += "],\"max_per_type\":{";
  std::vector<std::pair<std::string, int>> limits(rules.max_per_type.begin(), rules.max_per_type.end());
  std::sort(limits.begin(), limits.end());
  for (size_t i = 0; i < limits.size(); ++i) {
    if (i) out += ',';
    wire::AppendQuoted(&out, limits[i].first);
    out += fmt::format(":{}", limits[i].second);
  }
  out += fmt::format("}},\"default_max\":{},\"blocked_values\":[", rules.default_max);
  for (size_t i = 0; i < rules.blocked_values.size(); ++i) {
    if (i) out += ',';
    wire::AppendQuoted(&out, rules.blocked_values[i]);
  }
  out += "],\"default_country_code\":";
  wire::AppendQuoted(&out, rules.default_country_code);
  out += '}';
  return out;
}

}  // namespace rapport::identity

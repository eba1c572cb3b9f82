#include <fmt/format.h>

#include "rapport/base/error.h"
#include "rapport/wire/internal/consent.h"

namespace rapport::wire::internal {
namespace json = boost::json;
namespace {

constexpr std::string_view kField = "context.consent";

absl::Status Bad(std::string_view code, const std::string& field, std::string message,
                 std::optional<int64_t> limit = std::nullopt) {
  return base::InvalidField(code, field, message, limit);
}

absl::Status ReadAnswers(const json::value& v, std::string_view member, bool strict,
                         std::vector<std::pair<std::string, bool>>* out) {
  const std::string field = fmt::format("{}.{}", kField, member);
  if (v.is_null()) return absl::OkStatus();
  if (!v.is_object()) {
    return strict ? Bad("invalid_consent", field,
                        fmt::format("'{}' must be an object of true (allowed) or false (refused) "
                                    "answers",
                                    field))
                  : absl::OkStatus();
  }
  const json::object& o = v.get_object();
  if (strict && o.size() > kMaxConsentEntries) {
    return Bad("too_many_entries", field,
               fmt::format("'{}' has {} entries; the limit is {}", field, o.size(), kMaxConsentEntries),
               kMaxConsentEntries);
  }
  for (const auto& m : o) {
    const std::string_view key(m.key().data(), m.key().size());
    const std::string entry = fmt::format("{}.{}", field, key);
    if (m.value().is_null()) continue;
    if (!m.value().is_bool() || key.empty() || key.size() > kMaxConsentKeyBytes) {
      if (!strict) continue;
      if (!m.value().is_bool()) {
        return Bad("invalid_consent", entry,
                   fmt::format("'{}' must be true (allowed), false (refused) or null (not "
                               "answered)",
                               entry));
      }
      return Bad("invalid_consent", entry,
                 fmt::format("a consent key is 1 to {} bytes", kMaxConsentKeyBytes), kMaxConsentKeyBytes);
    }
    out->emplace_back(std::string(key), m.value().get_bool());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadConsent(const json::value& consent, bool strict, ConsentFacts* out) {
  if (consent.is_null()) return absl::OkStatus();
  const json::object* o = consent.if_object();
  if (!o) {
    return strict ? Bad("invalid_consent", std::string(kField), "'context.consent' must be an object")
                  : absl::OkStatus();
  }
  for (const auto& m : *o) {
    const std::string_view key(m.key().data(), m.key().size());
    const json::value& v = m.value();
    const std::string field = fmt::format("{}.{}", kField, key);
    if (key == "categoryPreferences") {
      if (auto s = ReadAnswers(v, key, strict, &out->categories); !s.ok()) return s;
    } else if (key == "purposes") {
      if (auto s = ReadAnswers(v, key, strict, &out->purposes); !s.ok()) return s;
    } else if (key == "textVersion" || key == "source") {
      if (v.is_null()) continue;
      if (!v.is_string() || v.get_string().size() > kMaxTextVersionBytes) {
        if (!strict) continue;
        return Bad("invalid_consent", field,
                   fmt::format("'{}' must be a string of at most {} bytes", field, kMaxTextVersionBytes),
                   kMaxTextVersionBytes);
      }
      const std::string_view s(v.get_string().data(), v.get_string().size());
      if (key == "source") {
        if (strict && s != "event" && s != "api" && s != "preferences_page") {
          return Bad("invalid_consent", field,
                     "'context.consent.source' is one of event, api or preferences_page (set by "
                     "rapport)");
        }
        out->source = std::string(s);
      } else {
        out->text_version = std::string(s);
      }
    }
    // Other members are kept in the stored event and mean nothing to rapport.
  }
  return absl::OkStatus();
}

}  // namespace rapport::wire::internal

#include "rapport/trust/consent_json.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>

#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/utf8.h"
#include "rapport/trust/internal/json_object.h"
#include "rapport/wire/json_text.h"

namespace rapport::trust {
namespace json = boost::json;
using internal::ParseObject;
namespace {

absl::Status Bad(std::string_view code, std::string_view field, const std::string& message) {
  return base::InvalidField(code, field, message);
}

std::string_view View(const json::string& s) { return {s.data(), s.size()}; }

using Map = std::map<std::string, std::string, std::less<>>;

// Reads `value`, an object of name → string, into `out` (changing or adding entries).
// `check(name, text)` returns an error message for a bad entry ("" if fine).
template <typename Check>
absl::Status ReadMap(const json::value& value, std::string_view member, size_t max_entries, Map* out,
                     Check check) {
  if (!value.is_object()) {
    return Bad("invalid_type", member, fmt::format("'{}' must be an object of names to strings", member));
  }
  if (value.get_object().size() > max_entries) {
    return Bad("invalid_value", member, fmt::format("'{}' has at most {} entries", member, max_entries));
  }
  for (const auto& [key, v] : value.get_object()) {
    const std::string_view name = std::string_view(key.data(), key.size());
    const std::string field = fmt::format("{}.{}", member, name);
    if (!v.is_string()) return Bad("invalid_type", field, fmt::format("'{}' must be a string", field));
    const std::string_view text = View(v.get_string());
    if (std::string problem = check(name, text); !problem.empty()) return Bad("invalid_value", field, problem);
    (*out)[std::string(name)] = std::string(text);
  }
  return absl::OkStatus();
}

void AppendMap(std::string* out, std::string_view member, const Map& map) {
  wire::AppendQuoted(out, member);
  *out += ":{";
  bool first = true;
  for (const auto& [k, v] : map) {
    if (!first) *out += ',';
    first = false;
    wire::AppendQuoted(out, k);
    *out += ':';
    wire::AppendQuoted(out, v);
  }
  *out += '}';
}

// `text` as a JSON object, or why not (`what` names it in the message: "the body").

}  // namespace

absl::StatusOr<PurposePolicy> ParsePurposePolicy(std::string_view text, bool ignore_unknown) {
  RAPPORT_ASSIGN_OR_RETURN(json::value v, ParseObject(text, "the settings"));
  PurposePolicy policy = PurposePolicy::Defaults();
  const json::object& o = v.get_object();
  // Purposes first: the maps below may name the new ones.
  if (const json::value* purposes = o.if_contains("purposes")) {
    RAPPORT_RETURN_IF_ERROR(ReadMap(*purposes, "purposes", kMaxPurposes, &policy.purposes,
                                    [](std::string_view name, std::string_view benefit) -> std::string {
                                      if (!IsPurposeName(name)) {
                                        return fmt::format("'{}' is not a purpose name (1 to {} of a-z, 0-9 "
                                                           "and '_', starting with a letter)",
                                                           name, kMaxPurposeChars);
                                      }
                                      if (benefit.empty() || benefit.size() > kMaxBenefitBytes) {
                                        return fmt::format("a purpose's text is 1 to {} bytes", kMaxBenefitBytes);
                                      }
                                      return "";
                                    }));
    if (policy.purposes.size() > kMaxPurposes) {
      return Bad("invalid_value", "purposes", fmt::format("a workspace has at most {} purposes", kMaxPurposes));
    }
  }
  auto exists = [&policy](std::string_view, std::string_view purpose) -> std::string {
    if (policy.purposes.contains(purpose)) return "";
    return fmt::format("'{}' is not a purpose of this workspace (add it under 'purposes' first)", purpose);
  };
  for (const auto& [key, value] : o) {
    const std::string_view name = std::string_view(key.data(), key.size());
    if (name == "purposes") continue;
    if (name == "types") {
      RAPPORT_RETURN_IF_ERROR(ReadMap(value, name, 6, &policy.types, [&](std::string_view type, std::string_view p) {
        if (!wire::ParseEventType(type)) {
          return fmt::format("'{}' is not an event type (identify, track, page, screen, group, alias)", type);
        }
        return exists(type, p);
      }));
    } else if (name == "events") {
      RAPPORT_RETURN_IF_ERROR(ReadMap(value, name, kMaxMappedEvents, &policy.events, [&](std::string_view event, std::string_view p) {
        if (event.empty() || event.size() > kMaxEventNameBytes) {
          return fmt::format("an event name is 1 to {} bytes", kMaxEventNameBytes);
        }
        if (event == wire::kConsentRecordEvent) {
          return fmt::format("'{}' is rapport's record of a change of consent; its purpose is not set", event);
        }
        return exists(event, p);
      }));
      if (policy.events.size() > kMaxMappedEvents) {
        return Bad("invalid_value", name, fmt::format("at most {} event names are mapped", kMaxMappedEvents));
      }
    } else if (name == "categories") {
      RAPPORT_RETURN_IF_ERROR(ReadMap(value, name, kMaxCategories, &policy.categories, [&](std::string_view c, std::string_view p) {
        if (c.empty() || c.size() > 64) return std::string("a category is 1 to 64 bytes");
        return exists(c, p);
      }));
      if (policy.categories.size() > kMaxCategories) {
        return Bad("invalid_value", name, fmt::format("at most {} categories are mapped", kMaxCategories));
      }
    } else if (name == "grant_expires_after_days") {
      if (!value.is_int64() || value.get_int64() < 0 || value.get_int64() > kMaxGrantDays) {
        return Bad("invalid_value", name,
                   fmt::format("'grant_expires_after_days' is a whole number of days from 0 (never) to {}",
                               kMaxGrantDays));
      }
      policy.grant_expires_after_days = static_cast<int>(value.get_int64());
    } else if (!ignore_unknown) {
      return Bad("unknown_field", name,
                 fmt::format("'{}' is not a purpose setting (known: purposes, types, events, categories, "
                             "grant_expires_after_days); an unknown purpose always counts as refused and no "
                             "setting changes that",
                             name));
    }
  }
  return policy;
}

std::string PurposePolicyJson(const PurposePolicy& policy) {
  std::string out = "{";
  AppendMap(&out, "purposes", policy.purposes);
  out += ',';
  AppendMap(&out, "types", policy.types);
  out += ',';
  AppendMap(&out, "events", policy.events);
  out += ',';
  AppendMap(&out, "categories", policy.categories);
  out += fmt::format(",\"grant_expires_after_days\":{}}}", policy.grant_expires_after_days);
  return out;
}

absl::StatusOr<ConsentUpdate> ParseConsentUpdate(std::string_view text, const PurposePolicy& policy) {
  RAPPORT_ASSIGN_OR_RETURN(json::value v, ParseObject(text, "the body"));
  ConsentUpdate update;
  for (const auto& [key, value] : v.get_object()) {
    const std::string_view name = std::string_view(key.data(), key.size());
    if (name == "purposes") {
      if (!value.is_object()) {
        return Bad("invalid_type", name, "'purposes' must be an object of purpose → \"granted\" or \"denied\"");
      }
      for (const auto& [pk, state] : value.get_object()) {
        const std::string_view purpose = std::string_view(pk.data(), pk.size());
        const std::string field = fmt::format("purposes.{}", purpose);
        if (purpose == kNecessary) {
          return Bad("invalid_value", field,
                     "'necessary' is what is needed to serve the person at all; it is not asked and "
                     "cannot be refused");
        }
        if (!policy.purposes.contains(purpose)) {
          return Bad("invalid_value", field, fmt::format("'{}' is not a purpose of this workspace", purpose));
        }
        const std::string_view s = state.is_string() ? View(state.get_string()) : std::string_view();
        if (s != "granted" && s != "denied") {
          return Bad("invalid_value", field, fmt::format("'{}' must be \"granted\" or \"denied\"", field));
        }
        update.purposes.emplace_back(std::string(purpose), s == "granted");
      }
    } else if (name == "text_version") {
      if (!value.is_string() || value.get_string().size() > 64) {
        return Bad("invalid_value", name, "'text_version' is a string of at most 64 bytes");
      }
      update.text_version = std::string(View(value.get_string()));
    } else {
      return Bad("unknown_field", name,
                 fmt::format("'{}' is not part of a consent change (known: purposes, text_version)", name));
    }
  }
  if (update.purposes.empty()) {
    return Bad("missing_field", "purposes", "name at least one purpose: {\"purposes\": {\"marketing\": \"denied\"}}");
  }
  std::sort(update.purposes.begin(), update.purposes.end());
  return update;
}

std::string ConsentChangeMessage(const ConsentUpdate& update, std::string_view source,
                                 std::string_view id_member, std::string_view id_value,
                                 std::string_view message_id) {
  std::string out = "{\"type\":\"track\",\"event\":";
  wire::AppendQuoted(&out, wire::kConsentRecordEvent);
  out += ",\"messageId\":";
  wire::AppendQuoted(&out, message_id);
  out += ',';
  wire::AppendQuoted(&out, id_member);
  out += ':';
  wire::AppendQuoted(&out, id_value);
  out += ",\"context\":{\"consent\":{\"purposes\":{";
  for (size_t i = 0; i < update.purposes.size(); ++i) {
    if (i) out += ',';
    wire::AppendQuoted(&out, update.purposes[i].first);
    out += update.purposes[i].second ? ":true" : ":false";
  }
  out += "},\"source\":";
  wire::AppendQuoted(&out, source);
  if (!update.text_version.empty()) {
    out += ",\"textVersion\":";
    wire::AppendQuoted(&out, update.text_version);
  }
  out += "}}}";
  return out;
}

absl::StatusOr<json::value> internal::ParseObject(std::string_view text, std::string_view what) {
  if (auto bad = base::FindInvalidUtf8(text)) {
    return Bad("invalid_utf8", "", fmt::format("{} is not valid UTF-8 (first bad byte at offset {})", what, *bad));
  }
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) return Bad("malformed_json", "", fmt::format("{} is not valid JSON: {}", what, ec.message()));
  if (!v.is_object()) return Bad("invalid_type", "", fmt::format("{} must be a JSON object", what));
  return v;
}

}  // namespace rapport::trust

#include "rapport/trust/keys_json.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/time.h"
#include "rapport/trust/internal/json_object.h"
#include "rapport/wire/json_text.h"

namespace rapport::trust {
namespace json = boost::json;
namespace {

constexpr size_t kMaxListItems = 64;

absl::Status StringList(const json::value& v, std::string_view field, std::vector<std::string>* out) {
  if (!v.is_array() || v.get_array().size() > kMaxListItems) {
    return base::InvalidField("invalid_type", field,
                              fmt::format("'{}' must be an array of at most {} strings", field, kMaxListItems),
                              static_cast<int64_t>(kMaxListItems));
  }
  for (const json::value& item : v.get_array()) {
    if (!item.is_string()) {
      return base::InvalidField("invalid_type", field, fmt::format("'{}' must be an array of strings", field));
    }
    out->emplace_back(item.get_string().data(), item.get_string().size());
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Number(const json::value& v, std::string_view field) {
  if (!v.is_number()) return base::InvalidField("invalid_type", field, fmt::format("'{}' must be a number", field));
  return v.to_number<double>();
}

void AppendList(std::string* out, const std::vector<std::string>& items) {
  *out += '[';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) *out += ',';
    wire::AppendQuoted(out, items[i]);
  }
  *out += ']';
}

std::string TimeOrNull(base::Micros t) { return t ? wire::Quote(base::FormatIso8601(t)) : "null"; }

}  // namespace

absl::StatusOr<KeySpec> ParseKeySpec(std::string_view text) {
  RAPPORT_ASSIGN_OR_RETURN(json::value v, internal::ParseObject(text, "the body"));
  KeySpec spec;
  bool named = false;
  for (const auto& [key, value] : v.get_object()) {
    const std::string_view name(key.data(), key.size());
    if (name == "name") {
      if (!value.is_string()) return base::InvalidField("invalid_type", name, "'name' must be a string");
      spec.name.assign(value.get_string().data(), value.get_string().size());
      named = true;
    } else if (name == "kind") {
      const bool write = value.is_string() && value.get_string() == "write";
      if (!write && !(value.is_string() && value.get_string() == "secret")) {
        return base::InvalidField("invalid_value", name, "'kind' is \"secret\" (the default) or \"write\"");
      }
      spec.kind = write ? KeyKind::kWrite : KeyKind::kSecret;
    } else if (name == "scopes") {
      RAPPORT_RETURN_IF_ERROR(StringList(value, name, &spec.scopes));
    } else if (name == "purposes") {
      RAPPORT_RETURN_IF_ERROR(StringList(value, name, &spec.purposes));
    } else if (name == "rate") {
      if (!value.is_object()) {
        return base::InvalidField("invalid_type", name, "'rate' must be an object {\"per_second\": …, \"burst\": …}");
      }
      for (const auto& [rk, rv] : value.get_object()) {
        const std::string_view member(rk.data(), rk.size());
        const std::string field = fmt::format("rate.{}", member);
        if (member == "per_second") {
          RAPPORT_ASSIGN_OR_RETURN(spec.rate.per_second, Number(rv, field));
        } else if (member == "burst") {
          RAPPORT_ASSIGN_OR_RETURN(spec.rate.burst, Number(rv, field));
        } else {
          return base::InvalidField("unknown_field", field, fmt::format("'rate' has no member '{}'", member));
        }
      }
    } else {
      return base::InvalidField("unknown_field", name,
                                fmt::format("a key has no member '{}' (name, kind, scopes, purposes, rate)", name));
    }
  }
  if (!named) return base::InvalidField("missing_field", "name", "give the key a 'name' that says who uses it");
  return spec;
}

std::string KeyJson(const KeyInfo& k) {
  std::string out = "{\"id\":" + wire::Quote(k.id) + ",\"name\":" + wire::Quote(k.name) + ",\"kind\":" +
                    wire::Quote(KeyKindName(k.kind)) + ",\"scopes\":";
  AppendList(&out, k.scopes);
  out += ",\"purposes\":";
  if (k.purposes.empty()) {
    out += "null";
  } else {
    AppendList(&out, k.purposes);
  }
  out += ",\"rate\":";
  out += k.rate.per_second > 0 ? fmt::format("{{\"per_second\":{:g},\"burst\":{:g}}}", k.rate.per_second,
                                             k.rate.burst > 0 ? k.rate.burst : 2 * k.rate.per_second)
                               : "null";
  out += ",\"created_at\":" + TimeOrNull(k.created_at) + ",\"last_used_at\":" + TimeOrNull(k.last_used_at) +
         ",\"revoked_at\":" + TimeOrNull(k.revoked_at) + '}';
  return out;
}

}  // namespace rapport::trust

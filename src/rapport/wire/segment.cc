#include "rapport/wire/segment.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cmath>

#include "rapport/base/error.h"
#include "rapport/base/strings.h"
#include "rapport/base/utf8.h"
#include "rapport/wire/internal/consent.h"
#include "rapport/wire/json_text.h"

namespace rapport::wire {
namespace json = boost::json;
namespace {

using base::InvalidField;

constexpr std::string_view kTypeNames[] = {"identify", "track", "page", "screen", "group", "alias"};

std::string_view KindOf(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: return "a number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
  }
  return "a value";
}

absl::Status WrongType(std::string_view field, std::string_view want, const json::value& got) {
  return InvalidField("invalid_type", field,
                      fmt::format("'{}' must be {}, not {}", field, want, KindOf(got)));
}

// How deeply `v` nests; sets *overflow for a number too large for a double (the parser reads
// 1e400 as infinity, which no JSON text can hold: such an event could not be read back).
int Depth(const json::value& v, bool* overflow) {
  if (const json::object* o = v.if_object()) {
    int d = 0;
    for (const auto& m : *o) d = std::max(d, Depth(m.value(), overflow));
    return d + 1;
  }
  if (const json::array* a = v.if_array()) {
    int d = 0;
    for (const auto& e : *a) d = std::max(d, Depth(e, overflow));
    return d + 1;
  }
  if (const double* x = v.if_double(); x && !std::isfinite(*x)) *overflow = true;
  return 0;
}

absl::Status NumberOutOfRange(std::string_view field) {
  return InvalidField("number_out_of_range", field,
                      "a number is too large: JSON numbers must fit a double (at most about 1.8e308)");
}

// Reads a string member; null or missing is absent.
absl::Status ReadString(const json::value& v, std::string_view field,
                        std::optional<std::string>* out) {
  if (v.is_null()) return absl::OkStatus();
  const json::string* s = v.if_string();
  if (!s) return WrongType(field, "a string", v);
  *out = std::string(s->data(), s->size());
  return absl::OkStatus();
}

// Points `out` at an object member (null or missing: nullptr), for members merged with a batch's.
absl::Status ReadObjectRef(const json::value& v, std::string_view field,
                           const json::object** out) {
  if (!v.is_null() && !v.is_object()) return WrongType(field, "an object", v);
  *out = v.if_object();
  return absl::OkStatus();
}

absl::Status ReadObject(const json::value& v, std::string_view field, std::string* out) {
  if (v.is_null()) return absl::OkStatus();
  if (!v.is_object()) return WrongType(field, "an object", v);
  *out = json::serialize(v);
  return absl::OkStatus();
}

// What a batch's envelope gives each of its messages.
struct BatchDefaults {
  const json::object* context = nullptr;       // merged under the message's own context
  const json::object* integrations = nullptr;  // merged under the message's own integrations
  std::optional<std::string> sent_at;          // unless the message has its own
  const json::object* envelope = nullptr;      // other members, unless the message has them
};

// `own` (may be null) merged over `defaults` (may be null), as JSON text; "" when both absent.
std::string MergeObjects(const json::object* defaults, const json::object* own) {
  if (!defaults || defaults->empty()) return own ? json::serialize(*own) : std::string();
  json::object merged = *defaults;
  if (own) {
    for (const auto& member : *own) merged[member.key()] = member.value();
  }
  return json::serialize(merged);
}

// Members a message's fields are read from (or that are never stored): a batch envelope's copy
// of one of these is not passed down as an "other" member, which would duplicate a key of the
// stored JSON or bypass the typed field.
bool IsInterpretedMember(std::string_view key) {
  static constexpr std::string_view kInterpreted[] = {
      "batch",   "writeKey", "type",      "messageId",         "userId", "anonymousId",
      "event",   "name",     "groupId",   "previousId",        "traits", "properties",
      "context", "integrations", "timestamp", "originalTimestamp", "sentAt", "receivedAt"};
  for (std::string_view k : kInterpreted) {
    if (k == key) return true;
  }
  return false;
}

absl::StatusOr<SegmentMessage> ReadMessage(const json::value& value,
                                           std::optional<EventType> route,
                                           const BatchDefaults& batch,
                                           const ParseLimits& limits) {
  const json::object* obj = value.if_object();
  if (!obj) {
    return InvalidField("invalid_type", "", fmt::format("a message must be an object, not {}",
                                                        KindOf(value)));
  }
  SegmentMessage m;
  bool overflow = false;
  m.depth = Depth(value, &overflow);
  if (overflow) return NumberOutOfRange("");
  if (m.depth > limits.max_depth) {
    return InvalidField("too_deep", "",
                        fmt::format("the message nests {} levels deep; the limit is {}", m.depth,
                                    limits.max_depth),
                        limits.max_depth);
  }

  // type: from the route, and if the message names one it must agree.
  std::optional<std::string> type_name;
  if (auto it = obj->find("type"); it != obj->end()) {
    if (auto s = ReadString(it->value(), "type", &type_name); !s.ok()) return s;
  }
  if (route) {
    m.type = *route;
    if (type_name && *type_name != EventTypeName(*route)) {
      return InvalidField("type_mismatch", "type",
                          fmt::format("'type' is '{}' but the message was sent to /v1/{}",
                                      *type_name, EventTypeName(*route)));
    }
  } else {
    if (!type_name) {
      return InvalidField("missing_field", "type",
                          "a message in a batch needs 'type' (identify, track, page, screen, "
                          "group or alias)");
    }
    auto parsed = ParseEventType(*type_name);
    if (!parsed) {
      return InvalidField("invalid_field", "type",
                          fmt::format("'type' is '{}'; it must be identify, track, page, screen, "
                                      "group or alias",
                                      *type_name));
    }
    m.type = *parsed;
  }

  const json::object* own_context = nullptr;
  const json::object* own_integrations = nullptr;
  for (const auto& member : *obj) {
    const std::string_view key(member.key().data(), member.key().size());
    const json::value& v = member.value();
    absl::Status s;
    if (key == "type" || key == "writeKey") continue;
    if (key == "messageId") s = ReadString(v, key, &m.message_id);
    else if (key == "userId") s = ReadString(v, key, &m.user_id);
    else if (key == "anonymousId") s = ReadString(v, key, &m.anonymous_id);
    else if (key == "event") s = ReadString(v, key, &m.event);
    else if (key == "name") s = ReadString(v, key, &m.name);
    else if (key == "groupId") s = ReadString(v, key, &m.group_id);
    else if (key == "previousId") s = ReadString(v, key, &m.previous_id);
    else if (key == "timestamp") s = ReadString(v, key, &m.timestamp);
    else if (key == "originalTimestamp") s = ReadString(v, key, &m.original_timestamp);
    else if (key == "sentAt") s = ReadString(v, key, &m.sent_at);
    else if (key == "receivedAt") s = ReadString(v, key, &m.received_at);
    else if (key == "traits") s = ReadObject(v, key, &m.traits);
    else if (key == "properties") s = ReadObject(v, key, &m.properties);
    else if (key == "integrations") s = ReadObjectRef(v, key, &own_integrations);
    else if (key == "context") s = ReadObjectRef(v, key, &own_context);
    else {
      if (!m.other_members.empty()) m.other_members += ',';
      AppendQuoted(&m.other_members, key);
      m.other_members += ':';
      m.other_members += json::serialize(v);
    }
    if (!s.ok()) return s;
  }
  if (!m.sent_at && batch.sent_at) m.sent_at = batch.sent_at;
  // The message's own context.consent, else the batch's (contexts merge member by member).
  const json::value* consent = own_context ? own_context->if_contains("consent") : nullptr;
  if (!consent && batch.context) consent = batch.context->if_contains("consent");
  if (consent) {
    ConsentFacts facts;
    if (auto s = internal::ReadConsent(*consent, /*strict=*/true, &facts); !s.ok()) return s;
    if (!facts.source.empty()) m.consent_source = std::move(facts.source);
  }
  m.context = MergeObjects(batch.context, own_context);
  m.integrations = MergeObjects(batch.integrations, own_integrations);
  // Any other member of the batch's envelope is kept on each message that lacks it.
  if (batch.envelope) {
    for (const auto& member : *batch.envelope) {
      const std::string_view key(member.key().data(), member.key().size());
      if (IsInterpretedMember(key) || obj->contains(member.key())) continue;
      if (!m.other_members.empty()) m.other_members += ',';
      AppendQuoted(&m.other_members, key);
      m.other_members += ':';
      m.other_members += json::serialize(member.value());
    }
  }
  return m;
}

absl::Status MalformedJson(const boost::system::error_code& ec, size_t offset, int max_depth) {
  if (ec == json::error::too_deep) {
    return InvalidField("too_deep", "",
                        fmt::format("the request nests too deeply; the limit is {} levels per "
                                    "message",
                                    max_depth),
                        max_depth);
  }
  return InvalidField("malformed_json", "",
                      fmt::format("the body is not valid JSON: {} (at byte {})", ec.message(),
                                  offset));
}

}  // namespace

std::string_view EventTypeName(EventType type) { return kTypeNames[static_cast<int>(type)]; }

std::optional<EventType> ParseEventType(std::string_view name) {
  for (int i = 0; i < 6; ++i) {
    if (kTypeNames[i] == name) return static_cast<EventType>(i);
  }
  return std::nullopt;
}

absl::StatusOr<TrackingRequest> ParseTrackingRequest(std::string_view body,
                                                     std::optional<EventType> route,
                                                     const ParseLimits& limits) {
  json::parse_options options;
  // The message may nest max_depth levels; a batch puts it two levels down ({"batch": [msg]}).
  options.max_depth = static_cast<size_t>(limits.max_depth) + 2;
  // The document lives only while its messages are extracted: an arena spares the allocator
  // one malloc/free per JSON value.
  json::monotonic_resource arena(body.size() * 2 + 1024);
  json::stream_parser parser(&arena, options);
  boost::system::error_code ec;
  // write (not write_some): anything after the JSON value is an error, not silently skipped.
  size_t consumed = parser.write(body.data(), body.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    // The parser refuses invalid UTF-8 too; only a failed parse pays for finding where it is.
    if (auto bad = base::FindInvalidUtf8(body)) {
      return InvalidField("invalid_utf8", "",
                          fmt::format("the body is not valid UTF-8 (first bad byte at offset {})",
                                      *bad));
    }
    return MalformedJson(ec, consumed, limits.max_depth);
  }
  json::value root = parser.release();

  const json::object* obj = root.if_object();
  if (!obj) {
    return InvalidField("invalid_type", "", fmt::format("the body must be a JSON object, not {}",
                                                        KindOf(root)));
  }
  TrackingRequest request;
  request.is_batch = !route.has_value();
  if (auto it = obj->find("writeKey"); it != obj->end()) {
    if (auto s = ReadString(it->value(), "writeKey", &request.write_key); !s.ok()) return s;
  }
  if (route) {
    request.messages.push_back(ReadMessage(root, route, BatchDefaults{}, limits));
    return request;
  }

  auto batch_it = obj->find("batch");
  if (batch_it == obj->end()) {
    return InvalidField("missing_field", "batch", "the body needs 'batch', an array of messages");
  }
  const json::array* batch = batch_it->value().if_array();
  if (!batch) return WrongType("batch", "an array", batch_it->value());
  // Envelope members end up inside every message, so they obey the message's depth limit.
  for (const auto& member : *obj) {
    if (member.key() == "batch") continue;
    bool overflow = false;
    const std::string_view key(member.key().data(), member.key().size());
    if (const int depth = 1 + Depth(member.value(), &overflow); depth > limits.max_depth) {
      return InvalidField("too_deep", key,
                          fmt::format("'{}' of the batch nests {} levels deep inside each message; "
                                      "the limit is {}",
                                      key, depth, limits.max_depth),
                          limits.max_depth);
    }
    if (overflow) return NumberOutOfRange(key);
  }
  BatchDefaults defaults;
  defaults.envelope = obj;
  if (auto it = obj->find("sentAt"); it != obj->end()) {
    if (auto s = ReadString(it->value(), "sentAt", &defaults.sent_at); !s.ok()) return s;
  }
  for (auto [name, slot] : {std::pair{"context", &defaults.context},
                            std::pair{"integrations", &defaults.integrations}}) {
    if (auto it = obj->find(name); it != obj->end() && !it->value().is_null()) {
      *slot = it->value().if_object();
      if (!*slot) return WrongType(name, "an object", it->value());
    }
  }
  request.messages.reserve(batch->size());
  for (size_t i = 0; i < batch->size(); ++i) {
    auto message = ReadMessage((*batch)[i], std::nullopt, defaults, limits);
    if (!message.ok()) {
      message = base::WithFieldPrefix(message.status(), fmt::format("batch[{}]", i));
    }
    request.messages.push_back(std::move(message));
  }
  return request;
}

absl::StatusOr<SegmentMessage> ParseMessage(std::string_view json_text,
                                            const ParseLimits& limits) {
  auto request = ParseTrackingRequest(fmt::format("{{\"batch\":[{}]}}", json_text), std::nullopt,
                                      limits);
  if (!request.ok()) return request.status();
  if (request->messages.size() != 1) {
    return InvalidField("malformed_json", "", "expected exactly one JSON object");
  }
  auto message = std::move(request->messages[0]);
  if (!message.ok()) {
    // Drop the "batch[0]." the wrapping added to the field.
    base::ErrorDetails d = base::GetErrorDetails(message.status());
    std::string field = d.field;
    if (field.starts_with("batch[0]")) field = field.substr(field.size() > 8 ? 9 : 8);
    return base::MakeError(message.status().code(), d.code, base::AsStd(message.status().message()), field,
                           d.limit);
  }
  return message;
}

std::string EncodeStoredEvent(const SegmentMessage& m, const StoredFields& f) {
  std::string out;
  out.reserve(256 + m.traits.size() + m.properties.size() + m.context.size() +
              m.integrations.size() + m.other_members.size());
  out += "{\"type\":";
  AppendQuoted(&out, EventTypeName(m.type));
  auto field = [&out](std::string_view key, const std::optional<std::string>& v) {
    if (!v) return;
    out += ",\"";
    out += key;
    out += "\":";
    AppendQuoted(&out, *v);
  };
  auto raw = [&out](std::string_view key, const std::string& json_text) {
    if (json_text.empty()) return;
    out += ",\"";
    out += key;
    out += "\":";
    out += json_text;
  };
  out += ",\"messageId\":";
  AppendQuoted(&out, f.message_id);
  field("userId", m.user_id);
  field("anonymousId", m.anonymous_id);
  field("event", m.event);
  field("name", m.name);
  field("groupId", m.group_id);
  field("previousId", m.previous_id);
  raw("traits", m.traits);
  raw("properties", m.properties);
  raw("context", m.context);
  raw("integrations", m.integrations);
  out += ",\"timestamp\":";
  AppendQuoted(&out, base::FormatIso8601(f.timestamp));
  field("originalTimestamp", f.original_timestamp);
  field("sentAt", m.sent_at);
  out += ",\"receivedAt\":";
  AppendQuoted(&out, base::FormatIso8601(f.received_at));
  if (!m.other_members.empty()) {
    out += ',';
    out += m.other_members;
  }
  out += '}';
  return out;
}

}  // namespace rapport::wire

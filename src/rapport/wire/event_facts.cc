#include "rapport/wire/event_facts.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "rapport/base/error.h"
#include "rapport/wire/internal/consent.h"
#include "rapport/wire/json_text.h"

namespace rapport::wire {
namespace json = boost::json;
namespace {

std::string_view StringAt(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return {};
  return v->get_string();
}

const json::object* ObjectAt(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? v->if_object() : nullptr;
}

// JSON text of a value, numbers as people write them (Boost.JSON would write 12.5 as 1.25E1).
void Serialize(const json::value& v, std::string* out) {
  switch (v.kind()) {
    case json::kind::double_:
      *out += fmt::format("{}", v.get_double());
      return;
    case json::kind::string:
      AppendQuoted(out, v.get_string());
      return;
    case json::kind::array: {
      out->push_back('[');
      bool first = true;
      for (const json::value& e : v.get_array()) {
        if (!first) out->push_back(',');
        first = false;
        Serialize(e, out);
      }
      out->push_back(']');
      return;
    }
    case json::kind::object: {
      out->push_back('{');
      bool first = true;
      for (const auto& m : v.get_object()) {
        if (!first) out->push_back(',');
        first = false;
        AppendQuoted(out, m.key());
        out->push_back(':');
        Serialize(m.value(), out);
      }
      out->push_back('}');
      return;
    }
    default:
      *out += json::serialize(v);
  }
}

void Members(const json::object* o, std::vector<std::pair<std::string, std::string>>* out) {
  if (!o) return;
  out->reserve(o->size());
  for (const auto& m : *o) {
    std::string text;
    Serialize(m.value(), &text);
    out->emplace_back(std::string(m.key()), std::move(text));
  }
}

}  // namespace

absl::StatusOr<EventFacts> ReadEventFacts(std::string_view stored_event_json) {
  // A stored event is a few hundred bytes: its parsed values fit a stack buffer, so parsing one
  // allocates nothing (beyond what the facts copy out).
  unsigned char buffer[8192];
  json::monotonic_resource memory(buffer, sizeof buffer);
  boost::system::error_code ec;
  json::value doc = json::parse(stored_event_json, ec, &memory);
  if (ec || !doc.is_object()) {
    return base::InvalidField("malformed_event", "", "a stored event must be a JSON object");
  }
  const json::object& o = doc.get_object();
  EventFacts f;
  auto type = ParseEventType(StringAt(o, "type"));
  if (!type) return base::InvalidField("invalid_type", "type", "a stored event names its type");
  f.type = *type;
  f.message_id = StringAt(o, "messageId");
  if (f.type == EventType::kTrack) f.event = StringAt(o, "event");
  if (f.type == EventType::kPage || f.type == EventType::kScreen) f.event = StringAt(o, "name");
  if (f.type == EventType::kAlias) f.previous_id = StringAt(o, "previousId");

  auto add = [&f](std::string_view type, std::string_view value, std::string_view source) {
    if (!value.empty()) f.identifiers.push_back({std::string(type), std::string(value), std::string(source)});
  };
  add("user_id", StringAt(o, "userId"), "userId");
  add("anonymous_id", StringAt(o, "anonymousId"), "anonymousId");
  const json::object* traits = ObjectAt(o, "traits");
  const json::object* context = ObjectAt(o, "context");
  const json::object* context_traits = context ? ObjectAt(*context, "traits") : nullptr;
  if (traits && f.type == EventType::kIdentify) {
    add("email", StringAt(*traits, "email"), "traits.email");
    add("phone", StringAt(*traits, "phone"), "traits.phone");
  }
  if (context_traits) {
    add("email", StringAt(*context_traits, "email"), "context.traits.email");
    add("phone", StringAt(*context_traits, "phone"), "context.traits.phone");
  }
  if (context) {
    if (const json::object* device = ObjectAt(*context, "device")) {
      add("device_id", StringAt(*device, "id"), "context.device.id");
    }
    const json::value* external = context->if_contains("externalIds");
    if (external && external->is_array()) {
      const json::array& ids = external->get_array();
      for (size_t i = 0; i < ids.size(); ++i) {
        const json::object* entry = ids[i].if_object();
        if (!entry) continue;
        const std::string_view type = StringAt(*entry, "type");
        const json::value* id = entry->if_contains("id");
        if (type.empty() || !id) continue;
        std::string value;
        if (id->is_string()) {
          value = std::string(id->get_string());
        } else if (id->is_int64() || id->is_uint64()) {
          value = json::serialize(*id);
        }
        add(type, value, "context.externalIds[" + std::to_string(i) + "]");
      }
    }
  }
  if (context) {
    if (const json::value* consent = context->if_contains("consent")) {
      (void)internal::ReadConsent(*consent, /*strict=*/false, &f.consent);  // lenient: never fails
      if (!f.consent.empty()) {
        if (auto received = base::ParseIso8601(StringAt(o, "receivedAt")); received.ok()) {
          f.consent.received_at = *received;
        }
      }
    }
  }
  if (f.type == EventType::kIdentify) Members(traits, &f.traits);
  Members(ObjectAt(o, "properties"), &f.properties);
  return f;
}

std::string ConsentRecordOf(std::string_view stored_event_json) {
  boost::system::error_code ec;
  json::value doc = json::parse(stored_event_json, ec);
  const json::object* o = ec ? nullptr : doc.if_object();
  json::object out;
  out["type"] = "track";
  auto copy = [&](std::string_view key, const json::object* from, json::object* to) {
    if (!from) return;
    if (const json::value* v = from->if_contains(key)) (*to)[key] = *v;
  };
  copy("messageId", o, &out);
  copy("userId", o, &out);
  copy("anonymousId", o, &out);
  out["event"] = json::string(kConsentRecordEvent);
  json::object context;
  if (const json::object* c = o ? ObjectAt(*o, "context") : nullptr) {
    if (const json::object* traits = ObjectAt(*c, "traits")) {
      json::object kept;
      copy("email", traits, &kept);
      copy("phone", traits, &kept);
      if (!kept.empty()) context["traits"] = std::move(kept);
    }
    if (const json::object* device = ObjectAt(*c, "device")) {
      json::object kept;
      copy("id", device, &kept);
      if (!kept.empty()) context["device"] = std::move(kept);
    }
    copy("externalIds", c, &context);
    copy("consent", c, &context);
  }
  out["context"] = std::move(context);
  for (std::string_view key : {"timestamp", "originalTimestamp", "sentAt", "receivedAt"}) copy(key, o, &out);
  std::string text;
  Serialize(out, &text);
  return text;
}

}  // namespace rapport::wire

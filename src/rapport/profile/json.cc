#include "rapport/profile/json.h"

#include <fmt/format.h>

#include "rapport/base/time.h"
#include "rapport/wire/json_text.h"

namespace rapport::profile {
namespace {

using wire::AppendQuoted;

std::string Id(uint64_t id) { return fmt::format("\"{}\"", id); }
std::string Time(base::Micros t) { return fmt::format("\"{}\"", base::FormatIso8601(t)); }

void AppendIdentifier(std::string* out, const identity::Identifier& id) {
  *out += "{\"type\":";
  AppendQuoted(out, id.type);
  *out += ",\"value\":";
  AppendQuoted(out, id.value);
  *out += '}';
}

}  // namespace

std::string ProfileJson(const ProfileRecord& p, uint64_t requested) {
  std::string out = "{\"id\":" + Id(p.id);
  if (requested != p.id) out += ",\"merged_from\":" + Id(requested);
  out += ",\"identifiers\":[";
  for (size_t i = 0; i < p.identities.size(); ++i) {
    if (i) out += ',';
    AppendIdentifier(&out, p.identities[i].identifier);
  }
  out += "],\"traits\":{";
  for (size_t i = 0; i < p.traits.size(); ++i) {
    if (i) out += ',';
    AppendQuoted(&out, p.traits[i].name);
    out += ':';
    out += p.traits[i].json;
  }
  out += fmt::format("}},\"first_seen\":{},\"last_seen\":{},\"event_count\":{},\"blocked_links\":{}}}",
                     Time(p.first.timestamp), Time(p.last.timestamp), p.event_count, p.blocked_total);
  return out;
}

std::string IdentitiesJson(const ProfileRecord& p) {
  std::string out = "{\"profile_id\":" + Id(p.id) + ",\"identities\":[";
  for (size_t i = 0; i < p.identities.size(); ++i) {
    const IdentityEntry& e = p.identities[i];
    if (i) out += ',';
    out += "{\"type\":";
    AppendQuoted(&out, e.identifier.type);
    out += ",\"value\":";
    AppendQuoted(&out, e.identifier.value);
    out += ",\"reason\":";
    AppendQuoted(&out, e.reason);
    out += ",\"event\":";
    AppendQuoted(&out, e.event);
    out += ",\"source\":";
    AppendQuoted(&out, e.source);
    out += ",\"linked_at\":" + Time(e.added_at) + '}';
  }
  out += "],\"merges\":[";
  for (size_t i = 0; i < p.merges.size(); ++i) {
    const MergeEntry& m = p.merges[i];
    if (i) out += ',';
    out += "{\"absorbed\":" + Id(m.absorbed) + ",\"event\":";
    AppendQuoted(&out, m.event);
    out += ",\"via\":";
    AppendQuoted(&out, m.via);
    out += ",\"at\":" + Time(m.at) + '}';
  }
  out += "],\"blocked\":[";
  for (size_t i = 0; i < p.blocked.size(); ++i) {
    const BlockedEntry& b = p.blocked[i];
    if (i) out += ',';
    out += "{\"identifier\":";
    AppendQuoted(&out, b.identifier);
    out += ",\"reason\":";
    AppendQuoted(&out, b.reason);
    out += ",\"event\":";
    AppendQuoted(&out, b.event);
    out += ",\"at\":" + Time(b.at) + '}';
  }
  out += fmt::format("],\"blocked_total\":{}}}", p.blocked_total);
  return out;
}

std::string TimelineJson(uint64_t id, const TimelinePage& page) {
  std::string out = "{\"profile_id\":" + Id(id) + ",\"events\":[";
  for (size_t i = 0; i < page.events.size(); ++i) {
    if (i) out += ',';
    out += page.events[i].payload;
  }
  out += "],\"next_cursor\":";
  if (page.next_cursor.empty()) {
    out += "null";
  } else {
    AppendQuoted(&out, page.next_cursor);
  }
  return out + '}';
}

std::string SplitJson(const std::vector<uint64_t>& profiles) {
  std::string out = "{\"profiles\":[";
  for (size_t i = 0; i < profiles.size(); ++i) {
    if (i) out += ',';
    out += Id(profiles[i]);
  }
  return out + "]}";
}

}  // namespace rapport::profile

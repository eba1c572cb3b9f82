#include "rapport/profile/json.h"

#include <fmt/format.h>

#include <algorithm>

#include "rapport/base/time.h"
#include "rapport/wire/json_text.h"

namespace rapport::profile {
namespace {

using wire::AppendQuoted;

// `s` as a JSON string, or null when it is empty.
void AppendOrNull(std::string* out, std::string_view s) {
  if (s.empty()) {
    *out += "null";
  } else {
    AppendQuoted(out, s);
  }
}

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

std::string ProfileJson(const ProfileRecord& p, uint64_t requested, const Definitions& defs,
                        const DerivedState& derived, const trust::PurposePolicy& policy, base::Micros now,
                        const std::vector<std::string>* visible) {
  const bool analytics =
      !visible || std::find(visible->begin(), visible->end(), trust::kAnalytics) != visible->end();
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
  out += '}';
  bool first = true;
  if (analytics) {  // computed traits and segments are derived for analytics
    out += ",\"computed\":{";
    for (const ComputedTraitDef& def : defs.computed()) {
      auto it = derived.traits.find(def.name());
      const bool current = it != derived.traits.end() && it->second.version == def.version;
      if (!first) out += ',';
      first = false;
      AppendQuoted(&out, def.name());
      out += ':';
      out += ComputedJson(def, current ? it->second.At(def, now) : Aggregate{}, now);
    }
    out += "},\"segments\":[";
    first = true;
    for (const Membership& m : derived.segments) {
      if (!defs.FindSegment(m.segment)) continue;
      if (!first) out += ',';
      first = false;
      out += "{\"name\":";
      AppendQuoted(&out, m.segment);
      out += ",\"entered_at\":" + Time(m.entered_at) + "}";
    }
    out += ']';
  }
  if (visible) {
    out += ",\"restricted_to\":[";
    for (size_t i = 0; i < visible->size(); ++i) {
      if (i) out += ',';
      AppendQuoted(&out, (*visible)[i]);
    }
    out += ']';
  }
  out += ",\"consent\":{";
  first = true;
  for (const auto& [purpose, benefit] : policy.purposes) {
    if (!first) out += ',';
    first = false;
    AppendQuoted(&out, purpose);
    out += ':';
    AppendQuoted(&out, trust::ConsentStateName(trust::StateOf(p.consents, purpose, policy, now)));
  }
  out += fmt::format("}},\"first_seen\":{},\"last_seen\":{},\"event_count\":{},\"blocked_links\":{}}}",
                     Time(p.first.timestamp), Time(p.last.timestamp), p.event_count, p.blocked_total);
  return out;
}

std::string ConsentJson(const ProfileRecord& p, const trust::PurposePolicy& policy, base::Micros now) {
  std::string out = "{\"profile_id\":" + Id(p.id) + ",\"purposes\":{";
  bool first = true;
  for (const auto& [purpose, benefit] : policy.purposes) {
    if (!first) out += ',';
    first = false;
    AppendQuoted(&out, purpose);
    out += ":{\"state\":";
    AppendQuoted(&out, trust::ConsentStateName(trust::StateOf(p.consents, purpose, policy, now)));
    if (const trust::Choice* c = p.consents.Find(purpose)) {
      // The recorded choice (an expired grant shows its state "unknown" above and its time here).
      out += ",\"choice\":";
      AppendQuoted(&out, trust::ConsentStateName(c->state));
      out += ",\"at\":" + Time(c->at) + ",\"source\":";
      AppendQuoted(&out, c->source);
      out += ",\"text_version\":";
      AppendOrNull(&out, c->text_version);
      out += ",\"event\":";
      AppendQuoted(&out, c->message_id);
    }
    out += ",\"benefit\":";
    AppendQuoted(&out, benefit);
    out += '}';
  }
  out += "}}";
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
  for (size_t i = 0; i < page.items.size(); ++i) {
    if (i) out += ',';
    const TimelineItem& item = page.items[i];
    if (item.membership) {
      out += fmt::format("{{\"type\":\"membership\",\"change\":\"{}\",\"segment\":",
                         item.membership->entered ? "entered" : "exited");
      AppendQuoted(&out, item.membership->segment);
      out += ",\"timestamp\":" + Time(item.membership->at) + "}";
    } else {
      out += item.event.payload;
    }
  }
  out += "],\"next_cursor\":";
  AppendOrNull(&out, page.next_cursor);
  return out + '}';
}

std::string JobJson(const Job& j) {
  std::string out = fmt::format("{{\"id\":\"{}\",\"kind\":\"backfill\",\"definition\":{{\"type\":\"{}\",\"name\":",
                                j.id, j.kind == DefinitionKind::kComputed ? "computed_trait" : "segment");
  AppendQuoted(&out, j.target);
  out += fmt::format(",\"version\":{}}},\"state\":\"{}\",\"done\":{},\"total\":{},\"progress\":{},\"profiles\":{}",
                     j.version, JobStateName(j.state), j.done(), j.total,
                     j.total ? static_cast<double>(j.done()) / static_cast<double>(j.total) : 1.0, j.profiles);
  out += ",\"created_at\":" + Time(j.created_at);
  out += ",\"started_at\":" + (j.started_at ? Time(j.started_at) : std::string("null"));
  out += ",\"finished_at\":" + (j.finished_at ? Time(j.finished_at) : std::string("null"));
  out += ",\"error\":";
  AppendOrNull(&out, j.error);
  return out + '}';
}

std::string DefinitionJson(const StoredDefinition& d, const std::optional<Job>& job) {
  std::string out = d.spec_json;
  out.pop_back();  // the spec's closing brace: the rest are members of the same object
  out += fmt::format(",\"version\":{},\"created_at\":{},\"updated_at\":{},\"job\":", d.version,
                     Time(d.created_at), Time(d.updated_at));
  out += job ? JobJson(*job) : fmt::format("{{\"id\":\"{}\"}}", d.job);
  return out + '}';
}

std::string MembersJson(std::string_view segment, const MembersPage& page) {
  std::string out = "{\"segment\":";
  AppendQuoted(&out, segment);
  out += fmt::format(",\"count\":{},\"members\":[", page.count);
  for (size_t i = 0; i < page.members.size(); ++i) {
    if (i) out += ',';
    out += "{\"profile_id\":" + Id(page.members[i].first) + ",\"entered_at\":" + Time(page.members[i].second) + "}";
  }
  out += "],\"next_cursor\":";
  AppendOrNull(&out, page.next_cursor);
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

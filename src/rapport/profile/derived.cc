#include "rapport/profile/derived.h"

#include <algorithm>

#include "rapport/base/check.h"
#include "rapport/base/codec.h"
#include "rapport/base/endian.h"
#include "rapport/profile/record.h"

namespace rapport::profile {
namespace {

constexpr uint8_t kJobVersion = 1;
constexpr size_t kTimelineKeySize = 1 + 4 + 8 + 8 + 8;

uint64_t Ordered(base::Micros t) { return static_cast<uint64_t>(t) ^ (1ULL << 63); }
base::Micros FromOrdered(uint64_t v) { return static_cast<base::Micros>(v ^ (1ULL << 63)); }

std::string WsKey(char tag, uint32_t ws) {
  std::string k(1, tag);
  base::PutU32(&k, ws);
  return k;
}

}  // namespace

std::string_view DefinitionKindName(DefinitionKind kind) {
  return kind == DefinitionKind::kComputed ? "computed trait" : "segment";
}

bool DerivedState::InSegment(std::string_view name) const {
  auto it = std::lower_bound(segments.begin(), segments.end(), name,
                             [](const Membership& m, std::string_view n) { return m.segment < n; });
  return it != segments.end() && it->segment == name;
}

std::string EncodeDerived(const DerivedState& d) {
  base::Writer w;
  w.Reserve(512);
  w.U8(kTraitStateFormat);  // the record's version is its trait states' format
  w.Varint(d.traits.size());
  for (const auto& [name, state] : d.traits) {
    w.Bytes(name);
    EncodeTraitState(w, state);
  }
  w.Varint(d.segments.size());
  for (const Membership& m : d.segments) {
    w.Bytes(m.segment);
    w.Signed(m.entered_at);
  }
  w.Signed(d.due);
  return std::move(w).Finish();
}

std::optional<DerivedState> DecodeDerived(std::string_view bytes) {
  base::Reader r(bytes);
  DerivedState d;
  uint8_t version;
  uint64_t n;
  if (!r.U8(&version) || version < 1 || version > kTraitStateFormat || !r.Varint(&n) || n > 10'000) {
    return std::nullopt;
  }
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view name;
    if (!r.Bytes(&name)) return std::nullopt;
    auto [it, added] = d.traits.try_emplace(std::string(name));
    if (!added || !DecodeTraitState(r, &it->second, version)) return std::nullopt;
  }
  if (!r.Varint(&n) || n > 10'000) return std::nullopt;
  d.segments.resize(n);
  for (Membership& m : d.segments) {
    if (!r.Bytes(&m.segment) || !r.Signed(&m.entered_at)) return std::nullopt;
  }
  if (!r.Signed(&d.due) || !r.done()) return std::nullopt;
  return d;
}

std::string DerivedKey(uint32_t ws, uint64_t id) {
  std::string k = WsKey('c', ws);
  base::PutU64(&k, id);
  return k;
}

std::string MemberPrefix(uint32_t ws, std::string_view segment) {
  RAPPORT_CHECK(segment.size() <= 255);
  std::string k = WsKey('g', ws);
  k.push_back(static_cast<char>(segment.size()));
  k += segment;
  return k;
}

std::string MemberKey(uint32_t ws, std::string_view segment, uint64_t id) {
  std::string k = MemberPrefix(ws, segment);
  base::PutU64(&k, id);
  return k;
}

std::string MemberCountKey(uint32_t ws, std::string_view segment) {
  std::string k = WsKey('G', ws);
  k += segment;
  return k;
}

std::string DuePrefix() { return "w"; }

std::string DueKey(base::Micros at, uint32_t ws, uint64_t id) {
  std::string k = "w";
  base::PutU64(&k, Ordered(at));
  base::PutU32(&k, ws);
  base::PutU64(&k, id);
  return k;
}

std::optional<DueEntry> DecodeDueKey(std::string_view key) {
  if (key.size() != 1 + 8 + 4 + 8 || key[0] != 'w') return std::nullopt;
  return DueEntry{FromOrdered(base::GetU64(key.substr(1))), base::GetU32(key.substr(9)),
                  base::GetU64(key.substr(13))};
}

std::optional<uint64_t> DecodeMemberKeyId(std::string_view key) {
  if (key.size() < 8) return std::nullopt;
  return base::GetU64(key.substr(key.size() - 8));
}

std::string DefinitionPrefix(uint32_t ws, DefinitionKind kind) {
  std::string k = WsKey('D', ws);
  k.push_back(static_cast<char>(kind));
  return k;
}

std::string DefinitionKey(uint32_t ws, DefinitionKind kind, std::string_view name) {
  return DefinitionPrefix(ws, kind) + std::string(name);
}

std::string JobKey(uint64_t id) {
  std::string k = "J";
  base::PutU64(&k, id);
  return k;
}

std::string NextJobKey() { return "N"; }

std::string MembershipTimelineKey(uint32_t ws, uint64_t id, base::Micros ts, uint64_t seq,
                                  std::string_view segment) {
  std::string k = TimelineKey(ws, id, ts, seq);
  k.push_back('m');
  k += segment;
  return k;
}

std::optional<MembershipChange> DecodeMembershipTimeline(std::string_view key, std::string_view value) {
  if (key.size() <= kTimelineKeySize + 1 || key[kTimelineKeySize] != 'm') return std::nullopt;
  if (value != "entered" && value != "exited") return std::nullopt;
  return MembershipChange{std::string(key.substr(kTimelineKeySize + 1)), value == "entered",
                          FromOrdered(base::GetU64(key.substr(13)))};
}

std::string_view JobStateName(JobState s) {
  switch (s) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kDone: return "done";
    case JobState::kFailed: return "failed";
    case JobState::kSuperseded: return "superseded";
  }
  return "failed";
}

std::string EncodeJob(const Job& j) {
  base::Writer w;
  w.U8(kJobVersion);
  w.Varint(j.ws);
  w.U8(static_cast<uint8_t>(j.kind));
  w.Bytes(j.target);
  w.Varint(j.version);
  w.U8(static_cast<uint8_t>(j.state));
  w.Varint(j.cursor);
  w.Varint(j.total);
  w.Varint(j.profiles);
  w.Signed(j.created_at);
  w.Signed(j.started_at);
  w.Signed(j.finished_at);
  w.Bytes(j.error);
  return std::move(w).Finish();
}

std::optional<Job> DecodeJob(uint64_t id, std::string_view bytes) {
  base::Reader r(bytes);
  Job j;
  j.id = id;
  uint8_t version, kind, state;
  uint64_t ws;
  if (!r.U8(&version) || version != kJobVersion || !r.Varint(&ws) || !r.U8(&kind) ||
      !r.Bytes(&j.target) || !r.Varint(&j.version) || !r.U8(&state) || !r.Varint(&j.cursor) ||
      !r.Varint(&j.total) || !r.Varint(&j.profiles) || !r.Signed(&j.created_at) ||
      !r.Signed(&j.started_at) || !r.Signed(&j.finished_at) || !r.Bytes(&j.error) || !r.done() ||
      (kind != 'c' && kind != 's') || state > static_cast<uint8_t>(JobState::kSuperseded)) {
    return std::nullopt;
  }
  j.ws = static_cast<uint32_t>(ws);
  j.kind = static_cast<DefinitionKind>(kind);
  j.state = static_cast<JobState>(state);
  return j;
}

std::string EncodeU64(uint64_t v) {
  std::string out;
  base::PutU64(&out, v);
  return out;
}

std::optional<uint64_t> DecodeU64(std::string_view v) {
  if (v.size() != 8) return std::nullopt;
  return base::GetU64(v);
}

}  // namespace rapport::profile

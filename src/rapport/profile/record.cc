#include "rapport/profile/record.h"

#include <algorithm>

#include "rapport/base/check.h"
#include "rapport/base/codec.h"
#include "rapport/base/endian.h"

namespace rapport::profile {
namespace {

// Version 2 added consents; version 1 records (none) are still read.
constexpr uint8_t kRecordVersion = 3;

uint64_t Ordered(base::Micros t) { return static_cast<uint64_t>(t) ^ (1ULL << 63); }
base::Micros FromOrdered(uint64_t v) { return static_cast<base::Micros>(v ^ (1ULL << 63)); }

void PutKey(base::Writer& w, const OrderKey& k) {
  w.Signed(k.timestamp);
  w.Bytes(k.message_id);
}
bool GetKey(base::Reader& r, OrderKey* k) { return r.Signed(&k->timestamp) && r.Bytes(&k->message_id); }

void PutId(base::Writer& w, const identity::Identifier& id) {
  w.Bytes(id.type);
  w.Bytes(id.value);
}
bool GetId(base::Reader& r, identity::Identifier* id) { return r.Bytes(&id->type) && r.Bytes(&id->value); }

template <typename T, typename F>
void PutList(base::Writer& w, const std::vector<T>& list, F put) {
  w.Varint(list.size());
  for (const T& item : list) put(item);
}
template <typename T, typename F>
bool GetList(base::Reader& r, std::vector<T>* list, F get) {
  uint64_t n;
  if (!r.Varint(&n) || n > (1u << 20)) return false;
  list->resize(n);
  for (T& item : *list) {
    if (!get(item)) return false;
  }
  return true;
}

std::string WsKey(char tag, uint32_t ws) {
  std::string k(1, tag);
  base::PutU32(&k, ws);
  return k;
}

std::string IdKey(char tag, uint32_t ws, const identity::Identifier& id) {
  RAPPORT_CHECK(id.type.size() <= 255);
  std::string k = WsKey(tag, ws);
  k.push_back(static_cast<char>(id.type.size()));
  k += id.type;
  k += id.value;
  return k;
}

template <typename T>
void KeepNewest(std::vector<T>* list, size_t max) {
  if (list->size() > max) list->erase(list->begin(), list->end() - static_cast<ptrdiff_t>(max));
}

}  // namespace

bool ProfileRecord::Has(const identity::Identifier& id) const {
  return std::any_of(identities.begin(), identities.end(),
                     [&](const IdentityEntry& e) { return e.identifier == id; });
}

const Trait* ProfileRecord::FindTrait(std::string_view name) const {
  auto it = std::lower_bound(traits.begin(), traits.end(), name,
                             [](const Trait& t, std::string_view n) { return t.name < n; });
  return it != traits.end() && it->name == name ? &*it : nullptr;
}

bool ProfileRecord::SetTrait(std::string_view name, std::string_view json, const OrderKey& by) {
  auto it = std::lower_bound(traits.begin(), traits.end(), name,
                             [](const Trait& t, std::string_view n) { return t.name < n; });
  if (it != traits.end() && it->name == name) {
    if (by < it->set_by) return false;
    it->json = std::string(json);
    it->set_by = by;
    return true;
  }
  traits.insert(it, Trait{std::string(name), std::string(json), by});
  return true;
}

void ProfileRecord::AddBlocked(BlockedEntry entry) {
  blocked.push_back(std::move(entry));
  ++blocked_total;
  KeepNewest(&blocked, kMaxHistory);
}

void ProfileRecord::AddMerge(MergeEntry entry) {
  merges.push_back(std::move(entry));
  KeepNewest(&merges, kMaxHistory);
}

void ProfileRecord::AddConflict(const identity::Identifier& id) {
  if (std::find(conflicts.begin(), conflicts.end(), id) != conflicts.end()) return;
  conflicts.push_back(id);
  KeepNewest(&conflicts, kMaxConflicts);
}

std::string EncodeProfile(const ProfileRecord& p) {
  base::Writer w;
  w.U8(kRecordVersion);
  w.Varint(p.merged_into);
  if (p.merged_into) return std::move(w).Finish();
  PutKey(w, p.first);
  PutKey(w, p.last);
  w.Varint(p.event_count);
  PutList(w, p.identities, [&](const IdentityEntry& e) {
    PutId(w, e.identifier);
    w.Signed(e.added_at);
    w.Bytes(e.event);
    w.Bytes(e.source);
    w.Bytes(e.reason);
  });
  PutList(w, p.merges, [&](const MergeEntry& e) {
    w.Signed(e.at);
    w.Bytes(e.event);
    w.Varint(e.absorbed);
    w.Bytes(e.via);
  });
  PutList(w, p.blocked, [&](const BlockedEntry& e) {
    w.Signed(e.at);
    w.Bytes(e.event);
    w.Bytes(e.identifier);
    w.Bytes(e.reason);
  });
  w.Varint(p.blocked_total);
  PutList(w, p.conflicts, [&](const identity::Identifier& id) { PutId(w, id); });
  PutList(w, p.traits, [&](const Trait& t) {
    w.Bytes(t.name);
    w.Bytes(t.json);
    PutKey(w, t.set_by);
  });
  w.Varint(p.consents.choices().size());
  for (const auto& [purpose, c] : p.consents.choices()) {
    w.Bytes(purpose);
    w.U8(static_cast<uint8_t>(c.state));
    w.Signed(c.at);
    w.Bytes(c.message_id);
    w.Bytes(c.source);
    w.Bytes(c.text_version);
  }
  w.Varint(p.keys.size());
  for (uint64_t k : p.keys) w.Varint(k);
  return std::move(w).Finish();
}

std::optional<ProfileRecord> DecodeProfile(uint64_t id, std::string_view bytes) {
  base::Reader r(bytes);
  ProfileRecord p;
  p.id = id;
  uint8_t version;
  if (!r.U8(&version) || version < 1 || version > kRecordVersion || !r.Varint(&p.merged_into)) {
    return std::nullopt;
  }
  if (p.merged_into) return r.done() ? std::optional(std::move(p)) : std::nullopt;
  bool ok = GetKey(r, &p.first) && GetKey(r, &p.last) && r.Varint(&p.event_count) &&
            GetList(r, &p.identities,
                    [&](IdentityEntry& e) {
                      return GetId(r, &e.identifier) && r.Signed(&e.added_at) && r.Bytes(&e.event) &&
                             r.Bytes(&e.source) && r.Bytes(&e.reason);
                    }) &&
            GetList(r, &p.merges,
                    [&](MergeEntry& e) {
                      return r.Signed(&e.at) && r.Bytes(&e.event) && r.Varint(&e.absorbed) &&
                             r.Bytes(&e.via);
                    }) &&
            GetList(r, &p.blocked,
                    [&](BlockedEntry& e) {
                      return r.Signed(&e.at) && r.Bytes(&e.event) && r.Bytes(&e.identifier) &&
                             r.Bytes(&e.reason);
                    }) &&
            r.Varint(&p.blocked_total) &&
            GetList(r, &p.conflicts, [&](identity::Identifier& id) { return GetId(r, &id); }) &&
            GetList(r, &p.traits, [&](Trait& t) {
              return r.Bytes(&t.name) && r.Bytes(&t.json) && GetKey(r, &t.set_by);
            });
  if (ok && version >= 2) {
    uint64_t n;
    ok = r.Varint(&n) && n <= trust::kMaxRecordedPurposes;
    for (uint64_t i = 0; ok && i < n; ++i) {
      std::string purpose;
      trust::Choice c;
      uint8_t state;
      ok = r.Bytes(&purpose) && r.U8(&state) && state >= 1 && state <= 2 && r.Signed(&c.at) &&
           r.Bytes(&c.message_id) && r.Bytes(&c.source) && r.Bytes(&c.text_version);
      c.state = static_cast<trust::ConsentState>(state);
      if (ok) p.consents.Record(purpose, c);
    }
  }
  if (ok && version >= 3) {
    uint64_t n;
    ok = r.Varint(&n) && n <= r.remaining();
    p.keys.resize(ok ? n : 0);
    for (uint64_t& k : p.keys) ok = ok && r.Varint(&k);
  }
  if (!ok || !r.done()) return std::nullopt;
  return p;
}

std::string ProfileKey(uint32_t ws, uint64_t id) {
  std::string k = WsKey('p', ws);
  base::PutU64(&k, id);
  return k;
}

std::string IdentifierKey(uint32_t ws, const identity::Identifier& id) { return IdKey('i', ws, id); }

std::string TimelinePrefix(uint32_t ws, uint64_t id) {
  std::string k = WsKey('t', ws);
  base::PutU64(&k, id);
  return k;
}

std::string TimelineKey(uint32_t ws, uint64_t id, base::Micros ts, uint64_t seq) {
  std::string k = TimelinePrefix(ws, id);
  base::PutU64(&k, Ordered(ts));
  base::PutU64(&k, seq);
  return k;
}

std::string NextIdKey(uint32_t ws) { return WsKey('n', ws); }
std::string SeparationPrefix(uint32_t ws) { return WsKey('x', ws); }
std::string MergeRulesKey(uint32_t ws) { return WsKey('r', ws); }
std::string PurposePolicyKey(uint32_t ws) { return WsKey('P', ws); }
std::string SeparationKey(uint32_t ws, const identity::Identifier& id) { return IdKey('x', ws, id); }

std::string SuppressionPrefix(uint32_t ws) { return WsKey('S', ws); }

std::string SuppressionKey(uint32_t ws, std::string_view hash) {
  std::string k = WsKey('S', ws);
  k.append(hash);
  return k;
}

std::string EncodeSuppression(const Suppression& s) {
  base::Writer w;
  w.U8(1);
  w.Signed(s.at);
  w.Bytes(s.type);
  w.Bytes(s.receipt);
  return std::move(w).Finish();
}

std::optional<Suppression> DecodeSuppression(std::string_view hash, std::string_view bytes) {
  base::Reader r(bytes);
  Suppression s;
  s.hash = std::string(hash);
  uint8_t version;
  if (!r.U8(&version) || version != 1 || !r.Signed(&s.at) || !r.Bytes(&s.type) || !r.Bytes(&s.receipt) ||
      !r.done()) {
    return std::nullopt;
  }
  return s;
}

std::string SuppressionInput(const identity::Identifier& id) {
  std::string in = id.type;
  in.push_back('\0');
  in.append(id.value);
  return in;
}

std::optional<uint64_t> DecodeProfileId(std::string_view value) {
  if (value.size() != 8) return std::nullopt;
  return base::GetU64(value);
}

std::string EncodeProfileId(uint64_t id) {
  std::string v;
  base::PutU64(&v, id);
  return v;
}

std::optional<TimelineEntry> DecodeTimelineKey(std::string_view key) {
  if (key.size() != 1 + 4 + 8 + 8 + 8) return std::nullopt;
  return TimelineEntry{FromOrdered(base::GetU64(key.substr(13))), base::GetU64(key.substr(21))};
}

std::optional<identity::Identifier> DecodeSeparationKey(std::string_view key) {
  if (key.size() < 6) return std::nullopt;
  const size_t type_len = static_cast<uint8_t>(key[5]);
  if (key.size() < 6 + type_len) return std::nullopt;
  return identity::Identifier{std::string(key.substr(6, type_len)),
                              std::string(key.substr(6 + type_len))};
}

std::string EncodeIdentifiers(const std::vector<identity::Identifier>& ids) {
  base::Writer w;
  w.U8(kRecordVersion);
  PutList(w, ids, [&](const identity::Identifier& id) { PutId(w, id); });
  return std::move(w).Finish();
}

std::optional<std::vector<identity::Identifier>> DecodeIdentifiers(std::string_view bytes) {
  base::Reader r(bytes);
  uint8_t version;
  std::vector<identity::Identifier> ids;
  if (!r.U8(&version) || version != kRecordVersion ||
      !GetList(r, &ids, [&](identity::Identifier& id) { return GetId(r, &id); }) || !r.done()) {
    return std::nullopt;
  }
  return ids;
}

}  // namespace rapport::profile

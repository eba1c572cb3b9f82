#include "rapport/store/internal/keys.h"

#include "rapport/base/check.h"
#include "rapport/store/envelope.h"

namespace rapport::store::internal {

std::string EventKey(uint64_t seq) {
  std::string k;
  PutU64(&k, seq);
  return k;
}

std::string EventValue(const EventWrite& e) {
  std::string v;
  v.reserve(1 + 4 + 8 + 8 + 2 + e.payload.size());
  v.push_back(kValueVersion);
  PutU32(&v, e.workspace);
  PutU64(&v, OrderedTime(e.timestamp));
  PutU64(&v, OrderedTime(e.received_at));
  SealPersonalData(e.payload, &v);
  return v;
}

std::optional<StoredEvent> DecodeEvent(std::string_view key, std::string_view value) {
  if (key.size() != 8 || value.size() < 21 || value[0] != kValueVersion) return std::nullopt;
  auto payload = OpenPersonalData(value.substr(21));
  if (!payload.ok()) return std::nullopt;
  StoredEvent e;
  e.seq = GetU64(key);
  e.workspace = GetU32(value.substr(1));
  e.timestamp = FromOrderedTime(GetU64(value.substr(5)));
  e.received_at = FromOrderedTime(GetU64(value.substr(13)));
  e.payload = std::string(*payload);
  return e;
}

std::string PersonPrefix(uint32_t workspace, IdKind kind, std::string_view id) {
  RAPPORT_CHECK(id.size() <= 0xFFFF);
  std::string k;
  k.reserve(7 + id.size() + 16);
  PutU32(&k, workspace);
  k.push_back(static_cast<char>(kind));
  PutU16(&k, static_cast<uint16_t>(id.size()));
  k.append(id);
  return k;
}

std::string PersonKey(uint32_t workspace, IdKind kind, std::string_view id, base::Micros timestamp,
                      uint64_t seq) {
  std::string k = PersonPrefix(workspace, kind, id);
  PutU64(&k, OrderedTime(timestamp));
  PutU64(&k, seq);
  return k;
}

std::string DedupeKey(uint32_t workspace, std::string_view message_id) {
  std::string k;
  k.reserve(4 + message_id.size());
  PutU32(&k, workspace);
  k.append(message_id);
  return k;
}

std::string DedupeValue(uint64_t seq, base::Micros expires_at) {
  std::string v;
  v.push_back(kValueVersion);
  PutU64(&v, seq);
  PutU64(&v, OrderedTime(expires_at));
  return v;
}

std::optional<DedupeRecord> DecodeDedupe(std::string_view value) {
  if (value.size() != 17 || value[0] != kValueVersion) return std::nullopt;
  return DedupeRecord{GetU64(value.substr(1)), FromOrderedTime(GetU64(value.substr(9)))};
}

}  // namespace rapport::store::internal

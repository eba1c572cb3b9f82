#include "rapport/store/internal/keys.h"

#include "rapport/base/check.h"
#include "rapport/store/envelope.h"

namespace rapport::store::internal {

void PutU16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

void PutU32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

void PutU64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

uint32_t GetU32(std::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

uint64_t GetU64(std::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

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

#include "rapport/store/internal/keys.h"

#include "rapport/base/check.h"
#include "rapport/store/envelope.h"

namespace rapport::store::internal {

std::string EventKey(uint64_t seq) {
  std::string k;
  PutU64(&k, seq);
  return k;
}

std::string EventValue(const EventWrite& e, uint64_t seq, uint64_t key_id, const DataKey* key) {
  std::string v;
  v.reserve(kEventHeader + 2 + 32 + 16 + e.payload.size());
  v.push_back(kValueVersion);
  PutU32(&v, e.workspace);
  PutU64(&v, OrderedTime(e.timestamp));
  PutU64(&v, OrderedTime(e.received_at));
  if (key) {
    SealPersonalData(*key, key_id, EventAad(seq, v), e.payload, &v);
  } else {
    SealPersonalData(e.payload, &v);
  }
  return v;
}

std::string EventAad(uint64_t seq, std::string_view value) {
  std::string aad = EventKey(seq);
  aad.append(value.substr(0, kEventHeader));
  return aad;
}

absl::StatusOr<std::optional<StoredEvent>> DecodeEvent(std::string_view key, std::string_view value,
                                                       const KeySource& keys) {
  if (key.size() != 8 || value.size() < kEventHeader || value[0] != kValueVersion) {
    return absl::DataLossError("an event in the store cannot be decoded");
  }
  StoredEvent e;
  e.seq = GetU64(key);
  e.workspace = GetU32(value.substr(1));
  e.timestamp = FromOrderedTime(GetU64(value.substr(5)));
  e.received_at = FromOrderedTime(GetU64(value.substr(13)));
  const std::string_view sealed = value.substr(kEventHeader);
  absl::StatusOr<uint64_t> key_id = EnvelopeKeyId(sealed);
  if (!key_id.ok()) return key_id.status();
  e.key_id = *key_id;
  if (e.key_id == 0) {
    absl::StatusOr<std::string_view> plain = OpenPersonalData(sealed);
    if (!plain.ok()) return plain.status();
    e.payload = std::string(*plain);
    return e;
  }
  absl::StatusOr<std::optional<DataKey>> data_key = keys(e.workspace, e.key_id);
  if (!data_key.ok()) return data_key.status();
  if (!*data_key) return std::nullopt;  // erased
  absl::StatusOr<std::string> payload = OpenPersonalData(**data_key, EventAad(e.seq, value), sealed);
  if (!payload.ok()) return payload.status();
  e.payload = *std::move(payload);
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

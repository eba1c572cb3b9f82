// Key and value encodings of the store (the contract is docs/formats/store.md). All integers are
// big-endian so that byte order is numeric order.
#ifndef RAPPORT_STORE_INTERNAL_KEYS_H_
#define RAPPORT_STORE_INTERNAL_KEYS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rapport/base/endian.h"
#include "rapport/base/time.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "rapport/store/envelope.h"
#include "rapport/store/store.h"

namespace rapport::store::internal {

inline constexpr char kValueVersion = 1;

using base::GetU32;
using base::GetU64;
using base::PutU16;
using base::PutU32;
using base::PutU64;

// Signed microseconds mapped to an unsigned value with the same order.
inline uint64_t OrderedTime(base::Micros t) { return static_cast<uint64_t>(t) ^ (1ULL << 63); }
inline base::Micros FromOrderedTime(uint64_t v) { return static_cast<base::Micros>(v ^ (1ULL << 63)); }

// events: seq(8)
std::string EventKey(uint64_t seq);
// events value: version(1) workspace(4) timestamp(8) received_at(8) envelope(...). The payload
// is sealed with `key` (data key `key_id`) when given, bound to the seq and the header.
inline constexpr size_t kEventHeader = 21;
std::string EventValue(const EventWrite& e, uint64_t seq, uint64_t key_id, const DataKey* key);
// The associated data of the event `seq` whose value (or its header) is `value`.
std::string EventAad(uint64_t seq, std::string_view value);
// The data key `key_id` of a workspace; nullopt if it was destroyed.
using KeySource = absl::FunctionRef<absl::StatusOr<std::optional<DataKey>>(uint32_t ws, uint64_t key_id)>;
// The event; nullopt when its data key was destroyed (it was erased).
absl::StatusOr<std::optional<StoredEvent>> DecodeEvent(std::string_view key, std::string_view value,
                                                       const KeySource& keys);

// person: workspace(4) kind(1) id_len(2) id timestamp(8) seq(8)
std::string PersonPrefix(uint32_t workspace, IdKind kind, std::string_view id);
std::string PersonKey(uint32_t workspace, IdKind kind, std::string_view id, base::Micros timestamp,
                      uint64_t seq);

// dedupe: workspace(4) message_id
std::string DedupeKey(uint32_t workspace, std::string_view message_id);
// dedupe value: version(1) seq(8) expires_at(8)
std::string DedupeValue(uint64_t seq, base::Micros expires_at);
struct DedupeRecord {
  uint64_t seq;
  base::Micros expires_at;
};
std::optional<DedupeRecord> DecodeDedupe(std::string_view value);

}  // namespace rapport::store::internal

#endif  // RAPPORT_STORE_INTERNAL_KEYS_H_

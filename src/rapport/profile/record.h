// What rapport keeps about one person: the profile record (identities with the reason each
// belongs, merge and blocked-link history, traits with the event that set them, first and last
// seen) and the keys of the profile stage in the store's `state` column family. The encodings
// are written down in docs/formats/store.md.
//
// Thread safety: values only.
#ifndef RAPPORT_PROFILE_RECORD_H_
#define RAPPORT_PROFILE_RECORD_H_

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rapport/base/time.h"
#include "rapport/identity/identifier.h"
#include "rapport/trust/consent.h"

namespace rapport::profile {

// The order of events for a profile's state: event time, then messageId (arrival order would
// make the outcome depend on it).
struct OrderKey {
  base::Micros timestamp = 0;
  std::string message_id;
  auto operator<=>(const OrderKey&) const = default;
  bool operator==(const OrderKey&) const = default;
};

struct IdentityEntry {
  identity::Identifier identifier;
  base::Micros added_at = 0;  // the timestamp of the event that linked it
  std::string event;          // that event's messageId
  std::string source;         // where in the event it was, e.g. "context.traits.email"
  std::string reason;         // why it belongs, a sentence
};

struct MergeEntry {
  base::Micros at = 0;
  std::string event;     // the messageId of the event whose identifiers linked the two
  uint64_t absorbed = 0;  // the profile merged into this one
  std::string via;       // the linking identifiers, e.g. "user_id:ann, anonymous_id:a1"
};

struct BlockedEntry {
  base::Micros at = 0;
  std::string event;
  std::string identifier;  // "type:value" (as sent, for a value that is not an identifier)
  std::string reason;
};

struct Trait {
  std::string name;
  std::string json;  // the value's JSON text
  OrderKey set_by;   // the event that set it (last write wins by this key)
};

struct ProfileRecord {
  uint64_t id = 0;
  // Non-zero: this profile was merged into (or rebuilt as) that one; nothing else is kept.
  uint64_t merged_into = 0;
  OrderKey first;  // its earliest and latest event
  OrderKey last;
  uint64_t event_count = 0;
  std::vector<IdentityEntry> identities;  // in the order they were linked
  std::vector<MergeEntry> merges;         // newest last, at most kMaxHistory
  std::vector<BlockedEntry> blocked;      // newest last, at most kMaxHistory
  uint64_t blocked_total = 0;
  // Identifiers a link to which was refused by a limit or a split: the profiles that hold them
  // are rebuilt together when an event arrives out of order (at most kMaxConflicts).
  std::vector<identity::Identifier> conflicts;
  std::vector<Trait> traits;  // sorted by name
  // The person's latest explicit choice per purpose (trust/consent.h): from the events'
  // context.consent, the consent API and the preferences page, which all arrive as events.
  trust::ConsentSet consents;
  // The data keys that seal this profile's events besides its own (id = the profile's id): those
  // of the profiles merged into it. Each data key belongs to one live profile; erasing it
  // destroys them all (docs/gdpr.md).
  std::vector<uint64_t> keys;

  static constexpr size_t kMaxHistory = 100;
  static constexpr size_t kMaxConflicts = 64;

  bool Has(const identity::Identifier& id) const;
  const Trait* FindTrait(std::string_view name) const;
  // Sets `name` unless the trait was set by a later event (by OrderKey). Returns whether it did.
  bool SetTrait(std::string_view name, std::string_view json, const OrderKey& by);
  void AddBlocked(BlockedEntry entry);
  void AddMerge(MergeEntry entry);
  void AddConflict(const identity::Identifier& id);
};

std::string EncodeProfile(const ProfileRecord& record);
std::optional<ProfileRecord> DecodeProfile(uint64_t id, std::string_view bytes);

// Keys of the profile stage in the `state` column family; `ws` is the workspace id.
std::string ProfileKey(uint32_t ws, uint64_t id);                         // 'p' ws id
std::string IdentifierKey(uint32_t ws, const identity::Identifier& id);   // 'i' ws type value
std::string TimelinePrefix(uint32_t ws, uint64_t id);                     // 't' ws id
std::string TimelineKey(uint32_t ws, uint64_t id, base::Micros ts, uint64_t seq);
std::string NextIdKey(uint32_t ws);                                       // 'n' ws
std::string SeparationPrefix(uint32_t ws);                                // 'x' ws
std::string MergeRulesKey(uint32_t ws);                                   // 'r' ws → rules JSON
std::string PurposePolicyKey(uint32_t ws);                                // 'P' ws → purposes JSON
std::string SeparationKey(uint32_t ws, const identity::Identifier& id);
// 'S' ws hash(32): an erased identifier, by its keyed hash (StateReader::KeyedHash).
std::string SuppressionPrefix(uint32_t ws);
std::string SuppressionKey(uint32_t ws, std::string_view hash);

// The suppression list: an identifier of an erased person, whose events are refused.
struct Suppression {
  std::string hash;  // the keyed hash of type and value (32 bytes); the value is not kept
  std::string type;  // the identifier's type
  base::Micros at = 0;
  std::string receipt;  // the erasure that added it
};
std::string EncodeSuppression(const Suppression& s);  // without the hash (it is the key)
std::optional<Suppression> DecodeSuppression(std::string_view hash, std::string_view bytes);
// What is hashed for an identifier: type · 0 · value.
std::string SuppressionInput(const identity::Identifier& id);

// Decoders for the parts of keys and values above.
std::optional<uint64_t> DecodeProfileId(std::string_view value);  // value of IdentifierKey
std::string EncodeProfileId(uint64_t id);
struct TimelineEntry {
  base::Micros timestamp;
  uint64_t seq;
};
std::optional<TimelineEntry> DecodeTimelineKey(std::string_view key);
std::optional<identity::Identifier> DecodeSeparationKey(std::string_view key);
std::string EncodeIdentifiers(const std::vector<identity::Identifier>& ids);
std::optional<std::vector<identity::Identifier>> DecodeIdentifiers(std::string_view bytes);

}  // namespace rapport::profile

#endif  // RAPPORT_PROFILE_RECORD_H_

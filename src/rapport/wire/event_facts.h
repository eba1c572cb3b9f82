// What the stages after collect read from a stored event: its identifiers (Segment's userId and
// anonymousId, and where the spec puts an email, a phone, a device id and external ids), the
// traits an identify sets and the properties of the event. Values stay JSON text; rapport's
// own meaning of them (normalisation, protection rules) belongs to identity and profile.
//
// Thread safety: free functions on their arguments only.
#ifndef RAPPORT_WIRE_EVENT_FACTS_H_
#define RAPPORT_WIRE_EVENT_FACTS_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "rapport/base/time.h"
#include "rapport/wire/segment.h"

namespace rapport::wire {

// An identifier as found in the event, not yet normalised. `type` is "user_id", "anonymous_id",
// "email", "phone", "device_id", or the `type` of a context.externalIds entry.
struct RawIdentifier {
  std::string type;
  std::string value;
  std::string source;  // where it was found, e.g. "context.traits.email"
  bool operator==(const RawIdentifier&) const = default;
};

// What context.consent says (docs/consent.md): Segment's categoryPreferences (category → true
// or false) and rapport's own members, as validated at ingest (ValidateConsent).
struct ConsentFacts {
  std::vector<std::pair<std::string, bool>> categories;  // categoryPreferences
  std::vector<std::pair<std::string, bool>> purposes;    // purposes: purpose → granted or not
  std::string text_version;                              // textVersion, "" when absent
  std::string source;  // source: set only on events rapport made (API, preferences page)
  // When the server received the event (the stored receivedAt; 0 if it has none): a choice is
  // never dated later than this, so a device clock far ahead cannot outrank later choices.
  base::Micros received_at = 0;
  bool empty() const { return categories.empty() && purposes.empty(); }
};

struct EventFacts {
  EventType type = EventType::kTrack;
  std::string message_id;
  std::string event;        // track: the event name; page/screen: the name; else ""
  std::string previous_id;  // alias: the identifier merged into userId; else ""
  // In the order found: userId, anonymousId, traits.{email,phone}, context.traits.{email,phone},
  // context.device.id, context.externalIds[].
  std::vector<RawIdentifier> identifiers;
  // identify: the top-level members of `traits` (name, JSON text of the value). Other types'
  // context.traits describe the user at the time and do not change the profile.
  std::vector<std::pair<std::string, std::string>> traits;
  // The top-level members of `properties` (name, JSON text of the value).
  std::vector<std::pair<std::string, std::string>> properties;
  ConsentFacts consent;
};

// Reads the stored JSON of an event (wire::EncodeStoredEvent's output). InvalidArgument if it is
// not such an object. Identifier values that are not strings (or numbers, for external ids)
// are skipped.
absl::StatusOr<EventFacts> ReadEventFacts(std::string_view stored_event_json);

// The consent record of a stored event that was refused (docs/consent.md): a track event named
// kConsentRecordEvent with the event's messageId, times, userId, anonymousId and the identifiers
// and consent of its context (context.traits.email/phone, context.device.id,
// context.externalIds, context.consent) — nothing else of it. `stored_event_json` must be
// EncodeStoredEvent's output.
inline constexpr std::string_view kConsentRecordEvent = "Consent Changed";
std::string ConsentRecordOf(std::string_view stored_event_json);

}  // namespace rapport::wire

#endif  // RAPPORT_WIRE_EVENT_FACTS_H_

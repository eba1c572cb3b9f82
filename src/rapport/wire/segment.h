// The Segment Tracking API's wire format: request bodies in, stored event JSON out. This is the
// only place that knows Segment's field names; the JSON library stays inside wire/.
//
// Thread safety: free functions on their arguments only.
#ifndef RAPPORT_WIRE_SEGMENT_H_
#define RAPPORT_WIRE_SEGMENT_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rapport/base/time.h"

namespace rapport::wire {

enum class EventType { kIdentify, kTrack, kPage, kScreen, kGroup, kAlias };

std::string_view EventTypeName(EventType type);
std::optional<EventType> ParseEventType(std::string_view name);

// One message as sent, its known fields typed. JSON `null` counts as absent. The free-form parts
// and every top-level member rapport does not interpret are kept as JSON text, so they are
// stored exactly as sent ("nothing truncated, nothing lost").
struct SegmentMessage {
  EventType type = EventType::kTrack;
  std::optional<std::string> message_id;
  std::optional<std::string> user_id;
  std::optional<std::string> anonymous_id;
  std::optional<std::string> event;        // track
  std::optional<std::string> name;         // page, screen
  std::optional<std::string> group_id;     // group
  std::optional<std::string> previous_id;  // alias
  std::optional<std::string> timestamp;    // as sent, not yet parsed
  std::optional<std::string> original_timestamp;
  std::optional<std::string> sent_at;      // the message's own, else the batch's
  std::optional<std::string> received_at;  // only meaningful on import of an export
  std::string traits;        // JSON object text, "" when absent
  std::string properties;    // ditto
  std::string context;       // ditto; the batch's context merged under the message's own
  std::string integrations;  // ditto
  std::string other_members;  // `"k":v,...` of the other top-level members, "" when none
  int depth = 1;              // nesting depth of the message (a flat object is 1)
  // context.consent.source, which only rapport's own events and imports of them may carry
  // (context.consent is checked as it is read: docs/consent.md).
  std::optional<std::string> consent_source;
};

struct TrackingRequest {
  std::optional<std::string> write_key;  // `writeKey` in the body (request level)
  bool is_batch = false;
  // One entry per message, in order: the message, or why it could not be read (a Status with
  // base::ErrorDetails naming the field, e.g. "batch[3].userId").
  std::vector<absl::StatusOr<SegmentMessage>> messages;
};

// Limits applied while parsing. Defaults are the documented API limits (docs/api/tracking.md).
struct ParseLimits {
  int max_depth = 64;  // nesting of one message; the body may be two levels deeper in a batch
};

// Parses a request body. `route` is the type named by the path (/v1/track → kTrack), or nullopt
// for /v1/batch and /v1/import, whose body is `{"batch": [...]}`. The body must be valid UTF-8
// JSON whose top level is an object. Request-level problems (malformed JSON, invalid UTF-8,
// wrong top-level shape) are an InvalidArgument Status; problems of one message are reported in
// its entry of `messages`, so the others can still be stored.
absl::StatusOr<TrackingRequest> ParseTrackingRequest(std::string_view body,
                                                     std::optional<EventType> route,
                                                     const ParseLimits& limits = {});

// Parses one message that names its own `type`, e.g. a line of `rapport export`.
absl::StatusOr<SegmentMessage> ParseMessage(std::string_view json_text,
                                            const ParseLimits& limits = {});

// The server-decided fields of a message to store.
struct StoredFields {
  std::string message_id;
  base::Micros timestamp = 0;    // corrected for clock skew
  base::Micros received_at = 0;
  // originalTimestamp to record: the client's own clock reading (originalTimestamp, else the
  // timestamp it sent), as it was sent.
  std::optional<std::string> original_timestamp;
};

// The stored JSON of a message: its members as sent, with messageId, timestamp, receivedAt and
// originalTimestamp set from `fields`. Members appear in a fixed order (docs/formats/events.md).
std::string EncodeStoredEvent(const SegmentMessage& message, const StoredFields& fields);

}  // namespace rapport::wire

#endif  // RAPPORT_WIRE_SEGMENT_H_

// The ingest pipeline: takes parsed Segment messages for an authenticated workspace, validates
// every field against the documented limits, corrects device clock skew, and commits the valid
// ones to the store as ONE atomic WriteBatch, deduplicated on (workspace, messageId); those the
// person did not allow are refused there (docs/consent.md) and reported so.
//
// Thread safety: Ingest may be called from any thread concurrently.
#ifndef RAPPORT_COLLECT_INGESTOR_H_
#define RAPPORT_COLLECT_INGESTOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "rapport/base/clock.h"
#include "rapport/base/metrics.h"
#include "rapport/store/store.h"
#include "rapport/wire/segment.h"

namespace rapport::collect {

// Limits of one message (docs/api/tracking.md). The request-body limit lives in http.
struct IngestLimits {
  // The event as stored (its JSON with the server's receivedAt and timestamp): 32 KiB.
  size_t max_event_bytes = 32 * 1024;
  // messageId, in characters (Unicode code points): 100.
  size_t max_message_id_chars = 100;
  // userId, anonymousId, groupId, previousId, event and name, in bytes: 1024.
  size_t max_id_bytes = 1024;
  // All events of one request as stored: 4 MiB. A batch's envelope (context, integrations, …)
  // is copied into every message, so a small request could otherwise expand without bound.
  size_t max_request_stored_bytes = size_t{4} << 20;
};

enum class Mode {
  // Events from clients: the server stamps receivedAt and corrects timestamp for clock skew.
  kLive,
  // Events from `rapport import` of an export: receivedAt and timestamp are kept as exported,
  // and consent is not judged again (they were admitted where they were first stored).
  kImport,
  // Events rapport makes itself (the consent API, the preferences page): as kLive, and they may
  // carry context.consent.source, which clients may not set.
  kOwn,
};

enum class Outcome {
  kStored,
  kDuplicate,
  kRejected,  // invalid: the client must change it
  kRefused,   // valid, but the person did not allow its purpose (docs/consent.md)
};

struct MessageResult {
  std::string message_id;  // as sent, or generated when the message had none
  Outcome outcome = Outcome::kRejected;
  absl::Status error;  // why, when kRejected or kRefused (with base::ErrorDetails)
};

// Called once: with one result per message, or with the store's error (Unavailable when it
// cannot write or its queue is full), in which case nothing was stored.
using IngestCallback = absl::AnyInvocable<void(absl::StatusOr<std::vector<MessageResult>>) &&>;

class Ingestor {
 public:
  // `store`, `clock` and `metrics` (optional) are not owned and must outlive the Ingestor.
  Ingestor(store::Store* store, const base::Clock* clock, base::Registry* metrics,
           IngestLimits limits = {});

  void Ingest(uint32_t workspace, wire::TrackingRequest request, Mode mode, IngestCallback done);

  // The record to store for one message, or why it is rejected. `received_at` is when the
  // request arrived (ignored in kImport mode). Pure; exposed for tests.
  absl::StatusOr<store::EventWrite> Prepare(uint32_t workspace, const wire::SegmentMessage& message,
                                            base::Micros received_at, Mode mode) const;

 private:
  void CountRejected(const absl::Status& error);
  void CountRefused(const absl::Status& reason);
  base::Counter& RefusedCounter(std::string_view reason);

  store::Store* store_;
  const base::Clock* clock_;
  base::Registry* metrics_;
  IngestLimits limits_;
  base::Counter* stored_ = nullptr;
  base::Counter* duplicates_ = nullptr;
  base::Counter* refused_ = nullptr;
  base::Counter* refused_missing_ = nullptr;
  base::Counter* refused_denied_ = nullptr;
};

}  // namespace rapport::collect

#endif  // RAPPORT_COLLECT_INGESTOR_H_

#include "rapport/collect/ingestor.h"

#include <fmt/format.h>

#include <memory>

#include "rapport/base/crypto.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"

namespace rapport::collect {
namespace {

using base::InvalidField;

size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

absl::StatusOr<std::optional<base::Micros>> ParseTime(const std::optional<std::string>& text,
                                                      std::string_view field) {
  if (!text) return std::nullopt;
  auto t = base::ParseIso8601(*text);
  if (!t.ok()) return InvalidField("invalid_timestamp", field, base::AsStd(t.status().message()));
  return *t;
}

absl::Status CheckId(const std::optional<std::string>& value, std::string_view field,
                     size_t limit) {
  if (value && value->size() > limit) {
    return InvalidField("value_too_long", field,
                        fmt::format("'{}' is {} bytes; the limit is {}", field, value->size(),
                                    limit),
                        static_cast<int64_t>(limit));
  }
  return absl::OkStatus();
}

absl::Status Require(const std::optional<std::string>& value, std::string_view field,
                     std::string_view type) {
  if (!value || value->empty()) {
    return InvalidField("missing_field", field,
                        fmt::format("a {} message needs a non-empty '{}'", type, field));
  }
  return absl::OkStatus();
}

}  // namespace

Ingestor::Ingestor(store::Store* store, const base::Clock* clock, base::Registry* metrics,
                   IngestLimits limits)
    : store_(store), clock_(clock), metrics_(metrics), limits_(limits) {
  if (metrics_) {
    stored_ = &metrics_->GetCounter("rapport_events_total", "Events received, by outcome.",
                                    {{"outcome", "stored"}});
    duplicates_ = &metrics_->GetCounter("rapport_events_total", "Events received, by outcome.",
                                        {{"outcome", "duplicate"}});
    refused_ = &metrics_->GetCounter("rapport_events_total", "Events received, by outcome.",
                                     {{"outcome", "refused"}});
    refused_missing_ = &RefusedCounter("consent_missing");
    refused_denied_ = &RefusedCounter("consent_denied");
  }
}

absl::StatusOr<store::EventWrite> Ingestor::Prepare(uint32_t workspace,
                                                    const wire::SegmentMessage& m,
                                                    base::Micros received_at, Mode mode) const {
  const std::string_view type = wire::EventTypeName(m.type);
  const bool has_user = m.user_id && !m.user_id->empty();
  const bool has_anonymous = m.anonymous_id && !m.anonymous_id->empty();
  if (!has_user && !has_anonymous) {
    return InvalidField("missing_id", "userId",
                        "every message needs a non-empty 'userId' or 'anonymousId'");
  }
  for (auto [value, field] : {std::pair{&m.user_id, "userId"}, {&m.anonymous_id, "anonymousId"},
                              {&m.group_id, "groupId"}, {&m.previous_id, "previousId"},
                              {&m.event, "event"}, {&m.name, "name"}}) {
    RAPPORT_RETURN_IF_ERROR(CheckId(*value, field, limits_.max_id_bytes));
  }
  if (m.consent_source && mode == Mode::kLive) {
    return InvalidField("reserved_field", "context.consent.source",
                        "'context.consent.source' is set by rapport on the consent it records itself "
                        "(API, preferences page); a tracked event's consent counts as source 'event'");
  }
  switch (m.type) {
    case wire::EventType::kTrack: RAPPORT_RETURN_IF_ERROR(Require(m.event, "event", type)); break;
    case wire::EventType::kGroup: RAPPORT_RETURN_IF_ERROR(Require(m.group_id, "groupId", type)); break;
    case wire::EventType::kAlias:
      RAPPORT_RETURN_IF_ERROR(Require(m.previous_id, "previousId", type));
      RAPPORT_RETURN_IF_ERROR(Require(m.user_id, "userId", type));
      break;
    default: break;
  }

  wire::StoredFields fields;
  if (m.message_id) {
    if (m.message_id->empty()) {
      return InvalidField("invalid_field", "messageId", "'messageId' must not be empty");
    }
    const size_t chars = CodePoints(*m.message_id);
    if (chars > limits_.max_message_id_chars) {
      return InvalidField("message_id_too_long", "messageId",
                          fmt::format("'messageId' is {} characters; the limit is {}", chars,
                                      limits_.max_message_id_chars),
                          static_cast<int64_t>(limits_.max_message_id_chars));
    }
    fields.message_id = *m.message_id;
  } else if (mode == Mode::kImport) {
    return InvalidField("missing_field", "messageId", "an imported event needs its 'messageId'");
  } else {
    // No messageId: the event cannot be deduplicated; one is made so it can be referred to.
    fields.message_id = base::RandomToken("rapport-", 16);
  }

  RAPPORT_ASSIGN_OR_RETURN(auto timestamp, ParseTime(m.timestamp, "timestamp"));
  RAPPORT_ASSIGN_OR_RETURN(auto original, ParseTime(m.original_timestamp, "originalTimestamp"));
  RAPPORT_ASSIGN_OR_RETURN(auto sent_at, ParseTime(m.sent_at, "sentAt"));
  if (mode == Mode::kImport) {
    RAPPORT_ASSIGN_OR_RETURN(auto received, ParseTime(m.received_at, "receivedAt"));
    if (!received || !timestamp) {
      return InvalidField("missing_field", received ? "timestamp" : "receivedAt",
                          "an imported event needs the 'receivedAt' and 'timestamp' it was "
                          "exported with");
    }
    fields.received_at = *received;
    fields.timestamp = *timestamp;
    fields.original_timestamp = m.original_timestamp;
  } else {
    // The client's own clock reading of when the event happened: originalTimestamp, else the
    // timestamp it sent (server-side libraries send only that).
    const std::optional<base::Micros> client_time = original ? original : timestamp;
    fields.original_timestamp = m.original_timestamp ? m.original_timestamp : m.timestamp;
    fields.received_at = received_at;
    if (client_time && sent_at) {
      // Clock skew correction: the device's clock is off by (sentAt - receivedAt).
      fields.timestamp = received_at - (*sent_at - *client_time);
    } else {
      fields.timestamp = client_time.value_or(received_at);
    }
  }

  // Skew correction can move a time out of the calendar (years 0001-9999) that ISO-8601 and
  // the stored JSON can express: refuse it rather than store a wrong date.
  static const base::Micros kMin = base::DaysFromCivil(1, 1, 1) * base::kMicrosPerDay;
  static const base::Micros kMax = base::DaysFromCivil(10000, 1, 1) * base::kMicrosPerDay - 1;
  if (fields.timestamp < kMin || fields.timestamp > kMax) {
    return InvalidField("invalid_timestamp", "timestamp",
                        "corrected for the client's clock skew (receivedAt - (sentAt - "
                        "originalTimestamp)), the event's time falls outside years 0001-9999");
  }

  store::EventWrite write;
  write.workspace = workspace;
  write.admitted = mode == Mode::kImport;
  write.timestamp = fields.timestamp;
  write.received_at = fields.received_at;
  if (has_user) write.user_id = *m.user_id;
  if (has_anonymous) write.anonymous_id = *m.anonymous_id;
  write.payload = wire::EncodeStoredEvent(m, fields);
  write.message_id = std::move(fields.message_id);
  if (write.payload.size() > limits_.max_event_bytes) {
    return base::MakeError(absl::StatusCode::kOutOfRange, "event_too_large",
                           fmt::format("the event is {} bytes; the limit is {} bytes per event",
                                       write.payload.size(), limits_.max_event_bytes),
                           "", static_cast<int64_t>(limits_.max_event_bytes));
  }
  return write;
}

void Ingestor::CountRejected(const absl::Status& error) {
  if (!metrics_) return;
  std::string reason = base::GetErrorDetails(error).code;
  metrics_
      ->GetCounter("rapport_events_rejected_total", "Events refused, by reason.",
                   {{"reason", reason.empty() ? "invalid" : reason}})
      .Inc();
}

void Ingestor::CountRefused(const absl::Status& reason) {
  if (!metrics_) return;
  refused_->Inc();
  const std::string code = base::GetErrorDetails(reason).code;
  base::Counter* by_reason = code == "consent_missing" ? refused_missing_
                             : code == "consent_denied" ? refused_denied_
                                                        : &RefusedCounter(code);
  by_reason->Inc();
}

base::Counter& Ingestor::RefusedCounter(std::string_view reason) {
  return metrics_->GetCounter("rapport_events_refused_total",
                              "Valid events not stored because the person did not allow them, by reason.",
                              {{"reason", std::string(reason)}});
}

void Ingestor::Ingest(uint32_t workspace, wire::TrackingRequest request, Mode mode,
                      IngestCallback done) {
  const base::Micros received_at = clock_->Now();
  auto results = std::make_unique<std::vector<MessageResult>>(request.messages.size());
  std::vector<size_t> positions;  // results index of each write
  std::vector<store::EventWrite> writes;
  writes.reserve(request.messages.size());
  size_t stored_bytes = 0;
  for (size_t i = 0; i < request.messages.size(); ++i) {
    MessageResult& result = (*results)[i];
    auto& parsed = request.messages[i];
    absl::StatusOr<store::EventWrite> write =
        parsed.ok() ? Prepare(workspace, *parsed, received_at, mode) : parsed.status();
    if (!write.ok()) {
      if (parsed.ok() && parsed->message_id) result.message_id = *parsed->message_id;
      if (parsed.ok() && request.is_batch) {
        write = base::WithFieldPrefix(write.status(), fmt::format("batch[{}]", i));
      }
      result.outcome = Outcome::kRejected;
      result.error = write.status();
      CountRejected(result.error);
      continue;
    }
    result.message_id = write->message_id;
    stored_bytes += write->payload.size();
    positions.push_back(i);
    writes.push_back(*std::move(write));
  }
  if (writes.empty()) {
    std::move(done)(std::move(*results));
    return;
  }
  if (stored_bytes > limits_.max_request_stored_bytes) {
    std::move(done)(base::MakeError(
        absl::StatusCode::kOutOfRange, "request_expands_too_much",
        fmt::format("with the batch's envelope copied into each message the request would store "
                    "{} bytes; the limit is {} bytes per request",
                    stored_bytes, limits_.max_request_stored_bytes),
        "", static_cast<int64_t>(limits_.max_request_stored_bytes)));
    return;
  }
  struct State {
    std::unique_ptr<std::vector<MessageResult>> results;
    std::vector<size_t> positions;
    IngestCallback done;
  };
  auto state = std::make_unique<State>(State{std::move(results), std::move(positions),
                                             std::move(done)});
  store_->CommitEvents(
      std::move(writes),
      [this, state = std::move(state)](
          absl::StatusOr<std::vector<store::EventResult>> committed) mutable {
        if (!committed.ok()) {
          std::move(state->done)(committed.status());
          return;
        }
        for (size_t k = 0; k < committed->size(); ++k) {
          store::EventResult& c = (*committed)[k];
          MessageResult& result = (*state->results)[state->positions[k]];
          switch (c.outcome) {
            case store::WriteOutcome::kStored:
              result.outcome = Outcome::kStored;
              if (stored_) stored_->Inc();
              break;
            case store::WriteOutcome::kDuplicate:
              result.outcome = Outcome::kDuplicate;
              if (duplicates_) duplicates_->Inc();
              break;
            case store::WriteOutcome::kRefused:
              result.outcome = Outcome::kRefused;
              result.error = std::move(c.reason);
              CountRefused(result.error);
              break;
          }
        }
        std::move(state->done)(std::move(*state->results));
      });
}

}  // namespace rapport::collect

// Errors that reach a person. An absl::Status carries the canonical code (which decides the HTTP
// status, see http/status_mapping.h); these helpers attach what the JSON error body needs: a
// stable machine-readable `code` ("invalid_timestamp"), the `field` at fault and the `limit`
// that was exceeded. The message is a sentence a person understands.
#ifndef RAPPORT_BASE_ERROR_H_
#define RAPPORT_BASE_ERROR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace rapport::base {

struct ErrorDetails {
  std::string code;   // e.g. "missing_id"; empty when the Status was not made by MakeError
  std::string field;  // e.g. "batch[3].timestamp"; empty when no single field is at fault
  std::optional<int64_t> limit;
  // For a syntax error in a text the caller sent (a segment expression): the 0-based character
  // offset where it was found and what was expected there.
  std::optional<int64_t> position;
  std::string expected;
  // For a request refused for now (429, 503): how many whole seconds to wait before trying again.
  std::optional<int64_t> retry_after;
};

// A Status with `status_code`, `message`, and the details above.
absl::Status MakeError(absl::StatusCode status_code, std::string_view code,
                       std::string_view message, std::string_view field = {},
                       std::optional<int64_t> limit = std::nullopt);

// Shorthand for the commonest one: InvalidArgument naming a field.
inline absl::Status InvalidField(std::string_view code, std::string_view field,
                                 std::string_view message,
                                 std::optional<int64_t> limit = std::nullopt) {
  return MakeError(absl::StatusCode::kInvalidArgument, code, message, field, limit);
}

// Returns `status` naming `field` as the one at fault (replacing any field it named).
absl::Status WithField(const absl::Status& status, std::string_view field);

// Returns `status` with the position of a syntax error and what was expected there.
absl::Status WithPosition(const absl::Status& status, int64_t position, std::string_view expected);

// Returns `status` telling the caller to try again after `seconds` (the Retry-After header).
absl::Status WithRetryAfter(const absl::Status& status, int64_t seconds);

// The details of `status` (empty fields when it carries none).
ErrorDetails GetErrorDetails(const absl::Status& status);

// Returns `status` with `prefix` put before its field ("batch[3]" + "timestamp" →
// "batch[3].timestamp"); used when a nested parser's error is reported by its caller.
absl::Status WithFieldPrefix(const absl::Status& status, std::string_view prefix);

}  // namespace rapport::base

#endif  // RAPPORT_BASE_ERROR_H_

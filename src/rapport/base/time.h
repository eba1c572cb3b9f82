// Time as rapport stores it: microseconds since the Unix epoch, UTC, in an int64_t.
#ifndef RAPPORT_BASE_TIME_H_
#define RAPPORT_BASE_TIME_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rapport::base {

using Micros = int64_t;  // microseconds since 1970-01-01T00:00:00Z

inline constexpr Micros kMicrosPerMilli = 1000;
inline constexpr Micros kMicrosPerSecond = 1000 * kMicrosPerMilli;
inline constexpr Micros kMicrosPerDay = 86400 * kMicrosPerSecond;

// Parses an ISO-8601 / RFC 3339 date-time: `YYYY-MM-DD`, optionally followed by `T` (or a
// space) and `hh:mm[:ss[.fraction]]`, optionally followed by `Z` or an offset `±hh[:mm]`.
// Years 0001-9999. A missing offset means UTC. Fraction digits beyond the sixth are truncated
// (microseconds are the storage unit; documented in docs/formats/events.md). Anything else is
// InvalidArgument with a message saying what was expected at which character.
absl::StatusOr<Micros> ParseIso8601(std::string_view text);

// Formats as `YYYY-MM-DDThh:mm:ss.mmmZ`, or with six fraction digits when the value is not a
// whole millisecond. ParseIso8601(FormatIso8601(t)) == t for every t in years 0001-9999.
std::string FormatIso8601(Micros t);

// Days since the epoch of a proleptic Gregorian date (negative before 1970).
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);

}  // namespace rapport::base

#endif  // RAPPORT_BASE_TIME_H_

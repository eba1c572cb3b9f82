// Reading context.consent, shared by the ingest parser (strict: every problem is an error that
// names the field) and the reader of stored events (lenient: what was stored was validated).
#ifndef RAPPORT_WIRE_INTERNAL_CONSENT_H_
#define RAPPORT_WIRE_INTERNAL_CONSENT_H_

#include <boost/json.hpp>

#include "absl/status/status.h"
#include "rapport/wire/event_facts.h"

namespace rapport::wire::internal {

inline constexpr size_t kMaxConsentEntries = 64;
inline constexpr size_t kMaxConsentKeyBytes = 64;
inline constexpr size_t kMaxTextVersionBytes = 64;

// Reads `consent` (the value of context.consent) into `out`. Strict: InvalidArgument naming
// the field ("context.consent.categoryPreferences.Ads") for a wrong type, too many entries, a
// key or textVersion too long, a source rapport does not know. Lenient: skips what it cannot
// read. JSON null counts as absent, also for a category's answer.
absl::Status ReadConsent(const boost::json::value& consent, bool strict, ConsentFacts* out);

}  // namespace rapport::wire::internal

#endif  // RAPPORT_WIRE_INTERNAL_CONSENT_H_

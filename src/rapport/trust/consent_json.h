// A workspace's purposes as JSON, for its settings (docs/api/settings.md#purposes):
//   {"purposes": {"analytics": "We see which pages work…", …}, "types": {"track": "analytics"},
//    "events": {"Order Completed": "necessary"}, "categories": {"Advertising": "marketing"},
//    "grant_expires_after_days": 0}
#ifndef RAPPORT_TRUST_CONSENT_JSON_H_
#define RAPPORT_TRUST_CONSENT_JSON_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "rapport/trust/consent.h"

namespace rapport::trust {

inline constexpr size_t kMaxMappedEvents = 1000;
inline constexpr size_t kMaxEventNameBytes = 1024;
inline constexpr size_t kMaxCategories = 64;
inline constexpr size_t kMaxBenefitBytes = 500;
inline constexpr int kMaxGrantDays = 3650;

// Reads a policy, starting from PurposePolicy::Defaults(): `purposes` sets the text of the
// purposes it names and adds new ones (the six defaults always exist); `types`, `events` and
// `categories` change or add the entries they name; `grant_expires_after_days` replaces the
// default 0. Every purpose an entry maps to must exist. InvalidArgument naming the member for
// an unknown member (unknown_field; there is none that loosens the fail-closed rule), a wrong
// JSON type (invalid_type), a value out of range or a purpose that does not exist
// (invalid_value). Stored policies are read with `ignore_unknown`.
absl::StatusOr<PurposePolicy> ParsePurposePolicy(std::string_view json, bool ignore_unknown = false);

// The policy as a JSON object, every member present; ParsePurposePolicy reads it back unchanged.
std::string PurposePolicyJson(const PurposePolicy& policy);

// A change of consent through the API or the preferences page:
//   {"purposes": {"marketing": "denied", "analytics": "granted"}, "text_version": "2026-11"}
struct ConsentUpdate {
  std::vector<std::pair<std::string, bool>> purposes;  // purpose → granted; sorted, no repeats
  std::string text_version;                            // "" when not given
};
// InvalidArgument naming the field for a purpose the workspace does not have, `necessary`
// (which is not asked), a state other than "granted" or "denied", no purpose at all, a
// text_version over 64 bytes, or an unknown member.
absl::StatusOr<ConsentUpdate> ParseConsentUpdate(std::string_view json, const PurposePolicy& policy);

// The Segment track message that records `update` for the person with `id_member` ("userId" or
// "anonymousId") `id_value`: event kConsentRecordEvent, context.consent.purposes, source and
// textVersion, messageId `message_id`. Ingested with collect::Mode::kOwn.
std::string ConsentChangeMessage(const ConsentUpdate& update, std::string_view source,
                                 std::string_view id_member, std::string_view id_value,
                                 std::string_view message_id);

}  // namespace rapport::trust

#endif  // RAPPORT_TRUST_CONSENT_JSON_H_

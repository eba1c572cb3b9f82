// What the route handlers of `rapport serve` share (api.cc, trust_api.cc). Each handler is
// called only after its route's access check passed (api.cc): `key` is the caller's key (empty
// for public and write-key routes).
#ifndef RAPPORT_APP_INTERNAL_HANDLERS_H_
#define RAPPORT_APP_INTERNAL_HANDLERS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rapport/app/api.h"
#include "rapport/http/server.h"
#include "rapport/profile/record.h"
#include "rapport/trust/consent.h"
#include "rapport/trust/workspaces.h"

namespace rapport::app::internal {

using Caller = trust::KeyInfo;

http::Response Json(int status, std::string body);
// Answers `respond` with `response`, or its error in rapport's shape.
void Answer(http::Responder&& respond, absl::StatusOr<http::Response> response);
// `text` as a profile id (400 invalid_profile_id naming `field` otherwise).
absl::StatusOr<uint64_t> ParseProfileId(std::string_view text, std::string_view field);
// The path's {id} as a profile id.
absl::StatusOr<uint64_t> ProfileId(const http::Request& req);
// The `limit` query parameter: `fallback` when absent, else 1..max (400 otherwise).
absl::StatusOr<size_t> Limit(const http::Request& req, size_t fallback, size_t max);

// Records a read of personal data by `key` in the audit log, before it is answered.
// Unavailable (503 audit_unavailable) when the entry cannot be written: then nothing is read.
absl::Status AuditRead(const Services& s, const Caller& key, std::string_view action, uint64_t profile,
                       std::string subject = {}, uint64_t count = 0);

// The purposes `key` may see of the person `p` (trust::VisiblePurposes), or nullopt when the key
// is not restricted to purposes and sees everything.
std::optional<std::vector<std::string>> VisibleTo(const Services& s, const Caller& key, const profile::ProfileRecord* p,
                                                 const trust::PurposePolicy& policy);

// Trust's routes (trust_api.cc): consent, purposes, keys, the audit log, whoami.
void GetConsent(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void PutConsent(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void GetPurposes(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void PutPurposes(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void ListKeys(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void CreateKey(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void GetKey(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void RevokeKey(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void ListAudit(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void WhoAmI(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);

// GDPR's routes (gdpr_api.cc): erasure and the suppression list.
void EraseProfile(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void ListSuppressions(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);
void LiftSuppression(const Services& s, const Caller& key, http::Request&& req, http::Responder&& respond);

}  // namespace rapport::app::internal

#endif  // RAPPORT_APP_INTERNAL_HANDLERS_H_

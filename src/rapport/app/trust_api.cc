// Trust's routes: consent, purposes, keys, the audit log (docs/api/profiles.md#consent,
// settings.md#purposes, keys.md, audit.md).
#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "rapport/app/internal/handlers.h"
#include "rapport/base/crypto.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/time.h"
#include "rapport/profile/json.h"
#include "rapport/trust/audit.h"
#include "rapport/trust/consent_json.h"
#include "rapport/trust/keys_json.h"
#include "rapport/wire/json_text.h"
#include "rapport/wire/segment.h"

namespace rapport::app::internal {

using http::ErrorResponse;
using http::ErrorShape;
using http::Request;
using http::Responder;
using http::Response;

// --- Consent (docs/consent.md).

// The person's consent; the read is audited as `action` unless it is "" (a PUT, which logs its
// read before it makes the change).
absl::StatusOr<Response> ConsentOf(const Services& s, const Caller& key, uint64_t id, std::string_view action) {
  auto reader = s.store->NewStateReader();
  RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy,
                           s.profiles->ReadPolicy(*reader, key.workspace));
  if (!action.empty()) RAPPORT_RETURN_IF_ERROR(AuditRead(s, key, action, p.id));
  return Json(200, profile::ConsentJson(p, *policy, s.profiles->Now()));
}

void GetConsent(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    return ConsentOf(s, key, id, "profile_consent");
  }());
}

// Records a change of consent as an event of the person (so it is on their timeline, in their
// export, and replayed like any other), then answers with the consent it leaves.
void PutConsent(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  struct Change {
    uint32_t ws;
    std::string message_id;
    std::vector<std::pair<std::string, bool>> purposes;  // purpose → granted
    wire::TrackingRequest request;
  };
  auto prepared = [&]() -> absl::StatusOr<Change> {
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy,
                             s.profiles->ReadPolicy(*reader, key.workspace));
    RAPPORT_ASSIGN_OR_RETURN(trust::ConsentUpdate update, trust::ParseConsentUpdate(req.body, *policy));
    if (key.restricted()) {
      // Else such a key could grant its own purposes and read what they show.
      for (const auto& [purpose, granted] : update.purposes) {
        if (granted) {
          return base::MakeError(absl::StatusCode::kPermissionDenied, "purpose_restricted",
                                 "a key restricted to purposes may record withdrawals, not grants",
                                 fmt::format("purposes.{}", purpose));
        }
      }
    }
    // The answer shows the person's consent: that read is logged now, before the change is made
    // (so a failure to log cannot follow a change already recorded).
    RAPPORT_RETURN_IF_ERROR(AuditRead(s, key, "profile_consent_put", p.id));
    // The event names the person by an identifier the profile holds: its user id, else an
    // anonymous id (every profile has one of the two: every event does).
    const identity::Identifier* named = nullptr;
    for (const profile::IdentityEntry& e : p.identities) {
      if (e.identifier.type == "user_id") {
        named = &e.identifier;
        break;
      }
      if (e.identifier.type == "anonymous_id" && !named) named = &e.identifier;
    }
    if (!named) {
      return base::MakeError(absl::StatusCode::kFailedPrecondition, "no_event_identifier",
                             fmt::format("profile {} has no user id or anonymous id to record the change under",
                                         p.id));
    }
    Change change{key.workspace, base::RandomToken("consent-", 12), update.purposes, {}};
    change.request.messages.push_back(wire::ParseMessage(trust::ConsentChangeMessage(
        update, trust::kSourceApi, named->type == "user_id" ? "userId" : "anonymousId", named->value,
        change.message_id)));
    return change;
  }();
  if (!prepared.ok()) return Answer(std::move(respond), prepared.status());
  auto id = ProfileId(req);
  s.ingestor->Ingest(prepared->ws, std::move(prepared->request), collect::Mode::kOwn,
                     [s, key, id = *id, purposes = prepared->purposes, respond = std::move(respond)](
                         absl::StatusOr<std::vector<collect::MessageResult>> results) mutable {
                       if (!results.ok()) return Answer(std::move(respond), results.status());
                       const collect::MessageResult& r = results->at(0);
                       if (r.outcome == collect::Outcome::kRejected || r.outcome == collect::Outcome::kRefused) {
                         return Answer(std::move(respond), r.error);
                       }
                       std::move(respond).Later([s, key, id, purposes]() -> Response {
                         auto response = [&]() -> absl::StatusOr<Response> {
                           // The change went in under an identifier the profile held when it was
                           // read; make sure the profile now holds it (a split or new merge
                           // protection in between could have sent it elsewhere; a choice
                           // recorded for the same instant outranks a grant).
                           auto reader = s.store->NewStateReader();
                           RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
                           for (const auto& [purpose, granted] : purposes) {
                             const trust::Choice* c = p.consents.Find(purpose);
                             const auto wanted = granted ? trust::ConsentState::kGranted : trust::ConsentState::kDenied;
                             if (!c || c->state != wanted) {
                               return base::MakeError(absl::StatusCode::kAborted, "consent_not_recorded",
                                                      fmt::format("the choice for '{}' did not take effect: the profile "
                                                                  "changed while it was recorded (a split or a merge), "
                                                                  "or a choice of the same instant outranks it; read "
                                                                  "the consent again and repeat the change",
                                                                  purpose));
                             }
                           }
                           return ConsentOf(s, key, id, "");
                         }();
                         return response.ok() ? *std::move(response)
                                              : ErrorResponse(response.status(), ErrorShape::kNative);
                       });
                     });
}

void GetPurposes(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy,
                             s.profiles->ReadPolicy(*reader, key.workspace));
    return Json(200, trust::PurposePolicyJson(*policy));
  }());
}

void PutPurposes(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  auto policy = trust::ParsePurposePolicy(req.body);
  if (!policy.ok()) return Answer(std::move(respond), policy.status());
  s.store->RunExclusive(
      [s, ws = key.workspace, policy = *policy](store::StateTxn& txn) {
        s.profiles->PutPolicy(txn, ws, policy);
        return absl::OkStatus();
      },
      [policy = *policy, respond = std::move(respond)](absl::Status status) mutable {
        if (!status.ok()) return Answer(std::move(respond), status);
        std::move(respond).Later([policy] { return Json(200, trust::PurposePolicyJson(policy)); });
      });
}

// --- Keys (docs/api/keys.md), scope admin.

void ListKeys(const Services& s, const Caller& key, Request&&, Responder&& respond) {
  std::string body = "{\"keys\":[";
  bool first = true;
  for (const trust::KeyInfo& k : s.workspaces->ListKeys(key.workspace)) {
    if (!first) body += ',';
    first = false;
    body += trust::KeyJson(k);
  }
  std::move(respond)(Json(200, body + "]}"));
}

void CreateKey(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeySpec spec, trust::ParseKeySpec(req.body));
    RAPPORT_RETURN_IF_ERROR(trust::CheckKeySpec(spec));
    // A key gives no more than it holds: its scopes, and (when it is restricted) its purposes.
    for (const std::string& scope : spec.scopes) {
      if (!key.HasScope(scope)) {
        return base::MakeError(absl::StatusCode::kPermissionDenied, "missing_scope",
                               fmt::format("a key can only give the scopes it holds itself, and this one lacks '{}'", scope),
                               "scopes");
      }
    }
    if (key.restricted()) {
      const bool within = spec.kind == trust::KeyKind::kWrite ||
                          (!spec.purposes.empty() && std::all_of(spec.purposes.begin(), spec.purposes.end(), [&](const std::string& p) {
                            return std::find(key.purposes.begin(), key.purposes.end(), p) != key.purposes.end();
                          }));
      if (!within) {
        return base::MakeError(absl::StatusCode::kPermissionDenied, "purpose_restricted",
                               "this key is restricted to purposes: the keys it makes must be restricted to some of them",
                               "purposes");
      }
    }
    if (!spec.purposes.empty()) {
      auto reader = s.store->NewStateReader();
      RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy,
                               s.profiles->ReadPolicy(*reader, key.workspace));
      for (const std::string& purpose : spec.purposes) {
        if (!policy->purposes.contains(purpose)) {
          return base::InvalidField("unknown_purpose", "purposes",
                                    fmt::format("'{}' is not one of this workspace's purposes (GET /api/v1/settings/purposes)",
                                                purpose));
        }
      }
    }
    RAPPORT_ASSIGN_OR_RETURN(trust::CreatedKey created, s.workspaces->CreateKey(key.workspace, spec));
    std::string body = trust::KeyJson(created.info);
    body.pop_back();
    return Json(201, body + ",\"key\":" + wire::Quote(created.key) + '}');
  }());
}

absl::StatusOr<trust::KeyInfo> FindKey(const Services& s, const Caller& key, std::string_view id) {
  for (trust::KeyInfo& k : s.workspaces->ListKeys(key.workspace)) {
    if (k.id == id) return std::move(k);
  }
  return base::MakeError(absl::StatusCode::kNotFound, "key_not_found", fmt::format("this workspace has no key '{}'", id));
}

void GetKey(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo k, FindKey(s, key, req.Param("id")));
    return Json(200, trust::KeyJson(k));
  }());
}

void RevokeKey(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo k, s.workspaces->RevokeKey(key.workspace, req.Param("id")));
    return Json(200, trust::KeyJson(k));
  }());
}

// --- The audit log (docs/api/audit.md), scope admin.

absl::StatusOr<base::Micros> QueryTime(const Request& req, std::string_view name) {
  auto text = req.Query(name);
  if (!text) return 0;
  auto t = base::ParseIso8601(*text);
  if (!t.ok()) {
    return base::InvalidField("invalid_field", name,
                              fmt::format("'{}' must be an ISO-8601 time such as 2026-11-24T09:00:00Z", name));
  }
  return *t;
}

void ListAudit(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    trust::AuditQuery q;
    if (auto profile = req.Query("profile_id")) {
      RAPPORT_ASSIGN_OR_RETURN(q.profile, ParseProfileId(*profile, "profile_id"));
    }
    q.key_id = std::string(req.Query("key_id").value_or(""));
    RAPPORT_ASSIGN_OR_RETURN(q.since, QueryTime(req, "since"));
    RAPPORT_ASSIGN_OR_RETURN(q.until, QueryTime(req, "until"));
    q.cursor = std::string(req.Query("cursor").value_or(""));
    RAPPORT_ASSIGN_OR_RETURN(q.limit, Limit(req, 100, 1000));
    RAPPORT_ASSIGN_OR_RETURN(trust::AuditPage page, s.audit->List(key.workspace, q));
    std::string body = "{\"entries\":[";
    for (size_t i = 0; i < page.entries.size(); ++i) {
      if (i) body += ',';
      body += trust::AuditEntryJson(page.entries[i]);
    }
    body += "],\"next_cursor\":";
    body += page.next_cursor.empty() ? "null" : wire::Quote(page.next_cursor);
    return Json(200, body + '}');
  }());
}

void WhoAmI(const Services& s, const Caller& key, Request&&, Responder&& respond) {
  auto ws = s.workspaces->Find(key.workspace);
  std::string body = trust::KeyJson(key);
  body.pop_back();
  body += ",\"workspace\":" + wire::Quote(ws ? ws->name : "") + fmt::format(",\"workspace_id\":{}}}", key.workspace);
  std::move(respond)(Json(200, std::move(body)));
}

}  // namespace rapport::app::internal

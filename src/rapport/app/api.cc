#include "rapport/app/api.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <iterator>
#include <memory>

#include "rapport/app/internal/handlers.h"
#include "rapport/base/check.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"
#include "rapport/base/time.h"
#include "rapport/base/crypto.h"
#include "rapport/identity/rules_json.h"
#include "rapport/profile/json.h"
#include "rapport/trust/audit.h"
#include "rapport/trust/consent_json.h"
#include "rapport/trust/limits.h"
#include "rapport/wire/event_facts.h"
#include "rapport/wire/definition_json.h"
#include "rapport/wire/json_text.h"
#include "rapport/wire/segment.h"

namespace rapport::app {

using http::ErrorResponse;
using http::ErrorShape;
using http::Request;
using http::Responder;
using http::Response;

// --- Shared by the handlers (internal/handlers.h).

namespace internal {

Response Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

void Answer(Responder&& respond, absl::StatusOr<Response> response) {
  std::move(respond)(response.ok() ? *std::move(response)
                                   : ErrorResponse(response.status(), ErrorShape::kNative));
}

absl::StatusOr<size_t> Limit(const Request& req, size_t fallback, size_t max) {
  auto text = req.Query("limit");
  if (!text) return fallback;
  size_t value = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size() || value < 1 || value > max) {
    return base::InvalidField("invalid_field", "limit",
                              fmt::format("limit must be a whole number from 1 to {}", max),
                              static_cast<int64_t>(max));
  }
  return value;
}

absl::StatusOr<uint64_t> ParseProfileId(std::string_view text, std::string_view field) {
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id == 0) {
    return base::InvalidField("invalid_profile_id", field,
                              fmt::format("'{}' is not a profile id (a positive whole number)", text));
  }
  return id;
}

absl::StatusOr<uint64_t> ProfileId(const Request& req) { return ParseProfileId(req.Param("id"), "id"); }

absl::Status AuditRead(const Services& s, const Caller& key, std::string_view action, uint64_t profile,
                       std::string subject, uint64_t count) {
  absl::Status st = s.audit->Record(key.workspace, {.key_id = key.id,
                                                    .key_name = key.name,
                                                    .profile = profile,
                                                    .action = std::string(action),
                                                    .purposes = key.purposes,
                                                    .subject = std::move(subject),
                                                    .count = count});
  if (st.ok()) return st;
  return base::MakeError(absl::StatusCode::kUnavailable, "audit_unavailable",
                         fmt::format("the read could not be written to the audit log, so it was not answered: {}",
                                     base::AsStd(st.message())));
}

std::optional<std::vector<std::string>> VisibleTo(const Services& s, const Caller& key, const profile::ProfileRecord* p,
                                                 const trust::PurposePolicy& policy) {
  if (!key.restricted()) return std::nullopt;
  return trust::VisiblePurposes(key.purposes, p ? p->consents : trust::ConsentSet{}, policy, s.profiles->Now());
}

}  // namespace internal

namespace {

using http::Method;
using internal::Answer;
using internal::AuditRead;
using internal::Caller;
using internal::Json;
using internal::Limit;
using internal::ProfileId;
using internal::VisibleTo;

std::string_view OutcomeName(collect::Outcome o) {
  switch (o) {
    case collect::Outcome::kStored: return "stored";
    case collect::Outcome::kDuplicate: return "duplicate";
    case collect::Outcome::kRejected: return "rejected";
    case collect::Outcome::kRefused: return "refused";
  }
  return "rejected";
}

// The answer to a tracking request once its messages have been handled (docs/api/tracking.md).
Response TrackingResponse(const std::vector<collect::MessageResult>& results, bool is_batch) {
  if (!is_batch) {
    const collect::MessageResult& r = results.at(0);
    if (r.outcome == collect::Outcome::kRejected) return ErrorResponse(r.error, ErrorShape::kSegment);
    std::string body = "{\"success\":true,\"messageId\":";
    wire::AppendQuoted(&body, r.message_id);
    body += fmt::format(",\"status\":\"{}\"", OutcomeName(r.outcome));
    // Refused by the person's consent: handled (retrying it unchanged does not help), so 200.
    if (r.outcome == collect::Outcome::kRefused) body += ",\"reason\":{" + http::ErrorMembers(r.error) + "}";
    body += '}';
    return Json(200, std::move(body));
  }
  size_t counts[4] = {0, 0, 0, 0};
  std::string items;
  for (size_t i = 0; i < results.size(); ++i) {
    const collect::MessageResult& r = results[i];
    ++counts[static_cast<int>(r.outcome)];
    if (i) items += ',';
    items += fmt::format("{{\"index\":{},\"messageId\":", i);
    items += r.message_id.empty() ? "null" : wire::Quote(r.message_id);
    items += fmt::format(",\"status\":\"{}\"", OutcomeName(r.outcome));
    if (r.outcome == collect::Outcome::kRejected) {
      items += ",\"error\":{" + http::ErrorMembers(r.error) + "}";
    } else if (r.outcome == collect::Outcome::kRefused) {
      items += ",\"reason\":{" + http::ErrorMembers(r.error) + "}";
    }
    items += '}';
  }
  const size_t rejected = counts[static_cast<int>(collect::Outcome::kRejected)];
  std::string head;
  if (rejected == 0) {
    head = "{\"success\":true";
  } else {
    head = fmt::format(
        "{{\"success\":false,\"code\":\"invalid_messages\",\"message\":\"{} of {} messages were "
        "rejected (see results); the others were stored\"",
        rejected, results.size());
  }
  return Json(rejected ? 400 : 200,
              fmt::format("{},\"stored\":{},\"duplicates\":{},\"rejected\":{},\"refused\":{},\"results\":[{}]}}",
                          head, counts[0], counts[1], rejected, counts[static_cast<int>(collect::Outcome::kRefused)],
                          items));
}

absl::Status Unauthenticated(std::string_view code, std::string_view message) {
  return base::MakeError(absl::StatusCode::kUnauthenticated, code, message);
}

http::Handler TrackingHandler(const Services& s, std::optional<wire::EventType> type) {
  return [s, type](Request&& req, Responder&& respond) {
    std::optional<uint32_t> workspace;
    auto authenticate = [&](const std::string& key) -> absl::Status {
      auto info = s.workspaces->Authenticate(key);
      if (!info || info->kind != trust::KeyKind::kWrite) {
        return Unauthenticated("invalid_write_key", "the write key is not known to this server");
      }
      RAPPORT_RETURN_IF_ERROR(s.limiter->Take(*info));
      workspace = info->workspace;
      return absl::OkStatus();
    };
    const std::optional<std::string> header_key = trust::BasicUser(req.authorization);
    if (header_key) {
      if (auto st = authenticate(*header_key); !st.ok()) {
        return std::move(respond)(ErrorResponse(st, ErrorShape::kSegment));
      }
    }
    auto parsed = wire::ParseTrackingRequest(req.body, type);
    if (!parsed.ok()) {
      s.metrics
          ->GetCounter("rapport_ingest_requests_rejected_total",
                       "Tracking requests refused whole, by reason.",
                       {{"reason", base::GetErrorDetails(parsed.status()).code}})
          .Inc();
      return std::move(respond)(ErrorResponse(parsed.status(), ErrorShape::kSegment));
    }
    if (!workspace) {
      if (!parsed->write_key) {
        return std::move(respond)(ErrorResponse(
            Unauthenticated("missing_write_key",
                            "send the write key as the HTTP Basic username (empty password) or "
                            "as 'writeKey' in the body"),
            ErrorShape::kSegment));
      }
      if (auto st = authenticate(*parsed->write_key); !st.ok()) {
        return std::move(respond)(ErrorResponse(st, ErrorShape::kSegment));
      }
    }
    const bool is_batch = parsed->is_batch;
    s.ingestor->Ingest(
        *workspace, *std::move(parsed), collect::Mode::kLive,
        [respond = std::move(respond), is_batch](
            absl::StatusOr<std::vector<collect::MessageResult>> results) mutable {
          if (!results.ok()) {
            return std::move(respond)(ErrorResponse(results.status(), ErrorShape::kSegment));
          }
          // This runs on a store thread: format on the connection's own thread.
          std::move(respond).Later([results = *std::move(results), is_batch] {
            return TrackingResponse(results, is_batch);
          });
        });
  };
}


bool Contains(const std::vector<std::string>& v, std::string_view item) {
  return std::find(v.begin(), v.end(), item) != v.end();
}

// Whether a stored event may be shown to a reader who sees `visible` (nullopt: everything).
bool EventVisible(std::string_view payload, const std::optional<std::vector<std::string>>& visible,
                  const trust::PurposePolicy& policy) {
  if (!visible) return true;
  auto facts = wire::ReadEventFacts(payload);
  return facts.ok() && Contains(*visible, trust::PurposeOf(*facts, policy));
}

void ListEvents(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    auto user = req.Query("userId");
    auto anonymous = req.Query("anonymousId");
    if (user.has_value() == anonymous.has_value() || (user && user->empty()) ||
        (anonymous && anonymous->empty())) {
      return base::InvalidField("missing_id", "userId",
                                "give exactly one of the query parameters userId and anonymousId");
    }
    RAPPORT_ASSIGN_OR_RETURN(size_t limit, Limit(req, 100, 1000));
    RAPPORT_ASSIGN_OR_RETURN(
        store::EventPage page,
        s.store->ReadPersonEvents(key.workspace,
                                  user ? store::IdKind::kUserId : store::IdKind::kAnonymousId,
                                  user ? *user : *anonymous, req.Query("cursor").value_or(""),
                                  limit));
    // The person these events are of: for the audit log, and what a restricted key may see.
    auto reader = s.store->NewStateReader();
    auto p = s.profiles->Lookup(*reader, key.workspace,
                                {user ? "user_id" : "anonymous_id", std::string(user ? *user : *anonymous),
                                 user ? "userId" : "anonymousId"});
    if (!p.ok() && !absl::IsNotFound(p.status())) return p.status();
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy,
                             s.profiles->ReadPolicy(*reader, key.workspace));
    const auto visible = VisibleTo(s, key, p.ok() ? &*p : nullptr, *policy);
    std::string body = "{\"events\":[";
    size_t shown = 0;
    for (const store::StoredEvent& e : page.events) {
      if (!EventVisible(e.payload, visible, *policy)) continue;
      if (shown++) body += ',';
      body += e.payload;
    }
    RAPPORT_RETURN_IF_ERROR(AuditRead(s, key, "events", p.ok() ? p->id : 0, "", shown));
    body += "],\"next_cursor\":";
    body += page.next_cursor.empty() ? "null" : wire::Quote(page.next_cursor);
    body += '}';
    return Json(200, std::move(body));
  }());
}

// The identifier named by the query: one of user_id, anonymous_id, email, phone, device_id (or
// Segment's spelling userId, anonymousId, deviceId), or type=…&value=… for any other type.
absl::StatusOr<wire::RawIdentifier> QueryIdentifier(const Request& req) {
  static constexpr std::pair<std::string_view, std::string_view> kNames[] = {
      {"user_id", "user_id"},   {"userId", "user_id"},     {"anonymous_id", "anonymous_id"},
      {"anonymousId", "anonymous_id"}, {"email", "email"}, {"phone", "phone"},
      {"device_id", "device_id"}, {"deviceId", "device_id"}};
  std::vector<wire::RawIdentifier> found;
  for (const auto& [name, type] : kNames) {
    if (auto v = req.Query(name)) found.push_back({std::string(type), std::string(*v), std::string(name)});
  }
  auto type = req.Query("type");
  auto value = req.Query("value");
  if (type || value) {
    if (!type || !value) {
      return base::InvalidField("missing_field", type ? "value" : "type",
                                "give both 'type' and 'value' to look up a custom identifier");
    }
    found.push_back({std::string(*type), std::string(*value), "value"});
  }
  if (found.size() != 1) {
    return base::InvalidField(
        "missing_id", "email",
        "give exactly one identifier: user_id, anonymous_id, email, phone, device_id, or "
        "type and value");
  }
  return found.front();
}

// The whole profile: what it is, and what is derived from it now (for a key restricted to
// purposes, only what they allow), the read audited as `action`.
absl::StatusOr<Response> FullProfile(const Services& s, store::StateReader& reader, const Caller& key,
                                     const profile::ProfileRecord& p, uint64_t requested, std::string_view action) {
  const uint32_t ws = key.workspace;
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const profile::Definitions> defs,
                           s.profiles->DefinitionsFor(reader, ws));
  RAPPORT_ASSIGN_OR_RETURN(profile::DerivedState derived, profile::Engine::ReadDerived(reader, ws, p.id));
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy, s.profiles->ReadPolicy(reader, ws));
  const auto visible = VisibleTo(s, key, &p, *policy);
  RAPPORT_RETURN_IF_ERROR(AuditRead(s, key, action, p.id));
  return Json(200, profile::ProfileJson(p, requested, *defs, derived, *policy, s.profiles->Now(),
                                        visible ? &*visible : nullptr));
}

void GetProfile(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
    return FullProfile(s, *reader, key, p, id, "profile");
  }());
}

void LookupProfile(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(wire::RawIdentifier id, QueryIdentifier(req));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, s.profiles->Lookup(*reader, key.workspace, id));
    return FullProfile(s, *reader, key, p, p.id, "profile_lookup");
  }());
}

// Identifiers are `necessary`: every key that may read profiles sees them.
void GetIdentities(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
    RAPPORT_RETURN_IF_ERROR(AuditRead(s, key, "profile_identities", p.id));
    return Json(200, profile::IdentitiesJson(p));
  }());
}

void GetTimeline(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    RAPPORT_ASSIGN_OR_RETURN(size_t limit, Limit(req, 100, 1000));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
    RAPPORT_ASSIGN_OR_RETURN(
        profile::TimelinePage page,
        profile::Engine::Timeline(*reader, key.workspace, p.id, req.Query("cursor").value_or(""), limit));
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy,
                             s.profiles->ReadPolicy(*reader, key.workspace));
    if (const auto visible = VisibleTo(s, key, &p, *policy)) {
      // A restricted key sees the events of the purposes it may see, and segment changes
      // (derived from analytics) only with analytics.
      std::erase_if(page.items, [&](const profile::TimelineItem& item) {
        return item.membership ? !Contains(*visible, trust::kAnalytics)
                               : !EventVisible(item.event.payload, visible, *policy);
      });
    }
    RAPPORT_RETURN_IF_ERROR(AuditRead(s, key, "profile_events", p.id, "", page.items.size()));
    return Json(200, profile::TimelineJson(p.id, page));
  }());
}

// The most events one export holds: beyond, 413 (the person's events are then read by pages,
// GET /api/v1/profiles/{id}/events).
constexpr size_t kMaxExportEvents = 100000;

// Everything about the person (the right of access, GDPR art. 15): the profile, its
// identities and why, consent, every event, and the audit entries about them.
void ExportProfile(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    if (key.restricted()) {
      return base::MakeError(absl::StatusCode::kPermissionDenied, "purpose_restricted",
                             "an export holds everything about the person; a key restricted to purposes cannot make one");
    }
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const profile::Definitions> defs,
                             s.profiles->DefinitionsFor(*reader, key.workspace));
    RAPPORT_ASSIGN_OR_RETURN(profile::DerivedState derived, profile::Engine::ReadDerived(*reader, key.workspace, p.id));
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy,
                             s.profiles->ReadPolicy(*reader, key.workspace));
    std::string events;
    size_t count = 0;
    std::string cursor;
    do {
      RAPPORT_ASSIGN_OR_RETURN(profile::TimelinePage page,
                               profile::Engine::Timeline(*reader, key.workspace, p.id, cursor, 1000));
      for (const profile::TimelineItem& item : page.items) {
        if (item.membership) continue;
        if (++count > kMaxExportEvents) {
          return base::MakeError(absl::StatusCode::kFailedPrecondition, "export_too_large",
                                 fmt::format("the person has more than {} events; read them by pages with GET "
                                             "/api/v1/profiles/{}/events",
                                             kMaxExportEvents, p.id),
                                 "", static_cast<int64_t>(kMaxExportEvents));
        }
        if (count > 1) events += ',';
        events += item.event.payload;
      }
      cursor = std::move(page.next_cursor);
    } while (!cursor.empty());
    // The audit entries about them, this export's own included.
    RAPPORT_RETURN_IF_ERROR(AuditRead(s, key, "profile_export", p.id, "", count));
    std::string audit;
    trust::AuditQuery q{.profile = p.id, .limit = 1000};
    size_t entries = 0;
    do {
      RAPPORT_ASSIGN_OR_RETURN(trust::AuditPage page, s.audit->List(key.workspace, q));
      for (const trust::AuditEntry& e : page.entries) {
        if (entries++) audit += ',';
        audit += trust::AuditEntryJson(e);
      }
      q.cursor = std::move(page.next_cursor);
    } while (!q.cursor.empty() && entries < kMaxExportEvents);
    const bool audit_truncated = !q.cursor.empty();
    const base::Micros now = s.profiles->Now();
    std::string body = "{\"exported_at\":" + wire::Quote(base::FormatIso8601(now)) +
                       ",\"profile\":" + profile::ProfileJson(p, id, *defs, derived, *policy, now) +
                       ",\"identities\":" + profile::IdentitiesJson(p) + ",\"consent\":" +
                       profile::ConsentJson(p, *policy, now) + ",\"events\":[" + events +
                       "],\"decisions\":[],\"audit\":[" + audit + "]" +
                       (audit_truncated ? ",\"audit_truncated\":true}" : "}");
    Response r = Json(200, std::move(body));
    r.headers.emplace_back("Content-Disposition",
                           fmt::format("attachment; filename=\"profile-{}-export.json\"", p.id));
    return r;
  }());
}

void SplitProfile(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  auto prepared = [&]() -> absl::StatusOr<std::pair<uint32_t, wire::RawIdentifier>> {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> type, wire::ReadStringMember(req.body, "type"));
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> value, wire::ReadStringMember(req.body, "value"));
    if (!type || !value) {
      return base::InvalidField("missing_field", type ? "value" : "type",
                                "name the identifier to split off: {\"type\": \"anonymous_id\", "
                                "\"value\": \"…\"}");
    }
    return std::pair{key.workspace, wire::RawIdentifier{*type, *value, "split"}};
  }();
  if (!prepared.ok()) return Answer(std::move(respond), prepared.status());
  auto id = ProfileId(req);
  if (!id.ok()) return Answer(std::move(respond), id.status());
  auto result = std::make_shared<std::vector<uint64_t>>();
  s.store->RunExclusive(
      [s, ws = prepared->first, identifier = prepared->second, id = *id,
       result](store::StateTxn& txn) -> absl::Status {
        RAPPORT_ASSIGN_OR_RETURN(*result, s.profiles->Split(txn, ws, id, identifier));
        return absl::OkStatus();
      },
      [respond = std::move(respond), result](absl::Status status) mutable {
        if (!status.ok()) return Answer(std::move(respond), status);
        std::move(respond).Later([result] { return Json(200, profile::SplitJson(*result)); });
      });
}

// --- Definitions, jobs, segment members (docs/api/definitions.md).

struct DefinitionRoute {
  profile::DefinitionKind kind;
  std::string_view list_member;  // "computed_traits" / "segments"
};
constexpr DefinitionRoute kComputedRoute{profile::DefinitionKind::kComputed, "computed_traits"};
constexpr DefinitionRoute kSegmentRoute{profile::DefinitionKind::kSegment, "segments"};

absl::StatusOr<std::optional<profile::Job>> JobOf(store::StateReader& reader, uint64_t id) {
  if (!id) return std::nullopt;
  auto job = profile::Engine::ReadJob(reader, id);
  if (absl::IsNotFound(job.status())) return std::nullopt;
  if (!job.ok()) return job.status();
  return *std::move(job);
}

void ListDefinitions(const Services& s, const Caller& key, const DefinitionRoute& route, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(std::vector<profile::StoredDefinition> list,
                             profile::Engine::ListDefinitions(*reader, key.workspace, route.kind));
    std::string body = fmt::format("{{\"{}\":[", route.list_member);
    for (size_t i = 0; i < list.size(); ++i) {
      RAPPORT_ASSIGN_OR_RETURN(std::optional<profile::Job> job, JobOf(*reader, list[i].job));
      if (i) body += ',';
      body += profile::DefinitionJson(list[i], job);
    }
    return Json(200, body + "]}");
  }());
}

void GetDefinition(const Services& s, const Caller& key, const DefinitionRoute& route, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    const std::string name(req.Param("name"));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(std::optional<profile::StoredDefinition> d,
                             profile::Engine::ReadDefinition(*reader, key.workspace, route.kind, name));
    if (!d) return profile::NoSuchDefinition(route.kind, name);
    RAPPORT_ASSIGN_OR_RETURN(std::optional<profile::Job> job, JobOf(*reader, d->job));
    return Json(200, profile::DefinitionJson(*d, job));
  }());
}

// POST (create) and PUT (replace) of a definition: validated and stored on the writer, its
// backfill job queued in the same batch.
void PutDefinition(const Services& s, const Caller& key, const DefinitionRoute& route, profile::PutMode mode, Request&& req,
                   Responder&& respond) {
  const uint32_t ws = key.workspace;
  using Change = absl::StatusOr<profile::DefinitionChange>;
  std::function<Change(store::StateTxn&)> put;
  std::string name;
  if (route.kind == profile::DefinitionKind::kComputed) {
    auto spec = wire::ParseComputedTraitSpec(req.body);
    if (!spec.ok()) return Answer(std::move(respond), spec.status());
    name = spec->name;
    put = [s, ws, spec = *spec, mode](store::StateTxn& txn) { return s.profiles->PutComputedTrait(txn, ws, spec, mode); };
  } else {
    auto spec = wire::ParseSegmentSpec(req.body);
    if (!spec.ok()) return Answer(std::move(respond), spec.status());
    name = spec->name;
    put = [s, ws, spec = *spec, mode](store::StateTxn& txn) { return s.profiles->PutSegment(txn, ws, spec, mode); };
  }
  if (mode == profile::PutMode::kReplace && name != req.Param("name")) {
    return Answer(std::move(respond),
                  base::InvalidField("name_mismatch", "name",
                                     fmt::format("the body names '{}' but the path '{}'", name, req.Param("name"))));
  }
  auto change = std::make_shared<profile::DefinitionChange>();
  s.store->RunExclusive(
      [put = std::move(put), change](store::StateTxn& txn) -> absl::Status {
        RAPPORT_ASSIGN_OR_RETURN(*change, put(txn));
        // An identical body changes nothing: answer with the job of the current version.
        if (!change->job && change->stored.job) {
          RAPPORT_ASSIGN_OR_RETURN(change->job, profile::Engine::ReadJob(txn, change->stored.job));
        }
        return absl::OkStatus();
      },
      [s, change, respond = std::move(respond)](absl::Status status) mutable {
        if (!status.ok()) return Answer(std::move(respond), status);
        if (change->job && !change->job->finished() && s.job_queued) s.job_queued();
        std::move(respond).Later([change] {
          return Json(change->created ? 201 : 200, profile::DefinitionJson(change->stored, change->job));
        });
      });
}

void BackfillDefinition(const Services& s, const Caller& key, const DefinitionRoute& route, Request&& req, Responder&& respond) {
  auto job = std::make_shared<profile::Job>();
  s.store->RunExclusive(
      [s, ws = key.workspace, kind = route.kind, name = std::string(req.Param("name")), job](store::StateTxn& txn) -> absl::Status {
        RAPPORT_ASSIGN_OR_RETURN(*job, s.profiles->Backfill(txn, ws, kind, name));
        return absl::OkStatus();
      },
      [s, job, respond = std::move(respond)](absl::Status status) mutable {
        if (!status.ok()) return Answer(std::move(respond), status);
        if (!job->finished() && s.job_queued) s.job_queued();
        std::move(respond).Later([job] { return Json(202, profile::JobJson(*job)); });
      });
}

void GetJob(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    const std::string_view text = req.Param("id");
    uint64_t id = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    auto not_found = base::MakeError(absl::StatusCode::kNotFound, "job_not_found",
                                     fmt::format("there is no job '{}'", text));
    if (ec != std::errc() || end != text.data() + text.size() || id == 0) return not_found;
    auto reader = s.store->NewStateReader();
    auto job = profile::Engine::ReadJob(*reader, id);
    if (absl::IsNotFound(job.status()) || (job.ok() && job->ws != key.workspace)) return not_found;
    if (!job.ok()) return job.status();
    return Json(200, profile::JobJson(*job));
  }());
}

void SegmentMembers(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(size_t limit, Limit(req, 100, 1000));
    auto reader = s.store->NewStateReader();
    if (key.restricted() && !Contains(key.purposes, trust::kAnalytics)) {
      return base::MakeError(absl::StatusCode::kPermissionDenied, "purpose_restricted",
                             "segments are derived for analytics, and this key is not for that purpose");
    }
    RAPPORT_ASSIGN_OR_RETURN(profile::MembersPage page,
                             s.profiles->Members(*reader, key.workspace, req.Param("name"),
                                                 req.Query("cursor").value_or(""), limit));
    if (key.restricted()) {
      // Only the members who granted analytics (a page may then hold fewer than `limit`).
      RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy,
                               s.profiles->ReadPolicy(*reader, key.workspace));
      absl::Status failed;
      std::erase_if(page.members, [&](const std::pair<uint64_t, base::Micros>& m) {
        auto p = profile::Engine::Read(*reader, key.workspace, m.first);
        if (!p.ok()) {
          if (!absl::IsNotFound(p.status())) failed = p.status();
          return true;
        }
        return !Contains(*VisibleTo(s, key, &*p, *policy), trust::kAnalytics);
      });
      RAPPORT_RETURN_IF_ERROR(failed);
    }
    RAPPORT_RETURN_IF_ERROR(
        AuditRead(s, key, "segment_members", 0, fmt::format("segment {}", req.Param("name")), page.members.size()));
    return Json(200, profile::MembersJson(req.Param("name"), page));
  }());
}

// The workspace's merge protection (docs/api/settings.md).
void GetMergeProtection(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const identity::MergeRules> rules,
                             s.profiles->ReadRules(*reader, key.workspace));
    return Json(200, identity::MergeRulesJson(*rules));
  }());
}

void PutMergeProtection(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  auto rules = identity::ParseMergeRules(req.body);
  if (!rules.ok()) return Answer(std::move(respond), rules.status());
  s.store->RunExclusive(
      [s, ws = key.workspace, rules = *rules](store::StateTxn& txn) {
        s.profiles->PutRules(txn, ws, rules);
        return absl::OkStatus();
      },
      [rules = *rules, respond = std::move(respond)](absl::Status status) mutable {
        if (!status.ok()) return Answer(std::move(respond), status);
        std::move(respond).Later([rules] { return Json(200, identity::MergeRulesJson(rules)); });
      });
}

// --- The console's assets: GET /console and /console/{file} from Services::console_dir.

void ConsoleFile(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  std::string file(req.Param("file"));
  if (file.empty()) file = "index.html";
  bool ok = file.size() <= 64 && file[0] != '.';
  for (char c : file) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_');
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"}, {".png", "image/png"}};
  std::string_view type;
  for (const auto& [ext, t] : kTypes) {
    if (std::string_view(file).ends_with(ext)) type = t;
  }
  std::string body;
  if (ok && !type.empty()) {
    std::ifstream in(s.console_dir + "/" + file, std::ios::binary);
    if (in) body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    ok = static_cast<bool>(in) || in.eof();
    ok = ok && !body.empty();
  }
  if (!ok || type.empty()) {
    return Answer(std::move(respond), base::MakeError(absl::StatusCode::kNotFound, "not_found",
                                                      fmt::format("the console has no file '{}'", file)));
  }
  Response r;
  r.content_type = std::string(type);
  r.body = std::move(body);
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  std::move(respond)(std::move(r));
}

void CreateWorkspace(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> name, wire::ReadStringMember(req.body, "name"));
    if (!name) return base::InvalidField("missing_field", "name", "give the workspace a 'name'");
    RAPPORT_ASSIGN_OR_RETURN(trust::CreatedWorkspace created, s.workspaces->Create(*name));
    return Json(201, fmt::format("{{\"workspace\":{},\"id\":{},\"write_key\":{},\"secret_key\":{}}}",
                                 wire::Quote(created.workspace.name), created.workspace.id,
                                 wire::Quote(created.write_key), wire::Quote(created.secret_key)));
  }());
}

// --- The simulated clock (serve --clock=simulated): GET and POST /api/v1/admin/clock.

std::string ClockJson(base::Micros now) {
  return fmt::format("{{\"clock\":\"simulated\",\"now\":{}}}", wire::Quote(base::FormatIso8601(now)));
}

void GetClock(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    return Json(200, ClockJson(s.simulated_clock->Now()));
  }());
}

// Moves the clock forward to {"now": ISO-8601}. Backwards is refused: windows, the due index
// and deduplication all assume that time does not go back.
void SetClock(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> text, wire::ReadStringMember(req.body, "now"));
    if (!text) return base::InvalidField("missing_field", "now", "give the new time as {\"now\": \"<ISO-8601>\"}");
    auto now = base::ParseIso8601(*text);
    if (!now.ok()) {
      return base::InvalidField("invalid_field", "now",
                                fmt::format("'now' must be an ISO-8601 time such as 2026-03-01T09:00:00Z, not '{}'", *text));
    }
    const base::Micros current = s.simulated_clock->AdvanceTo(*now);
    if (current > *now) {
      return base::MakeError(absl::StatusCode::kFailedPrecondition, "clock_backwards",
                             fmt::format("the clock is at {}; it only moves forward, not to {}",
                                         base::FormatIso8601(current), base::FormatIso8601(*now)));
    }
    if (s.job_queued) s.job_queued();  // the sweep: windows and now()-conditions may have turned
    return Json(200, ClockJson(*now));
  }());
}

}  // namespace

http::ErrorShape ErrorShapeFor(std::string_view path) {
  return path.starts_with("/v1/") ? ErrorShape::kSegment : ErrorShape::kNative;
}

std::string Access::Name() const {
  switch (kind) {
    case Kind::kPublic: return "public";
    case Kind::kWriteKey: return "write_key";
    case Kind::kSecretKey: return scope.empty() ? "secret_key" : std::string(scope);
  }
  return "";
}

namespace {

constexpr Access kPublic{Access::Kind::kPublic, ""};
constexpr Access kWriteKey{Access::Kind::kWriteKey, ""};
constexpr Access kAnySecretKey{Access::Kind::kSecretKey, ""};
constexpr Access Scope(std::string_view scope) { return {Access::Kind::kSecretKey, scope}; }

// The caller's secret key, if it may use a route with `access` (401 without a known live key,
// 429 beyond its rate, 403 without the scope); an empty KeyInfo for public and write-key routes
// (the tracking handler checks the write key itself: it may also come in the body).
absl::StatusOr<trust::KeyInfo> Admit(const Services& s, const Request& req, const Access& access) {
  if (access.kind != Access::Kind::kSecretKey) return trust::KeyInfo{};
  auto token = trust::BearerToken(req.authorization);
  if (!token) return Unauthenticated("missing_secret_key", "send a secret key as 'Authorization: Bearer <key>'");
  auto info = s.workspaces->Authenticate(*token);
  if (!info) return Unauthenticated("invalid_secret_key", "the key is not known to this server (or was revoked)");
  RAPPORT_RETURN_IF_ERROR(s.limiter->Take(*info));
  if (info->kind != trust::KeyKind::kSecret) {
    return base::MakeError(absl::StatusCode::kPermissionDenied, "missing_scope",
                           "a write key may only send events (/v1/…); use a secret key");
  }
  if (!access.scope.empty() && !info->HasScope(access.scope)) {
    return base::MakeError(absl::StatusCode::kPermissionDenied, "missing_scope",
                           fmt::format("this key lacks the '{}' scope", access.scope));
  }
  return *std::move(info);
}

void ListRoutes(const Services& s, const Caller&, Request&&, Responder&& respond) {
  std::string body = "{\"routes\":[";
  bool first = true;
  for (const ApiRoute& r : ApiRoutes(s)) {
    if (!first) body += ',';
    first = false;
    body += "{\"method\":" + wire::Quote(http::MethodName(r.method)) + ",\"path\":" + wire::Quote(r.path) +
            ",\"name\":" + wire::Quote(r.name) + ",\"access\":" + wire::Quote(r.access.Name()) +
            (r.personal ? ",\"personal\":true}" : ",\"personal\":false}");
  }
  std::move(respond)(Json(200, body + "]}"));
}

}  // namespace

std::vector<ApiRoute> ApiRoutes(const Services& s) {
  std::vector<ApiRoute> routes;
  using Fn = void (*)(const Services&, const Caller&, Request&&, Responder&&);
  auto add = [&](Method method, std::string path, std::string name, Access access, bool personal, Fn fn) {
    routes.push_back({method, std::move(path), std::move(name), access, personal,
                      [s, fn](const Caller& key, Request&& r, Responder&& respond) {
                        fn(s, key, std::move(r), std::move(respond));
                      }});
  };
  constexpr bool kPersonal = true;
  for (auto type : {wire::EventType::kIdentify, wire::EventType::kTrack, wire::EventType::kPage,
                    wire::EventType::kScreen, wire::EventType::kGroup, wire::EventType::kAlias}) {
    const std::string name(wire::EventTypeName(type));
    routes.push_back({Method::kPost, "/v1/" + name, name, kWriteKey, false,
                      [h = TrackingHandler(s, type)](const Caller&, Request&& r, Responder&& respond) {
                        h(std::move(r), std::move(respond));
                      }});
  }
  for (std::string name : {"batch", "import"}) {
    routes.push_back({Method::kPost, "/v1/" + name, name, kWriteKey, false,
                      [h = TrackingHandler(s, std::nullopt)](const Caller&, Request&& r, Responder&& respond) {
                        h(std::move(r), std::move(respond));
                      }});
  }

  add(Method::kGet, "/api/v1/events", "events", Scope("profiles:read"), kPersonal, ListEvents);
  add(Method::kGet, "/api/v1/profiles/lookup", "profile_lookup", Scope("profiles:read"), kPersonal, LookupProfile);
  add(Method::kGet, "/api/v1/profiles/{id}", "profile", Scope("profiles:read"), kPersonal, GetProfile);
  add(Method::kGet, "/api/v1/profiles/{id}/identities", "profile_identities", Scope("profiles:read"), kPersonal,
      GetIdentities);
  add(Method::kGet, "/api/v1/profiles/{id}/events", "profile_events", Scope("profiles:read"), kPersonal, GetTimeline);
  add(Method::kPost, "/api/v1/profiles/{id}/split", "profile_split", Scope("profiles:write"), false, SplitProfile);
  add(Method::kGet, "/api/v1/profiles/{id}/export", "profile_export", Scope("gdpr"), kPersonal, ExportProfile);
  add(Method::kDelete, "/api/v1/profiles/{id}", "profile_erase", Scope("gdpr"), false, internal::EraseProfile);
  add(Method::kGet, "/api/v1/suppressions", "suppressions", Scope("admin"), false, internal::ListSuppressions);
  add(Method::kDelete, "/api/v1/suppressions/{hash}", "suppression_lift", Scope("admin"), false,
      internal::LiftSuppression);
  add(Method::kGet, "/api/v1/profiles/{id}/consent", "profile_consent", Scope("consent"), kPersonal,
      internal::GetConsent);
  add(Method::kPut, "/api/v1/profiles/{id}/consent", "profile_consent_put", Scope("consent"), kPersonal,
      internal::PutConsent);

  for (const DefinitionRoute* r : {&kComputedRoute, &kSegmentRoute}) {
    const bool computed = r->kind == profile::DefinitionKind::kComputed;
    const std::string base = computed ? "/api/v1/computed-traits" : "/api/v1/segments";
    const std::string label = computed ? "computed_trait" : "segment";
    auto def = [&](Method method, std::string path, std::string name, Access access,
                   std::function<void(const Caller&, Request&&, Responder&&)> fn) {
      routes.push_back({method, std::move(path), std::move(name), access, false, std::move(fn)});
    };
    def(Method::kGet, base, label + "s", Scope("profiles:read"), [s, r](const Caller& k, Request&& q, Responder&& a) {
      ListDefinitions(s, k, *r, std::move(q), std::move(a));
    });
    def(Method::kGet, base + "/{name}", label, Scope("profiles:read"), [s, r](const Caller& k, Request&& q, Responder&& a) {
      GetDefinition(s, k, *r, std::move(q), std::move(a));
    });
    def(Method::kPost, base, label + "_create", Scope("definitions:write"),
        [s, r](const Caller& k, Request&& q, Responder&& a) {
          PutDefinition(s, k, *r, profile::PutMode::kCreate, std::move(q), std::move(a));
        });
    def(Method::kPut, base + "/{name}", label + "_replace", Scope("definitions:write"),
        [s, r](const Caller& k, Request&& q, Responder&& a) {
          PutDefinition(s, k, *r, profile::PutMode::kReplace, std::move(q), std::move(a));
        });
    def(Method::kPost, base + "/{name}/backfill", label + "_backfill", Scope("definitions:write"),
        [s, r](const Caller& k, Request&& q, Responder&& a) { BackfillDefinition(s, k, *r, std::move(q), std::move(a)); });
  }
  add(Method::kGet, "/api/v1/segments/{name}/members", "segment_members", Scope("profiles:read"), kPersonal,
      SegmentMembers);
  add(Method::kGet, "/api/v1/jobs/{id}", "job", Scope("profiles:read"), false, GetJob);
  add(Method::kGet, "/api/v1/settings/merge-protection", "merge_protection", Scope("profiles:read"), false,
      GetMergeProtection);
  add(Method::kPut, "/api/v1/settings/merge-protection", "merge_protection_put", Scope("definitions:write"), false,
      PutMergeProtection);
  add(Method::kGet, "/api/v1/settings/purposes", "purposes", Scope("profiles:read"), false, internal::GetPurposes);
  add(Method::kPut, "/api/v1/settings/purposes", "purposes_put", Scope("definitions:write"), false,
      internal::PutPurposes);

  add(Method::kGet, "/api/v1/keys", "keys", Scope("admin"), false, internal::ListKeys);
  add(Method::kPost, "/api/v1/keys", "key_create", Scope("admin"), false, internal::CreateKey);
  add(Method::kGet, "/api/v1/keys/{id}", "key", Scope("admin"), false, internal::GetKey);
  add(Method::kDelete, "/api/v1/keys/{id}", "key_revoke", Scope("admin"), false, internal::RevokeKey);
  add(Method::kGet, "/api/v1/audit", "audit", Scope("admin"), false, internal::ListAudit);
  add(Method::kGet, "/api/v1/whoami", "whoami", kAnySecretKey, false, internal::WhoAmI);
  add(Method::kGet, "/api/v1/routes", "routes", kAnySecretKey, false, ListRoutes);

  add(Method::kPost, "/api/v1/workspaces", "workspaces", Scope(trust::kOperatorScope), false, CreateWorkspace);
  if (s.simulated_clock) {
    add(Method::kGet, "/api/v1/admin/clock", "admin_clock", Scope(trust::kOperatorScope), false, GetClock);
    add(Method::kPost, "/api/v1/admin/clock", "admin_clock_set", Scope(trust::kOperatorScope), false, SetClock);
  }

  add(Method::kGet, "/console", "console", kPublic, false, ConsoleFile);
  add(Method::kGet, "/console/{file}", "console_file", kPublic, false, ConsoleFile);
  add(Method::kGet, "/healthz", "healthz", kPublic, false, [](const Services&, const Caller&, Request&&, Responder&& respond) {
    std::move(respond)(Json(200, "{\"status\":\"ok\"}"));
  });
  add(Method::kGet, "/readyz", "readyz", kPublic, false, [](const Services& s, const Caller&, Request&&, Responder&& respond) {
    absl::Status health = s.store->health();
    if (health.ok() && s.draining->load()) health = absl::UnavailableError("the server is shutting down");
    std::move(respond)(health.ok() ? Json(200, "{\"status\":\"ready\"}") : ErrorResponse(health, ErrorShape::kNative));
  });
  add(Method::kGet, "/metrics", "metrics", kPublic, false, [](const Services& s, const Caller&, Request&&, Responder&& respond) {
    Response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = s.metrics->Render();
    std::move(respond)(std::move(r));
  });
  return routes;
}

std::vector<http::Route> Routes(const Services& s) {
  std::vector<http::Route> routes;
  for (ApiRoute& r : ApiRoutes(s)) {
    routes.push_back({r.method, std::move(r.path), std::move(r.name),
                      [s, access = r.access, handler = std::move(r.handler)](Request&& req, Responder&& respond) {
                        auto key = Admit(s, req, access);
                        if (!key.ok()) return Answer(std::move(respond), key.status());
                        handler(*key, std::move(req), std::move(respond));
                      }});
  }
  return routes;
}

}  // namespace rapport::app

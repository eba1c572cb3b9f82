#include "rapport/app/api.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <fstream>
#include <iterator>
#include <memory>

#include "rapport/base/check.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/crypto.h"
#include "rapport/identity/rules_json.h"
#include "rapport/profile/json.h"
#include "rapport/trust/consent_json.h"
#include "rapport/wire/definition_json.h"
#include "rapport/wire/json_text.h"
#include "rapport/wire/segment.h"

namespace rapport::app {
namespace {

using http::ErrorResponse;
using http::ErrorShape;
using http::Method;
using http::Request;
using http::Responder;
using http::Response;

Response Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

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

// Authenticates a secret key holding `scope`, or answers 401/403.
absl::StatusOr<trust::KeyInfo> RequireScope(const Services& s, const Request& req,
                                            std::string_view scope) {
  auto token = trust::BearerToken(req.authorization);
  if (!token) {
    return Unauthenticated("missing_secret_key",
                           "send a secret key as 'Authorization: Bearer <key>'");
  }
  auto info = s.workspaces->Authenticate(*token);
  if (!info) return Unauthenticated("invalid_secret_key", "the key is not known to this server");
  if (!info->HasScope(scope)) {
    return base::MakeError(absl::StatusCode::kPermissionDenied, "missing_scope",
                           fmt::format("this key lacks the '{}' scope{}", scope,
                                       info->kind == trust::KeyKind::kWrite
                                           ? " (write keys may only send events)"
                                           : ""));
  }
  return *info;
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

void ListEvents(const Services& s, Request&& req, Responder&& respond) {
  auto run = [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
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
    std::string body = "{\"events\":[";
    for (size_t i = 0; i < page.events.size(); ++i) {
      if (i) body += ',';
      body += page.events[i].payload;
    }
    body += "],\"next_cursor\":";
    body += page.next_cursor.empty() ? "null" : wire::Quote(page.next_cursor);
    body += '}';
    return Json(200, std::move(body));
  };
  auto response = run();
  std::move(respond)(response.ok() ? *std::move(response)
                                   : ErrorResponse(response.status(), ErrorShape::kNative));
}

// Answers `respond` with what `run` returns, or its error in rapport's shape.
void Answer(Responder&& respond, absl::StatusOr<Response> response) {
  std::move(respond)(response.ok() ? *std::move(response)
                                   : ErrorResponse(response.status(), ErrorShape::kNative));
}

absl::StatusOr<uint64_t> ProfileId(const Request& req) {
  const std::string_view text = req.Param("id");
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id == 0) {
    return base::InvalidField("invalid_profile_id", "id",
                              fmt::format("'{}' is not a profile id (a positive whole number)", text));
  }
  return id;
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

// The profile named by the path's {id} (scope profiles:read), rendered by `render`.
void AnswerProfile(const Services& s, const Request& req, Responder&& respond,
                   std::string (*render)(const profile::ProfileRecord&, uint64_t requested)) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
    return Json(200, render(p, id));
  }());
}

// The whole profile: what it is, and what is derived from it now.
absl::StatusOr<Response> FullProfile(const Services& s, store::StateReader& reader, uint32_t ws,
                                     const profile::ProfileRecord& p, uint64_t requested) {
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const profile::Definitions> defs,
                           s.profiles->DefinitionsFor(reader, ws));
  RAPPORT_ASSIGN_OR_RETURN(profile::DerivedState derived, profile::Engine::ReadDerived(reader, ws, p.id));
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy, s.profiles->ReadPolicy(reader, ws));
  return Json(200, profile::ProfileJson(p, requested, *defs, derived, *policy, s.profiles->Now()));
}

void GetProfile(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
    return FullProfile(s, *reader, key.workspace, p, id);
  }());
}

void LookupProfile(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
    RAPPORT_ASSIGN_OR_RETURN(wire::RawIdentifier id, QueryIdentifier(req));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, s.profiles->Lookup(*reader, key.workspace, id));
    return FullProfile(s, *reader, key.workspace, p, p.id);
  }());
}

void GetIdentities(const Services& s, Request&& req, Responder&& respond) {
  AnswerProfile(s, req, std::move(respond),
                [](const profile::ProfileRecord& p, uint64_t) { return profile::IdentitiesJson(p); });
}

void GetTimeline(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    RAPPORT_ASSIGN_OR_RETURN(size_t limit, Limit(req, 100, 1000));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
    RAPPORT_ASSIGN_OR_RETURN(
        profile::TimelinePage page,
        profile::Engine::Timeline(*reader, key.workspace, p.id, req.Query("cursor").value_or(""), limit));
    return Json(200, profile::TimelineJson(p.id, page));
  }());
}

void SplitProfile(const Services& s, Request&& req, Responder&& respond) {
  auto prepared = [&]() -> absl::StatusOr<std::pair<uint32_t, wire::RawIdentifier>> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:write"));
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

void ListDefinitions(const Services& s, const DefinitionRoute& route, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
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

void GetDefinition(const Services& s, const DefinitionRoute& route, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
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
void PutDefinition(const Services& s, const DefinitionRoute& route, profile::PutMode mode, Request&& req,
                   Responder&& respond) {
  auto key = RequireScope(s, req, "definitions:write");
  if (!key.ok()) return Answer(std::move(respond), key.status());
  const uint32_t ws = key->workspace;
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

void BackfillDefinition(const Services& s, const DefinitionRoute& route, Request&& req, Responder&& respond) {
  auto key = RequireScope(s, req, "definitions:write");
  if (!key.ok()) return Answer(std::move(respond), key.status());
  auto job = std::make_shared<profile::Job>();
  s.store->RunExclusive(
      [s, ws = key->workspace, kind = route.kind, name = std::string(req.Param("name")), job](store::StateTxn& txn) -> absl::Status {
        RAPPORT_ASSIGN_OR_RETURN(*job, s.profiles->Backfill(txn, ws, kind, name));
        return absl::OkStatus();
      },
      [s, job, respond = std::move(respond)](absl::Status status) mutable {
        if (!status.ok()) return Answer(std::move(respond), status);
        if (!job->finished() && s.job_queued) s.job_queued();
        std::move(respond).Later([job] { return Json(202, profile::JobJson(*job)); });
      });
}

void GetJob(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
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

void SegmentMembers(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
    RAPPORT_ASSIGN_OR_RETURN(size_t limit, Limit(req, 100, 1000));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::MembersPage page,
                             s.profiles->Members(*reader, key.workspace, req.Param("name"),
                                                 req.Query("cursor").value_or(""), limit));
    return Json(200, profile::MembersJson(req.Param("name"), page));
  }());
}

// The workspace's merge protection (docs/api/settings.md).
void GetMergeProtection(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const identity::MergeRules> rules,
                             s.profiles->ReadRules(*reader, key.workspace));
    return Json(200, identity::MergeRulesJson(*rules));
  }());
}

void PutMergeProtection(const Services& s, Request&& req, Responder&& respond) {
  auto key = RequireScope(s, req, "definitions:write");
  if (!key.ok()) return Answer(std::move(respond), key.status());
  auto rules = identity::ParseMergeRules(req.body);
  if (!rules.ok()) return Answer(std::move(respond), rules.status());
  s.store->RunExclusive(
      [s, ws = key->workspace, rules = *rules](store::StateTxn& txn) {
        s.profiles->PutRules(txn, ws, rules);
        return absl::OkStatus();
      },
      [rules = *rules, respond = std::move(respond)](absl::Status status) mutable {
        if (!status.ok()) return Answer(std::move(respond), status);
        std::move(respond).Later([rules] { return Json(200, identity::MergeRulesJson(rules)); });
      });
}

// --- Consent (docs/consent.md).

absl::StatusOr<Response> ConsentOf(const Services& s, uint32_t ws, uint64_t id) {
  auto reader = s.store->NewStateReader();
  RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, ws, id));
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy, s.profiles->ReadPolicy(*reader, ws));
  return Json(200, profile::ConsentJson(p, *policy, s.profiles->Now()));
}

void GetConsent(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "consent"));
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    return ConsentOf(s, key.workspace, id);
  }());
}

// Records a change of consent as an event of the person (so it is on their timeline, in their
// export, and replayed like any other), then answers with the consent it leaves.
void PutConsent(const Services& s, Request&& req, Responder&& respond) {
  struct Change {
    uint32_t ws;
    std::string message_id;
    wire::TrackingRequest request;
  };
  auto prepared = [&]() -> absl::StatusOr<Change> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "consent"));
    RAPPORT_ASSIGN_OR_RETURN(uint64_t id, ProfileId(req));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, id));
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy,
                             s.profiles->ReadPolicy(*reader, key.workspace));
    RAPPORT_ASSIGN_OR_RETURN(trust::ConsentUpdate update, trust::ParseConsentUpdate(req.body, *policy));
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
    Change change{key.workspace, base::RandomToken("consent-", 12), {}};
    change.request.messages.push_back(wire::ParseMessage(trust::ConsentChangeMessage(
        update, trust::kSourceApi, named->type == "user_id" ? "userId" : "anonymousId", named->value,
        change.message_id)));
    return change;
  }();
  if (!prepared.ok()) return Answer(std::move(respond), prepared.status());
  const uint32_t ws = prepared->ws;
  auto id = ProfileId(req);
  s.ingestor->Ingest(ws, std::move(prepared->request), collect::Mode::kOwn,
                     [s, ws, id = *id, message_id = prepared->message_id, respond = std::move(respond)](
                         absl::StatusOr<std::vector<collect::MessageResult>> results) mutable {
                       if (!results.ok()) return Answer(std::move(respond), results.status());
                       const collect::MessageResult& r = results->at(0);
                       if (r.outcome == collect::Outcome::kRejected || r.outcome == collect::Outcome::kRefused) {
                         return Answer(std::move(respond), r.error);
                       }
                       std::move(respond).Later([s, ws, id, message_id]() -> Response {
                         auto response = [&]() -> absl::StatusOr<Response> {
                           // The change went in under an identifier the profile held when it was
                           // read; make sure it reached this profile (a split or new merge
                           // protection in between could have sent it elsewhere).
                           auto reader = s.store->NewStateReader();
                           RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, ws, id));
                           bool landed = false;
                           for (const auto& [purpose, choice] : p.consents.choices()) landed |= choice.message_id == message_id;
                           if (!landed) {
                             return base::MakeError(absl::StatusCode::kAborted, "consent_not_recorded",
                                                    "the profile changed while the choice was recorded (a split or "
                                                    "a merge); read it again and repeat the change");
                           }
                           return ConsentOf(s, ws, id);
                         }();
                         return response.ok() ? *std::move(response)
                                              : ErrorResponse(response.status(), ErrorShape::kNative);
                       });
                     });
}

void GetPurposes(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_ASSIGN_OR_RETURN(trust::KeyInfo key, RequireScope(s, req, "profiles:read"));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy,
                             s.profiles->ReadPolicy(*reader, key.workspace));
    return Json(200, trust::PurposePolicyJson(*policy));
  }());
}

void PutPurposes(const Services& s, Request&& req, Responder&& respond) {
  auto key = RequireScope(s, req, "definitions:write");
  if (!key.ok()) return Answer(std::move(respond), key.status());
  auto policy = trust::ParsePurposePolicy(req.body);
  if (!policy.ok()) return Answer(std::move(respond), policy.status());
  s.store->RunExclusive(
      [s, ws = key->workspace, policy = *policy](store::StateTxn& txn) {
        s.profiles->PutPolicy(txn, ws, policy);
        return absl::OkStatus();
      },
      [policy = *policy, respond = std::move(respond)](absl::Status status) mutable {
        if (!status.ok()) return Answer(std::move(respond), status);
        std::move(respond).Later([policy] { return Json(200, trust::PurposePolicyJson(policy)); });
      });
}

void WhoAmI(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    auto token = trust::BearerToken(req.authorization);
    if (!token) return Unauthenticated("missing_secret_key", "send a secret key as 'Authorization: Bearer <key>'");
    auto info = s.workspaces->Authenticate(*token);
    if (!info || info->kind != trust::KeyKind::kSecret) {
      return Unauthenticated("invalid_secret_key", "the key is not a secret key known to this server");
    }
    auto ws = s.workspaces->Find(info->workspace);
    std::string body = "{\"workspace\":" + wire::Quote(ws ? ws->name : "") +
                       fmt::format(",\"workspace_id\":{},\"kind\":\"secret\",\"scopes\":[", info->workspace);
    for (size_t i = 0; i < info->scopes.size(); ++i) body += (i ? "," : "") + wire::Quote(info->scopes[i]);
    return Json(200, body + "]}");
  }());
}

// --- The console's assets: GET /console and /console/{file} from Services::console_dir.

void ConsoleFile(const Services& s, Request&& req, Responder&& respond) {
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

void CreateWorkspace(const Services& s, Request&& req, Responder&& respond) {
  auto run = [&]() -> absl::StatusOr<Response> {
    RAPPORT_RETURN_IF_ERROR(RequireScope(s, req, "admin").status());
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> name, wire::ReadStringMember(req.body, "name"));
    if (!name) return base::InvalidField("missing_field", "name", "give the workspace a 'name'");
    RAPPORT_ASSIGN_OR_RETURN(trust::CreatedWorkspace created, s.workspaces->Create(*name));
    return Json(201, fmt::format("{{\"workspace\":{},\"id\":{},\"write_key\":{},\"secret_key\":{}}}",
                                 wire::Quote(created.workspace.name), created.workspace.id,
                                 wire::Quote(created.write_key), wire::Quote(created.secret_key)));
  };
  auto response = run();
  std::move(respond)(response.ok() ? *std::move(response)
                                   : ErrorResponse(response.status(), ErrorShape::kNative));
}

// --- The simulated clock (serve --clock=simulated): GET and POST /api/v1/admin/clock.

std::string ClockJson(base::Micros now) {
  return fmt::format("{{\"clock\":\"simulated\",\"now\":{}}}", wire::Quote(base::FormatIso8601(now)));
}

void GetClock(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_RETURN_IF_ERROR(RequireScope(s, req, "admin").status());
    return Json(200, ClockJson(s.simulated_clock->Now()));
  }());
}

// Moves the clock forward to {"now": ISO-8601}. Backwards is refused: windows, the due index
// and deduplication all assume that time does not go back.
void SetClock(const Services& s, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    RAPPORT_RETURN_IF_ERROR(RequireScope(s, req, "admin").status());
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

std::vector<http::Route> Routes(const Services& s) {
  std::vector<http::Route> routes;
  for (auto type : {wire::EventType::kIdentify, wire::EventType::kTrack, wire::EventType::kPage,
                    wire::EventType::kScreen, wire::EventType::kGroup, wire::EventType::kAlias}) {
    const std::string name(wire::EventTypeName(type));
    routes.push_back({Method::kPost, "/v1/" + name, name, TrackingHandler(s, type)});
  }
  routes.push_back({Method::kPost, "/v1/batch", "batch", TrackingHandler(s, std::nullopt)});
  routes.push_back({Method::kPost, "/v1/import", "import", TrackingHandler(s, std::nullopt)});

  routes.push_back({Method::kGet, "/api/v1/events", "events",
                    [s](Request&& r, Responder&& respond) { ListEvents(s, std::move(r), std::move(respond)); }});
  auto route = [&s](Method method, std::string path, std::string name,
                    void (*fn)(const Services&, Request&&, Responder&&)) {
    return http::Route{method, std::move(path), std::move(name),
                       [s, fn](Request&& r, Responder&& respond) { fn(s, std::move(r), std::move(respond)); }};
  };
  routes.push_back(route(Method::kGet, "/api/v1/profiles/lookup", "profile_lookup", LookupProfile));
  routes.push_back(route(Method::kGet, "/api/v1/profiles/{id}", "profile", GetProfile));
  routes.push_back(route(Method::kGet, "/api/v1/profiles/{id}/identities", "profile_identities", GetIdentities));
  routes.push_back(route(Method::kGet, "/api/v1/profiles/{id}/events", "profile_events", GetTimeline));
  routes.push_back(route(Method::kPost, "/api/v1/profiles/{id}/split", "profile_split", SplitProfile));
  routes.push_back(route(Method::kGet, "/api/v1/profiles/{id}/consent", "profile_consent", GetConsent));
  routes.push_back(route(Method::kPut, "/api/v1/profiles/{id}/consent", "profile_consent_put", PutConsent));
  auto def_route = [&s](Method method, std::string path, std::string name, const DefinitionRoute& r,
                        void (*fn)(const Services&, const DefinitionRoute&, Request&&, Responder&&)) {
    return http::Route{method, std::move(path), std::move(name),
                       [s, &r, fn](Request&& req, Responder&& respond) { fn(s, r, std::move(req), std::move(respond)); }};
  };
  for (const DefinitionRoute* r : {&kComputedRoute, &kSegmentRoute}) {
    const bool computed = r->kind == profile::DefinitionKind::kComputed;
    const std::string base = computed ? "/api/v1/computed-traits" : "/api/v1/segments";
    const std::string label = computed ? "computed_trait" : "segment";
    routes.push_back(def_route(Method::kGet, base, label + "s", *r, ListDefinitions));
    routes.push_back(def_route(Method::kGet, base + "/{name}", label, *r, GetDefinition));
    routes.push_back({Method::kPost, base, label + "_create", [s, r](Request&& req, Responder&& respond) {
                        PutDefinition(s, *r, profile::PutMode::kCreate, std::move(req), std::move(respond));
                      }});
    routes.push_back({Method::kPut, base + "/{name}", label + "_replace", [s, r](Request&& req, Responder&& respond) {
                        PutDefinition(s, *r, profile::PutMode::kReplace, std::move(req), std::move(respond));
                      }});
    routes.push_back(def_route(Method::kPost, base + "/{name}/backfill", label + "_backfill", *r, BackfillDefinition));
  }
  routes.push_back(route(Method::kGet, "/api/v1/segments/{name}/members", "segment_members", SegmentMembers));
  routes.push_back(route(Method::kGet, "/api/v1/jobs/{id}", "job", GetJob));
  routes.push_back(route(Method::kGet, "/api/v1/whoami", "whoami", WhoAmI));
  routes.push_back(route(Method::kGet, "/api/v1/settings/merge-protection", "merge_protection", GetMergeProtection));
  routes.push_back(route(Method::kPut, "/api/v1/settings/merge-protection", "merge_protection_put",
                         PutMergeProtection));
  routes.push_back(route(Method::kGet, "/api/v1/settings/purposes", "purposes", GetPurposes));
  routes.push_back(route(Method::kPut, "/api/v1/settings/purposes", "purposes_put", PutPurposes));
  routes.push_back(route(Method::kGet, "/console", "console", ConsoleFile));
  routes.push_back(route(Method::kGet, "/console/{file}", "console_file", ConsoleFile));
  routes.push_back({Method::kPost, "/api/v1/workspaces", "workspaces",
                    [s](Request&& r, Responder&& respond) {
                      CreateWorkspace(s, std::move(r), std::move(respond));
                    }});

  if (s.simulated_clock) {
    routes.push_back(route(Method::kGet, "/api/v1/admin/clock", "admin_clock", GetClock));
    routes.push_back(route(Method::kPost, "/api/v1/admin/clock", "admin_clock_set", SetClock));
  }

  routes.push_back({Method::kGet, "/healthz", "healthz", [](Request&&, Responder&& respond) {
                      std::move(respond)(Json(200, "{\"status\":\"ok\"}"));
                    }});
  routes.push_back({Method::kGet, "/readyz", "readyz", [s](Request&&, Responder&& respond) {
                      absl::Status health = s.store->health();
                      if (health.ok() && s.draining->load()) {
                        health = absl::UnavailableError("the server is shutting down");
                      }
                      std::move(respond)(health.ok() ? Json(200, "{\"status\":\"ready\"}")
                                                     : ErrorResponse(health, ErrorShape::kNative));
                    }});
  routes.push_back({Method::kGet, "/metrics", "metrics", [s](Request&&, Responder&& respond) {
                      Response r;
                      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                      r.body = s.metrics->Render();
                      std::move(respond)(std::move(r));
                    }});
  return routes;
}

}  // namespace rapport::app

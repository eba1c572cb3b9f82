// GDPR's routes besides the export: erasure and the suppression list (docs/gdpr.md).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>

#include "absl/strings/escaping.h"
#include "rapport/app/internal/handlers.h"
#include "rapport/base/crypto.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"
#include "rapport/base/time.h"
#include "rapport/profile/engine.h"
#include "rapport/wire/json_text.h"

namespace rapport::app::internal {
namespace {

using http::Request;
using http::Responder;
using http::Response;

std::string Hex(std::string_view bytes) { return absl::BytesToHexString(base::AsAbsl(bytes)); }

// 64 hex digits as the 32 bytes of a hash; nullopt for anything else.
std::optional<std::string> HashFromHex(std::string_view hex) {
  if (hex.size() != 64 || !std::all_of(hex.begin(), hex.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); })) {
    return std::nullopt;
  }
  return absl::HexStringToBytes(base::AsAbsl(hex));
}

// Profile ids as the API writes them: strings (JavaScript numbers lose precision beyond 2^53).
std::string IdList(const std::vector<uint64_t>& ids) {
  std::string out = "[";
  for (uint64_t id : ids) out += fmt::format("{}\"{}\"", out.size() > 1 ? "," : "", id);
  return out + "]";
}

std::string ReceiptJson(const profile::Erasure& e, const std::string& receipt, base::Micros erased_at,
                        base::Micros completed_at, double ms, bool purged) {
  std::string suppressed;
  for (const profile::Suppression& s : e.suppressed) {
    if (!suppressed.empty()) suppressed += ',';
    suppressed += fmt::format(R"({{"type":{},"hash":"{}"}})", wire::Quote(s.type), Hex(s.hash));
  }
  return fmt::format(
      R"({{"receipt_id":{},"profile_id":"{}","erased_at":{},"completed_at":{},"duration_ms":{:.1f},)"
      R"("scope":{{"profiles":{},"events":{},"identifiers":{},"traits":{},"computed_traits":{},"segments":{},)"
      R"("data_keys_destroyed":{}}},"suppressed":[{}],"purged":{},"unreadable":{}}})",
      wire::Quote(receipt), e.profile_id, wire::Quote(base::FormatIso8601(erased_at)),
      wire::Quote(base::FormatIso8601(completed_at)), ms, IdList(e.profiles), e.events, e.identifiers, e.traits,
      e.computed_traits, e.segments, e.destroyed_keys.size(), suppressed, purged ? "true" : "false",
      wire::Quote(purged ? "the data keys are destroyed and gone from the disk: what they sealed (the person's events, "
                           "traits and identifiers in the write-ahead log, old table files and copies of the data "
                           "directory made without the master key) can no longer be read"
                         : "the data keys are destroyed; their bytes leave the disk at the next flush and compaction"));
}

std::string SuppressionJson(const profile::Suppression& s) {
  return fmt::format(R"({{"hash":"{}","type":{},"suppressed_at":{},"receipt_id":{}}})", Hex(s.hash),
                     wire::Quote(s.type), wire::Quote(base::FormatIso8601(s.at)), wire::Quote(s.receipt));
}

// The path's {hash}: 64 hex digits.
absl::StatusOr<std::string> HashParam(const Request& req) {
  std::optional<std::string> bytes = HashFromHex(req.Param("hash"));
  if (!bytes) {
    return base::InvalidField("invalid_hash", "hash",
                              "a suppression is named by its hash: 64 hex digits, as GET /api/v1/suppressions lists it");
  }
  return *std::move(bytes);
}

}  // namespace

void EraseProfile(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  if (key.restricted()) {
    return Answer(std::move(respond),
                  base::MakeError(absl::StatusCode::kPermissionDenied, "purpose_restricted",
                                  "an erasure removes everything about the person; a key restricted to purposes "
                                  "cannot make one"));
  }
  auto id = [&]() -> absl::StatusOr<uint64_t> {
    RAPPORT_ASSIGN_OR_RETURN(uint64_t requested, ProfileId(req));
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(profile::ProfileRecord p, profile::Engine::Read(*reader, key.workspace, requested));
    if (p.event_count > profile::kMaxErasureEvents) {  // (Erase checks again; this keeps it out of the audit log)
      return base::MakeError(absl::StatusCode::kFailedPrecondition, "erasure_too_large",
                             fmt::format("profile {} has {} events, more than the {} an erasure takes at once",
                                         p.id, p.event_count, profile::kMaxErasureEvents));
    }
    return p.id;  // the live profile (`requested` may have been merged into it)
  }();
  if (!id.ok()) return Answer(std::move(respond), id.status());
  const std::string receipt = base::RandomToken("er_", 12);
  // Recorded before anything is erased: an erasure that cannot be audited does not happen.
  if (absl::Status audited = AuditRead(s, key, "profile_erase", *id, "receipt " + receipt); !audited.ok()) {
    return Answer(std::move(respond), audited);
  }
  const auto start = std::chrono::steady_clock::now();
  const base::Micros erased_at = s.profiles->Now();
  auto result = std::make_shared<profile::Erasure>();
  s.store->RunExclusive(
      [s, ws = key.workspace, id = *id, receipt, result](store::StateTxn& txn) -> absl::Status {
        RAPPORT_ASSIGN_OR_RETURN(*result, s.profiles->Erase(txn, ws, id, receipt));
        return absl::OkStatus();
      },
      [s, ws = key.workspace, respond = std::move(respond), result, receipt, erased_at, start](absl::Status status) mutable {
        if (!status.ok()) return Answer(std::move(respond), status);
        // Off the writer: the purge flushes and compacts.
        std::move(respond).Later([s, ws, result, receipt, erased_at, start]() -> Response {
          const absl::Status purged = s.store->Purge(ws, result->destroyed_keys);
          if (!purged.ok()) {
            // The keys are deleted (nothing reads them any more); their bytes leave the disk at
            // the next flush and compaction instead.
            spdlog::error("erasure {}: purging the destroyed keys failed: {}", receipt, base::AsStd(purged.message()));
          }
          const double ms =
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
          return Json(200, ReceiptJson(*result, receipt, erased_at, s.profiles->Now(), ms, purged.ok()));
        });
      });
}

void ListSuppressions(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  Answer(std::move(respond), [&]() -> absl::StatusOr<Response> {
    auto reader = s.store->NewStateReader();
    RAPPORT_ASSIGN_OR_RETURN(size_t limit, Limit(req, 100, 1000));
    std::vector<profile::Suppression> found;
    std::string next;
    const auto type = req.Query("type");
    const auto value = req.Query("value");
    if (type || value) {
      if (!type || !value) {
        return base::InvalidField("missing_parameter", type ? "value" : "type",
                                  "to find an identifier's suppression, give both type and value");
      }
      RAPPORT_ASSIGN_OR_RETURN(std::optional<profile::Suppression> one,
                               s.profiles->FindSuppression(*reader, key.workspace,
                                                           {std::string(*type), std::string(*value), "api"}));
      if (one) found.push_back(*std::move(one));
    } else {
      std::string after;
      if (auto cursor = req.Query("cursor")) {
        std::optional<std::string> hash = HashFromHex(*cursor);
        if (!hash) return base::InvalidField("invalid_cursor", "cursor", "the cursor is a next_cursor from an earlier page");
        after = *std::move(hash);
      }
      RAPPORT_ASSIGN_OR_RETURN(found, profile::Engine::Suppressions(*reader, key.workspace, after, limit + 1));
      if (found.size() > limit) {
        found.pop_back();
        next = Hex(found.back().hash);
      }
    }
    std::string body = "{\"suppressions\":[";
    for (size_t i = 0; i < found.size(); ++i) {
      if (i) body += ',';
      body += SuppressionJson(found[i]);
    }
    body += "],\"next_cursor\":" + (next.empty() ? std::string("null") : wire::Quote(next)) + "}";
    return Json(200, std::move(body));
  }());
}

void LiftSuppression(const Services& s, const Caller& key, Request&& req, Responder&& respond) {
  auto hash = HashParam(req);
  if (!hash.ok()) return Answer(std::move(respond), hash.status());
  // Letting an erased person's identifier in again is recorded like the erasure was.
  if (absl::Status audited = AuditRead(s, key, "suppression_lift", 0, "hash " + std::string(req.Param("hash")));
      !audited.ok()) {
    return Answer(std::move(respond), audited);
  }
  s.store->RunExclusive(
      [s, ws = key.workspace, hash = *hash](store::StateTxn& txn) { return s.profiles->LiftSuppression(txn, ws, hash); },
      [respond = std::move(respond), hex = std::string(req.Param("hash"))](absl::Status status) mutable {
        if (!status.ok()) return Answer(std::move(respond), status);
        std::move(respond)(Json(200, fmt::format(R"({{"hash":"{}","lifted":true}})", hex)));
      });
}

}  // namespace rapport::app::internal

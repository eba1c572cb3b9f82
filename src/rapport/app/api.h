// The HTTP surface of `rapport serve`: every route, wired to the services that answer it.
#ifndef RAPPORT_APP_API_H_
#define RAPPORT_APP_API_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "rapport/base/clock.h"
#include "rapport/base/metrics.h"
#include "rapport/collect/ingestor.h"
#include "rapport/http/server.h"
#include "rapport/profile/engine.h"
#include "rapport/store/store.h"
#include "rapport/trust/audit.h"
#include "rapport/trust/limits.h"
#include "rapport/trust/workspaces.h"

namespace rapport::app {

struct Services {
  store::Store* store;
  trust::Workspaces* workspaces;
  trust::RateLimiter* limiter;  // per-key request rates
  trust::AuditLog* audit;       // reads of personal data
  collect::Ingestor* ingestor;
  profile::Engine* profiles;
  base::Registry* metrics;
  const std::atomic<bool>* draining;  // true once shutdown began: /readyz answers 503
  std::function<void()> job_queued;   // wakes the background job runner; may be empty
  std::string console_dir;            // the console's assets (console/ of the source tree)
  // Non-null with `serve --clock=simulated`: /api/v1/admin/clock moves it. With the real clock
  // that route does not exist.
  base::SimulatedClock* simulated_clock = nullptr;
};

// Who may call a route (docs/api/keys.md#scopes). Every route declares one.
struct Access {
  enum class Kind { kPublic, kWriteKey, kSecretKey };
  Kind kind;
  std::string_view scope;  // kSecretKey: the scope the key must hold ("" = any secret key)

  // "public", "write_key", "secret_key" (any) or the scope.
  std::string Name() const;
};

struct ApiRoute {
  http::Method method;
  std::string path;
  std::string name;
  Access access;
  bool personal;  // answers personal data: every answer is recorded in the audit log
  // Called once the caller passed `access`, with its key (empty for public and write-key routes).
  std::function<void(const trust::KeyInfo& key, http::Request&&, http::Responder&&)> handler;
};

// The route table (GET /api/v1/routes lists it).
std::vector<ApiRoute> ApiRoutes(const Services& services);

// The table as the server's routes, each behind its access check (401 without a known live key,
// 429 beyond the key's rate, 403 without the scope). The services must outlive the server.
std::vector<http::Route> Routes(const Services& services);

// The Segment-compatible surface (/v1/…) answers every error in Segment's shape, also those
// the server gives before a route is found; the rest of the API in rapport's own.
http::ErrorShape ErrorShapeFor(std::string_view path);

}  // namespace rapport::app

#endif  // RAPPORT_APP_API_H_

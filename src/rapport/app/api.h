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
#include "rapport/trust/workspaces.h"

namespace rapport::app {

struct Services {
  store::Store* store;
  trust::Workspaces* workspaces;
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

// The route table. The services must outlive the server that serves these routes.
std::vector<http::Route> Routes(const Services& services);

// The Segment-compatible surface (/v1/…) answers every error in Segment's shape, also those
// the server gives before a route is found; the rest of the API in rapport's own.
http::ErrorShape ErrorShapeFor(std::string_view path);

}  // namespace rapport::app

#endif  // RAPPORT_APP_API_H_

// Load mode: the world's event stream, prepared in full beforehand, sent to the engine over
// several keep-alive connections at a target rate, with the latency of every request. For
// benchmarks that need the realistic mix (anonymous browsing, logins that merge devices,
// purchases, messages, telemetry) rather than one payload repeated.
//
// Open loop (a rate): request k has a scheduled start (the events before it over the rate) and
// its latency counts from then, so a slow answer is not hidden by sending the next request later
// (no coordinated omission). Closed loop (rate 0): each connection sends as soon as it is
// answered, which measures the peak.
#ifndef RAPPORT_TOOLS_SIMULATE_LOAD_H_
#define RAPPORT_TOOLS_SIMULATE_LOAD_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/simulate/engine_client.h"
#include "tools/simulate/world.h"

namespace rapport::simulate {

// `{"batch":[…]}` of the events' JSON, for POST /v1/batch.
std::string BatchBody(std::span<const Event> events);

struct Batch {
  std::string body;  // BatchBody(…)
  uint32_t events = 0;
};

struct LoadOptions {
  std::string target;         // http://HOST:PORT
  std::string authorization;  // the write key's Basic header
  double rate = 0;            // events/s over all connections; 0: closed loop
  double seconds = 0;         // no request starts after this long; 0: send every batch
  int connections = 16;       // keep-alive connections, one thread each (≥ 1)
  // 429/503 answers are retried up to this many times per request (after Retry-After, else
  // 50 ms); then the load stops with the engine's answer.
  int retries = 600;
  // Opens a connection; unset: EngineClient::Create(target). Tests give their own.
  std::function<absl::StatusOr<std::unique_ptr<EngineClient>>()> connect;
};

struct LoadResult {
  uint64_t events = 0;    // stored (answered 200, or 400 for the events not rejected)
  uint64_t rejected = 0;  // answered but refused (a 400 names them)
  uint64_t requests = 0;
  uint64_t retries = 0;   // 429/503 answers retried
  double seconds = 0;     // from the start to the last answer
  double p50_ms = 0, p99_ms = 0, p999_ms = 0;
  // The events' rate over `seconds`.
  double events_per_second() const { return seconds > 0 ? static_cast<double>(events) / seconds : 0; }
};

// Sends `batches` in order of their index (connections take the next one in turn) and prints
// progress to stderr every five seconds. Fails when a connection cannot reach the engine or
// gets an answer other than 200/400 (or 429/503 beyond the retries); the message says how far
// it got, and what was sent stays sent. Call from one thread at a time.
absl::StatusOr<LoadResult> SendLoad(const LoadOptions& options, const std::vector<Batch>& batches);

// The `q`-quantile (0-1) of `sorted` (ascending), by the nearest rank; 0 when empty.
double Quantile(const std::vector<double>& sorted, double q);

}  // namespace rapport::simulate

#endif  // RAPPORT_TOOLS_SIMULATE_LOAD_H_

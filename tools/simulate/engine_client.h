// A blocking HTTP/1.1 client for one rapport engine, on one keep-alive connection (reopened
// when the engine closes it). The simulator's only way to reach the engine.
//
// Thread safety: one thread at a time.
#ifndef RAPPORT_TOOLS_SIMULATE_ENGINE_CLIENT_H_
#define RAPPORT_TOOLS_SIMULATE_ENGINE_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace rapport::simulate {

struct Reply {
  int status = 0;
  std::string body;
  std::optional<int> retry_after_seconds;  // from a Retry-After header
};

class EngineClient {
 public:
  // `url`: http://HOST:PORT (no path). InvalidArgument for anything else.
  static absl::StatusOr<std::unique_ptr<EngineClient>> Create(const std::string& url);
  virtual ~EngineClient() = default;

  // Sends one request; `authorization` is the whole header value (empty: none). Unavailable
  // when the engine cannot be reached, after one reconnect.
  virtual absl::StatusOr<Reply> Send(const std::string& method, const std::string& target,
                                     const std::string& body, const std::string& authorization) = 0;
};

// "HTTP 503: {…}": a reply for an error message (the body cut at 300 bytes).
std::string Describe(const Reply& reply);

// How long to keep asking while the engine answers 429 or 503.
struct Patience {
  int retries = 60;                               // answers 429/503 retried; then the last is returned
  std::chrono::milliseconds wait{250};            // between tries when the answer has no Retry-After
  std::function<bool()> give_up = [] { return false; };  // checked before each retry
};

// Sends until answered with something other than 429/503, waiting the Retry-After the engine
// gave (else `patience.wait`) between tries; returns that answer, or the last 429/503 once the
// retries are spent or `give_up` says so. Adds the retries made to `*retried` (may be null).
absl::StatusOr<Reply> SendPatiently(EngineClient& engine, const std::string& method, const std::string& target,
                                    const std::string& body, const std::string& authorization,
                                    const Patience& patience = {}, uint64_t* retried = nullptr);

// How many messages a /v1/batch answered with 400 refused (its per-message "results");
// InvalidArgument when the answer has none (the whole batch was refused).
absl::StatusOr<uint64_t> RejectedInBatch(const Reply& reply);

// "Basic base64(key:)" for a write key; "Bearer key" for a secret key.
std::string BasicAuth(const std::string& write_key);
std::string BearerAuth(const std::string& secret_key);

}  // namespace rapport::simulate

#endif  // RAPPORT_TOOLS_SIMULATE_ENGINE_CLIENT_H_

// A blocking HTTP/1.1 client for one rapport engine, on one keep-alive connection (reopened
// when the engine closes it). The simulator's only way to reach the engine.
//
// Thread safety: one thread at a time.
#ifndef RAPPORT_TOOLS_SIMULATE_ENGINE_CLIENT_H_
#define RAPPORT_TOOLS_SIMULATE_ENGINE_CLIENT_H_

#include <cstdint>
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

// How many messages a /v1/batch answered with 400 refused (its per-message "results");
// InvalidArgument when the answer has none (the whole batch was refused).
absl::StatusOr<uint64_t> RejectedInBatch(const Reply& reply);

// "Basic base64(key:)" for a write key; "Bearer key" for a secret key.
std::string BasicAuth(const std::string& write_key);
std::string BearerAuth(const std::string& secret_key);

}  // namespace rapport::simulate

#endif  // RAPPORT_TOOLS_SIMULATE_ENGINE_CLIENT_H_

// rapport's HTTP/1.1 server (Boost.Beast on Asio, kept out of this header). It reads requests
// within explicit limits and timeouts, decodes gzip bodies, routes by exact path, measures every
// route, and hands each request to an asynchronous handler that answers exactly once, from any
// thread. Every limit is answered with a JSON error; nothing is silently dropped.
//
// Thread safety: Start, address and Shutdown may be called from any thread; handlers run on the
// server's worker threads and must not block for long (hand slow work elsewhere and answer from
// there through the Responder).
#ifndef RAPPORT_HTTP_SERVER_H_
#define RAPPORT_HTTP_SERVER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "rapport/base/metrics.h"

namespace rapport::http {

enum class Method { kGet, kHead, kPost, kPut, kPatch, kDelete, kOther };
std::string_view MethodName(Method method);

struct Request {
  Method method = Method::kGet;
  std::string path;                                        // without the query string
  std::vector<std::pair<std::string, std::string>> query;  // percent-decoded, in order
  std::string authorization;                               // the header's value, or ""
  std::string content_type;
  std::string body;  // after Content-Encoding: gzip was undone
  // The `{name}` segments of the route's path, percent-decoded.
  std::vector<std::pair<std::string, std::string>> params;

  // The first value of query parameter `key`.
  std::optional<std::string_view> Query(std::string_view key) const;
  // The path segment named `{name}` in the route ("" if the route has none).
  std::string_view Param(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. {"Retry-After", "1"}
};

// Answers one request, exactly once (a Responder dropped unanswered answers 500 and counts a
// bug), from any thread.
class Responder {
 public:
  using Builder = absl::AnyInvocable<Response() &&>;
  using Fn = absl::AnyInvocable<void(Builder) &&>;
  explicit Responder(Fn fn) : fn_(std::move(fn)) {}
  Responder(Responder&&) = default;
  Responder& operator=(Responder&&) = default;
  ~Responder();
  void operator()(Response response) &&;
  // Answers with what `build` returns, calling it on the connection's own thread: for callers
  // on a thread that must stay short (the store's writer) with a response that costs to format.
  void Later(Builder build) &&;

 private:
  Fn fn_;
};

using Handler = std::function<void(Request&&, Responder&&)>;

struct Route {
  Method method;
  // The path, e.g. "/v1/track"; a segment "{name}" matches any one non-empty segment
  // (Request::Param). An exact path wins over a pattern.
  std::string path;
  std::string name;  // the `route` label in metrics
  Handler handler;
};

// How error bodies are shaped (see ErrorResponse below).
enum class ErrorShape { kSegment, kNative };

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 picks a free port; address() tells which
  int threads = 0;       // worker threads; 0 = one per core
  // Largest request body, compressed or not, and after gzip decoding: 500 KiB (Segment's
  // limit). Larger bodies are answered 413 before they are read in full.
  size_t max_body_bytes = 500 * 1024;
  size_t max_header_bytes = 16 * 1024;  // answered 431 beyond
  // The request line and headers must arrive within this time of the connection (or of the
  // previous response on a keep-alive connection): this also closes idle keep-alive connections
  // and stops slowloris clients: a connection that misses it is closed. Default 15 s.
  std::chrono::milliseconds header_timeout{15000};
  // The body must arrive within this time of the headers, else the connection is closed.
  // Default 30 s.
  std::chrono::milliseconds body_timeout{30000};
  // Connections open at once; beyond, new ones get 503 and are closed. Default 4096.
  size_t max_connections = 4096;
  base::Registry* metrics = nullptr;  // optional, not owned; must outlive the server
  // The shape of the errors the server answers itself (limits, bad HTTP, 404, 405) for a
  // request path, so a surface that mimics a peer answers in that peer's shape everywhere.
  // Default: kNative for every path.
  std::function<ErrorShape(std::string_view path)> error_shape;
};

class Server {
 public:
  // Binds, listens and starts the worker threads. Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options,
                                                       std::vector<Route> routes);
  ~Server();  // Shutdown(0) if not done

  // "host:port" actually bound.
  std::string address() const;

  // Stops accepting, closes idle connections, lets requests in progress finish and answer
  // (with Connection: close) for up to `grace`, then stops the workers. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

  struct Impl;

 private:
  explicit Server(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// The canonical mapping of Status codes to HTTP statuses (docs/api/errors.md):
// InvalidArgument 400, Unauthenticated 401, PermissionDenied 403, NotFound 404,
// AlreadyExists/FailedPrecondition/Aborted 409, OutOfRange 413 (size limits), ResourceExhausted
// 429, Unimplemented 501, Unavailable 503, DeadlineExceeded 504, anything else 500.
int HttpStatusFor(const absl::Status& status);

// Error bodies. Segment's surface answers `{"success":false,"code","message",...}`; rapport's
// own API answers `{"error":{"code","message",...}}`. Both name the `field` and `limit` when
// the Status carries them (base/error.h). 429 and 503 carry Retry-After.
Response ErrorResponse(const absl::Status& status, ErrorShape shape);
// The inner object `"code":...,"message":...` (with field and limit), without braces.
std::string ErrorMembers(const absl::Status& status);

}  // namespace rapport::http

#endif  // RAPPORT_HTTP_SERVER_H_

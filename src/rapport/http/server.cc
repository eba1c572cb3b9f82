#include "rapport/http/server.h"

#include <zlib.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <thread>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_split.h"
#include "rapport/base/mutex.h"
#include "rapport/base/check.h"
#include "rapport/base/error.h"
#include "rapport/base/strings.h"
#include "rapport/wire/json_text.h"

namespace rapport::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::chrono::seconds kWriteTimeout{30};

Method ToMethod(bhttp::verb verb) {
  switch (verb) {
    case bhttp::verb::get: return Method::kGet;
    case bhttp::verb::head: return Method::kHead;
    case bhttp::verb::post: return Method::kPost;
    case bhttp::verb::put: return Method::kPut;
    case bhttp::verb::patch: return Method::kPatch;
    case bhttp::verb::delete_: return Method::kDelete;
    default: return Method::kOther;
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// `plus_is_space`: in a query string '+' is a space; in a path segment it is itself.
std::string PercentDecode(std::string_view s, bool plus_is_space = true) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() + 0 && HexValue(s[i + 1]) >= 0 &&
               HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Whether `path` matches the route pattern `segments` (a path split at '/'); fills `params`.
bool MatchPattern(const std::vector<std::string>& segments, std::string_view path,
                  std::vector<std::pair<std::string, std::string>>* params) {
  std::vector<std::pair<std::string, std::string>> found;
  size_t i = 0;
  for (absl::string_view piece : absl::StrSplit(base::AsAbsl(path), '/')) {
    const std::string_view part = base::AsStd(piece);
    if (i == segments.size()) return false;
    const std::string& want = segments[i++];
    if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
      if (part.empty()) return false;
      found.emplace_back(want.substr(1, want.size() - 2), PercentDecode(part, /*plus_is_space=*/false));
    } else if (want != part) {
      return false;
    }
  }
  if (i != segments.size()) return false;
  *params = std::move(found);
  return true;
}

void SplitTarget(std::string_view target, Request* r) {
  const size_t q = target.find('?');
  r->path = std::string(target.substr(0, q));
  if (q == std::string_view::npos) return;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (!pair.empty()) {
      const size_t eq = pair.find('=');
      r->query.emplace_back(PercentDecode(pair.substr(0, eq)),
                            eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
}

// Undoes gzip (or zlib) encoding, refusing output larger than `limit`.
absl::StatusOr<std::string> Gunzip(std::string_view in, size_t limit) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return absl::InternalError("zlib did not start");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return base::InvalidField("invalid_gzip", "",
                                "the body says Content-Encoding: gzip but is not valid gzip");
    }
    out.append(buf, sizeof buf - zs.avail_out);
    if (out.size() > limit) {
      inflateEnd(&zs);
      return base::MakeError(absl::StatusCode::kOutOfRange, "body_too_large",
                             fmt::format("the request body is over {} bytes once decompressed",
                                         limit),
                             "", static_cast<int64_t>(limit));
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      return base::InvalidField("invalid_gzip", "", "the gzip body is truncated");
    }
    // A gzip file may hold several members one after another: read them all.
    if (rc == Z_STREAM_END && zs.avail_in > 0) {
      if (inflateReset(&zs) != Z_OK) break;
      rc = Z_OK;
    }
  }
  inflateEnd(&zs);
  return out;
}

std::string_view DefaultCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument: return "invalid_request";
    case absl::StatusCode::kUnauthenticated: return "unauthenticated";
    case absl::StatusCode::kPermissionDenied: return "forbidden";
    case absl::StatusCode::kNotFound: return "not_found";
    case absl::StatusCode::kAlreadyExists: return "already_exists";
    case absl::StatusCode::kFailedPrecondition: return "conflict";
    case absl::StatusCode::kAborted: return "conflict";
    case absl::StatusCode::kOutOfRange: return "too_large";
    case absl::StatusCode::kResourceExhausted: return "rate_limited";
    case absl::StatusCode::kUnimplemented: return "not_implemented";
    case absl::StatusCode::kUnavailable: return "unavailable";
    case absl::StatusCode::kDeadlineExceeded: return "timeout";
    default: return "internal";
  }
}

}  // namespace

std::string_view MethodName(Method method) {
  static constexpr std::string_view kNames[] = {"GET",   "HEAD",   "POST", "PUT",
                                                "PATCH", "DELETE", "OTHER"};
  return kNames[static_cast<int>(method)];
}

std::string_view Request::Param(std::string_view name) const {
  for (const auto& [k, v] : params) {
    if (k == name) return v;
  }
  return {};
}

std::optional<std::string_view> Request::Query(std::string_view key) const {
  for (const auto& [k, v] : query) {
    if (k == key) return v;
  }
  return std::nullopt;
}

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kOutOfRange: return 413;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

std::string ErrorMembers(const absl::Status& status) {
  const base::ErrorDetails d = base::GetErrorDetails(status);
  std::string out = "\"code\":";
  wire::AppendQuoted(&out, d.code.empty() ? DefaultCode(status.code()) : d.code);
  out += ",\"message\":";
  wire::AppendQuoted(&out, base::AsStd(status.message()));
  if (!d.field.empty()) {
    out += ",\"field\":";
    wire::AppendQuoted(&out, d.field);
  }
  if (d.limit) out += fmt::format(",\"limit\":{}", *d.limit);
  if (d.position) out += fmt::format(",\"position\":{}", *d.position);
  if (d.retry_after) out += fmt::format(",\"retry_after\":{}", *d.retry_after);
  if (!d.expected.empty()) {
    out += ",\"expected\":";
    wire::AppendQuoted(&out, d.expected);
  }
  return out;
}

Response ErrorResponse(const absl::Status& status, ErrorShape shape) {
  Response r;
  r.status = HttpStatusFor(status);
  r.body = shape == ErrorShape::kSegment ? "{\"success\":false," + ErrorMembers(status) + "}"
                                         : "{\"error\":{" + ErrorMembers(status) + "}}";
  if (r.status == 429 || r.status == 503) {
    const std::optional<int64_t> after = base::GetErrorDetails(status).retry_after;
    r.headers.emplace_back("Retry-After", std::to_string(after ? *after : 1));
  }
  return r;
}

Responder::~Responder() {
  if (fn_) {
    RAPPORT_BUG("a request handler dropped its Responder without answering");
    std::move(*this)(ErrorResponse(absl::InternalError("the server failed to answer this request"),
                                   ErrorShape::kNative));
  }
}

void Responder::operator()(Response response) && {
  std::move(*this).Later([response = std::move(response)]() mutable { return std::move(response); });
}

void Responder::Later(Builder build) && {
  RAPPORT_CHECK(fn_);
  auto fn = std::move(fn_);
  fn_ = nullptr;
  std::move(fn)(std::move(build));
}

class Session;

struct Server::Impl {
  // Declared before `ioc` so they outlive the sessions its handlers own.
  ServerOptions options;
  std::vector<Route> routes;
  absl::flat_hash_map<std::string, std::vector<size_t>> by_path;
  // Paths with {name} segments, split at '/', in route order.
  std::vector<std::pair<std::string, std::vector<std::string>>> patterns;
  std::string bound_address;
  std::atomic<bool> draining{false};
  std::atomic<size_t> connections{0};
  base::Mutex mu;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions ABSL_GUARDED_BY(mu);
  uint64_t next_session_id ABSL_GUARDED_BY(mu) = 0;
  bool stopped ABSL_GUARDED_BY(mu) = false;

  std::vector<base::Histogram*> route_latency;  // by route index; last = unmatched
  base::Gauge* connections_gauge = nullptr;
  base::Counter* rejected_connections = nullptr;

  asio::io_context ioc;
  // Keeps the workers running while a handler answers from elsewhere and nothing else is pending.
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  // Its own strand: the accept handler and Shutdown's close never run at once.
  tcp::acceptor acceptor{asio::make_strand(ioc)};
  std::vector<std::thread> threads;

  void Accept();
  void CountRequest(size_t route, int status, double seconds) {
    if (!options.metrics) return;
    route_latency[route]->Observe(seconds);
    const std::string& name = route < routes.size() ? routes[route].name : kUnmatched;
    options.metrics
        ->GetCounter("rapport_http_requests_total", "HTTP requests answered, by route and status.",
                     {{"route", name}, {"code", std::to_string(status)}})
        .Inc();
  }
  static inline const std::string kUnmatched = "unmatched";
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Server::Impl* server)
      : stream_(std::move(socket)), server_(server) {
    const size_t n = server_->connections.fetch_add(1) + 1;
    if (server_->connections_gauge) server_->connections_gauge->Set(static_cast<double>(n));
  }

  ~Session() {
    const size_t n = server_->connections.fetch_sub(1) - 1;
    if (server_->connections_gauge) server_->connections_gauge->Set(static_cast<double>(n));
    base::MutexLock lock(&server_->mu);
    server_->sessions.erase(id_);
  }

  void Start(uint64_t id, bool over_limit) {
    id_ = id;
    beast::error_code ec;
    stream_.socket().set_option(tcp::no_delay(true), ec);
    asio::dispatch(stream_.get_executor(), [self = shared_from_this(), over_limit] {
      if (over_limit) {
        if (self->server_->rejected_connections) self->server_->rejected_connections->Inc();
        self->Fail(absl::UnavailableError("the server has too many open connections; retry "
                                          "shortly"));
      } else {
        self->ReadHeader();
      }
    });
  }

  // Closes the connection if it is waiting for a request (used by Shutdown).
  void CloseIfIdle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::kWaitingHeader) self->Close();
    });
  }

 private:
  enum class State { kWaitingHeader, kBusy, kClosed };

  void ReadHeader() {
    if (server_->draining.load()) return Close();
    state_ = State::kWaitingHeader;
    shape_ = ErrorShape::kNative;  // decided again from this request's target
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_->options.max_header_bytes));
    parser_->body_limit(server_->options.max_body_bytes);
    stream_.expires_after(server_->options.header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t) {
    if (state_ == State::kClosed) return;
    state_ = State::kBusy;
    start_ = std::chrono::steady_clock::now();
    if (ec == bhttp::error::header_limit) {
      return Fail(base::MakeError(absl::StatusCode::kOutOfRange, "headers_too_large",
                                  fmt::format("the request headers are over {} bytes",
                                              server_->options.max_header_bytes),
                                  "", static_cast<int64_t>(server_->options.max_header_bytes)),
                  431);
    }
    if (!ec || ec == bhttp::error::body_limit) {
      const auto target = parser_->get().target();
      if (server_->options.error_shape) {
        shape_ = server_->options.error_shape(std::string_view(target.data(), target.size()));
      }
    }
    if (ec == bhttp::error::body_limit) return Fail(BodyTooLarge());
    // A timeout has already closed the socket (beast::tcp_stream does so), so a slow client is
    // simply disconnected: there is no one left to answer.
    if (ec) {
      if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::operation_aborted || ec == beast::error::timeout ||
          ec == asio::error::connection_reset || ec == asio::error::bad_descriptor) {
        return Close();
      }
      return Fail(base::InvalidField("bad_http", "",
                                     fmt::format("the request is not valid HTTP/1.1: {}",
                                                 ec.message())));
    }
    if (auto length = parser_->content_length();
        length && *length > server_->options.max_body_bytes) {
      return Fail(BodyTooLarge());
    }
    if (beast::iequals(parser_->get()[bhttp::field::expect], "100-continue")) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(kWriteTimeout);
      return asio::async_write(stream_, asio::buffer(kContinue),
                               [self = shared_from_this()](beast::error_code ec, size_t) {
                                 if (ec) return self->Close();
                                 self->ReadBody();
                               });
    }
    ReadBody();
  }

  absl::Status BodyTooLarge() const {
    const size_t limit = server_->options.max_body_bytes;
    return base::MakeError(absl::StatusCode::kOutOfRange, "body_too_large",
                           fmt::format("the request body is over the limit of {} bytes", limit),
                           "", static_cast<int64_t>(limit));
  }

  void ReadBody() {
    stream_.expires_after(server_->options.body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, size_t) {
    if (ec == bhttp::error::body_limit) return Fail(BodyTooLarge());
    if (ec) {
      if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
          ec == beast::error::timeout) {
        return Close();
      }
      return Fail(base::InvalidField("bad_http", "",
                                     fmt::format("the request body could not be read: {}",
                                                 ec.message())));
    }
    stream_.expires_never();
    Dispatch();
  }

  void Dispatch() {
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    Request r;
    r.method = ToMethod(req.method());
    SplitTarget(std::string_view(req.target().data(), req.target().size()), &r);
    auto header = [&req](bhttp::field f) {
      auto v = req[f];
      return std::string(v.data(), v.size());
    };
    r.authorization = header(bhttp::field::authorization);
    r.content_type = header(bhttp::field::content_type);
    const std::string encoding = header(bhttp::field::content_encoding);
    r.body = std::move(req.body());
    if (!encoding.empty() && !beast::iequals(encoding, "identity")) {
      if (!beast::iequals(encoding, "gzip") && !beast::iequals(encoding, "deflate")) {
        return Fail(base::MakeError(absl::StatusCode::kInvalidArgument, "unsupported_encoding",
                                    fmt::format("Content-Encoding '{}' is not supported; send "
                                                "gzip or an uncompressed body",
                                                encoding)));
      }
      auto decoded = Gunzip(r.body, server_->options.max_body_bytes);
      if (!decoded.ok()) return Fail(decoded.status());
      r.body = std::move(*decoded);
    }

    auto it = server_->by_path.find(r.path);
    if (it == server_->by_path.end()) {
      for (const auto& [pattern, segments] : server_->patterns) {
        if (MatchPattern(segments, r.path, &r.params)) {
          it = server_->by_path.find(pattern);
          break;
        }
      }
    }
    if (it == server_->by_path.end()) {
      return Write(ErrorResponse(base::MakeError(absl::StatusCode::kNotFound, "no_such_route",
                                                 fmt::format("there is no route {}", r.path)),
                                 Shape()));
    }
    const Route* route = nullptr;
    std::string allowed;
    for (size_t index : it->second) {
      const Route& candidate = server_->routes[index];
      if (candidate.method == r.method ||
          (r.method == Method::kHead && candidate.method == Method::kGet)) {
        route = &candidate;
        route_index_ = index;
      }
      if (!allowed.empty()) allowed += ", ";
      allowed += MethodName(candidate.method);
    }
    if (!route) {
      Response response = ErrorResponse(
          base::MakeError(absl::StatusCode::kInvalidArgument, "method_not_allowed",
                          fmt::format("{} does not accept {}; use {}", r.path,
                                      MethodName(r.method), allowed)),
          Shape());
      response.status = 405;
      response.headers.emplace_back("Allow", allowed);
      return Write(std::move(response));
    }
    head_ = r.method == Method::kHead;
    route->handler(std::move(r), Responder([self = shared_from_this()](Responder::Builder build) {
                     asio::post(self->stream_.get_executor(),
                                [self, build = std::move(build)]() mutable {
                                  self->Write(std::move(build)());
                                });
                   }));
  }

  // Answers with an error and closes: for failures after which the connection's byte stream
  // cannot be trusted (unread body, malformed HTTP, limits).
  void Fail(absl::Status status, int http_status = 0) {
    keep_alive_ = false;
    Response response = ErrorResponse(status, Shape());
    if (http_status) response.status = http_status;
    Write(std::move(response));
  }

  void Write(Response r) {
    if (state_ == State::kClosed) return;
    server_->CountRequest(
        route_index_, r.status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(r.status), 11);
    res->set(bhttp::field::server, "rapport");
    res->set(bhttp::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res->set(k, v);
    res->keep_alive(keep_alive_ && !server_->draining.load());
    res->body() = std::move(r.body);
    res->prepare_payload();
    if (head_) res->body().clear();
    stream_.expires_after(kWriteTimeout);
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec || !res->keep_alive()) return self->Close();
      self->route_index_ = self->server_->routes.size();
      self->head_ = false;
      self->ReadHeader();
    });
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  Server::Impl* server_;
  uint64_t id_ = 0;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  State state_ = State::kWaitingHeader;
  ErrorShape Shape() const { return shape_; }

  bool keep_alive_ = true;
  bool head_ = false;
  ErrorShape shape_ = ErrorShape::kNative;  // of errors the server answers itself
  size_t route_index_ = static_cast<size_t>(-1);
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();

  friend struct Server::Impl;
};

void Server::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor.is_open()) return;
    if (!ec) {
      const bool over_limit = connections.load() >= options.max_connections;
      auto session = std::make_shared<Session>(std::move(socket), this);
      uint64_t id;
      {
        base::MutexLock lock(&mu);
        id = next_session_id++;
        sessions.emplace(id, session);
      }
      session->route_index_ = routes.size();
      session->Start(id, over_limit);
    }
    Accept();
  });
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options,
                                                      std::vector<Route> routes) {
  auto impl = std::make_shared<Impl>();
  impl->options = std::move(options);
  impl->routes = std::move(routes);
  for (size_t i = 0; i < impl->routes.size(); ++i) {
    const std::string& path = impl->routes[i].path;
    auto& indices = impl->by_path[path];
    if (indices.empty() && path.find('{') != std::string::npos) {
      impl->patterns.emplace_back(path, absl::StrSplit(base::AsAbsl(path), '/'));
    }
    indices.push_back(i);
  }
  if (base::Registry* m = impl->options.metrics) {
    for (size_t i = 0; i <= impl->routes.size(); ++i) {
      const std::string& name = i < impl->routes.size() ? impl->routes[i].name : Impl::kUnmatched;
      impl->route_latency.push_back(&m->GetHistogram(
          "rapport_http_request_duration_seconds",
          "Time from a request's headers to its answer, by route.", base::LatencyBuckets(),
          {{"route", name}}));
    }
    impl->connections_gauge = &m->GetGauge("rapport_http_connections", "Open HTTP connections.");
    impl->rejected_connections = &m->GetCounter(
        "rapport_http_rejected_connections_total",
        "Connections answered 503 because max_connections were open.");
  }

  beast::error_code ec;
  auto address = asio::ip::make_address(impl->options.host, ec);
  if (ec) {
    return base::InvalidField("invalid_listen", "--listen",
                              fmt::format("'{}' is not an IP address", impl->options.host));
  }
  tcp::endpoint endpoint(address, impl->options.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(fmt::format("cannot listen on {}:{}: {}", impl->options.host,
                                              impl->options.port, ec.message()));
  }
  const tcp::endpoint bound = impl->acceptor.local_endpoint();
  impl->bound_address = fmt::format("{}:{}", bound.address().to_string(), bound.port());

  impl->Accept();
  int threads = impl->options.threads > 0 ? impl->options.threads
                                          : static_cast<int>(std::thread::hardware_concurrency());
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) {
    impl->threads.emplace_back([raw = impl.get()] { raw->ioc.run(); });
  }
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(std::chrono::milliseconds(0)); }

std::string Server::address() const { return impl_->bound_address; }

void Server::Shutdown(std::chrono::milliseconds grace) {
  Impl& s = *impl_;
  {
    base::MutexLock lock(&s.mu);
    if (s.stopped) return;
    s.stopped = true;
  }
  s.draining.store(true);
  asio::post(s.acceptor.get_executor(), [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
  });
  std::vector<std::shared_ptr<Session>> live;
  {
    base::MutexLock lock(&s.mu);
    for (auto& [id, weak] : s.sessions) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
  }
  for (auto& session : live) session->CloseIfIdle();
  live.clear();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (s.connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
}

}  // namespace rapport::http

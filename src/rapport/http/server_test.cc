#include "rapport/http/server.h"

#include <zlib.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <thread>

#include <gtest/gtest.h>

namespace rapport::http {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

std::string Gzip(const std::string& in) {
  z_stream zs{};
  deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, in.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = in.size();
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = out.size();
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A blocking client on one connection.
class Client {
 public:
  explicit Client(const std::string& address) : socket_(ioc_) {
    const size_t colon = address.rfind(':');
    tcp::resolver resolver(ioc_);
    asio::connect(socket_, resolver.resolve(address.substr(0, colon), address.substr(colon + 1)));
  }

  bhttp::response<bhttp::string_body> Send(bhttp::verb verb, const std::string& target,
                                           const std::string& body = "",
                                           const std::vector<std::pair<std::string, std::string>>&
                                               headers = {}) {
    bhttp::request<bhttp::string_body> req(verb, target, 11);
    req.set(bhttp::field::host, "localhost");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    bhttp::write(socket_, req);
    return Read();
  }

  void SendRaw(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

  bhttp::response<bhttp::string_body> Read() {
    bhttp::response<bhttp::string_body> res;
    bhttp::read(socket_, buffer_, res);
    return res;
  }

  // True if the server closed the connection (reads EOF) within the socket's blocking read.
  bool ClosedByServer() {
    beast::error_code ec;
    char c;
    socket_.read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

std::vector<Route> TestRoutes() {
  std::vector<Route> routes;
  routes.push_back({Method::kPost, "/echo", "echo", [](Request&& r, Responder&& respond) {
                      Response res;
                      res.content_type = "text/plain";
                      res.body = r.body;
                      std::move(respond)(std::move(res));
                    }});
  routes.push_back({Method::kGet, "/query", "query", [](Request&& r, Responder&& respond) {
                      Response res;
                      res.body = std::string(r.Query("a").value_or("-")) + "|" +
                                 std::string(r.Query("b").value_or("-")) + "|" + r.authorization;
                      std::move(respond)(std::move(res));
                    }});
  auto params = [](Request&& r, Responder&& respond) {
    Response res;
    res.body = std::string(r.Param("id")) + "|" + std::string(r.Param("what"));
    std::move(respond)(std::move(res));
  };
  routes.push_back({Method::kGet, "/things/{id}", "thing", params});
  routes.push_back({Method::kPost, "/things/{id}/{what}", "thing_action", params});
  routes.push_back({Method::kGet, "/things/special", "special", params});
  // Answers from another thread after a while, as handlers that wait for the store do.
  routes.push_back({Method::kPost, "/slow", "slow", [](Request&&, Responder&& respond) {
                      std::thread([respond = std::move(respond)]() mutable {
                        std::this_thread::sleep_for(std::chrono::milliseconds(300));
                        Response res;
                        res.body = "{\"slow\":true}";
                        std::move(respond)(std::move(res));
                      }).detach();
                    }});
  return routes;
}

std::unique_ptr<Server> StartServer(ServerOptions options = {}, base::Registry* metrics = nullptr) {
  options.port = 0;
  options.threads = 2;
  options.metrics = metrics;
  auto server = Server::Start(options, TestRoutes());
  EXPECT_TRUE(server.ok()) << server.status();
  return std::move(*server);
}

TEST(Server, RoutesKeepsAliveAndDecodesQueries) {
  auto server = StartServer();
  Client client(server->address());
  auto a = client.Send(bhttp::verb::post, "/echo", "hello");
  EXPECT_EQ(a.result_int(), 200);
  EXPECT_EQ(a.body(), "hello");
  auto b = client.Send(bhttp::verb::get, "/query?a=x%20y&b=1+2", "",
                       {{"Authorization", "Bearer k"}});
  EXPECT_EQ(b.result_int(), 200);
  EXPECT_EQ(b.body(), "x y|1 2|Bearer k");
}

TEST(Server, PathParametersMatchOneSegmentAndExactPathsWin) {
  auto server = StartServer();
  Client client(server->address());
  EXPECT_EQ(client.Send(bhttp::verb::get, "/things/42").body(), "42|");
  EXPECT_EQ(client.Send(bhttp::verb::get, "/things/a%2Fb?x=1").body(), "a/b|");
  EXPECT_EQ(client.Send(bhttp::verb::get, "/things/a+b%20c").body(), "a+b c|");
  EXPECT_EQ(client.Send(bhttp::verb::post, "/things/7/split").body(), "7|split");
  EXPECT_EQ(client.Send(bhttp::verb::get, "/things/special").body(), "|");
  EXPECT_EQ(client.Send(bhttp::verb::get, "/things/").result_int(), 404);
  EXPECT_EQ(client.Send(bhttp::verb::get, "/things/1/2/3").result_int(), 404);
  EXPECT_EQ(client.Send(bhttp::verb::get, "/things/7/split").result_int(), 405);
}

TEST(Server, UnknownRouteAndWrongMethodAreJsonErrors) {
  auto server = StartServer();
  Client client(server->address());
  auto missing = client.Send(bhttp::verb::get, "/nope");  // keeps the connection
  EXPECT_EQ(missing.result_int(), 404);
  EXPECT_EQ(missing.body(),
            R"({"error":{"code":"no_such_route","message":"there is no route /nope"}})");
  auto wrong = client.Send(bhttp::verb::get, "/echo");
  EXPECT_EQ(wrong.result_int(), 405);
  EXPECT_EQ(wrong[bhttp::field::allow], "POST");
  EXPECT_NE(wrong.body().find("\"code\":\"method_not_allowed\""), std::string::npos);
}

TEST(Server, BodyOverTheLimitIs413BeforeItIsRead) {
  ServerOptions options;
  options.max_body_bytes = 1000;
  auto server = StartServer(options);
  Client client(server->address());
  auto res = client.Send(bhttp::verb::post, "/echo", std::string(1001, 'x'));
  EXPECT_EQ(res.result_int(), 413);
  EXPECT_NE(res.body().find("\"limit\":1000"), std::string::npos);
  EXPECT_FALSE(res.keep_alive());
  Client again(server->address());
  EXPECT_EQ(again.Send(bhttp::verb::post, "/echo", std::string(1000, 'x')).result_int(), 200);
}

TEST(Server, GzipBodiesAreDecodedWithinTheLimit) {
  ServerOptions options;
  options.max_body_bytes = 10000;
  auto server = StartServer(options);
  Client client(server->address());
  auto ok = client.Send(bhttp::verb::post, "/echo", Gzip("{\"a\":1}"),
                        {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(ok.result_int(), 200);
  EXPECT_EQ(ok.body(), "{\"a\":1}");
  // Two gzip members one after the other are one body.
  Client two(server->address());
  auto both = two.Send(bhttp::verb::post, "/echo", Gzip("{\"a\":") + Gzip("2}"),
                       {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(both.body(), "{\"a\":2}");
  // A small body that inflates past the limit (a "zip bomb") is refused.
  Client bomb(server->address());
  auto big = bomb.Send(bhttp::verb::post, "/echo", Gzip(std::string(50000, 'a')),
                       {{"Content-Encoding", "gzip"}});
  EXPECT_EQ(big.result_int(), 413);
  Client bad(server->address());
  EXPECT_EQ(bad.Send(bhttp::verb::post, "/echo", "not gzip", {{"Content-Encoding", "gzip"}})
                .result_int(),
            400);
}

TEST(Server, SlowHeadersAreCutOff) {
  ServerOptions options;
  options.header_timeout = std::chrono::milliseconds(200);
  auto server = StartServer(options);
  Client client(server->address());
  client.SendRaw("POST /echo HTTP/1.1\r\nHost: x\r\n");  // never finishes the headers
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(Server, TooManyConnectionsAre503) {
  ServerOptions options;
  options.max_connections = 2;
  auto server = StartServer(options);
  Client a(server->address()), b(server->address());
  EXPECT_EQ(a.Send(bhttp::verb::post, "/echo", "1").result_int(), 200);
  EXPECT_EQ(b.Send(bhttp::verb::post, "/echo", "2").result_int(), 200);
  Client c(server->address());
  auto res = c.Read();
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_EQ(res[bhttp::field::retry_after], "1");
}

TEST(Server, ShutdownFinishesRequestsInFlightAndClosesIdleConnections) {
  base::Registry metrics;
  auto server = StartServer({}, &metrics);
  Client idle(server->address());
  EXPECT_EQ(idle.Send(bhttp::verb::post, "/echo", "x").result_int(), 200);
  Client busy(server->address());
  auto answer = std::async(std::launch::async, [&] { return busy.Send(bhttp::verb::post, "/slow"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server->Shutdown(std::chrono::seconds(5));
  auto res = answer.get();
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res.body(), "{\"slow\":true}");
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(idle.ClosedByServer());
  const std::string text = metrics.Render();
  EXPECT_NE(text.find("rapport_http_requests_total{route=\"slow\",code=\"200\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rapport_http_request_duration_seconds_count{route=\"echo\"} 1"),
            std::string::npos);
}

TEST(HttpStatusFor, MapsEveryCodeWeUse) {
  EXPECT_EQ(HttpStatusFor(absl::InvalidArgumentError("")), 400);
  EXPECT_EQ(HttpStatusFor(absl::UnauthenticatedError("")), 401);
  EXPECT_EQ(HttpStatusFor(absl::PermissionDeniedError("")), 403);
  EXPECT_EQ(HttpStatusFor(absl::NotFoundError("")), 404);
  EXPECT_EQ(HttpStatusFor(absl::FailedPreconditionError("")), 409);
  EXPECT_EQ(HttpStatusFor(absl::OutOfRangeError("")), 413);
  EXPECT_EQ(HttpStatusFor(absl::ResourceExhaustedError("")), 429);
  EXPECT_EQ(HttpStatusFor(absl::UnavailableError("")), 503);
  EXPECT_EQ(HttpStatusFor(absl::InternalError("")), 500);
  Response r = ErrorResponse(absl::UnavailableError("down"), ErrorShape::kSegment);
  EXPECT_EQ(r.body, R"({"success":false,"code":"unavailable","message":"down"})");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Retry-After");
}

}  // namespace
}  // namespace rapport::http

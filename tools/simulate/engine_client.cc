#include "tools/simulate/engine_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <thread>

#include <fmt/format.h>

namespace rapport::simulate {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class BeastClient final : public EngineClient {
 public:
  BeastClient(std::string host, std::string port) : host_(std::move(host)), port_(std::move(port)) {}

  absl::StatusOr<Reply> Send(const std::string& method, const std::string& target, const std::string& body,
                             const std::string& authorization) override {
    std::string error;
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        if (!stream_) Open();
        http::request<http::string_body> req{http::string_to_verb(method), target, 11};
        req.set(http::field::host, host_ + ":" + port_);
        req.set(http::field::user_agent, "rapport-sim");
        if (!authorization.empty()) req.set(http::field::authorization, authorization);
        if (!body.empty() || method == "POST" || method == "PUT") {
          req.set(http::field::content_type, "application/json");
          req.body() = body;
          req.prepare_payload();
        }
        http::write(*stream_, req);
        http::response_parser<http::string_body> parser;
        parser.body_limit(64 << 20);
        http::read(*stream_, buffer_, parser);
        auto& res = parser.get();
        Reply reply{static_cast<int>(res.result_int()), std::move(res.body()), std::nullopt};
        if (auto it = res.find(http::field::retry_after); it != res.end()) {
          int seconds = 0;
          const auto v = it->value();
          if (std::from_chars(v.data(), v.data() + v.size(), seconds).ec == std::errc()) {
            reply.retry_after_seconds = seconds;
          }
        }
        if (!res.keep_alive()) stream_.reset();
        return reply;
      } catch (const std::exception& e) {
        error = e.what();
        stream_.reset();
      }
    }
    return absl::UnavailableError(fmt::format("cannot reach the engine at {}:{}: {}", host_, port_, error));
  }

 private:
  void Open() {
    tcp::resolver resolver(io_);
    auto stream = std::make_unique<beast::tcp_stream>(io_);
    stream->connect(resolver.resolve(host_, port_));
    stream->socket().set_option(tcp::no_delay(true));
    stream_ = std::move(stream);
    buffer_.clear();
  }

  std::string host_, port_;
  asio::io_context io_;
  std::unique_ptr<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EngineClient>> EngineClient::Create(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  std::string_view rest(url);
  if (!rest.starts_with(kScheme)) {
    return absl::InvalidArgumentError(fmt::format("--target must look like http://HOST:PORT, not '{}'", url));
  }
  rest.remove_prefix(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  const size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size() ||
      rest.find('/') != std::string_view::npos) {
    return absl::InvalidArgumentError(fmt::format("--target must look like http://HOST:PORT, not '{}'", url));
  }
  return std::make_unique<BeastClient>(std::string(rest.substr(0, colon)), std::string(rest.substr(colon + 1)));
}

std::string BasicAuth(const std::string& write_key) {
  const std::string plain = write_key + ":";
  std::string out(beast::detail::base64::encoded_size(plain.size()), '\0');
  out.resize(beast::detail::base64::encode(out.data(), plain.data(), plain.size()));
  return "Basic " + out;
}

std::string Describe(const Reply& reply) { return fmt::format("HTTP {}: {}", reply.status, reply.body.substr(0, 300)); }

absl::StatusOr<Reply> SendPatiently(EngineClient& engine, const std::string& method, const std::string& target,
                                    const std::string& body, const std::string& authorization,
                                    const Patience& patience, uint64_t* retried) {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<Reply> r = engine.Send(method, target, body, authorization);
    if (!r.ok() || (r->status != 429 && r->status != 503) || attempt >= patience.retries || patience.give_up()) {
      return r;
    }
    if (retried) ++*retried;
    std::this_thread::sleep_for(r->retry_after_seconds ? std::chrono::milliseconds(*r->retry_after_seconds * 1000)
                                                       : patience.wait);
  }
}

absl::StatusOr<uint64_t> RejectedInBatch(const Reply& reply) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(reply.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("results") || !v.at("results").is_array()) {
    return absl::InvalidArgumentError("the engine refused a batch: " + Describe(reply));
  }
  uint64_t n = 0;
  for (const boost::json::value& item : v.at("results").as_array()) {
    if (item.is_object() && item.as_object().contains("status") && item.at("status") == "rejected") ++n;
  }
  return n;
}

std::string BearerAuth(const std::string& secret_key) { return "Bearer " + secret_key; }

}  // namespace rapport::simulate

// Load driver for `POST /v1/batch`: `--connections` keep-alive connections each send batches of
// `--batch` realistic events. With `--rate 0` (closed loop) each connection sends as fast as it
// is answered: the peak throughput. With `--rate R` (open loop, events/s over all connections)
// each request has a scheduled start and its latency counts from then, so a slow answer is not
// hidden by sending the next request later (no coordinated omission).
//
// Prints one line: events/s, requests, non-200 answers, and ack latency p50/p99/p999 in ms.
#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/events.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", port = "8080", key;
  int connections = 16, batch = 100;
  double seconds = 10, rate = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--address") {
      host = v.substr(0, v.rfind(':'));
      port = v.substr(v.rfind(':') + 1);
    } else if (a == "--write-key") key = v;
    else if (a == "--connections") connections = std::atoi(v.c_str());
    else if (a == "--batch") batch = std::atoi(v.c_str());
    else if (a == "--seconds") seconds = std::atof(v.c_str());
    else if (a == "--rate") rate = std::atof(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (key.empty()) {
    std::fprintf(stderr, "usage: rapport-bench-ingest --address HOST:PORT --write-key K "
                         "[--connections N] [--batch N] [--seconds S] [--rate EVENTS_PER_S]\n");
    return 2;
  }
  const std::string auth = "Basic " + [&] {
    std::string plain = key + ":";
    std::string out(beast::detail::base64::encoded_size(plain.size()), '\0');
    out.resize(beast::detail::base64::encode(out.data(), plain.data(), plain.size()));
    return out;
  }();
  const std::string run = "b" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  std::atomic<uint64_t> next_event{0}, events{0}, requests{0}, errors{0};
  std::mutex mu;
  std::vector<double> latencies;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  // Open loop: each connection sends one request every `interval`.
  const auto interval = rate > 0 ? std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(batch * connections / rate))
                                 : Clock::duration::zero();

  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      asio::io_context ioc;
      beast::tcp_stream stream(ioc);
      asio::ip::tcp::resolver resolver(ioc);
      stream.connect(resolver.resolve(host, port));
      beast::flat_buffer buffer;
      std::vector<double> mine;
      auto scheduled = start + (interval * c) / std::max(connections, 1);
      while (true) {
        if (rate > 0) {
          if (scheduled >= end) break;
          std::this_thread::sleep_until(scheduled);
        } else if (Clock::now() >= end) {
          break;
        }
        const uint64_t first = next_event.fetch_add(batch);
        http::request<http::string_body> req(http::verb::post, "/v1/batch", 11);
        req.set(http::field::host, host);
        req.set(http::field::authorization, auth);
        req.set(http::field::content_type, "application/json");
        req.body() = rapport::bench::Batch(run, first, batch);
        req.prepare_payload();
        const auto sent = rate > 0 ? scheduled : Clock::now();
        http::write(stream, req);
        http::response<http::string_body> res;
        http::read(stream, buffer, res);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
        requests++;
        if (res.result_int() == 200) events += batch; else errors++;
        scheduled += interval;
      }
      std::lock_guard lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1, size_t(p * latencies.size()))];
  };
  std::printf("events_per_s=%.0f requests=%llu errors=%llu p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f\n",
              events / elapsed, (unsigned long long)requests.load(), (unsigned long long)errors.load(),
              pct(0.50), pct(0.99), pct(0.999));
  return errors ? 1 : 0;
}

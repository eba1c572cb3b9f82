// Load driver for `POST /v1/batch`: `--connections` keep-alive connections each send batches of
// `--batch` realistic events about `--users` people. With `--rate 0` (closed loop) each
// connection sends as fast as it is answered: the peak throughput. With `--rate R` (open loop,
// events/s over all connections) each request has a scheduled start and its latency counts
// from then, so a slow answer is not hidden by sending the next request later (no coordinated
// omission). `--events N` stops after N events instead of after `--seconds`; `--first N`
// numbers the events from N (to continue where an earlier run stopped).
//
// With `--read-key K` it reads instead: GET /api/v1/profiles/lookup?userId=user-N for random N
// below `--users`, with the secret key K, at `--rate` reads/s (open loop). A 404 (a person not
// ingested yet) counts as an answer; other non-200s as errors.
//
// A batch counts as an error unless it is answered 200 with none of its events refused.
// Prints one line: events/s (reads/s), requests, errors, and latency p50/p99/p999 in ms.
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
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/events.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", port = "8080", key, read_key;
  int connections = 16, batch = 100;
  double seconds = 10, rate = 0;
  uint64_t users = 50000, max_events = 0, first_event = 0;
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
    else if (a == "--users") users = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--events") max_events = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--first") first_event = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--read-key") read_key = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (key.empty() == read_key.empty() || users == 0) {
    std::fprintf(stderr, "usage: rapport-bench-ingest --address HOST:PORT (--write-key K | --read-key K) "
                         "[--connections N] [--batch N] [--seconds S] [--rate PER_S] [--users N] "
                         "[--events N] [--first N]\n");
    return 2;
  }
  const bool reads = !read_key.empty();
  if (reads) batch = 1;
  const std::string auth = reads ? "Bearer " + read_key : "Basic " + [&] {
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
      std::mt19937_64 rng(c + 1);
      auto scheduled = start + (interval * c) / std::max(connections, 1);
      while (true) {
        if (rate > 0) {
          if (scheduled >= end) break;
          std::this_thread::sleep_until(scheduled);
        } else if (Clock::now() >= end) {
          break;
        }
        const uint64_t first = first_event + next_event.fetch_add(batch);
        if (max_events && first >= first_event + max_events) break;
        http::request<http::string_body> req;
        req.version(11);
        if (reads) {
          req.method(http::verb::get);
          req.target("/api/v1/profiles/lookup?userId=user-" + std::to_string(rng() % users));
        } else {
          req.method(http::verb::post);
          req.target("/v1/batch");
          req.set(http::field::content_type, "application/json");
          req.body() = rapport::bench::Batch(run, first, batch, users);
        }
        req.set(http::field::host, host);
        req.set(http::field::authorization, auth);
        req.prepare_payload();
        const auto sent = rate > 0 ? scheduled : Clock::now();
        http::write(stream, req);
        http::response<http::string_body> res;
        http::read(stream, buffer, res);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
        requests++;
        // A batch counts only if every event was stored (none refused for want of consent).
        const bool ok = reads ? res.result_int() == 200 || res.result_int() == 404
                              : res.result_int() == 200 && res.body().find("\"refused\":0") != std::string::npos;
        if (ok) events += batch; else errors++;
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

#include "tools/simulate/load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "tools/simulate/engine_client.h"

namespace rapport::simulate {

using SteadyClock = std::chrono::steady_clock;

double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  const size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return sorted[std::min(i, sorted.size() - 1)];
}

absl::StatusOr<LoadResult> SendLoad(const LoadOptions& options, const std::vector<Batch>& batches) {
  if (options.connections < 1) return absl::InvalidArgumentError("load needs at least one connection");
  if (options.rate < 0 || options.seconds < 0) return absl::InvalidArgumentError("rate and seconds must be ≥ 0");
  // Request k's scheduled start: the events before it, over the rate.
  std::vector<double> due_seconds(batches.size());
  uint64_t before = 0;
  for (size_t k = 0; k < batches.size(); ++k) {
    due_seconds[k] = options.rate > 0 ? static_cast<double>(before) / options.rate : 0;
    before += batches[k].events;
  }
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> answered_events{0};  // events in answered requests, for the progress line
  std::atomic<bool> failed{false};
  std::mutex mu;  // guards what follows
  absl::Status error;
  LoadResult total;
  std::vector<double> latencies;
  latencies.reserve(batches.size());
  const auto start = SteadyClock::now();
  SteadyClock::time_point last_answer = start;
  const auto stop = start + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(options.seconds));
  auto connection = [&] {
    LoadResult mine;
    std::vector<double> my_latencies;
    SteadyClock::time_point my_last_answer = start;
    absl::Status my_error;
    auto client = EngineClient::Create(options.target);
    if (!client.ok()) my_error = client.status();
    while (my_error.ok() && !failed.load(std::memory_order_relaxed)) {
      const size_t k = next.fetch_add(1);
      if (k >= batches.size()) break;
      const auto scheduled = start + std::chrono::duration_cast<SteadyClock::duration>(
                                         std::chrono::duration<double>(due_seconds[k]));
      if (options.seconds > 0 && std::max(scheduled, SteadyClock::now()) >= stop) break;
      std::this_thread::sleep_until(scheduled);
      const auto sent = options.rate > 0 ? scheduled : SteadyClock::now();
      absl::StatusOr<Reply> r;
      for (;;) {
        r = (*client)->Send("POST", "/v1/batch", batches[k].body, options.authorization);
        if (!r.ok() || (r->status != 429 && r->status != 503)) break;
        ++mine.retries;
        std::this_thread::sleep_for(std::chrono::milliseconds(r->retry_after_seconds ? *r->retry_after_seconds * 1000 : 50));
      }
      const auto answered = SteadyClock::now();
      if (!r.ok()) {
        my_error = r.status();
        break;
      }
      ++mine.requests;
      answered_events.fetch_add(batches[k].events, std::memory_order_relaxed);
      my_last_answer = answered;
      my_latencies.push_back(std::chrono::duration<double, std::milli>(answered - sent).count());
      if (r->status == 200) {
        mine.events += batches[k].events;
      } else if (r->status == 400) {
        auto refused = RejectedInBatch(*r);
        if (!refused.ok()) {
          my_error = refused.status();
          break;
        }
        mine.rejected += *refused;
        mine.events += batches[k].events - std::min<uint64_t>(*refused, batches[k].events);
      } else {
        my_error = absl::UnavailableError(fmt::format("the engine did not take a batch: HTTP {}: {}", r->status,
                                                      r->body.substr(0, 300)));
        break;
      }
    }
    std::lock_guard lock(mu);
    if (!my_error.ok()) {
      failed = true;
      if (error.ok()) error = my_error;
    }
    total.events += mine.events;
    total.rejected += mine.rejected;
    total.requests += mine.requests;
    total.retries += mine.retries;
    latencies.insert(latencies.end(), my_latencies.begin(), my_latencies.end());
    last_answer = std::max(last_answer, my_last_answer);
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < options.connections; ++c) threads.emplace_back(connection);
  // Progress on stderr every five seconds until the connections are done.
  std::mutex progress_mu;
  std::condition_variable progress_cv;
  bool done = false;
  std::thread progress([&] {
    std::unique_lock lock(progress_mu);
    while (!progress_cv.wait_for(lock, std::chrono::seconds(5), [&] { return done; })) {
      const double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
      const uint64_t n = answered_events.load(std::memory_order_relaxed);
      std::fprintf(stderr, "load: %llu of %llu events answered after %.0f s (%.0f events/s)\n",
                   static_cast<unsigned long long>(n), static_cast<unsigned long long>(before), elapsed,
                   static_cast<double>(n) / elapsed);
    }
  });
  for (std::thread& t : threads) t.join();
  {
    std::lock_guard lock(progress_mu);
    done = true;
  }
  progress_cv.notify_one();
  progress.join();
  if (!error.ok()) return error;
  total.seconds = std::chrono::duration<double>(last_answer - start).count();
  std::sort(latencies.begin(), latencies.end());
  total.p50_ms = Quantile(latencies, 0.50);
  total.p99_ms = Quantile(latencies, 0.99);
  total.p999_ms = Quantile(latencies, 0.999);
  return total;
}

}  // namespace rapport::simulate

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

namespace rapport::simulate {

using SteadyClock = std::chrono::steady_clock;

std::string BatchBody(std::span<const Event> events) {
  std::string body = "{\"batch\":[";
  for (size_t i = 0; i < events.size(); ++i) {
    if (i > 0) body += ',';
    body += events[i].json;
  }
  body += "]}";
  return body;
}

double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  const size_t i = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return sorted[std::min(i, sorted.size() - 1)];
}

namespace {

// What one connection did; merged after every connection is done.
struct Slot {
  LoadResult result;
  std::vector<double> latencies_ms;
  SteadyClock::time_point last_answer;
  absl::Status error;
};

}  // namespace

absl::StatusOr<LoadResult> SendLoad(const LoadOptions& options, const std::vector<Batch>& batches) {
  if (options.connections < 1) return absl::InvalidArgumentError("load needs at least one connection");
  if (options.rate < 0 || options.seconds < 0) return absl::InvalidArgumentError("rate and seconds must be ≥ 0");
  // Request k's scheduled start: the events before it, over the rate.
  std::vector<double> due_seconds(batches.size());
  uint64_t total_events = 0;
  for (size_t k = 0; k < batches.size(); ++k) {
    due_seconds[k] = options.rate > 0 ? static_cast<double>(total_events) / options.rate : 0;
    total_events += batches[k].events;
  }
  auto connect = options.connect ? options.connect : [&] { return EngineClient::Create(options.target); };
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> answered_events{0};  // for progress and error messages
  std::atomic<bool> failed{false};
  std::vector<Slot> slots(static_cast<size_t>(options.connections));

  const auto start = SteadyClock::now();
  const auto stop = start + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(options.seconds));
  auto connection = [&](Slot& slot) {
    slot.last_answer = start;
    auto client = connect();
    if (!client.ok()) {
      slot.error = client.status();
      failed = true;
      return;
    }
    const Patience patience{.retries = options.retries,
                            .wait = std::chrono::milliseconds(50),
                            .give_up = [&] { return failed.load(std::memory_order_relaxed); }};
    while (!failed.load(std::memory_order_relaxed)) {
      const size_t k = next.fetch_add(1);
      if (k >= batches.size()) break;
      const auto scheduled = start + std::chrono::duration_cast<SteadyClock::duration>(
                                         std::chrono::duration<double>(due_seconds[k]));
      if (options.seconds > 0 && std::max(scheduled, SteadyClock::now()) >= stop) break;
      std::this_thread::sleep_until(scheduled);
      if (failed.load(std::memory_order_relaxed)) break;
      const auto sent = options.rate > 0 ? scheduled : SteadyClock::now();
      absl::StatusOr<Reply> r = SendPatiently(**client, "POST", "/v1/batch", batches[k].body, options.authorization,
                                              patience, &slot.result.retries);
      const auto answered = SteadyClock::now();
      if (!r.ok()) {
        slot.error = r.status();
        break;
      }
      ++slot.result.requests;
      slot.last_answer = answered;
      slot.latencies_ms.push_back(std::chrono::duration<double, std::milli>(answered - sent).count());
      uint64_t refused = 0;
      if (r->status == 400) {
        auto n = RejectedInBatch(*r);
        if (!n.ok()) {
          slot.error = n.status();
          break;
        }
        refused = std::min<uint64_t>(*n, batches[k].events);
      } else if (r->status != 200) {
        slot.error = absl::UnavailableError("the engine did not take a batch: " + Describe(*r));
        break;
      }
      slot.result.rejected += refused;
      slot.result.events += batches[k].events - refused;
      answered_events.fetch_add(batches[k].events, std::memory_order_relaxed);
    }
    if (!slot.error.ok()) failed = true;
  };
  std::vector<std::thread> threads;
  for (Slot& slot : slots) threads.emplace_back(connection, std::ref(slot));
  // Progress on stderr every five seconds until the connections are done.
  std::mutex progress_mu;
  std::condition_variable progress_cv;
  bool done = false;
  std::thread progress([&] {
    std::unique_lock lock(progress_mu);
    while (!progress_cv.wait_for(lock, std::chrono::seconds(5), [&] { return done; })) {
      const double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
      const uint64_t n = answered_events.load(std::memory_order_relaxed);
      std::fprintf(stderr, "rapport-sim: progress: %llu of %llu events answered after %.0f s (%.0f events/s)\n",
                   static_cast<unsigned long long>(n), static_cast<unsigned long long>(total_events), elapsed,
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

  LoadResult total;
  std::vector<double> latencies;
  auto last_answer = start;
  for (Slot& slot : slots) {
    if (!slot.error.ok()) {
      return absl::Status(slot.error.code(),
                          fmt::format("{} (after {} of {} events were answered)", std::string(slot.error.message()),
                                      answered_events.load(), total_events));
    }
    total.events += slot.result.events;
    total.rejected += slot.result.rejected;
    total.requests += slot.result.requests;
    total.retries += slot.result.retries;
    latencies.insert(latencies.end(), slot.latencies_ms.begin(), slot.latencies_ms.end());
    last_answer = std::max(last_answer, slot.last_answer);
  }
  total.seconds = std::chrono::duration<double>(last_answer - start).count();
  std::sort(latencies.begin(), latencies.end());
  total.p50_ms = Quantile(latencies, 0.50);
  total.p99_ms = Quantile(latencies, 0.99);
  total.p999_ms = Quantile(latencies, 0.999);
  return total;
}

}  // namespace rapport::simulate

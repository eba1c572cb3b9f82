// A small metrics registry that renders the Prometheus text exposition format (version 0.0.4).
// prometheus-cpp is not packaged in Debian 12, so this is ours.
//
// Thread safety: every method may be called from any thread. Get* take a mutex, so hot paths
// look a metric up once and keep the reference; metrics live as long as the Registry and never
// move. Counter/Gauge/Histogram updates are lock-free.
#ifndef RAPPORT_BASE_METRICS_H_
#define RAPPORT_BASE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "rapport/base/mutex.h"

namespace rapport::base {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Cumulative histogram with fixed upper bounds (the +Inf bucket is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (non-cumulative) counts, bounds().size() + 1 of them; then count and sum.
  std::vector<uint64_t> BucketCounts() const;
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Latency buckets in seconds, 50 µs to 10 s.
std::vector<double> LatencyBuckets();
// Size buckets: 1, 2, 4, ... 4096.
std::vector<double> CountBuckets();

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the metric `name` with `labels`, creating it on first use. A name keeps the type,
  // help and buckets it was first registered with; asking for it as another type is a bug
  // (CHECK-fails), since it would render an invalid exposition.
  Counter& GetCounter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& GetGauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& GetHistogram(std::string_view name, std::string_view help,
                          const std::vector<double>& bounds, const Labels& labels = {});

  // Adds a function called on each Render() that appends complete exposition text (HELP, TYPE
  // and samples) for metrics computed elsewhere, e.g. RocksDB's statistics.
  void AddCollector(std::function<void(std::string* out)> collector);

  // The whole registry in Prometheus text format, families sorted by name.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> bounds;
    // Rendered label set ("{a=\"b\"}" or "") → metric.
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
  };
  Family& FamilyFor(std::string_view name, std::string_view help, Type type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  std::map<std::string, Family, std::less<>> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(std::string*)>> collectors_ ABSL_GUARDED_BY(mu_);
};

// `{k="v",...}` with values escaped per the exposition format; "" for no labels.
std::string RenderLabels(const Labels& labels);

}  // namespace rapport::base

#endif  // RAPPORT_BASE_METRICS_H_

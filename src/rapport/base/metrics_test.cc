#include "rapport/base/metrics.h"

#include <thread>

#include <gtest/gtest.h>

namespace rapport::base {
namespace {

TEST(Registry, RendersCountersGaugesAndHistograms) {
  Registry r;
  r.GetCounter("requests_total", "Requests.", {{"route", "track"}, {"code", "200"}}).Inc(3);
  r.GetCounter("requests_total", "Requests.", {{"route", "track"}, {"code", "400"}}).Inc();
  r.GetGauge("queue_depth", "Queued.").Set(2.5);
  Histogram& h = r.GetHistogram("latency_seconds", "Latency.", {0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);
  EXPECT_EQ(r.Render(),
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{le=\"0.1\"} 1\n"
            "latency_seconds_bucket{le=\"1\"} 2\n"
            "latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "latency_seconds_sum 5.55\n"
            "latency_seconds_count 3\n"
            "# HELP queue_depth Queued.\n"
            "# TYPE queue_depth gauge\n"
            "queue_depth 2.5\n"
            "# HELP requests_total Requests.\n"
            "# TYPE requests_total counter\n"
            "requests_total{route=\"track\",code=\"200\"} 3\n"
            "requests_total{route=\"track\",code=\"400\"} 1\n");
}

TEST(Registry, SameNameAndLabelsIsTheSameMetric) {
  Registry r;
  Counter& a = r.GetCounter("x", "X.", {{"k", "v"}});
  Counter& b = r.GetCounter("x", "X.", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
}

TEST(RenderLabels, Escapes) {
  EXPECT_EQ(RenderLabels({{"a", "q\"b\\c\nd"}}), "{a=\"q\\\"b\\\\c\\nd\"}");
}

TEST(Histogram, ValueOnABoundGoesInThatBucket) {
  Histogram h({1, 2});
  h.Observe(1);
  h.Observe(2);
  h.Observe(2.0001);
  EXPECT_EQ(h.BucketCounts(), (std::vector<uint64_t>{1, 1, 1}));
}

TEST(Counter, ConcurrentIncrementsAreAllCounted) {
  Registry r;
  Counter& c = r.GetCounter("c", "C.");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) c.Inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Value(), 400000u);
}

}  // namespace
}  // namespace rapport::base

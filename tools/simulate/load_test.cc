#include "tools/simulate/load.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace rapport::simulate {
namespace {

using SteadyClock = std::chrono::steady_clock;

// An engine that answers from a script shared by all connections (then 200 for good), and
// records when each request arrived.
struct FakeEngine {
  std::mutex mu;
  std::deque<Reply> script;
  std::vector<SteadyClock::time_point> arrivals;
  std::vector<std::string> bodies;
  std::atomic<int> connections{0};

  Reply Next(const std::string& body) {
    std::lock_guard lock(mu);
    arrivals.push_back(SteadyClock::now());
    bodies.push_back(body);
    if (script.empty()) return Reply{200, "{}", std::nullopt};
    Reply r = script.front();
    script.pop_front();
    return r;
  }
};

class FakeClient final : public EngineClient {
 public:
  explicit FakeClient(FakeEngine& engine) : engine_(engine) {}
  absl::StatusOr<Reply> Send(const std::string& method, const std::string& target, const std::string& body,
                             const std::string& authorization) override {
    EXPECT_EQ(method, "POST");
    EXPECT_EQ(target, "/v1/batch");
    EXPECT_EQ(authorization, "Basic x");
    return engine_.Next(body);
  }

 private:
  FakeEngine& engine_;
};

LoadOptions Options(FakeEngine& engine, int connections, double rate = 0) {
  return LoadOptions{.target = "http://fake:1",
                     .authorization = "Basic x",
                     .rate = rate,
                     .connections = connections,
                     .retries = 3,
                     .connect = [&engine]() -> absl::StatusOr<std::unique_ptr<EngineClient>> {
                       ++engine.connections;
                       return std::make_unique<FakeClient>(engine);
                     }};
}

std::vector<Batch> Batches(size_t n, uint32_t events_each) {
  std::vector<Batch> out;
  for (size_t i = 0; i < n; ++i) out.push_back({"batch-" + std::to_string(i), events_each});
  return out;
}

TEST(Quantile, IsTheNearestRank) {
  std::vector<double> v;
  for (int i = 1; i <= 1000; ++i) v.push_back(i);
  EXPECT_EQ(Quantile(v, 0.5), 500);
  EXPECT_EQ(Quantile(v, 0.99), 990);
  EXPECT_EQ(Quantile(v, 0.999), 999);
  EXPECT_EQ(Quantile(v, 1), 1000);
  EXPECT_EQ(Quantile(v, 0), 1);
  EXPECT_EQ(Quantile({}, 0.5), 0);
  EXPECT_EQ(Quantile({7}, 0.99), 7);
}

TEST(BatchBody, IsASegmentBatch) {
  std::vector<Event> events(2);
  events[0].json = R"({"type":"track","event":"A"})";
  events[1].json = R"({"type":"page"})";
  const boost::json::value v = boost::json::parse(BatchBody(events));
  ASSERT_EQ(v.at("batch").as_array().size(), 2u);
  EXPECT_EQ(v.at("batch").at(0).at("event"), "A");
  EXPECT_EQ(BatchBody({}), R"({"batch":[]})");
}

TEST(SendLoad, SendsEveryBatchOnceOverEveryConnection) {
  FakeEngine engine;
  auto r = SendLoad(Options(engine, 4), Batches(200, 10));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->events, 2000u);
  EXPECT_EQ(r->requests, 200u);
  EXPECT_EQ(r->rejected, 0u);
  EXPECT_EQ(engine.connections, 4);
  std::set<std::string> bodies(engine.bodies.begin(), engine.bodies.end());
  EXPECT_EQ(bodies.size(), 200u);
  EXPECT_EQ(engine.bodies.size(), 200u);
}

TEST(SendLoad, CountsWhatA400RefusedAndRetriesBackPressure) {
  FakeEngine engine;
  engine.script = {
      Reply{400, R"({"results":[{"status":"rejected"},{"status":"stored"},{"status":"rejected"}]})", std::nullopt},
      Reply{503, R"({"error":{"code":"overloaded"}})", std::nullopt},
      Reply{429, R"({"error":{"code":"rate_limited"}})", std::nullopt}};
  auto r = SendLoad(Options(engine, 1), Batches(3, 5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rejected, 2u);
  EXPECT_EQ(r->events, 13u);  // 15 sent, 2 refused
  EXPECT_EQ(r->retries, 2u);
  EXPECT_EQ(r->requests, 3u);
  EXPECT_EQ(engine.bodies.size(), 5u);  // the retried batch was sent three times
}

TEST(SendLoad, StopsWithTheEnginesAnswerWhenItKeepsRefusing) {
  FakeEngine engine;
  for (int i = 0; i < 10; ++i) engine.script.push_back(Reply{503, R"({"error":{"code":"read_only"}})", std::nullopt});
  auto r = SendLoad(Options(engine, 1), Batches(5, 5));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("HTTP 503"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("read_only"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("after 0 of 25 events"), std::string::npos) << r.status();
  EXPECT_EQ(engine.bodies.size(), 4u);  // the first try and three retries

  FakeEngine broken;
  broken.script = {Reply{500, "{}", std::nullopt}};
  EXPECT_EQ(SendLoad(Options(broken, 2), Batches(5, 5)).status().code(), absl::StatusCode::kUnavailable);
}

// Open loop: batch k is not sent before the events ahead of it would have been at the rate.
TEST(SendLoad, HoldsTheRate) {
  FakeEngine engine;
  const auto start = SteadyClock::now();
  auto r = SendLoad(Options(engine, 3, /*rate=*/2000), Batches(40, 10));  // 400 events: 0.2 s
  ASSERT_TRUE(r.ok()) << r.status();
  std::sort(engine.arrivals.begin(), engine.arrivals.end());
  ASSERT_EQ(engine.arrivals.size(), 40u);
  for (size_t k = 0; k < engine.arrivals.size(); ++k) {
    // The k-th arrival is at least batch k's due time (k × 10 events / 2000 per s), less 1 ms.
    const double at = std::chrono::duration<double>(engine.arrivals[k] - start).count();
    EXPECT_GE(at, k * 0.005 - 0.001) << k;
  }
  EXPECT_GE(r->seconds, 0.19);
  EXPECT_NEAR(r->events_per_second(), 2000, 300);
}

}  // namespace
}  // namespace rapport::simulate

#include "rapport/collect/ingestor.h"

#include <future>

#include <gtest/gtest.h>

#include "rapport/base/error.h"
#include "tests/lib/temp_dir.h"

namespace rapport::collect {
namespace {

using wire::EventType;

constexpr base::Micros kReceived = 1704067200000000;  // 2024-01-01T00:00:00Z

wire::SegmentMessage Track(std::string user = "u1") {
  wire::SegmentMessage m;
  m.type = EventType::kTrack;
  m.user_id = std::move(user);
  m.event = "Order Completed";
  m.message_id = "m-1";
  return m;
}

std::string Code(const absl::Status& s) { return base::GetErrorDetails(s).code; }

class IngestorTest : public ::testing::Test {
 protected:
  IngestorTest() {
    store::StoreOptions options;
    options.path = dir_.path();
    store_ = std::move(*store::Store::Open(options));
    ingestor_ = std::make_unique<Ingestor>(store_.get(), &clock_, &metrics_);
  }
  testing::TempDir dir_;
  std::unique_ptr<store::Store> store_;
  base::SimulatedClock clock_{kReceived};
  base::Registry metrics_;
  std::unique_ptr<Ingestor> ingestor_;

  std::vector<MessageResult> IngestAndWait(const std::string& body, std::optional<EventType> route) {
    auto request = wire::ParseTrackingRequest(body, route);
    EXPECT_TRUE(request.ok()) << request.status();
    std::promise<absl::StatusOr<std::vector<MessageResult>>> promise;
    // Moved, not copied: the store's thread keeps no reference to the results' statuses (whose
    // reference counts live partly in Debian's Abseil, which TSan does not see).
    ingestor_->Ingest(1, std::move(*request), Mode::kLive,
                     [&](absl::StatusOr<std::vector<MessageResult>> r) { promise.set_value(std::move(r)); });
    auto r = promise.get_future().get();
    EXPECT_TRUE(r.ok()) << r.status();
    return *r;
  }
};

TEST_F(IngestorTest, CorrectsClockSkewFromSentAt) {
  auto m = Track();
  // The device clock is 1 hour fast: it says it sent at 01:00:10 for an event at 01:00:00.
  m.original_timestamp = "2024-01-01T01:00:00Z";
  m.sent_at = "2024-01-01T01:00:10Z";
  auto w = ingestor_->Prepare(1, m, kReceived, Mode::kLive);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->timestamp, kReceived - 10 * base::kMicrosPerSecond);
  EXPECT_NE(w->payload.find("\"timestamp\":\"2023-12-31T23:59:50.000Z\""), std::string::npos);
  EXPECT_NE(w->payload.find("\"originalTimestamp\":\"2024-01-01T01:00:00Z\""), std::string::npos);
  EXPECT_NE(w->payload.find("\"receivedAt\":\"2024-01-01T00:00:00.000Z\""), std::string::npos);
}

TEST_F(IngestorTest, ServerLibrariesTimestampIsTheClientTime) {
  auto m = Track();
  m.timestamp = "2023-06-01T00:00:00Z";  // a historical event, no sentAt
  auto w = ingestor_->Prepare(1, m, kReceived, Mode::kLive);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->timestamp, *base::ParseIso8601("2023-06-01T00:00:00Z"));
  auto none = ingestor_->Prepare(1, Track(), kReceived, Mode::kLive);
  EXPECT_EQ(none->timestamp, kReceived);
}

TEST_F(IngestorTest, RejectsWithTheFieldAndTheLimit) {
  auto no_id = Track();
  no_id.user_id.reset();
  EXPECT_EQ(Code(ingestor_->Prepare(1, no_id, kReceived, Mode::kLive).status()), "missing_id");
  auto empty_id = Track("");
  EXPECT_EQ(Code(ingestor_->Prepare(1, empty_id, kReceived, Mode::kLive).status()), "missing_id");
  auto no_event = Track();
  no_event.event.reset();
  auto s = ingestor_->Prepare(1, no_event, kReceived, Mode::kLive).status();
  EXPECT_EQ(Code(s), "missing_field");
  EXPECT_EQ(base::GetErrorDetails(s).field, "event");

  auto long_id = Track();
  long_id.message_id = std::string(100, 'x');
  EXPECT_TRUE(ingestor_->Prepare(1, long_id, kReceived, Mode::kLive).ok());
  // 100 characters of two bytes each are still 100 characters.
  long_id.message_id.reset();
  long_id.message_id.emplace();
  for (int i = 0; i < 100; ++i) *long_id.message_id += "é";
  EXPECT_TRUE(ingestor_->Prepare(1, long_id, kReceived, Mode::kLive).ok());
  *long_id.message_id += "x";
  s = ingestor_->Prepare(1, long_id, kReceived, Mode::kLive).status();
  EXPECT_EQ(Code(s), "message_id_too_long");
  EXPECT_EQ(base::GetErrorDetails(s).limit, 100);

  auto bad_time = Track();
  bad_time.sent_at = "yesterday";
  s = ingestor_->Prepare(1, bad_time, kReceived, Mode::kLive).status();
  EXPECT_EQ(Code(s), "invalid_timestamp");
  EXPECT_EQ(base::GetErrorDetails(s).field, "sentAt");

  auto big = Track();
  big.properties = "{\"blob\":\"" + std::string(33 * 1024, 'a') + "\"}";
  s = ingestor_->Prepare(1, big, kReceived, Mode::kLive).status();
  EXPECT_EQ(Code(s), "event_too_large");
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);

  auto alias = Track();
  alias.type = EventType::kAlias;
  EXPECT_EQ(base::GetErrorDetails(ingestor_->Prepare(1, alias, kReceived, Mode::kLive).status()).field,
            "previousId");
}

TEST_F(IngestorTest, BatchStoresTheValidRejectsTheInvalidAndDedupes) {
  const std::string body = R"({"batch":[
      {"type":"track","userId":"u","event":"A","messageId":"a"},
      {"type":"track","userId":"u","messageId":"b"},
      {"type":"identify","anonymousId":"x","messageId":"c","traits":{"email":"e@x"}},
      {"type":"track","userId":"u","event":"A","messageId":"a"}]})";
  auto results = IngestAndWait(body, std::nullopt);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].outcome, Outcome::kStored);
  EXPECT_EQ(results[1].outcome, Outcome::kRejected);
  EXPECT_EQ(base::GetErrorDetails(results[1].error).field, "batch[1].event");
  EXPECT_EQ(results[2].outcome, Outcome::kStored);
  EXPECT_EQ(results[3].outcome, Outcome::kDuplicate);
  // Replaying the whole batch stores nothing twice.
  auto again = IngestAndWait(body, std::nullopt);
  EXPECT_EQ(again[0].outcome, Outcome::kDuplicate);
  EXPECT_EQ(again[2].outcome, Outcome::kDuplicate);
  int stored = 0;
  ASSERT_TRUE(store_->ScanEvents(0, [&](const store::StoredEvent&) { return ++stored, true; }).ok());
  EXPECT_EQ(stored, 2);
  const std::string text = metrics_.Render();
  EXPECT_NE(text.find("rapport_events_total{outcome=\"stored\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("rapport_events_rejected_total{reason=\"missing_field\"} 2"),
            std::string::npos);
}

TEST_F(IngestorTest, ImportKeepsExportedTimes) {
  auto m = Track();
  m.timestamp = "2020-01-01T00:00:00.000Z";
  m.received_at = "2020-01-01T00:00:01.000Z";
  m.sent_at = "2020-01-01T00:00:05.000Z";
  auto w = ingestor_->Prepare(1, m, kReceived, Mode::kImport);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->timestamp, *base::ParseIso8601("2020-01-01T00:00:00Z"));
  EXPECT_EQ(w->received_at, *base::ParseIso8601("2020-01-01T00:00:01Z"));
  m.received_at.reset();
  EXPECT_EQ(Code(ingestor_->Prepare(1, m, kReceived, Mode::kImport).status()), "missing_field");
}

}  // namespace
}  // namespace rapport::collect

#include "rapport/wire/segment.h"

#include <gtest/gtest.h>

#include "rapport/base/error.h"

namespace rapport::wire {
namespace {

std::string Code(const absl::Status& s) { return base::GetErrorDetails(s).code; }
std::string Field(const absl::Status& s) { return base::GetErrorDetails(s).field; }

TEST(ParseTrackingRequest, ReadsATrackCall) {
  auto r = ParseTrackingRequest(
      R"({"userId":"u1","event":"Order Completed","properties":{"total":12.5},
          "timestamp":"2024-01-01T00:00:00Z","writeKey":"wk","channel":"server","anonymousId":null})",
      EventType::kTrack);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->write_key, "wk");
  ASSERT_EQ(r->messages.size(), 1u);
  const SegmentMessage& m = *r->messages[0];
  EXPECT_EQ(m.type, EventType::kTrack);
  EXPECT_EQ(m.user_id, "u1");
  EXPECT_FALSE(m.anonymous_id.has_value());  // null is absent
  EXPECT_EQ(m.event, "Order Completed");
  EXPECT_EQ(m.properties, R"({"total":1.25E1})");
  EXPECT_EQ(m.timestamp, "2024-01-01T00:00:00Z");
  EXPECT_EQ(m.other_members, R"("channel":"server")");
}

TEST(ParseTrackingRequest, BatchInheritsSentAtAndMergesContext) {
  auto r = ParseTrackingRequest(
      R"({"batch":[
            {"type":"track","event":"a","userId":"u","context":{"ip":"1.2.3.4","locale":"nl-NL"}},
            {"type":"identify","userId":"u","sentAt":"2024-01-01T00:00:01Z"}],
          "sentAt":"2024-01-01T00:00:00Z",
          "context":{"library":{"name":"x"},"locale":"en-US"}})",
      std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0]->sent_at, "2024-01-01T00:00:00Z");
  EXPECT_EQ(r->messages[1]->sent_at, "2024-01-01T00:00:01Z");
  // The message's own context wins over the batch's.
  EXPECT_EQ(r->messages[0]->context,
            R"({"library":{"name":"x"},"locale":"nl-NL","ip":"1.2.3.4"})");
  EXPECT_EQ(r->messages[1]->context, R"({"library":{"name":"x"},"locale":"en-US"})");
}

TEST(ParseTrackingRequest, NothingOfTheBatchEnvelopeIsLost) {
  auto r = ParseTrackingRequest(
      R"({"batch":[{"type":"track","event":"a","userId":"u","integrations":{"X":false}},
                   {"type":"track","event":"b","userId":"u","channel":"own"}],
          "integrations":{"All":true},"channel":"server","writeKey":"wk"})",
      std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages[0]->integrations, R"({"All":true,"X":false})");
  EXPECT_EQ(r->messages[1]->integrations, R"({"All":true})");
  EXPECT_EQ(r->messages[0]->other_members, R"("channel":"server")");
  EXPECT_EQ(r->messages[1]->other_members, R"("channel":"own")");
}

TEST(ParseTrackingRequest, EnvelopeNeverDuplicatesAStoredField) {
  auto r = ParseTrackingRequest(
      R"({"batch":[{"type":"track","event":"a","anonymousId":"x"}],
          "timestamp":"2024-01-01T00:00:00Z","receivedAt":"2024-01-01T00:00:00Z",
          "userId":"sneaky","type":"page","messageId":"m","version":2})",
      std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  const SegmentMessage& m = *r->messages[0];
  EXPECT_EQ(m.other_members, R"("version":2)");
  EXPECT_FALSE(m.user_id.has_value());
  EXPECT_FALSE(m.timestamp.has_value());
  // The stored JSON has each key once.
  const std::string stored = EncodeStoredEvent(m, {"m-1", 0, 0, std::nullopt});
  EXPECT_EQ(stored.find("\"timestamp\""), stored.rfind("\"timestamp\""));
  EXPECT_EQ(stored.find("\"receivedAt\""), stored.rfind("\"receivedAt\""));
}

// Found by tests/fuzz/ingest_fuzz: the JSON parser reads 1e400 as infinity, which serialises as
// "Infinity" — a stored event that could never be read back.
TEST(ParseTrackingRequest, RefusesNumbersBeyondADouble) {
  auto one = ParseTrackingRequest(R"({"userId":"a","event":"E","properties":{"total":42.1e3095}})", EventType::kTrack);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(base::GetErrorDetails(one->messages[0].status()).code, "number_out_of_range");
  auto batch = ParseTrackingRequest(
      R"({"batch":[{"type":"track","userId":"a","event":"E","properties":{"x":[-1e999]}},)"
      R"({"type":"track","userId":"a","event":"E","properties":{"x":1.7e308}}]})",
      std::nullopt);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(base::GetErrorDetails(batch->messages[0].status()).code, "number_out_of_range");
  EXPECT_TRUE(batch->messages[1].ok());
  auto envelope = ParseTrackingRequest(R"({"batch":[],"context":{"n":1e400}})", std::nullopt);
  EXPECT_EQ(base::GetErrorDetails(envelope.status()).code, "number_out_of_range");
  EXPECT_EQ(base::GetErrorDetails(envelope.status()).field, "context");
}

TEST(ParseTrackingRequest, ReportsEachBadMessageWithItsField) {
  auto r = ParseTrackingRequest(
      R"({"batch":[{"type":"track","userId":7},{"type":"nope"},{"userId":"u"},
                   {"type":"page","properties":[1]},"x",{"type":"alias","userId":"a"}]})",
      std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 6u);
  EXPECT_EQ(Code(r->messages[0].status()), "invalid_type");
  EXPECT_EQ(Field(r->messages[0].status()), "batch[0].userId");
  EXPECT_EQ(r->messages[0].status().message(), "'userId' must be a string, not a number");
  EXPECT_EQ(Code(r->messages[1].status()), "invalid_field");
  EXPECT_EQ(Field(r->messages[1].status()), "batch[1].type");
  EXPECT_EQ(Code(r->messages[2].status()), "missing_field");
  EXPECT_EQ(Field(r->messages[3].status()), "batch[3].properties");
  EXPECT_EQ(Field(r->messages[4].status()), "batch[4]");
  EXPECT_TRUE(r->messages[5].ok());
}

TEST(ParseTrackingRequest, RequestLevelErrors) {
  EXPECT_EQ(Code(ParseTrackingRequest("{\"userId\":", EventType::kTrack).status()),
            "malformed_json");
  EXPECT_EQ(Code(ParseTrackingRequest("[1]", EventType::kTrack).status()), "invalid_type");
  EXPECT_EQ(Code(ParseTrackingRequest("{\"userId\":\"\xC3\x28\"}", EventType::kTrack).status()),
            "invalid_utf8");
  EXPECT_EQ(Code(ParseTrackingRequest("{}", std::nullopt).status()), "missing_field");
  EXPECT_EQ(Code(ParseTrackingRequest("{\"batch\":{}}", std::nullopt).status()), "invalid_type");
  EXPECT_EQ(Code(ParseTrackingRequest("{\"type\":\"page\"}", EventType::kTrack)->messages[0]
                     .status()),
            "type_mismatch");
}

std::string Nested(int depth) {
  // A message of the given depth: {"p":{"p":...{}}}.
  std::string s;
  for (int i = 1; i < depth; ++i) s += "{\"p\":";
  s += "{\"userId\":\"u\"}";
  for (int i = 1; i < depth; ++i) s += "}";
  return s;
}

TEST(ParseTrackingRequest, DepthLimitIsPerMessage) {
  EXPECT_TRUE(ParseTrackingRequest(Nested(64), EventType::kTrack)->messages[0].ok());
  auto too_deep = ParseTrackingRequest(Nested(65), EventType::kTrack);
  ASSERT_TRUE(too_deep.ok());
  EXPECT_EQ(Code(too_deep->messages[0].status()), "too_deep");
  EXPECT_EQ(Code(ParseTrackingRequest(Nested(100), EventType::kTrack).status()), "too_deep");
  // In a batch the message sits two levels down and may still nest 64 levels.
  auto batch = ParseTrackingRequest(
      "{\"batch\":[" + Nested(64).insert(1, "\"type\":\"track\",") + "]}", std::nullopt);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_TRUE(batch->messages[0].ok()) << batch->messages[0].status();
}

TEST(EncodeStoredEvent, GoldenAndStableUnderReparse) {
  auto r = ParseTrackingRequest(
      R"({"userId":"u\"1","event":"Viewed","properties":{"a":[1,"é"]},"context":{"ip":"x"},
          "integrations":{"All":false},"timestamp":"2024-01-01T00:00:00Z","sentAt":"2024-01-01T00:00:05Z",
          "_metadata":{"v":1}})",
      EventType::kTrack);
  ASSERT_TRUE(r.ok());
  StoredFields f{"m-1", 1704067200000000 + 250000, 1704067205000000, "2024-01-01T00:00:00Z"};
  const std::string stored = EncodeStoredEvent(*r->messages[0], f);
  EXPECT_EQ(stored,
            R"({"type":"track","messageId":"m-1","userId":"u\"1","event":"Viewed",)"
            R"("properties":{"a":[1,"é"]},"context":{"ip":"x"},"integrations":{"All":false},)"
            R"("timestamp":"2024-01-01T00:00:00.250Z","originalTimestamp":"2024-01-01T00:00:00Z",)"
            R"("sentAt":"2024-01-01T00:00:05Z","receivedAt":"2024-01-01T00:00:05.000Z",)"
            R"("_metadata":{"v":1}})");
  // Property: re-reading what we stored and storing it again changes nothing (import of an
  // export is a fixed point).
  auto again = ParseTrackingRequest(stored, EventType::kTrack);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(again->messages[0].ok()) << again->messages[0].status();
  EXPECT_EQ(again->messages[0]->received_at, "2024-01-01T00:00:05.000Z");
  EXPECT_EQ(EncodeStoredEvent(*again->messages[0], f), stored);
  // A stored event read on its own (as `rapport import` does) carries its type.
  auto alone = ParseMessage(stored);
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(EncodeStoredEvent(*alone, f), stored);
  EXPECT_EQ(Code(ParseMessage("{\"userId\":\"u\"}").status()), "missing_field");
}

}  // namespace
}  // namespace rapport::wire

#include "rapport/wire/json_text.h"

namespace rapport::wire {
namespace {

TEST(ExportLine, RoundTrips) {
  const std::string line = EncodeExportLine("demo", 42, R"({"type":"track","userId":"u"})");
  EXPECT_EQ(line, R"({"workspace":"demo","seq":42,"event":{"type":"track","userId":"u"}})");
  auto parsed = ParseExportLine(line);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->workspace, "demo");
  EXPECT_EQ(parsed->event_json, R"({"type":"track","userId":"u"})");
  auto bare = ParseExportLine(R"({"type":"track","userId":"u"})");
  ASSERT_TRUE(bare.ok());
  EXPECT_FALSE(bare->workspace.has_value());
  EXPECT_FALSE(ParseExportLine("nope").ok());
}

TEST(ReadStringMember, TypesAndAbsence) {
  EXPECT_EQ(**ReadStringMember(R"({"name":"x"})", "name"), "x");
  EXPECT_FALSE(ReadStringMember(R"({"other":1})", "name")->has_value());
  EXPECT_EQ(base::GetErrorDetails(ReadStringMember(R"({"name":1})", "name").status()).field, "name");
  EXPECT_FALSE(ReadStringMember("[]", "name").ok());
}

}  // namespace
}  // namespace rapport::wire

#include "rapport/store/internal/keys.h"

#include <algorithm>
#include <random>
#include <tuple>

#include <gtest/gtest.h>

namespace rapport::store::internal {
namespace {

// Property: person keys sort exactly as (timestamp, seq) tuples, negative times included.
TEST(PersonKey, ByteOrderIsTimeThenArrivalOrder) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<base::Micros> time(-4'000'000'000'000'000, 4'000'000'000'000'000);
  std::vector<std::pair<std::tuple<base::Micros, uint64_t>, std::string>> items;
  for (int i = 0; i < 5000; ++i) {
    base::Micros t = time(rng);
    uint64_t seq = rng();
    items.push_back({{t, seq}, PersonKey(7, IdKind::kUserId, "user-1", t, seq)});
  }
  auto by_tuple = items;
  std::sort(by_tuple.begin(), by_tuple.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  auto by_bytes = items;
  std::sort(by_bytes.begin(), by_bytes.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  for (size_t i = 0; i < items.size(); ++i) ASSERT_EQ(by_tuple[i].second, by_bytes[i].second);
}

TEST(PersonPrefix, OneIdIsNeverAPrefixOfAnother) {
  // Length-prefixing keeps "ab" from matching the keys of "abc".
  const std::string a = PersonPrefix(1, IdKind::kUserId, "ab");
  const std::string b = PersonKey(1, IdKind::kUserId, "abc", 0, 0);
  EXPECT_NE(b.compare(0, a.size(), a), 0);
  EXPECT_NE(PersonPrefix(1, IdKind::kUserId, "x"), PersonPrefix(1, IdKind::kAnonymousId, "x"));
  EXPECT_NE(PersonPrefix(1, IdKind::kUserId, "x"), PersonPrefix(2, IdKind::kUserId, "x"));
}

TEST(EventValue, RoundTripsPlainAndSealed) {
  EventWrite w;
  w.workspace = 42;
  w.timestamp = -5;
  w.received_at = 1700000000000000;
  w.payload = std::string("{\"a\":\"\0b\"}", 10);
  DataKey key;
  key.fill(7);
  auto keys = [&](uint32_t ws, uint64_t id) -> absl::StatusOr<std::optional<DataKey>> {
    EXPECT_EQ(ws, 42u);
    if (id == 5) return std::optional<DataKey>(key);
    return std::optional<DataKey>();  // destroyed
  };
  for (const DataKey* k : std::array<const DataKey*, 2>{nullptr, &key}) {
    const std::string value = EventValue(w, 99, k ? 5 : 0, k);
    auto e = DecodeEvent(EventKey(99), value, keys);
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE(e->has_value());
    EXPECT_EQ((*e)->seq, 99u);
    EXPECT_EQ((*e)->key_id, k ? 5u : 0u);
    EXPECT_EQ((*e)->workspace, 42u);
    EXPECT_EQ((*e)->timestamp, -5);
    EXPECT_EQ((*e)->received_at, 1700000000000000);
    EXPECT_EQ((*e)->payload, w.payload);
    // The payload is not in the sealed bytes.
    EXPECT_EQ(value.find("\"a\""), k ? std::string::npos : kEventHeader + 3);
  }
  const std::string sealed = EventValue(w, 99, 5, &key);
  // Bound to its seq and header: moved or altered, it does not open.
  EXPECT_EQ(DecodeEvent(EventKey(100), sealed, keys).status().code(), absl::StatusCode::kDataLoss);
  std::string altered = sealed;
  altered[5] ^= 1;  // the timestamp
  EXPECT_EQ(DecodeEvent(EventKey(99), altered, keys).status().code(), absl::StatusCode::kDataLoss);
  altered = sealed;
  altered.back() ^= 1;  // the tag
  EXPECT_EQ(DecodeEvent(EventKey(99), altered, keys).status().code(), absl::StatusCode::kDataLoss);
  // Its key destroyed: erased, not an error.
  auto erased = DecodeEvent(EventKey(99), EventValue(w, 99, 6, &key), keys);
  ASSERT_TRUE(erased.ok());
  EXPECT_FALSE(erased->has_value());
  EXPECT_FALSE(DecodeEvent(EventKey(1), "\x02garbage", keys).ok());
}

TEST(DedupeValue, RoundTrips) {
  auto r = DecodeDedupe(DedupeValue(123, 456));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->seq, 123u);
  EXPECT_EQ(r->expires_at, 456);
  EXPECT_FALSE(DecodeDedupe("short").has_value());
}

}  // namespace
}  // namespace rapport::store::internal

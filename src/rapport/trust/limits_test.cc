#include "rapport/trust/limits.h"

#include <gtest/gtest.h>

#include "rapport/base/error.h"

namespace rapport::trust {
namespace {

KeyInfo Key(std::string id, KeyKind kind = KeyKind::kSecret, KeyRate rate = {}) {
  KeyInfo k;
  k.id = std::move(id);
  k.kind = kind;
  k.rate = rate;
  return k;
}

TEST(RateLimiter, BurstThenRefillAtTheRate) {
  base::SimulatedClock clock(1'000'000'000);
  RateLimiter limiter({.write = {0, 0}, .secret = {2, 4}}, &clock);
  const KeyInfo k = Key("a");
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(limiter.Take(k).ok()) << i;
  absl::Status refused = limiter.Take(k);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(base::GetErrorDetails(refused).code, "rate_limited");
  EXPECT_EQ(base::GetErrorDetails(refused).retry_after, 1);
  clock.Advance(500'000);  // half a second at 2/s: one token back
  EXPECT_TRUE(limiter.Take(k).ok());
  EXPECT_FALSE(limiter.Take(k).ok());
  clock.Advance(60'000'000);  // a long pause refills to the burst, not beyond
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(limiter.Take(k).ok()) << i;
  EXPECT_FALSE(limiter.Take(k).ok());
}

TEST(RateLimiter, KeysAreSeparateAndAKeysOwnRateWins) {
  base::SimulatedClock clock(1'000'000'000);
  RateLimiter limiter({.write = {0, 0}, .secret = {1, 1}}, &clock);
  EXPECT_TRUE(limiter.Take(Key("a")).ok());
  EXPECT_FALSE(limiter.Take(Key("a")).ok());
  EXPECT_TRUE(limiter.Take(Key("b")).ok());  // its own bucket
  const KeyInfo fast = Key("c", KeyKind::kSecret, {100, 0});  // burst 0 = twice the rate
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(limiter.Take(fast).ok()) << i;
  EXPECT_FALSE(limiter.Take(fast).ok());
  // A write key with the default 0 is not limited.
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(limiter.Take(Key("w", KeyKind::kWrite)).ok());
}

TEST(RateLimiter, RetryAfterIsTheWaitForOneToken) {
  base::SimulatedClock clock(1'000'000'000);
  RateLimiter limiter({.write = {0, 0}, .secret = {0.1, 1}}, &clock);  // one per 10 s
  EXPECT_TRUE(limiter.Take(Key("a")).ok());
  EXPECT_EQ(base::GetErrorDetails(limiter.Take(Key("a"))).retry_after, 10);
  clock.Advance(7'500'000);
  EXPECT_EQ(base::GetErrorDetails(limiter.Take(Key("a"))).retry_after, 3);  // 2.5 s, rounded up
}

}  // namespace
}  // namespace rapport::trust

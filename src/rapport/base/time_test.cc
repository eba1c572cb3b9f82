#include "rapport/base/time.h"

#include <random>

#include <gtest/gtest.h>

namespace rapport::base {
namespace {

TEST(ParseIso8601, AcceptsTheFormsClientsSend) {
  struct Case {
    const char* text;
    Micros want;
  } cases[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01T00:00:00.000Z", 0},
      {"2024-02-29T12:34:56.789Z", 1709210096789000},
      {"2024-02-29T14:34:56.789+02:00", 1709210096789000},
      {"2024-02-29T10:04:56.789-0230", 1709210096789000},
      {"2024-02-29T13:34:56.789+01", 1709210096789000},
      {"2024-02-29 12:34:56.789z", 1709210096789000},
      {"2024-02-29T12:34:56.789123Z", 1709210096789123},
      {"2024-02-29T12:34:56.789123999Z", 1709210096789123},  // truncated to µs
      {"2024-02-29T12:34Z", 1709210040000000},
      {"2024-02-29T12:34:56", 1709210096000000},  // no offset: UTC
      {"2024-02-29", 1709164800000000},
      {"1969-12-31T23:59:59.999999Z", -1},
      {"2016-12-31T23:59:60Z", 1483228800000000},  // leap second
  };
  for (const auto& c : cases) {
    auto got = ParseIso8601(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(*got, c.want) << c.text;
  }
}

TEST(ParseIso8601, RejectsWithThePosition) {
  const char* bad[] = {"",
                       "yesterday",
                       "2024-13-01T00:00:00Z",
                       "2023-02-29T00:00:00Z",
                       "2024-02-30",
                       "2024-01-01T24:00:00Z",
                       "2024-01-01T12:60:00Z",
                       "2024-01-01T12:00:00.Z",
                       "2024-01-01T12:00:00ZZ",
                       "2024-01-01T12:00:00+25:00",
                       "24-01-01",
                       "2024-1-01",
                       "1700000000",
                       "0000-01-01T00:00:00Z",
                       "2024-01-01T12"};
  for (const char* text : bad) {
    auto got = ParseIso8601(text);
    EXPECT_FALSE(got.ok()) << text << " parsed as " << *got;
    if (!got.ok()) {
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(got.status().message().find("ISO-8601"), std::string_view::npos);
    }
  }
  EXPECT_NE(ParseIso8601("2024-01-01X").status().message().find("character 11"),
            std::string_view::npos);
}

TEST(FormatIso8601, Golden) {
  EXPECT_EQ(FormatIso8601(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatIso8601(1709210096789000), "2024-02-29T12:34:56.789Z");
  EXPECT_EQ(FormatIso8601(1709210096789123), "2024-02-29T12:34:56.789123Z");
  EXPECT_EQ(FormatIso8601(-1), "1969-12-31T23:59:59.999999Z");
}

// Property: formatting then parsing gives back every instant in years 0001-9999.
TEST(FormatIso8601, RoundTripsThroughParse) {
  std::mt19937_64 rng(20261123);
  const Micros lo = DaysFromCivil(1, 1, 1) * kMicrosPerDay;
  const Micros hi = DaysFromCivil(9999, 12, 31) * kMicrosPerDay + kMicrosPerDay - 1;
  std::uniform_int_distribution<Micros> any(lo, hi);
  for (int i = 0; i < 200000; ++i) {
    Micros t = any(rng);
    if (i % 2) t -= t % kMicrosPerMilli;  // exercise the millisecond form too
    auto back = ParseIso8601(FormatIso8601(t));
    ASSERT_TRUE(back.ok()) << FormatIso8601(t);
    ASSERT_EQ(*back, t) << FormatIso8601(t);
  }
}

TEST(DaysFromCivil, MatchesKnownDates) {
  EXPECT_EQ(DaysFromCivil(1970, 1, 1), 0);
  EXPECT_EQ(DaysFromCivil(2000, 3, 1), 11017);
  EXPECT_EQ(DaysFromCivil(1969, 12, 31), -1);
}

}  // namespace
}  // namespace rapport::base

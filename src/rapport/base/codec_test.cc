#include "rapport/base/codec.h"

#include <limits>
#include <random>

#include <gtest/gtest.h>

namespace rapport::base {
namespace {

TEST(Codec, RoundTripsRandomRecords) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 2000; ++round) {
    const uint64_t u = rng() >> (rng() % 64);
    const int64_t s = static_cast<int64_t>(rng()) >> (rng() % 64);
    std::string bytes(rng() % 300, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    Writer w;
    w.U8(static_cast<uint8_t>(u));
    w.Varint(u);
    w.Signed(s);
    w.Bytes(bytes);
    w.Fixed64(u);
    const std::string out = std::move(w).Finish();

    Reader r(out);
    uint8_t u8;
    uint64_t u2;
    int64_t s2;
    std::string b2;
    uint64_t f2;
    ASSERT_TRUE(r.U8(&u8) && r.Varint(&u2) && r.Signed(&s2) && r.Bytes(&b2) && r.Fixed64(&f2));
    EXPECT_TRUE(r.done());
    EXPECT_EQ(f2, u);
    EXPECT_EQ(u8, static_cast<uint8_t>(u));
    EXPECT_EQ(u2, u);
    EXPECT_EQ(s2, s);
    EXPECT_EQ(b2, bytes);

    // Every truncation fails instead of reading past the end.
    Reader cut(std::string_view(out).substr(0, rng() % out.size()));
    const bool all = cut.U8(&u8) && cut.Varint(&u2) && cut.Signed(&s2) && cut.Bytes(&b2) && cut.Fixed64(&f2);
    EXPECT_FALSE(all && cut.done());
  }
}

TEST(Codec, ExtremesAndMalformedInput) {
  Writer w;
  w.Signed(std::numeric_limits<int64_t>::min());
  w.Signed(std::numeric_limits<int64_t>::max());
  w.Varint(std::numeric_limits<uint64_t>::max());
  const std::string out = std::move(w).Finish();
  Reader r(out);
  int64_t a, b;
  uint64_t c;
  ASSERT_TRUE(r.Signed(&a) && r.Signed(&b) && r.Varint(&c));
  EXPECT_EQ(a, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(b, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(c, std::numeric_limits<uint64_t>::max());

  // A varint that never ends, and a length beyond the input.
  const std::string endless_bytes(11, '\xFF');
  Reader endless(endless_bytes);
  EXPECT_FALSE(endless.Varint(&c));
  EXPECT_FALSE(endless.ok());
  std::string_view s;
  Reader too_long("\x05" "abc");
  EXPECT_FALSE(too_long.Bytes(&s));

  // Fixed64 is least significant byte first, whatever the machine.
  Writer fixed;
  fixed.Fixed64(0x0102030405060708);
  EXPECT_EQ(std::move(fixed).Finish(), std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8));
  Reader short_fixed("\x01\x02\x03");
  EXPECT_FALSE(short_fixed.Fixed64(&c));
}

}  // namespace
}  // namespace rapport::base

#include "rapport/base/utf8.h"

#include <random>
#include <string>

#include <gtest/gtest.h>

namespace rapport::base {
namespace {

std::string Encode(char32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

TEST(FindInvalidUtf8, AcceptsEveryScalarValue) {
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const std::string s = "ab" + Encode(cp) + "cdefghij";
    ASSERT_FALSE(FindInvalidUtf8(s).has_value()) << std::hex << static_cast<uint32_t>(cp);
  }
}

TEST(FindInvalidUtf8, RejectsSurrogatesOverlongsAndTruncation) {
  struct Case {
    std::string text;
    size_t at;
  } cases[] = {
      {"abc\xED\xA0\x80", 3},          // U+D800 surrogate
      {"\xC0\xAF", 0},                 // overlong '/'
      {"\xE0\x80\xAF", 0},             // overlong
      {"\xF0\x80\x80\xAF", 0},         // overlong
      {"\xF4\x90\x80\x80", 0},         // above U+10FFFF
      {"hello w\xC3", 7},              // truncated
      {"12345678\xFF", 8},             // invalid lead byte after the fast path
      {"caf\xC3\xA9 \x80", 6},         // lone continuation
      {"\xE2\x82", 0},                 // truncated 3-byte
  };
  for (const auto& c : cases) {
    auto at = FindInvalidUtf8(c.text);
    ASSERT_TRUE(at.has_value()) << c.at;
    EXPECT_EQ(*at, c.at);
  }
}

// Property: a valid string with one random byte replaced by 0xFF is invalid exactly there.
TEST(FindInvalidUtf8, FindsTheFirstBadByte) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    while (s.size() < 64) s += Encode(std::uniform_int_distribution<uint32_t>(0, 0x7FF)(rng));
    const size_t pos = std::uniform_int_distribution<size_t>(0, s.size() - 1)(rng);
    // Step back to the start of the sequence so the replacement is the first invalid byte.
    size_t start = pos;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    s[start] = '\xFF';
    auto at = FindInvalidUtf8(s);
    ASSERT_TRUE(at.has_value());
    EXPECT_EQ(*at, start);
  }
}

}  // namespace
}  // namespace rapport::base

#include "rapport/base/crypto.h"

#include <set>

#include <gtest/gtest.h>

namespace rapport::base {
namespace {

TEST(RandomToken, HasPrefixLengthAndIsUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string t = RandomToken("wk_", 24);
    ASSERT_EQ(t.size(), 3u + 48u);
    ASSERT_EQ(t.substr(0, 3), "wk_");
    ASSERT_TRUE(seen.insert(t).second);
  }
}

TEST(HashSecret, IsStableAndDistinct) {
  EXPECT_EQ(HashSecret("abc"), HashSecret("abc"));
  EXPECT_NE(HashSecret("abc"), HashSecret("abd"));
  EXPECT_EQ(HashSecret("abc").size(), 64u);
  // BLAKE2b-256 of "abc" (RFC 7693 test vector family, 32-byte output).
  EXPECT_EQ(HashSecret("abc"),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

}  // namespace
}  // namespace rapport::base

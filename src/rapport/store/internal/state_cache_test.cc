#include "rapport/store/internal/state_cache.h"

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace rapport::store::internal {
namespace {

size_t Cost(const std::string& key, const std::optional<std::string>& value) {
  return key.size() + (value ? value->size() : 0) + StateCache::kEntryOverhead;
}

// Property: whatever the sequence of puts, updates and reads, the cache never answers with
// anything but the last value set for a key, keeps what was just set (if it fits), stays within
// its capacity, and counts exactly the bytes of the entries it answers for.
TEST(StateCache, AnswersOnlyTheLastValueAndStaysWithinItsCapacity) {
  std::mt19937 rng(3);
  for (size_t capacity : {size_t{0}, size_t{2000}, size_t{20000}}) {
    StateCache cache(capacity);
    std::map<std::string, std::optional<std::string>> truth;  // the last value set per key
    for (int op = 0; op < 20000; ++op) {
      // Keys of two kinds (first bytes), so that updates meet kinds never Put as well.
      const std::string key = (rng() % 2 ? "k" : "t") + std::to_string(rng() % 100);
      const int what = static_cast<int>(rng() % 3);
      if (op % 100 == 0) {  // a kind only ever updated stays out altogether
        const std::string never = "u" + std::to_string(rng() % 10);
        cache.Update(never, std::string("x"));
        ASSERT_EQ(cache.Find(never), nullptr);
      }
      if (what < 2) {
        std::optional<std::string> value;
        if (rng() % 4) value = std::string(rng() % 400, static_cast<char>('a' + rng() % 26));
        const bool cached = cache.Find(key) != nullptr;
        if (what == 0) {
          cache.Put(key, value);
        } else {
          cache.Update(key, value);  // an uncached key stays out
        }
        truth[key] = value;
        const std::optional<std::string>* found = cache.Find(key);
        if ((what == 0 || cached) && Cost(key, value) <= capacity / 8) {
          ASSERT_NE(found, nullptr) << key << " was just set";
        }
        if (what == 1 && !cached) {
          ASSERT_EQ(found, nullptr) << key << " was only updated";
        }
      } else {
        const std::optional<std::string>* found = cache.Find(key);
        if (found) {
          ASSERT_TRUE(truth.contains(key));
          ASSERT_EQ(*found, truth[key]);
        }
      }
      ASSERT_LE(cache.bytes(), capacity);
    }
    size_t bytes = 0, entries = 0;
    for (int k = 0; k < 200; ++k) {
      const std::string key = (k % 2 ? "k" : "t") + std::to_string(k / 2);
      if (const std::optional<std::string>* found = cache.Find(key)) {
        ASSERT_EQ(*found, truth[key]);
        bytes += Cost(key, *found);
        ++entries;
      }
    }
    EXPECT_EQ(cache.bytes(), bytes);
    EXPECT_EQ(cache.entries(), entries);
  }
}

// After Clear nothing is cached, and keys put again are updated again.
TEST(StateCache, ClearForgetsEntriesAndStartsOver) {
  StateCache cache(100'000);
  cache.Put("t1", std::string("a"));
  cache.Clear();
  cache.Update("t1", std::string("b"));
  EXPECT_EQ(cache.Find("t1"), nullptr);
  EXPECT_EQ(cache.bytes(), 0u);
  cache.Put("t2", std::string("a"));
  cache.Update("t2", std::string("b"));
  ASSERT_NE(cache.Find("t2"), nullptr);
  EXPECT_EQ(*cache.Find("t2"), std::optional<std::string>("b"));
}

// Entries read again are kept over entries used once: a hot set survives a stream of new keys
// many times the capacity (a FIFO would lose all of it).
TEST(StateCache, KeepsWhatIsReadAgainOverWhatIsUsedOnce) {
  StateCache cache(100 * (StateCache::kEntryOverhead + 20));
  for (int i = 0; i < 20; ++i) cache.Put("hot" + std::to_string(i), std::string(10, 'h'));
  for (int i = 0; i < 10000; ++i) {
    cache.Put("cold" + std::to_string(i), std::string(10, 'c'));
    if (i % 10 == 0) {
      for (int h = 0; h < 20; ++h) ASSERT_NE(cache.Find("hot" + std::to_string(h)), nullptr) << i << " " << h;
    }
  }
  EXPECT_EQ(cache.Find("cold0"), nullptr);
  EXPECT_LE(cache.bytes(), cache.capacity());
}

TEST(StateCache, CountsHitsAndMissesAndClears) {
  StateCache cache(1 << 20);
  EXPECT_EQ(cache.Find("a"), nullptr);
  cache.Put("a", std::nullopt);  // known absent
  const std::optional<std::string>* a = cache.Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE(a->has_value());
  cache.Put("a", "1");
  EXPECT_EQ(*cache.Find("a"), "1");
  cache.Update("b", "2");  // not cached: stays out
  EXPECT_EQ(cache.Find("b"), nullptr);
  cache.Update("a", "3");
  EXPECT_EQ(*cache.Find("a"), "3");
  EXPECT_EQ(cache.hits(), 3u);
  EXPECT_EQ(cache.misses(), 2u);
  cache.Clear();
  EXPECT_EQ(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.bytes(), 0u);
}

}  // namespace
}  // namespace rapport::store::internal

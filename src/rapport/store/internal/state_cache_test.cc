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

// Property: against a reference LRU (a map plus a recency list), after every operation the
// cache returns exactly what the reference holds, stays within its capacity, and evicts the
// least recently used entries first.
TEST(StateCache, BehavesAsAReferenceLru) {
  std::mt19937 rng(3);
  for (size_t capacity : {size_t{0}, size_t{2000}, size_t{20000}}) {
    StateCache cache(capacity);
    std::map<std::string, std::optional<std::string>> model;
    std::vector<std::string> recency;  // most recent last
    auto touch = [&](const std::string& k) {
      recency.erase(std::remove(recency.begin(), recency.end(), k), recency.end());
      recency.push_back(k);
    };
    size_t model_bytes = 0;
    for (int op = 0; op < 20000; ++op) {
      const std::string key = "k" + std::to_string(rng() % 200);
      if (rng() % 2) {
        std::optional<std::string> value;
        if (rng() % 4) value = std::string(rng() % 400, 'v');
        cache.Put(key, value);
        if (auto it = model.find(key); it != model.end()) {
          model_bytes -= Cost(key, it->second);
          model.erase(it);
          recency.erase(std::remove(recency.begin(), recency.end(), key), recency.end());
        }
        if (Cost(key, value) <= capacity / 8) {
          model[key] = value;
          model_bytes += Cost(key, value);
          touch(key);
          while (model_bytes > capacity) {
            model_bytes -= Cost(recency.front(), model[recency.front()]);
            model.erase(recency.front());
            recency.erase(recency.begin());
          }
        }
      } else {
        const std::optional<std::string>* found = cache.Find(key);
        auto it = model.find(key);
        ASSERT_EQ(found != nullptr, it != model.end()) << key;
        if (found) {
          ASSERT_EQ(*found, it->second);
          touch(key);
        }
      }
      ASSERT_LE(cache.bytes(), capacity);
      ASSERT_EQ(cache.bytes(), model_bytes);
      ASSERT_EQ(cache.entries(), model.size());
    }
  }
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

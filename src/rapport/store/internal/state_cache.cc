#include "rapport/store/internal/state_cache.h"

#include <utility>

namespace rapport::store::internal {

const std::optional<std::string>* StateCache::Find(std::string_view key) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &it->second->value;
}

void StateCache::Put(std::string_view key, std::optional<std::string> value) {
  auto it = index_.find(key);
  if (it != index_.end()) return Assign(it->second, std::move(value));
  const size_t cost = Cost(key, value);
  if (cost > capacity_ / 8) return;
  lru_.push_front(Entry{std::string(key), std::move(value)});
  index_.emplace(lru_.front().key, lru_.begin());
  bytes_ += cost;
  EvictBeyondCapacity();
}

void StateCache::Update(std::string_view key, std::optional<std::string> value) {
  auto it = index_.find(key);
  if (it != index_.end()) Assign(it->second, std::move(value));
}

void StateCache::Assign(List::iterator entry, std::optional<std::string> value) {
  bytes_ -= entry->Cost();
  entry->value = std::move(value);
  bytes_ += entry->Cost();
  if (entry->Cost() > capacity_ / 8) return Erase(entry);
  lru_.splice(lru_.begin(), lru_, entry);
  EvictBeyondCapacity();
}

void StateCache::EvictBeyondCapacity() {
  while (bytes_ > capacity_ && !lru_.empty()) Erase(std::prev(lru_.end()));
}

void StateCache::Erase(List::iterator it) {
  bytes_ -= it->Cost();
  index_.erase(std::string_view(it->key));
  lru_.erase(it);
}

void StateCache::Clear() {
  index_.clear();
  lru_.clear();
  bytes_ = 0;
}

}  // namespace rapport::store::internal

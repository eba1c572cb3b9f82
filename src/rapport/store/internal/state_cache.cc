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
  const size_t cost = key.size() + (value ? value->size() : 0) + kEntryOverhead;
  if (cost > capacity_ / 8) {
    if (it != index_.end()) Erase(it->second);
    return;
  }
  if (it != index_.end()) {
    Entry& e = *it->second;
    bytes_ -= e.Cost();
    e.value = std::move(value);
    bytes_ += e.Cost();
    lru_.splice(lru_.begin(), lru_, it->second);
  } else {
    lru_.push_front(Entry{std::string(key), std::move(value)});
    index_.emplace(lru_.front().key, lru_.begin());
    bytes_ += lru_.front().Cost();
  }
  while (bytes_ > capacity_ && !lru_.empty()) Erase(std::prev(lru_.end()));
}

void StateCache::Update(std::string_view key, std::optional<std::string> value) {
  if (index_.contains(key)) Put(key, std::move(value));
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

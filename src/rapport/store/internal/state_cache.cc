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
  Entry& e = slots_[it->second];
  e.referenced = true;
  return &e.value;
}

void StateCache::Put(std::string_view key, std::optional<std::string> value) {
  auto it = index_.find(key);
  if (it != index_.end()) return Assign(it->second, std::move(value));
  const size_t cost = Cost(key, value);
  if (cost > capacity_ / 8 || key.empty()) return;
  uint32_t slot;
  if (free_.empty()) {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  } else {
    slot = free_.back();
    free_.pop_back();
  }
  put_tags_.set(static_cast<uint8_t>(key[0]));
  Entry& e = slots_[slot];
  e.key.assign(key);
  e.value = std::move(value);
  e.referenced = false;  // a key used once leaves first; a read gives it its second chance
  index_.emplace(e.key, slot);
  bytes_ += cost;
  EvictBeyondCapacity(slot);
}

void StateCache::Update(std::string_view key, std::optional<std::string> value) {
  if (key.empty() || !put_tags_[static_cast<uint8_t>(key[0])]) return;
  auto it = index_.find(key);
  if (it != index_.end()) Assign(it->second, std::move(value));
}

void StateCache::Assign(uint32_t slot, std::optional<std::string> value) {
  Entry& e = slots_[slot];
  bytes_ -= e.Cost();
  e.value = std::move(value);
  bytes_ += e.Cost();
  if (e.Cost() > capacity_ / 8) return Erase(slot);
  e.referenced = true;
  EvictBeyondCapacity(slot);
}

void StateCache::EvictBeyondCapacity(uint32_t keep) {
  // Each full turn clears every bit it passes, so the second turn at the latest evicts (`keep`
  // is at most an eighth of the capacity: others are there to evict).
  while (bytes_ > capacity_) {
    if (hand_ >= slots_.size()) hand_ = 0;
    Entry& e = slots_[hand_];
    if (!e.key.empty() && hand_ != keep) {
      if (e.referenced) {
        e.referenced = false;
      } else {
        Erase(static_cast<uint32_t>(hand_));
      }
    }
    ++hand_;
  }
}

void StateCache::Erase(uint32_t slot) {
  Entry& e = slots_[slot];
  bytes_ -= e.Cost();
  index_.erase(std::string_view(e.key));
  e.key.clear();
  e.key.shrink_to_fit();
  e.value.reset();
  e.referenced = false;
  free_.push_back(slot);
}

void StateCache::Clear() {
  index_.clear();
  slots_.clear();
  free_.clear();
  hand_ = 0;
  bytes_ = 0;
  put_tags_.reset();
}

}  // namespace rapport::store::internal

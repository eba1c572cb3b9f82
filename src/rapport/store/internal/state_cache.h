// A bounded cache of committed `state` entries, in front of RocksDB for the writer thread:
// identity index entries, profile records and derived state are read for nearly every event,
// and a point read through the memtable and the block cache costs more than the work the engine
// does with the value. It also remembers keys that are absent (most identifiers of a new
// person). It holds only what is committed: the writer updates the entries a group wrote after
// the group's WriteBatch is written. Not thread-safe: the writer thread owns it.
//
// Eviction is CLOCK (second chance), an approximation of least-recently-used: a read only sets
// the entry's referenced bit, where an LRU list would relink it (touching its neighbours' memory
// on every read of a cache much larger than the CPU's); the hand evicts the first entry it finds
// not referenced since it last passed, clearing the bits it passes.
#ifndef RAPPORT_STORE_INTERNAL_STATE_CACHE_H_
#define RAPPORT_STORE_INTERNAL_STATE_CACHE_H_

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace rapport::store::internal {

class StateCache {
 public:
  // What an entry is counted for beyond its key and value: an estimate of its slot, the index
  // slot, the strings' headers and the allocator's rounding.
  static constexpr size_t kEntryOverhead = 160;

  // `capacity` bytes of keys, values and overhead; 0 disables the cache.
  explicit StateCache(size_t capacity) : capacity_(capacity) {}
  StateCache(const StateCache&) = delete;
  StateCache& operator=(const StateCache&) = delete;

  // The cached entry of `key`, marked as used: nullptr when not cached; otherwise the value, or
  // nullopt when the key is known to be absent. Valid until the next Put, Update or Clear.
  const std::optional<std::string>* Find(std::string_view key);

  // Sets `key` to `value` (nullopt: absent), evicting entries not used lately beyond the
  // capacity. An entry larger than an eighth of the capacity is not kept.
  void Put(std::string_view key, std::optional<std::string> value);

  // Put, but only when `key` is cached (as every key read since it was last evicted is): keeps
  // keys that are only ever written (timelines, indexes) out of the cache. A key whose first
  // byte (the `state` key's tag) no Put has had is not even looked up: most of a group's writes
  // are of kinds that are never read back one by one.
  void Update(std::string_view key, std::optional<std::string> value);

  void Clear();

  size_t bytes() const { return bytes_; }
  size_t entries() const { return index_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }

 private:
  static size_t Cost(std::string_view key, const std::optional<std::string>& value) {
    return key.size() + (value ? value->size() : 0) + kEntryOverhead;
  }
  struct Entry {
    std::string key;  // empty: a free slot
    std::optional<std::string> value;
    bool referenced = false;
    size_t Cost() const { return StateCache::Cost(key, value); }
  };

  // Gives a cached entry a new value, or drops it if it became too large.
  void Assign(uint32_t slot, std::optional<std::string> value);
  // Evicts until the entries fit, never `keep` (the entry just set).
  void EvictBeyondCapacity(uint32_t keep);
  void Erase(uint32_t slot);

  const size_t capacity_;
  size_t bytes_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  std::deque<Entry> slots_;     // never moves an entry (the index views their keys)
  std::vector<uint32_t> free_;  // slots to reuse
  size_t hand_ = 0;             // the clock's position in slots_
  std::bitset<256> put_tags_;   // the first bytes of the keys Put since the last Clear
  absl::flat_hash_map<std::string_view, uint32_t> index_;  // key (a view of slots_) → slot
};

}  // namespace rapport::store::internal

#endif  // RAPPORT_STORE_INTERNAL_STATE_CACHE_H_

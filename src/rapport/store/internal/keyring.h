// The master key and what is derived from it (docs/formats/store.md#data-keys): a key-encryption
// key per workspace that wraps the profiles' data keys, and a key per workspace for keyed hashes
// of identifiers (the suppression list).
#ifndef RAPPORT_STORE_INTERNAL_KEYRING_H_
#define RAPPORT_STORE_INTERNAL_KEYRING_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "rapport/store/envelope.h"

namespace rapport::store::internal {

// Thread-safe. Keeps the workspace keys it derived and the data keys it unwrapped (a bounded
// cache, by wrapped form: a destroyed key is never asked for again, since its wrapped form is
// read from the store first).
class Keyring {
 public:
  // Without a master key: only plaintext can be read, nothing can be sealed.
  Keyring() = default;
  explicit Keyring(const DataKey& master);

  bool has_master() const { return master_.has_value(); }

  // A new random data key and its wrapped form, to be stored under DataKeyKey(ws, id).
  std::pair<DataKey, std::string> NewDataKey(uint32_t ws, uint64_t id) const;
  // The data key inside `wrapped` (stored under DataKeyKey(ws, id)). DataLoss if it does not
  // open (a different master key, or altered).
  absl::StatusOr<DataKey> Unwrap(uint32_t ws, uint64_t id, std::string_view wrapped) const;
  // Drops the unwrapped copy of a destroyed data key from memory.
  void Forget(std::string_view wrapped) const;
  // BLAKE2b-256 of `data` keyed per workspace: 32 bytes.
  std::string KeyedHash(uint32_t ws, std::string_view data) const;
  // 16 bytes that identify the master key without revealing it (stored to notice a wrong one).
  std::string Check() const;

 private:
  DataKey Derive(uint64_t subkey, const char context[8]) const;
  // A key of the workspace derived for `context` (once, then cached).
  DataKey WorkspaceKey(uint32_t ws, const char context[8]) const;
  std::optional<DataKey> master_;
  struct Cache;
  std::shared_ptr<Cache> cache_;
};

// 'k' · ws u32 · id u64: a data key in the `state` column family.
std::string DataKeyKey(uint32_t ws, uint64_t id);

// The master key in `path` (64 hex digits). When the file does not exist: nullopt, or, with
// `create`, a new random key written there (mode 0600, synced) first.
absl::StatusOr<std::optional<DataKey>> LoadMasterKey(const std::string& path, bool create);

}  // namespace rapport::store::internal

#endif  // RAPPORT_STORE_INTERNAL_KEYRING_H_

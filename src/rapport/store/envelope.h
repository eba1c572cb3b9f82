// The single envelope every piece of personal data passes through on its way to disk
// (docs/formats/store.md#envelope):
//   version(1)=1  kind(1)  body
// kind 0: the body is the plaintext (stores written before encryption, and data that names no
//         profile);
// kind 1: sealed with a profile's data key: key id u64 · nonce(24) · XChaCha20-Poly1305
//         ciphertext with its 16-byte tag. The associated data binds it to where it is stored.
// Destroying a data key makes every copy of what it sealed unreadable (crypto-shredding): in the
// write-ahead log, old table files and copies of them. A reader that meets a kind it does not
// know fails with FailedPrecondition rather than returning ciphertext as data.
#ifndef RAPPORT_STORE_ENVELOPE_H_
#define RAPPORT_STORE_ENVELOPE_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rapport::store {

// A data key (XChaCha20-Poly1305, 32 bytes).
using DataKey = std::array<unsigned char, 32>;

// Appends the plaintext envelope (kind 0) of `plaintext` to `out`.
void SealPersonalData(std::string_view plaintext, std::string* out);

// Appends `plaintext` sealed with `key` (whose id is `key_id`, ≠ 0) to `out`; `aad` must be
// given again to open it.
void SealPersonalData(const DataKey& key, uint64_t key_id, std::string_view aad,
                      std::string_view plaintext, std::string* out);

// The id of the data key that sealed `sealed`: 0 for plaintext. DataLoss if it is truncated,
// FailedPrecondition for an unknown version or kind.
absl::StatusOr<uint64_t> EnvelopeKeyId(std::string_view sealed);

// The plaintext of a kind-0 envelope (a view into it); FailedPrecondition for a sealed one.
absl::StatusOr<std::string_view> OpenPersonalData(std::string_view sealed);

// The plaintext of either kind; `key` is used for kind 1 (the caller looked it up by
// EnvelopeKeyId). DataLoss when the ciphertext, its tag or `aad` do not match.
absl::StatusOr<std::string> OpenPersonalData(const DataKey& key, std::string_view aad,
                                             std::string_view sealed);

}  // namespace rapport::store

#endif  // RAPPORT_STORE_ENVELOPE_H_

// Random tokens and key hashing (libsodium).
#ifndef RAPPORT_BASE_CRYPTO_H_
#define RAPPORT_BASE_CRYPTO_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace rapport::base {

// Initialises libsodium; idempotent and thread-safe. CHECK-fails if libsodium cannot start.
void InitCrypto();

// `prefix` followed by `bytes` random bytes from the OS CSPRNG, in lower-case hex.
std::string RandomToken(std::string_view prefix, size_t bytes);

// A 32-byte BLAKE2b hash of `secret`, in hex. Keys are 24+ random bytes, so a fast hash is enough
// (no password stretching is needed to resist guessing).
std::string HashSecret(std::string_view secret);

}  // namespace rapport::base

#endif  // RAPPORT_BASE_CRYPTO_H_

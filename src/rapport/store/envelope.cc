#include "rapport/store/envelope.h"

#include <sodium.h>

#include <algorithm>
#include <atomic>

#include "absl/strings/str_format.h"
#include "rapport/base/crypto.h"
#include "rapport/base/endian.h"

namespace rapport::store {
namespace {
constexpr char kEnvelopeVersion = 1;
constexpr char kKindPlain = 0;
constexpr char kKindSealed = 1;
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kSealedHeader = 2 + 8 + kNonceBytes;

static_assert(sizeof(DataKey) == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);

absl::Status CheckHeader(std::string_view sealed) {
  if (sealed.size() < 2) return absl::DataLossError("personal-data envelope is truncated");
  if (sealed[0] != kEnvelopeVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "personal-data envelope version %d is newer than this build understands", sealed[0]));
  }
  if (sealed[1] != kKindPlain && sealed[1] != kKindSealed) {
    return absl::FailedPreconditionError(
        absl::StrFormat("personal-data envelope kind %d is not known to this build", sealed[1]));
  }
  if (sealed[1] == kKindSealed && sealed.size() < kSealedHeader + kTagBytes) {
    return absl::DataLossError("sealed personal data is truncated");
  }
  return absl::OkStatus();
}

const unsigned char* Bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// A nonce never used before with any key: 16 random bytes drawn once per process, then a
// counter (cheaper than asking the OS for 24 random bytes per record, and as unique).
void NextNonce(unsigned char* nonce) {
  static const std::array<unsigned char, 16> prefix = [] {
    std::array<unsigned char, 16> p;
    base::InitCrypto();
    randombytes_buf(p.data(), p.size());
    return p;
  }();
  static std::atomic<uint64_t> counter{0};
  const uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  std::copy(prefix.begin(), prefix.end(), nonce);
  for (int i = 0; i < 8; ++i) nonce[16 + i] = static_cast<unsigned char>(n >> (56 - 8 * i));
}

}  // namespace

void SealPersonalData(std::string_view plaintext, std::string* out) {
  out->push_back(kEnvelopeVersion);
  out->push_back(kKindPlain);
  out->append(plaintext);
}

void SealPersonalData(const DataKey& key, uint64_t key_id, std::string_view aad,
                      std::string_view plaintext, std::string* out) {
  const size_t start = out->size();
  out->resize(start + kSealedHeader + plaintext.size() + kTagBytes);
  auto* p = reinterpret_cast<unsigned char*>(out->data() + start);
  p[0] = kEnvelopeVersion;
  p[1] = kKindSealed;
  for (int i = 0; i < 8; ++i) p[2 + i] = static_cast<unsigned char>(key_id >> (56 - 8 * i));
  unsigned char* nonce = p + 10;
  NextNonce(nonce);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(p + kSealedHeader, &written, Bytes(plaintext), plaintext.size(),
                                             Bytes(aad), aad.size(), nullptr, nonce, key.data());
  out->resize(start + kSealedHeader + written);
}

absl::StatusOr<uint64_t> EnvelopeKeyId(std::string_view sealed) {
  if (absl::Status s = CheckHeader(sealed); !s.ok()) return s;
  if (sealed[1] == kKindPlain) return 0;
  return base::GetU64(sealed.substr(2));
}

absl::StatusOr<std::string_view> OpenPersonalData(std::string_view sealed) {
  if (absl::Status s = CheckHeader(sealed); !s.ok()) return s;
  if (sealed[1] != kKindPlain) {
    return absl::FailedPreconditionError("personal data is sealed; it needs its data key");
  }
  return sealed.substr(2);
}

absl::StatusOr<std::string> OpenPersonalData(const DataKey& key, std::string_view aad,
                                             std::string_view sealed) {
  if (absl::Status s = CheckHeader(sealed); !s.ok()) return s;
  if (sealed[1] == kKindPlain) return std::string(sealed.substr(2));
  const std::string_view ciphertext = sealed.substr(kSealedHeader);
  std::string plaintext(ciphertext.size() - kTagBytes, '\0');
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(plaintext.data()), &n,
                                                 nullptr, Bytes(ciphertext), ciphertext.size(), Bytes(aad),
                                                 aad.size(), Bytes(sealed.substr(10)), key.data()) != 0) {
    return absl::DataLossError("sealed personal data does not open with its key (altered, or moved)");
  }
  plaintext.resize(n);
  return plaintext;
}

}  // namespace rapport::store

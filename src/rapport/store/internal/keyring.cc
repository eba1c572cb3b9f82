#include "rapport/store/internal/keyring.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "rapport/base/check.h"
#include "rapport/base/crypto.h"
#include "rapport/base/endian.h"
#include "rapport/base/error.h"
#include "rapport/base/mutex.h"
#include "rapport/base/strings.h"
#include "absl/container/flat_hash_map.h"

namespace rapport::store::internal {
namespace {

constexpr char kWrapVersion = 1;
constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kWrappedSize = 1 + kNonce + sizeof(DataKey) + kTag;

const unsigned char* Bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

struct Keyring::Cache {
  static constexpr size_t kMaxDataKeys = 1 << 16;
  base::Mutex mu;
  absl::flat_hash_map<std::pair<uint32_t, std::string>, DataKey> derived ABSL_GUARDED_BY(mu);  // ws, context
  absl::flat_hash_map<std::string, DataKey> unwrapped ABSL_GUARDED_BY(mu);  // by wrapped form
};

Keyring::Keyring(const DataKey& master) : master_(master), cache_(std::make_shared<Cache>()) {}

DataKey Keyring::WorkspaceKey(uint32_t ws, const char context[8]) const {
  std::pair<uint32_t, std::string> id{ws, std::string(context, 8)};
  {
    base::MutexLock lock(&cache_->mu);
    if (auto it = cache_->derived.find(id); it != cache_->derived.end()) return it->second;
  }
  const DataKey key = Derive(ws, context);
  base::MutexLock lock(&cache_->mu);
  cache_->derived.emplace(std::move(id), key);
  return key;
}

DataKey Keyring::Derive(uint64_t subkey, const char context[8]) const {
  RAPPORT_CHECK(master_.has_value());
  base::InitCrypto();
  DataKey out;
  crypto_kdf_derive_from_key(out.data(), out.size(), subkey, context, master_->data());
  return out;
}

std::pair<DataKey, std::string> Keyring::NewDataKey(uint32_t ws, uint64_t id) const {
  const DataKey kek = WorkspaceKey(ws, "rpkek001");
  DataKey key;
  randombytes_buf(key.data(), key.size());
  std::string wrapped(kWrappedSize, '\0');
  auto* p = reinterpret_cast<unsigned char*>(wrapped.data());
  p[0] = kWrapVersion;
  randombytes_buf(p + 1, kNonce);
  const std::string aad = DataKeyKey(ws, id);
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(p + 1 + kNonce, &n, key.data(), key.size(), Bytes(aad), aad.size(),
                                             nullptr, p + 1, kek.data());
  RAPPORT_CHECK(n == sizeof(DataKey) + kTag);
  return {key, std::move(wrapped)};
}

absl::StatusOr<DataKey> Keyring::Unwrap(uint32_t ws, uint64_t id, std::string_view wrapped) const {
  if (!master_) {
    return absl::FailedPreconditionError("the store holds encrypted data but was opened without its master key");
  }
  if (wrapped.size() != kWrappedSize || wrapped[0] != kWrapVersion) {
    return absl::DataLossError(fmt::format("the data key {} of workspace {} cannot be decoded", id, ws));
  }
  {
    base::MutexLock lock(&cache_->mu);
    if (auto it = cache_->unwrapped.find(base::AsAbsl(wrapped)); it != cache_->unwrapped.end()) return it->second;
  }
  const DataKey kek = WorkspaceKey(ws, "rpkek001");
  const std::string aad = DataKeyKey(ws, id);
  DataKey key;
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(key.data(), &n, nullptr, Bytes(wrapped.substr(1 + kNonce)),
                                                 sizeof(DataKey) + kTag, Bytes(aad), aad.size(),
                                                 Bytes(wrapped.substr(1)), kek.data()) != 0) {
    return absl::DataLossError(
        fmt::format("the data key {} of workspace {} does not open with this master key", id, ws));
  }
  base::MutexLock lock(&cache_->mu);
  if (cache_->unwrapped.size() >= Cache::kMaxDataKeys) cache_->unwrapped.clear();
  cache_->unwrapped.emplace(std::string(wrapped), key);
  return key;
}

void Keyring::Forget(std::string_view wrapped) const {
  if (!cache_) return;
  base::MutexLock lock(&cache_->mu);
  if (auto it = cache_->unwrapped.find(base::AsAbsl(wrapped)); it != cache_->unwrapped.end()) {
    sodium_memzero(it->second.data(), it->second.size());
    cache_->unwrapped.erase(it);
  }
}

std::string Keyring::KeyedHash(uint32_t ws, std::string_view data) const {
  const DataKey key = WorkspaceKey(ws, "rphash01");
  std::string out(crypto_generichash_BYTES, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(), Bytes(data), data.size(),
                     key.data(), key.size());
  return out;
}

std::string Keyring::Check() const {
  const DataKey check = Derive(0, "rpcheck1");
  return std::string(reinterpret_cast<const char*>(check.data()), 16);
}

std::string DataKeyKey(uint32_t ws, uint64_t id) {
  std::string k(1, 'k');
  base::PutU32(&k, ws);
  base::PutU64(&k, id);
  return k;
}

absl::StatusOr<std::optional<DataKey>> LoadMasterKey(const std::string& path, bool create) {
  base::InitCrypto();
  std::ifstream in(path);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    std::string hex = text.str();
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ')) hex.pop_back();
    DataKey key;
    size_t n = 0;
    if (hex.size() != 64 || sodium_hex2bin(key.data(), key.size(), hex.data(), hex.size(), nullptr, &n, nullptr) != 0 ||
        n != key.size()) {
      return base::MakeError(absl::StatusCode::kFailedPrecondition, "master_key_invalid",
                             fmt::format("the master key file {} must hold 64 hex digits", path));
    }
    return std::optional<DataKey>(key);
  }
  if (!create) return std::optional<DataKey>();
  DataKey key;
  randombytes_buf(key.data(), key.size());
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, key.data(), key.size());
  const std::string text = std::string(hex, 64) + "\n";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(fmt::format("cannot create the master key file {}: {}", path, std::strerror(errno)));
  }
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  sodium_memzero(hex, sizeof hex);
  if (!ok) {
    ::unlink(path.c_str());
    return absl::UnavailableError(fmt::format("cannot write the master key file {}: {}", path, std::strerror(saved)));
  }
  // The file's directory entry survives a crash too.
  const std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/') + 1);
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return std::optional<DataKey>(key);
}

}  // namespace rapport::store::internal

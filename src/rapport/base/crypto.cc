#include "rapport/base/crypto.h"

#include <sodium.h>

#include <vector>

#include "rapport/base/check.h"

namespace rapport::base {
namespace {
std::string Hex(const unsigned char* data, size_t n) {
  std::string out(n * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data, n);
  out.pop_back();
  return out;
}
}  // namespace

void InitCrypto() {
  static const bool ok = sodium_init() >= 0;
  RAPPORT_CHECK(ok);
}

std::string RandomToken(std::string_view prefix, size_t bytes) {
  InitCrypto();
  std::vector<unsigned char> buf(bytes);
  randombytes_buf(buf.data(), buf.size());
  return std::string(prefix) + Hex(buf.data(), buf.size());
}

std::string HashSecret(std::string_view secret) {
  InitCrypto();
  unsigned char out[crypto_generichash_BYTES];
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size(), nullptr, 0);
  return Hex(out, sizeof out);
}

}  // namespace rapport::base

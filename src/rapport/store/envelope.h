// The single envelope every piece of personal data passes through on its way to disk, so that
// per-profile encryption (and crypto-shredding on erasure) can be added without a format break:
//   version(1)=1  kind(1)  body
// kind 0 = plaintext body. Further kinds (encrypted with a per-profile data key) will carry their
// key id and nonce in the body; a reader that meets a kind it does not know fails with
// FailedPrecondition rather than returning ciphertext as data.
#ifndef RAPPORT_STORE_ENVELOPE_H_
#define RAPPORT_STORE_ENVELOPE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rapport::store {

// Appends the sealed form of `plaintext` to `out`.
void SealPersonalData(std::string_view plaintext, std::string* out);

// The plaintext inside `sealed` (a view into it for kind 0).
absl::StatusOr<std::string_view> OpenPersonalData(std::string_view sealed);

}  // namespace rapport::store

#endif  // RAPPORT_STORE_ENVELOPE_H_

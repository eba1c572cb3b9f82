#include "rapport/store/envelope.h"

#include "absl/strings/str_format.h"

namespace rapport::store {
namespace {
constexpr char kEnvelopeVersion = 1;
constexpr char kKindPlain = 0;
}  // namespace

void SealPersonalData(std::string_view plaintext, std::string* out) {
  out->push_back(kEnvelopeVersion);
  out->push_back(kKindPlain);
  out->append(plaintext);
}

absl::StatusOr<std::string_view> OpenPersonalData(std::string_view sealed) {
  if (sealed.size() < 2) return absl::DataLossError("personal-data envelope is truncated");
  if (sealed[0] != kEnvelopeVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "personal-data envelope version %d is newer than this build understands", sealed[0]));
  }
  if (sealed[1] != kKindPlain) {
    return absl::FailedPreconditionError(
        absl::StrFormat("personal-data envelope kind %d is not known to this build", sealed[1]));
  }
  return sealed.substr(2);
}

}  // namespace rapport::store

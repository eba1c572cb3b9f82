// libFuzzer target: the JSON bodies of rapport's own API — purposes settings, a consent change,
// a new key, merge protection, computed trait and segment definitions. Input: the body, its
// first byte choosing the reader. Checks, beyond crashes and sanitizer reports:
//   - every refusal names a code;
//   - what a settings reader accepts, written back as JSON, reads back the same.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "rapport/base/error.h"
#include "rapport/identity/rules_json.h"
#include "rapport/trust/consent_json.h"
#include "rapport/trust/keys_json.h"
#include "rapport/wire/definition_json.h"

namespace {

using namespace rapport;

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "api_json_fuzz: broken promise: %s\n", what);
    __builtin_trap();
  }
}

template <typename T>
bool Refused(const absl::StatusOr<T>& r) {
  if (r.ok()) return false;
  Require(!base::GetErrorDetails(r.status()).code.empty(), "an error without a code");
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const trust::PurposePolicy defaults = trust::PurposePolicy::Defaults();
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      auto policy = trust::ParsePurposePolicy(body);
      if (Refused(policy)) break;
      const std::string json = trust::PurposePolicyJson(*policy);
      auto again = trust::ParsePurposePolicy(json);
      Require(again.ok() && trust::PurposePolicyJson(*again) == json, "purposes do not read back");
      break;
    }
    case 1: Refused(trust::ParseConsentUpdate(body, defaults)); break;
    case 2: {
      auto spec = trust::ParseKeySpec(body);
      if (!Refused(spec)) {
        absl::Status checked = trust::CheckKeySpec(*spec);
        Require(checked.ok() || !base::GetErrorDetails(checked).code.empty(), "an error without a code");
      }
      break;
    }
    case 3: {
      auto rules = identity::ParseMergeRules(body);
      if (Refused(rules)) break;
      const std::string json = identity::MergeRulesJson(*rules);
      auto again = identity::ParseMergeRules(json);
      Require(again.ok() && identity::MergeRulesJson(*again) == json, "merge protection does not read back");
      break;
    }
    case 4: {
      auto spec = wire::ParseComputedTraitSpec(body);
      if (Refused(spec)) break;
      const std::string json = wire::ComputedTraitSpecJson(*spec);
      auto again = wire::ParseComputedTraitSpec(json);
      Require(again.ok() && wire::ComputedTraitSpecJson(*again) == json, "a computed trait does not read back");
      break;
    }
    default: {
      auto spec = wire::ParseSegmentSpec(body);
      if (Refused(spec)) break;
      const std::string json = wire::SegmentSpecJson(*spec);
      auto again = wire::ParseSegmentSpec(json);
      Require(again.ok() && wire::SegmentSpecJson(*again) == json, "a segment does not read back");
      break;
    }
  }
  return 0;
}

// libFuzzer target: the JSON bodies of rapport's own API — purposes settings, a consent change,
// a new key, merge protection, computed trait and segment definitions. Input: the body, its
// first byte choosing the reader. Checks, beyond crashes and sanitizer reports:
//   - every refusal names a code;
//   - what a settings reader accepts, written back as JSON, reads back the same.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
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

// `parse` reads JSON into T, `write` writes it back: what is written must read back the same.
template <typename Parse, typename Write>
void RoundTrips(const std::string& json, Parse parse, Write write, const char* what) {
  auto again = parse(json);
  if (!again.ok() || write(*again) != json) {
    std::fprintf(stderr, "written:   %s\nread back: %s\n", json.c_str(),
                 again.ok() ? write(*again).c_str() : std::string(again.status().message()).c_str());
    Require(false, what);
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
      RoundTrips(trust::PurposePolicyJson(*policy), [](const std::string& j) { return trust::ParsePurposePolicy(j); },
                 [](const trust::PurposePolicy& p) { return trust::PurposePolicyJson(p); }, "purposes do not read back");
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
      RoundTrips(identity::MergeRulesJson(*rules), [](const std::string& j) { return identity::ParseMergeRules(j); },
                 [](const identity::MergeRules& r) { return identity::MergeRulesJson(r); },
                 "merge protection does not read back");
      break;
    }
    case 4: {
      auto spec = wire::ParseComputedTraitSpec(body);
      if (Refused(spec)) break;
      RoundTrips(wire::ComputedTraitSpecJson(*spec), [](const std::string& j) { return wire::ParseComputedTraitSpec(j); },
                 [](const wire::ComputedTraitSpec& c) { return wire::ComputedTraitSpecJson(c); },
                 "a computed trait does not read back");
      break;
    }
    default: {
      auto spec = wire::ParseSegmentSpec(body);
      if (Refused(spec)) break;
      RoundTrips(wire::SegmentSpecJson(*spec), [](const std::string& j) { return wire::ParseSegmentSpec(j); },
                 [](const wire::SegmentSpec& c) { return wire::SegmentSpecJson(c); }, "a segment does not read back");
      break;
    }
  }
  return 0;
}

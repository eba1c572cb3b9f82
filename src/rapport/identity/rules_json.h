// Merge protection as JSON, for a workspace's settings (docs/api/settings.md):
//   {"priority": ["user_id", "email", "phone", "*", "device_id", "anonymous_id"],
//    "max_per_type": {"user_id": 1}, "default_max": 5,
//    "blocked_values": ["", "null", …], "default_country_code": ""}
#ifndef RAPPORT_IDENTITY_RULES_JSON_H_
#define RAPPORT_IDENTITY_RULES_JSON_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "rapport/identity/identifier.h"

namespace rapport::identity {

inline constexpr size_t kMaxPriorityTypes = 64;
inline constexpr size_t kMaxBlockedValues = 1000;
inline constexpr size_t kMaxBlockedValueBytes = 256;
inline constexpr int kMaxPerTypeLimit = 1000;

// Reads merge rules, starting from the defaults (MergeRules{}): a member left out keeps its
// default; `max_per_type` changes the limits of the types it names (user_id stays 1 unless
// named); `blocked_values` adds to the built-in placeholders, which stay blocked. An unknown
// member, a wrong JSON type or a value out of range is InvalidArgument naming the member
// (unknown_field, invalid_type, invalid_value). Blocked values are kept trimmed and lower-cased,
// as compared.
// Stored rules are read with kIgnore, so that rules written by a newer build with members this
// one does not know still apply (what it knows of them).
enum class UnknownMembers { kRefuse, kIgnore };
absl::StatusOr<MergeRules> ParseMergeRules(std::string_view json,
                                           UnknownMembers unknown = UnknownMembers::kRefuse);

// The rules as a JSON object, every member present; ParseMergeRules reads it back unchanged.
std::string MergeRulesJson(const MergeRules& rules);

}  // namespace rapport::identity

#endif  // RAPPORT_IDENTITY_RULES_JSON_H_

// Identifiers and the merge protection rules of the identity graph. Pure logic: which of an
// event's identifiers may link, given the profiles they already belong to. The profile stage
// owns the stored graph and executes these plans (src/rapport/profile/).
//
// Thread safety: free functions and immutable values.
#ifndef RAPPORT_IDENTITY_IDENTIFIER_H_
#define RAPPORT_IDENTITY_IDENTIFIER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "rapport/wire/event_facts.h"

namespace rapport::identity {

// One identifier of a person: `type` is user_id, anonymous_id, email, phone, device_id or a
// custom type from context.externalIds (lower-case letters, digits, '_', '.', '-'; ≤ 64 bytes).
struct Identifier {
  std::string type;
  std::string value;

  std::string ToString() const { return type + ":" + value; }
  bool operator==(const Identifier&) const = default;
  auto operator<=>(const Identifier&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Identifier& id) {
    return H::combine(std::move(h), id.type, id.value);
  }
};

// Merge protection, per workspace (docs/identity.md). Defaults are those documented there.
struct MergeRules {
  // Most trusted first; "*" stands for every type not named. Default: user_id, email, phone,
  // *, device_id, anonymous_id.
  std::vector<std::string> priority = {"user_id", "email", "phone", "*", "device_id",
                                       "anonymous_id"};
  // At most this many identifiers of a type on one profile. Default: user_id 1 (two different
  // userIds never merge); every other type `default_max`.
  absl::flat_hash_map<std::string, int> max_per_type = {{"user_id", 1}};
  int default_max = 5;
  // Values that identify nobody (compared case-insensitively, after trimming); besides these,
  // a value made only of '0' and '-' (all zeros, all dashes, the nil UUID) is blocked.
  std::vector<std::string> blocked_values = {"", "null", "undefined", "anonymous", "0", "-1",
                                             "none", "nil", "unknown"};
  // Country calling code (digits, e.g. "31") for phone numbers written without one; "" = none,
  // such numbers are kept as digits without '+'.
  std::string default_country_code;

  int MaxFor(std::string_view type) const;
  // Smaller is more trusted.
  int RankOf(std::string_view type) const;
};

// Whether `type` can name an identifier type: lower-case letters, digits, '_', '.', '-'; 1 to 64
// bytes.
bool IsIdentifierType(std::string_view type);

// An identifier as the graph keeps it, or why the raw one identifies nobody
// (InvalidArgument with a sentence; code "blocked_value" or "invalid_identifier"):
//   email: trimmed, lower-cased, must look like local@domain;
//   phone: E.164 ("+" and 8–15 digits) where possible: spaces, dots, dashes and parentheses
//          dropped, "00" → "+", a leading "0" replaced by the default country code;
//   every type: at most 1024 bytes; blocked values refused.
absl::StatusOr<Identifier> Normalize(const wire::RawIdentifier& raw, const MergeRules& rules);

// What a profile that an identifier belongs to contributes to a link decision.
struct LinkedProfile {
  uint64_t id = 0;
  std::vector<Identifier> identifiers;
};

// Pairs of identifiers an operator split apart: never on one profile.
using Separations = absl::flat_hash_map<Identifier, absl::flat_hash_set<Identifier>>;

struct Dropped {
  Identifier identifier;
  std::string reason;  // a sentence, e.g. "would give profile 12 a second user_id (at most 1)"
  // The profile the identifier belongs to, which the link would have merged; 0 = none.
  uint64_t other_profile = 0;
};

// How one event's identifiers link: the profiles they join, and the identifiers left out.
struct LinkPlan {
  std::vector<Identifier> accepted;  // in priority order; never empty unless the input was
  std::vector<uint64_t> profiles;    // distinct profiles of the accepted identifiers, sorted
  std::vector<Dropped> dropped;      // in priority order
};

// Decides the link for `identifiers` (normalised; duplicates allowed). They are taken in
// priority order (then type, then value); the first is always accepted, and each next one only
// if the union of the accepted identifiers and of every profile they belong to stays within the
// limits and keeps every separated pair apart; else it is dropped with the reason. The result
// depends only on the arguments, never on the order of `identifiers`.
// `profile_of` returns the profile an identifier belongs to, or nullptr.
LinkPlan PlanLink(std::vector<Identifier> identifiers, const MergeRules& rules,
                  const Separations& separations,
                  const std::function<const LinkedProfile*(const Identifier&)>& profile_of);

}  // namespace rapport::identity

#endif  // RAPPORT_IDENTITY_IDENTIFIER_H_

// Keys as JSON (docs/api/keys.md):
//   POST /api/v1/keys  {"name": "support desk", "kind": "secret", "scopes": ["profiles:read"],
//                       "purposes": ["proactive_service"], "rate": {"per_second": 50, "burst": 100}}
#ifndef RAPPORT_TRUST_KEYS_JSON_H_
#define RAPPORT_TRUST_KEYS_JSON_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "rapport/trust/workspaces.h"

namespace rapport::trust {

// A new key's spec. `kind` defaults to "secret"; `name` is required; a secret key needs
// `scopes`; `purposes` and `rate` are optional. InvalidArgument naming the member for an
// unknown member (unknown_field), a wrong type (invalid_type) or a missing one (missing_field);
// Workspaces::CreateKey checks the values.
absl::StatusOr<KeySpec> ParseKeySpec(std::string_view json);

// A key as listed: id, name, kind, scopes, purposes (null = not restricted), rate (null = the
// server's default), created_at, last_used_at and revoked_at (null = never / live). Never the
// key itself.
std::string KeyJson(const KeyInfo& key);

}  // namespace rapport::trust

#endif  // RAPPORT_TRUST_KEYS_JSON_H_

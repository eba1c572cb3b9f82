// Workspaces and their API keys. A workspace is one company's (or one environment's) isolated
// data; every stored key begins with its id. Keys are random tokens shown once at creation and
// stored only as hashes (base::HashSecret):
//   write keys  "wk_…"  ingest only (/v1/*); may be embedded in public clients;
//   secret keys "sk_…"  rapport's own API (/api/v1/*), limited to their scopes.
//
// Thread safety: all methods may be called from any thread.
#ifndef RAPPORT_TRUST_WORKSPACES_H_
#define RAPPORT_TRUST_WORKSPACES_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "rapport/base/mutex.h"
#include "rapport/base/clock.h"
#include "rapport/store/store.h"

namespace rapport::trust {

// The scopes a secret key may hold within its workspace.
inline constexpr std::string_view kScopes[] = {"profiles:read", "profiles:write", "definitions:write", "decide",
                                               "consent", "gdpr"};
// The operator's scope: manage the server's workspaces (POST /api/v1/workspaces). Only keys
// created with `operator_key` hold it.
inline constexpr std::string_view kAdminScope = "admin";

struct Workspace {
  uint32_t id = 0;
  std::string name;
  base::Micros created_at = 0;
};

enum class KeyKind : uint8_t { kWrite = 'w', kSecret = 's' };

struct KeyInfo {
  uint32_t workspace = 0;
  KeyKind kind = KeyKind::kWrite;
  std::vector<std::string> scopes;  // secret keys only
  base::Micros created_at = 0;

  bool HasScope(std::string_view scope) const;
};

struct CreatedWorkspace {
  Workspace workspace;
  std::string write_key;   // shown once
  std::string secret_key;  // shown once; holds every scope in kScopes (and kAdminScope if asked)
};

class Workspaces {
 public:
  // Loads every workspace and key hash from `store` (not owned; must outlive this).
  static absl::StatusOr<std::unique_ptr<Workspaces>> Load(store::Store* store,
                                                          const base::Clock* clock);

  // Creates a workspace with one write key and one secret key with all of kScopes, plus
  // kAdminScope when `operator_key` (the bootstrap workspace of a new store, or
  // `rapport workspace create --admin`). `name`: 1-64 characters of a-z, 0-9, '-' and '_'
  // (InvalidArgument otherwise); AlreadyExists if taken.
  absl::StatusOr<CreatedWorkspace> Create(std::string_view name, bool operator_key = false);

  // The key's workspace and rights, or nullopt for a key that is unknown (or malformed).
  std::optional<KeyInfo> Authenticate(std::string_view key) const;

  std::optional<Workspace> Find(uint32_t id) const;
  std::optional<Workspace> FindByName(std::string_view name) const;
  std::vector<Workspace> List() const;

 private:
  Workspaces(store::Store* store, const base::Clock* clock) : store_(store), clock_(clock) {}

  store::Store* store_;
  const base::Clock* clock_;
  mutable base::Mutex mu_;
  absl::flat_hash_map<uint32_t, Workspace> by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint32_t> by_name_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, KeyInfo> keys_ ABSL_GUARDED_BY(mu_);  // by key hash
  base::Mutex create_mu_;  // serialises Create (id allocation and the name check)
};

// The username of an HTTP Basic `Authorization` header (Segment puts the write key there), or
// nullopt if the header is not Basic or not valid base64.
std::optional<std::string> BasicUser(std::string_view authorization);
// The token of an `Authorization: Bearer <token>` header, or nullopt.
std::optional<std::string> BearerToken(std::string_view authorization);

}  // namespace rapport::trust

#endif  // RAPPORT_TRUST_WORKSPACES_H_

// Workspaces and their API keys. A workspace is one company's (or one environment's) isolated
// data; every stored key begins with its id. Keys are random tokens shown once at creation and
// stored only as hashes (base::HashSecret):
//   write keys  "wk_…"  ingest only (/v1/*); may be embedded in public clients;
//   secret keys "sk_…"  rapport's own API (/api/v1/*), limited to their scopes and, if given,
//                       to purposes (reads through them show only what those purposes allow).
// Keys are listed with their last use and revoked at once (docs/api/keys.md).
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

// The scopes a secret key may hold within its workspace (docs/api/keys.md). `admin` manages the
// workspace's keys and reads its audit log.
inline constexpr std::string_view kScopes[] = {"profiles:read", "profiles:write", "definitions:write", "decide",
                                               "consent",       "gdpr",           "admin"};
// The operator's scope: manage the server's workspaces (POST /api/v1/workspaces) and, with
// `serve --clock=simulated`, its clock. Only the keys made with `operator_key` hold it; no API
// grants it.
inline constexpr std::string_view kOperatorScope = "operator";

// Limits on what a key may be made with.
inline constexpr size_t kMaxKeysPerWorkspace = 1000;  // live and revoked
inline constexpr size_t kMaxKeyNameBytes = 64;

struct Workspace {
  uint32_t id = 0;
  std::string name;
  base::Micros created_at = 0;
};

enum class KeyKind : uint8_t { kWrite = 'w', kSecret = 's' };
std::string_view KeyKindName(KeyKind kind);  // "write" / "secret"

// A per-key request rate (token bucket); 0 requests per second = the server's default.
struct KeyRate {
  double per_second = 0;
  double burst = 0;  // 0 = twice per_second
};

struct KeyInfo {
  std::string id;  // public: the first 16 hex digits of the key's hash; names it in lists and logs
  uint32_t workspace = 0;
  KeyKind kind = KeyKind::kWrite;
  std::string name;
  std::vector<std::string> scopes;    // secret keys only
  std::vector<std::string> purposes;  // secret keys only; empty = not restricted to purposes
  KeyRate rate;
  base::Micros created_at = 0;
  base::Micros last_used_at = 0;  // 0 = never; kept to the minute (see Authenticate)
  base::Micros revoked_at = 0;    // 0 = live

  bool HasScope(std::string_view scope) const;
  bool restricted() const { return !purposes.empty(); }
};

// What a new key may do. Scopes must be in kScopes; a write key has none, nor purposes.
struct KeySpec {
  KeyKind kind = KeyKind::kSecret;
  std::string name;
  std::vector<std::string> scopes;
  std::vector<std::string> purposes;
  KeyRate rate;
};

// OK, or InvalidArgument naming the field of `spec` at fault (Workspaces::CreateKey checks it).
absl::Status CheckKeySpec(const KeySpec& spec);

struct CreatedKey {
  KeyInfo info;
  std::string key;  // shown once
};

struct CreatedWorkspace {
  Workspace workspace;
  std::string write_key;   // shown once
  std::string secret_key;  // shown once; holds every scope in kScopes (and kOperatorScope if asked)
};

class Workspaces {
 public:
  // Loads every workspace and key hash from `store` (not owned; must outlive this).
  static absl::StatusOr<std::unique_ptr<Workspaces>> Load(store::Store* store,
                                                          const base::Clock* clock);

  // Creates a workspace with one write key and one secret key with all of kScopes, plus
  // kOperatorScope when `operator_key` (the bootstrap workspace of a new store, or
  // `rapport workspace create --admin`). `name`: 1-64 characters of a-z, 0-9, '-' and '_'
  // (InvalidArgument otherwise); AlreadyExists if taken.
  absl::StatusOr<CreatedWorkspace> Create(std::string_view name, bool operator_key = false);

  // A new key of workspace `ws` (InvalidArgument for a bad spec, naming the field;
  // ResourceExhausted beyond kMaxKeysPerWorkspace). Purposes are checked by the caller against
  // the workspace's purposes.
  absl::StatusOr<CreatedKey> CreateKey(uint32_t ws, const KeySpec& spec);
  // The workspace's keys, live and revoked, oldest first.
  std::vector<KeyInfo> ListKeys(uint32_t ws) const;
  // Revokes key `id` of `ws` at once: it no longer authenticates. NotFound (key_not_found) if
  // the workspace has no such key; FailedPrecondition (last_admin_key) when it is the last live
  // key with the admin scope, so a workspace cannot lock itself out. Revoking twice is OK.
  absl::StatusOr<KeyInfo> RevokeKey(uint32_t ws, std::string_view id);

  // The key's workspace and rights, or nullopt for a key that is unknown, revoked or malformed.
  // Notes the use: the last-use time is written at most once a minute per key.
  std::optional<KeyInfo> Authenticate(std::string_view key);

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
  absl::flat_hash_map<std::string, base::Micros> use_written_ ABSL_GUARDED_BY(mu_);  // by key hash
  base::Mutex create_mu_;  // serialises Create, CreateKey and RevokeKey (ids, names, counts)
};

// The username of an HTTP Basic `Authorization` header (Segment puts the write key there), or
// nullopt if the header is not Basic or not valid base64.
std::optional<std::string> BasicUser(std::string_view authorization);
// The token of an `Authorization: Bearer <token>` header, or nullopt.
std::optional<std::string> BearerToken(std::string_view authorization);

}  // namespace rapport::trust

#endif  // RAPPORT_TRUST_WORKSPACES_H_

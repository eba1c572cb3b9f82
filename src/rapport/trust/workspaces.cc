#include "rapport/trust/workspaces.h"

#include <fmt/format.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "rapport/base/crypto.h"
#include "rapport/base/endian.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"

namespace rapport::trust {
namespace {

// Meta key spaces (docs/formats/store.md):
//   "ws/" id(4)        → version(1) created_at(8) name
//   "wsname/" name     → id(4)
//   "key/" hash(hex)   → version(1) workspace(4) kind(1) created_at(8) scopes(comma-separated)
constexpr char kVersion = 1;

using base::GetU32;
using base::PutU32;
void PutI64(std::string* out, int64_t v) { base::PutU64(out, static_cast<uint64_t>(v)); }
int64_t GetI64(std::string_view in) { return static_cast<int64_t>(base::GetU64(in)); }

std::string WorkspaceKey(uint32_t id) {
  std::string k = "ws/";
  PutU32(&k, id);
  return k;
}

bool ValidName(std::string_view name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
         });
}

}  // namespace

bool KeyInfo::HasScope(std::string_view scope) const {
  return kind == KeyKind::kSecret && std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

absl::StatusOr<std::unique_ptr<Workspaces>> Workspaces::Load(store::Store* store,
                                                            const base::Clock* clock) {
  std::unique_ptr<Workspaces> w(new Workspaces(store, clock));
  absl::flat_hash_map<uint32_t, Workspace> by_id;
  absl::flat_hash_map<std::string, uint32_t> by_name;
  absl::flat_hash_map<std::string, KeyInfo> keys;
  absl::Status bad;
  RAPPORT_RETURN_IF_ERROR(store->ScanMeta("ws/", [&](std::string_view key, std::string_view value) {
    if (key.size() != 7 || value.size() < 9 || value[0] != kVersion) {
      bad = absl::DataLossError("a workspace record cannot be decoded");
      return false;
    }
    Workspace ws{GetU32(key.substr(3)), std::string(value.substr(9)), GetI64(value.substr(1))};
    by_name[ws.name] = ws.id;
    by_id[ws.id] = std::move(ws);
    return true;
  }));
  RAPPORT_RETURN_IF_ERROR(bad);
  RAPPORT_RETURN_IF_ERROR(store->ScanMeta("key/", [&](std::string_view key, std::string_view value) {
    if (value.size() < 14 || value[0] != kVersion) {
      bad = absl::DataLossError("a key record cannot be decoded");
      return false;
    }
    KeyInfo info;
    info.workspace = GetU32(value.substr(1));
    info.kind = static_cast<KeyKind>(value[5]);
    info.created_at = GetI64(value.substr(6));
    const std::string_view scopes = value.substr(14);
    if (!scopes.empty()) {
      for (absl::string_view s : absl::StrSplit(base::AsAbsl(scopes), ',')) {
        info.scopes.emplace_back(s);
      }
    }
    keys[std::string(key.substr(4))] = std::move(info);
    return true;
  }));
  RAPPORT_RETURN_IF_ERROR(bad);
  base::MutexLock lock(&w->mu_);
  w->by_id_ = std::move(by_id);
  w->by_name_ = std::move(by_name);
  w->keys_ = std::move(keys);
  return w;
}

absl::StatusOr<CreatedWorkspace> Workspaces::Create(std::string_view name, bool operator_key) {
  if (!ValidName(name)) {
    return base::InvalidField("invalid_field", "name",
                              fmt::format("workspace name '{}' must be 1-64 characters of a-z, "
                                          "0-9, '-' and '_'",
                                          name));
  }
  base::MutexLock create_lock(&create_mu_);
  uint32_t id = 1;
  {
    base::MutexLock lock(&mu_);
    if (by_name_.contains(std::string(name))) {
      return base::MakeError(absl::StatusCode::kAlreadyExists, "workspace_exists",
                             fmt::format("a workspace named '{}' already exists", name), "name");
    }
    for (const auto& [existing, ws] : by_id_) id = std::max(id, existing + 1);
  }
  CreatedWorkspace created;
  created.workspace = {id, std::string(name), clock_->Now()};
  created.write_key = base::RandomToken("wk_", 24);
  created.secret_key = base::RandomToken("sk_", 32);

  KeyInfo write{id, KeyKind::kWrite, {}, created.workspace.created_at};
  KeyInfo secret{id, KeyKind::kSecret, {}, created.workspace.created_at};
  for (std::string_view s : kScopes) secret.scopes.emplace_back(s);
  if (operator_key) secret.scopes.emplace_back(kAdminScope);

  auto key_record = [](const KeyInfo& k) {
    std::string v(1, kVersion);
    PutU32(&v, k.workspace);
    v.push_back(static_cast<char>(k.kind));
    PutI64(&v, k.created_at);
    v += absl::StrJoin(k.scopes, ",");
    return v;
  };
  std::string ws_value(1, kVersion);
  PutI64(&ws_value, created.workspace.created_at);
  ws_value += name;
  std::string id_value;
  PutU32(&id_value, id);
  const std::string write_hash = base::HashSecret(created.write_key);
  const std::string secret_hash = base::HashSecret(created.secret_key);
  RAPPORT_RETURN_IF_ERROR(store_->WriteMeta({{WorkspaceKey(id), ws_value},
                                             {"wsname/" + std::string(name), id_value},
                                             {"key/" + write_hash, key_record(write)},
                                             {"key/" + secret_hash, key_record(secret)}}));
  base::MutexLock lock(&mu_);
  by_id_[id] = created.workspace;
  by_name_[std::string(name)] = id;
  keys_[write_hash] = std::move(write);
  keys_[secret_hash] = std::move(secret);
  return created;
}

std::optional<KeyInfo> Workspaces::Authenticate(std::string_view key) const {
  if (key.size() < 4 || key.size() > 256) return std::nullopt;
  const std::string hash = base::HashSecret(key);
  base::MutexLock lock(&mu_);
  auto it = keys_.find(hash);
  if (it == keys_.end()) return std::nullopt;
  return it->second;
}

std::optional<Workspace> Workspaces::Find(uint32_t id) const {
  base::MutexLock lock(&mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<Workspace> Workspaces::FindByName(std::string_view name) const {
  base::MutexLock lock(&mu_);
  auto it = by_name_.find(std::string(name));
  if (it == by_name_.end()) return std::nullopt;
  return by_id_.at(it->second);
}

std::vector<Workspace> Workspaces::List() const {
  base::MutexLock lock(&mu_);
  std::vector<Workspace> out;
  for (const auto& [id, ws] : by_id_) out.push_back(ws);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

namespace {
// The credentials after `scheme` ("Basic ", "Bearer "; case-insensitive), or nullopt.
std::optional<std::string_view> Credentials(std::string_view authorization,
                                            std::string_view scheme) {
  if (authorization.size() <= scheme.size() ||
      !absl::EqualsIgnoreCase(base::AsAbsl(authorization.substr(0, scheme.size())),
                              base::AsAbsl(scheme))) {
    return std::nullopt;
  }
  return authorization.substr(scheme.size());
}
}  // namespace

std::optional<std::string> BasicUser(std::string_view authorization) {
  auto credentials = Credentials(authorization, "Basic ");
  std::string decoded;
  if (!credentials || !absl::Base64Unescape(base::AsAbsl(*credentials), &decoded)) {
    return std::nullopt;
  }
  return decoded.substr(0, decoded.find(':'));
}

std::optional<std::string> BearerToken(std::string_view authorization) {
  auto credentials = Credentials(authorization, "Bearer ");
  if (!credentials) return std::nullopt;
  return std::string(*credentials);
}

}  // namespace rapport::trust

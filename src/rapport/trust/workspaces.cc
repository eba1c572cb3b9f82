#include "rapport/trust/workspaces.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "rapport/base/codec.h"
#include "rapport/base/crypto.h"
#include "rapport/base/endian.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"
#include "rapport/base/utf8.h"

namespace rapport::trust {
namespace {

// Meta key spaces (docs/formats/store.md):
//   "ws/" id(4)        → version(1) created_at(8) name
//   "wsname/" name     → id(4)
//   "key/" hash(hex)   → version 2: U8(2) varint(workspace) U8(kind) signed(created_at)
//                        signed(revoked_at) bytes(name) bytes(scopes, comma-separated)
//                        bytes(purposes, comma-separated) fixed64(rate) fixed64(burst)
//                        version 1: U8(1) workspace(4) kind(1) created_at(8) scopes
//   "keyuse/" hash(hex) → last use, 8 bytes
constexpr char kVersion = 1;
constexpr uint8_t kKeyVersion = 2;
constexpr base::Micros kUseResolution = 60 * base::kMicrosPerSecond;
constexpr size_t kKeyIdDigits = 16;

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

std::vector<std::string> SplitList(std::string_view csv) {
  std::vector<std::string> out;
  if (csv.empty()) return out;
  for (absl::string_view s : absl::StrSplit(base::AsAbsl(csv), ',')) out.emplace_back(s);
  return out;
}

double ToDouble(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}
uint64_t Bits(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof d);
  return bits;
}

std::string KeyRecord(const KeyInfo& k) {
  base::Writer w;
  w.U8(kKeyVersion);
  w.Varint(k.workspace);
  w.U8(static_cast<uint8_t>(k.kind));
  w.Signed(k.created_at);
  w.Signed(k.revoked_at);
  w.Bytes(k.name);
  w.Bytes(absl::StrJoin(k.scopes, ","));
  w.Bytes(absl::StrJoin(k.purposes, ","));
  w.Fixed64(Bits(k.rate.per_second));
  w.Fixed64(Bits(k.rate.burst));
  return std::move(w).Finish();
}

std::optional<KeyInfo> DecodeKeyRecord(std::string_view hash, std::string_view value) {
  KeyInfo info;
  info.id = std::string(hash.substr(0, kKeyIdDigits));
  if (!value.empty() && value[0] == kVersion) {
    // Version 1 (before keys had names and purposes): a secret key then held every scope, and
    // "admin" meant the operator's.
    if (value.size() < 14) return std::nullopt;
    info.workspace = GetU32(value.substr(1));
    info.kind = static_cast<KeyKind>(value[5]);
    info.created_at = GetI64(value.substr(6));
    info.name = "default";
    info.scopes = SplitList(value.substr(14));
    if (info.kind == KeyKind::kSecret) {
      const bool was_operator = info.HasScope("admin");
      std::erase(info.scopes, std::string("admin"));
      for (std::string_view s : kScopes) {
        if (!info.HasScope(s)) info.scopes.emplace_back(s);
      }
      if (was_operator) info.scopes.emplace_back(kOperatorScope);
    }
    return info;
  }
  base::Reader r(value);
  uint8_t version = 0, kind = 0;
  uint64_t ws = 0, rate = 0, burst = 0;
  std::string_view scopes, purposes;
  r.U8(&version);
  r.Varint(&ws);
  r.U8(&kind);
  r.Signed(&info.created_at);
  r.Signed(&info.revoked_at);
  r.Bytes(&info.name);
  r.Bytes(&scopes);
  r.Bytes(&purposes);
  r.Fixed64(&rate);
  r.Fixed64(&burst);
  if (!r.done() || version != kKeyVersion || ws > UINT32_MAX ||
      (kind != static_cast<uint8_t>(KeyKind::kWrite) && kind != static_cast<uint8_t>(KeyKind::kSecret))) {
    return std::nullopt;
  }
  info.workspace = static_cast<uint32_t>(ws);
  info.kind = static_cast<KeyKind>(kind);
  info.scopes = SplitList(scopes);
  info.purposes = SplitList(purposes);
  info.rate = {ToDouble(rate), ToDouble(burst)};
  return info;
}

}  // namespace

absl::Status CheckKeySpec(const KeySpec& spec) {
  if (spec.name.empty() || spec.name.size() > kMaxKeyNameBytes || base::FindInvalidUtf8(spec.name) ||
      std::any_of(spec.name.begin(), spec.name.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return base::InvalidField("invalid_field", "name",
                              fmt::format("a key's name must be 1-{} bytes of text without control characters",
                                          kMaxKeyNameBytes),
                              static_cast<int64_t>(kMaxKeyNameBytes));
  }
  if (spec.kind == KeyKind::kWrite && (!spec.scopes.empty() || !spec.purposes.empty())) {
    return base::InvalidField("invalid_field", spec.scopes.empty() ? "purposes" : "scopes",
                              "a write key may only send events: it takes no scopes or purposes");
  }
  if (spec.kind == KeyKind::kSecret && spec.scopes.empty()) {
    return base::InvalidField("missing_field", "scopes", "give a secret key at least one scope");
  }
  for (const std::string& scope : spec.scopes) {
    if (std::find(std::begin(kScopes), std::end(kScopes), scope) == std::end(kScopes)) {
      return base::InvalidField("unknown_scope", "scopes",
                                fmt::format("'{}' is not a scope; scopes are {}", scope, fmt::join(kScopes, ", ")));
    }
  }
  for (const std::string& purpose : spec.purposes) {
    if (purpose.empty() || purpose.find(',') != std::string::npos) {
      return base::InvalidField("unknown_purpose", "purposes", fmt::format("'{}' is not a purpose", purpose));
    }
  }
  const KeyRate& rate = spec.rate;
  if (!(rate.per_second == 0 || (rate.per_second >= 0.001 && rate.per_second <= 1e6)) ||
      !(rate.burst == 0 || (rate.burst >= 1 && rate.burst <= 1e7)) || (rate.burst > 0 && rate.per_second == 0)) {
    return base::InvalidField("invalid_field", "rate",
                              "a key's rate is 0 (the server's default) or 0.001 to 1,000,000 requests a "
                              "second, with a burst of 1 to 10,000,000 (0 = twice the rate)");
  }
  return absl::OkStatus();
}

std::string_view KeyKindName(KeyKind kind) { return kind == KeyKind::kWrite ? "write" : "secret"; }

bool KeyInfo::HasScope(std::string_view scope) const {
  return kind == KeyKind::kSecret && std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

absl::StatusOr<std::unique_ptr<Workspaces>> Workspaces::Load(store::Store* store,
                                                            const base::Clock* clock) {
  std::unique_ptr<Workspaces> w(new Workspaces(store, clock));
  absl::flat_hash_map<uint32_t, Workspace> by_id;
  absl::flat_hash_map<std::string, uint32_t> by_name;
  absl::flat_hash_map<std::string, KeyInfo> keys;
  absl::flat_hash_map<std::string, base::Micros> used;
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
    std::optional<KeyInfo> info = DecodeKeyRecord(key.substr(4), value);
    if (!info) {
      bad = absl::DataLossError("a key record cannot be decoded");
      return false;
    }
    keys[std::string(key.substr(4))] = *std::move(info);
    return true;
  }));
  RAPPORT_RETURN_IF_ERROR(bad);
  RAPPORT_RETURN_IF_ERROR(store->ScanMeta("keyuse/", [&](std::string_view key, std::string_view value) {
    if (value.size() == 8) used[std::string(key.substr(7))] = GetI64(value);
    return true;
  }));
  for (auto& [hash, at] : used) {
    if (auto it = keys.find(hash); it != keys.end()) it->second.last_used_at = at;
  }
  base::MutexLock lock(&w->mu_);
  w->by_id_ = std::move(by_id);
  w->by_name_ = std::move(by_name);
  w->keys_ = std::move(keys);
  w->use_written_ = std::move(used);
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
  const std::string write_hash = base::HashSecret(created.write_key);
  const std::string secret_hash = base::HashSecret(created.secret_key);

  KeyInfo write{.id = write_hash.substr(0, kKeyIdDigits), .workspace = id, .kind = KeyKind::kWrite,
                .name = "default", .created_at = created.workspace.created_at};
  KeyInfo secret{.id = secret_hash.substr(0, kKeyIdDigits), .workspace = id, .kind = KeyKind::kSecret,
                 .name = "default", .created_at = created.workspace.created_at};
  for (std::string_view s : kScopes) secret.scopes.emplace_back(s);
  if (operator_key) secret.scopes.emplace_back(kOperatorScope);

  std::string ws_value(1, kVersion);
  PutI64(&ws_value, created.workspace.created_at);
  ws_value += name;
  std::string id_value;
  PutU32(&id_value, id);
  RAPPORT_RETURN_IF_ERROR(store_->WriteMeta({{WorkspaceKey(id), ws_value},
                                             {"wsname/" + std::string(name), id_value},
                                             {"key/" + write_hash, KeyRecord(write)},
                                             {"key/" + secret_hash, KeyRecord(secret)}}));
  base::MutexLock lock(&mu_);
  by_id_[id] = created.workspace;
  by_name_[std::string(name)] = id;
  keys_[write_hash] = std::move(write);
  keys_[secret_hash] = std::move(secret);
  return created;
}

absl::StatusOr<CreatedKey> Workspaces::CreateKey(uint32_t ws, const KeySpec& spec) {
  RAPPORT_RETURN_IF_ERROR(CheckKeySpec(spec));
  base::MutexLock create_lock(&create_mu_);
  {
    base::MutexLock lock(&mu_);
    if (!by_id_.contains(ws)) return absl::NotFoundError(fmt::format("there is no workspace {}", ws));
    size_t count = 0;
    for (const auto& [hash, k] : keys_) count += k.workspace == ws;
    if (count >= kMaxKeysPerWorkspace) {
      return base::MakeError(absl::StatusCode::kFailedPrecondition, "too_many_keys",
                             fmt::format("a workspace holds at most {} keys, revoked ones included",
                                         kMaxKeysPerWorkspace),
                             "", static_cast<int64_t>(kMaxKeysPerWorkspace));
    }
  }
  CreatedKey created;
  created.key = spec.kind == KeyKind::kWrite ? base::RandomToken("wk_", 24) : base::RandomToken("sk_", 32);
  const std::string hash = base::HashSecret(created.key);
  created.info = KeyInfo{.id = hash.substr(0, kKeyIdDigits), .workspace = ws, .kind = spec.kind,
                         .name = spec.name, .scopes = spec.scopes, .purposes = spec.purposes,
                         .rate = spec.rate, .created_at = clock_->Now()};
  RAPPORT_RETURN_IF_ERROR(store_->WriteMeta({{"key/" + hash, KeyRecord(created.info)}}));
  base::MutexLock lock(&mu_);
  keys_[hash] = created.info;
  return created;
}

std::vector<KeyInfo> Workspaces::ListKeys(uint32_t ws) const {
  base::MutexLock lock(&mu_);
  std::vector<KeyInfo> out;
  for (const auto& [hash, k] : keys_) {
    if (k.workspace == ws) out.push_back(k);
  }
  std::sort(out.begin(), out.end(),
            [](const KeyInfo& a, const KeyInfo& b) { return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id); });
  return out;
}

absl::StatusOr<KeyInfo> Workspaces::RevokeKey(uint32_t ws, std::string_view id) {
  base::MutexLock create_lock(&create_mu_);
  std::string hash;
  KeyInfo revoked;
  {
    base::MutexLock lock(&mu_);
    size_t live_admins = 0, live_operators = 0;
    for (const auto& [h, k] : keys_) {
      live_operators += !k.revoked_at && k.HasScope(kOperatorScope);
      if (k.workspace != ws) continue;
      if (k.id == id) hash = h;
      live_admins += !k.revoked_at && k.HasScope("admin");
    }
    if (hash.empty()) {
      return base::MakeError(absl::StatusCode::kNotFound, "key_not_found",
                             fmt::format("this workspace has no key '{}'", id));
    }
    revoked = keys_.at(hash);
    if (revoked.revoked_at) return revoked;
    if (revoked.HasScope("admin") && live_admins == 1) {
      return base::MakeError(absl::StatusCode::kFailedPrecondition, "last_admin_key",
                             "this is the workspace's last live key with the admin scope; create "
                             "another admin key before revoking it");
    }
    if (revoked.HasScope(kOperatorScope) && live_operators == 1) {
      return base::MakeError(absl::StatusCode::kFailedPrecondition, "last_operator_key",
                             "this is the server's last live operator key; make another with `rapport "
                             "workspace create NAME --admin` before revoking it");
    }
  }
  revoked.revoked_at = clock_->Now();
  RAPPORT_RETURN_IF_ERROR(store_->WriteMeta({{"key/" + hash, KeyRecord(revoked)}}));
  base::MutexLock lock(&mu_);
  keys_[hash].revoked_at = revoked.revoked_at;
  return revoked;
}

std::optional<KeyInfo> Workspaces::Authenticate(std::string_view key) {
  if (key.size() < 4 || key.size() > 256) return std::nullopt;
  const std::string hash = base::HashSecret(key);
  const base::Micros now = clock_->Now();
  std::optional<KeyInfo> info;
  bool write_use = false;
  {
    base::MutexLock lock(&mu_);
    auto it = keys_.find(hash);
    if (it == keys_.end() || it->second.revoked_at) return std::nullopt;
    it->second.last_used_at = std::max(it->second.last_used_at, now);
    base::Micros& written = use_written_[hash];
    if (now - written >= kUseResolution) {
      written = now;
      write_use = true;
    }
    info = it->second;
  }
  if (write_use) {
    // Not synced (the time of a use is not worth an fsync on the request's thread; the next
    // synced write carries it). A failed write means the store latched: it reports that itself.
    std::string at;
    PutI64(&at, now);
    (void)store_->WriteMeta({{"keyuse/" + hash, at}}, /*sync=*/false);
  }
  return info;
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

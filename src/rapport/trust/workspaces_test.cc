#include "rapport/trust/workspaces.h"

#include <gtest/gtest.h>

#include "rapport/base/crypto.h"
#include "rapport/base/endian.h"
#include "rapport/base/error.h"
#include "tests/lib/temp_dir.h"

namespace rapport::trust {
namespace {

std::unique_ptr<store::Store> Open(const std::string& path) {
  store::StoreOptions options;
  options.path = path;
  return std::move(*store::Store::Open(options));
}

TEST(Workspaces, CreateAuthenticateAndReload) {
  testing::TempDir dir;
  CreatedWorkspace created;
  std::string beta_secret;
  {
    auto store = Open(dir.path());
    auto ws = Workspaces::Load(store.get(), base::RealClock::Get());
    ASSERT_TRUE(ws.ok()) << ws.status();
    auto c = (*ws)->Create("acme", /*operator_key=*/true);
    ASSERT_TRUE(c.ok()) << c.status();
    created = *c;
    EXPECT_TRUE(created.write_key.starts_with("wk_"));
    EXPECT_TRUE(created.secret_key.starts_with("sk_"));
    EXPECT_EQ((*ws)->Create("acme").status().code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ((*ws)->Create("Not OK").status().code(), absl::StatusCode::kInvalidArgument);
    auto second = (*ws)->Create("beta");
    ASSERT_TRUE(second.ok());
    beta_secret = second->secret_key;
    EXPECT_NE(second->workspace.id, created.workspace.id);
  }
  auto store = Open(dir.path());
  auto ws = Workspaces::Load(store.get(), base::RealClock::Get());
  ASSERT_TRUE(ws.ok());
  auto write = (*ws)->Authenticate(created.write_key);
  ASSERT_TRUE(write.has_value());
  EXPECT_EQ(write->workspace, created.workspace.id);
  EXPECT_EQ(write->kind, KeyKind::kWrite);
  EXPECT_FALSE(write->HasScope("profiles:read"));
  auto secret = (*ws)->Authenticate(created.secret_key);
  ASSERT_TRUE(secret.has_value());
  EXPECT_TRUE(secret->HasScope("operator"));  // created as the operator's
  EXPECT_TRUE(secret->HasScope("admin"));
  EXPECT_TRUE(secret->HasScope("profiles:read"));
  auto tenant = (*ws)->Authenticate(beta_secret);
  ASSERT_TRUE(tenant.has_value());
  EXPECT_FALSE(tenant->HasScope("operator"));
  EXPECT_TRUE(tenant->HasScope("admin"));
  EXPECT_TRUE(tenant->HasScope("gdpr"));
  EXPECT_FALSE((*ws)->Authenticate("wk_nope").has_value());
  EXPECT_EQ((*ws)->FindByName("acme")->id, created.workspace.id);
  EXPECT_EQ((*ws)->List().size(), 2u);
}

TEST(Workspaces, KeysAreStoredOnlyAsHashes) {
  testing::TempDir dir;
  auto store = Open(dir.path());
  auto ws = Workspaces::Load(store.get(), base::RealClock::Get());
  auto created = (*ws)->Create("acme");
  bool found_plain = false;
  ASSERT_TRUE(store->ScanMeta("", [&](std::string_view k, std::string_view v) {
    found_plain |= k.find(created->secret_key) != std::string_view::npos ||
                   v.find(created->secret_key) != std::string_view::npos ||
                   k.find(created->write_key) != std::string_view::npos;
    return true;
  }).ok());
  EXPECT_FALSE(found_plain);
}

TEST(Workspaces, KeysAreCreatedListedRevokedAndRemembered) {
  testing::TempDir dir;
  base::SimulatedClock clock(1'700'000'000'000'000);
  std::string support_key, support_id;
  uint32_t acme = 0;
  {
    auto store = Open(dir.path());
    auto ws = Workspaces::Load(store.get(), &clock);
    auto created = (*ws)->Create("acme");
    acme = created->workspace.id;
    auto key = (*ws)->CreateKey(acme, {.kind = KeyKind::kSecret, .name = "support desk",
                                       .scopes = {"profiles:read"}, .purposes = {"proactive_service"},
                                       .rate = {50, 0}});
    ASSERT_TRUE(key.ok()) << key.status();
    support_key = key->key;
    support_id = key->info.id;
    EXPECT_TRUE(support_key.starts_with("sk_"));
    EXPECT_EQ(support_id.size(), 16u);
    EXPECT_EQ(base::HashSecret(support_key).substr(0, 16), support_id);

    clock.Advance(5'000'000);
    auto used = (*ws)->Authenticate(support_key);
    ASSERT_TRUE(used.has_value());
    EXPECT_EQ(used->purposes, std::vector<std::string>{"proactive_service"});
    EXPECT_TRUE(used->restricted());
    EXPECT_FALSE(used->HasScope("consent"));
    EXPECT_EQ(used->last_used_at, clock.Now());

    // Bad specs name their field.
    auto bad = [&](KeySpec spec) { return base::GetErrorDetails((*ws)->CreateKey(acme, spec).status()); };
    EXPECT_EQ(bad({.name = "x", .scopes = {"root"}}).code, "unknown_scope");
    EXPECT_EQ(bad({.name = "x", .scopes = {"operator"}}).code, "unknown_scope");  // never granted by API
    EXPECT_EQ(bad({.name = "x"}).field, "scopes");
    EXPECT_EQ(bad({.name = "", .scopes = {"decide"}}).field, "name");
    EXPECT_EQ(bad({.kind = KeyKind::kWrite, .name = "w", .scopes = {"decide"}}).field, "scopes");
    EXPECT_EQ(bad({.name = "x", .scopes = {"decide"}, .rate = {-1, 0}}).field, "rate");

    // The default admin key is the workspace's last: it cannot be revoked until there is another.
    auto keys = (*ws)->ListKeys(acme);
    ASSERT_EQ(keys.size(), 3u);
    std::string admin_id;
    for (const KeyInfo& k : keys) {
      if (k.kind == KeyKind::kSecret && k.name == "default") admin_id = k.id;
    }
    EXPECT_EQ(base::GetErrorDetails((*ws)->RevokeKey(acme, admin_id).status()).code, "last_admin_key");
    ASSERT_TRUE((*ws)->CreateKey(acme, {.name = "ops", .scopes = {"admin"}}).ok());
    EXPECT_TRUE((*ws)->RevokeKey(acme, admin_id).ok());
    EXPECT_FALSE((*ws)->Authenticate(created->secret_key).has_value());
    EXPECT_EQ(base::GetErrorDetails((*ws)->RevokeKey(acme, "0000").status()).code, "key_not_found");
    // The server's only operator key stays, whoever asks.
    auto op = (*ws)->Create("ops", /*operator_key=*/true);
    auto op_admin = (*ws)->CreateKey(op->workspace.id, {.name = "second admin", .scopes = {"admin"}});
    ASSERT_TRUE(op_admin.ok());
    const std::string op_id = (*ws)->Authenticate(op->secret_key)->id;
    EXPECT_EQ(base::GetErrorDetails((*ws)->RevokeKey(op->workspace.id, op_id).status()).code, "last_operator_key");
    auto other = (*ws)->Create("other");
    EXPECT_EQ((*ws)->RevokeKey(other->workspace.id, support_id).status().code(), absl::StatusCode::kNotFound);
    EXPECT_TRUE((*ws)->RevokeKey(acme, support_id).ok());
    EXPECT_FALSE((*ws)->Authenticate(support_key).has_value());
  }
  // After a restart: revocation, names, purposes, rate and the last use are all kept.
  auto store = Open(dir.path());
  auto ws = Workspaces::Load(store.get(), &clock);
  EXPECT_FALSE((*ws)->Authenticate(support_key).has_value());
  auto keys = (*ws)->ListKeys(acme);
  ASSERT_EQ(keys.size(), 4u);
  EXPECT_EQ(base::GetErrorDetails((*ws)->CreateKey(acme, {.name = "x", .scopes = {"decide"}, .rate = {1e-9, 0}}).status()).field, "rate");
  const KeyInfo* support = nullptr;
  for (const KeyInfo& k : keys) support = k.id == support_id ? &k : support;
  ASSERT_NE(support, nullptr);
  EXPECT_EQ(support->name, "support desk");
  EXPECT_EQ(support->rate.per_second, 50);
  EXPECT_EQ(support->purposes, std::vector<std::string>{"proactive_service"});
  EXPECT_EQ(support->last_used_at, 1'700'000'005'000'000);
  EXPECT_GT(support->revoked_at, 0);
}

TEST(Workspaces, VersionOneKeyRecordsAreRead) {
  testing::TempDir dir;
  auto store = Open(dir.path());
  // As written before keys had names: version 1, workspace 3, secret, created_at, scopes.
  std::string v(1, '\x01');
  base::PutU32(&v, 3);
  v.push_back('s');
  base::PutU64(&v, 1'700'000'000'000'000);
  v += "profiles:read,profiles:write,definitions:write,decide,consent,gdpr,admin";
  const std::string hash = base::HashSecret("sk_old");
  ASSERT_TRUE(store->WriteMeta({{"key/" + hash, v}}).ok());
  auto ws = Workspaces::Load(store.get(), base::RealClock::Get());
  ASSERT_TRUE(ws.ok()) << ws.status();
  auto key = (*ws)->Authenticate("sk_old");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->workspace, 3u);
  EXPECT_TRUE(key->HasScope("operator"));  // "admin" meant the operator's then
  EXPECT_TRUE(key->HasScope("admin"));
  EXPECT_TRUE(key->HasScope("gdpr"));
  EXPECT_EQ(key->name, "default");
}

TEST(AuthorizationHeaders, ParseBasicAndBearer) {
  // "wk_abc:" in base64, as Segment's libraries send the write key.
  EXPECT_EQ(BasicUser("Basic d2tfYWJjOg=="), "wk_abc");
  EXPECT_EQ(BasicUser("basic d2tfYWJj"), "wk_abc");
  EXPECT_FALSE(BasicUser("Basic %%%").has_value());
  EXPECT_FALSE(BasicUser("Bearer x").has_value());
  EXPECT_EQ(BearerToken("Bearer sk_1"), "sk_1");
  EXPECT_FALSE(BearerToken("Basic sk_1").has_value());
  EXPECT_FALSE(BearerToken("").has_value());
}

}  // namespace
}  // namespace rapport::trust

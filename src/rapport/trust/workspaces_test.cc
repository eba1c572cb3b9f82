#include "rapport/trust/workspaces.h"

#include <gtest/gtest.h>

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
  EXPECT_TRUE(secret->HasScope("admin"));  // created as the operator's
  EXPECT_TRUE(secret->HasScope("profiles:read"));
  auto tenant = (*ws)->Authenticate(beta_secret);
  ASSERT_TRUE(tenant.has_value());
  EXPECT_FALSE(tenant->HasScope("admin"));
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

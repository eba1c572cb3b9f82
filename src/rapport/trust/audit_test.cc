#include "rapport/trust/audit.h"

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

AuditEntry Read(std::string key, uint64_t profile, std::string action = "profile") {
  return {.key_id = std::move(key), .key_name = "support", .profile = profile, .action = std::move(action)};
}

std::vector<uint64_t> Profiles(const AuditPage& page) {
  std::vector<uint64_t> out;
  for (const AuditEntry& e : page.entries) out.push_back(e.profile);
  return out;
}

TEST(AuditLog, ListsNewestFirstByWorkspaceProfileKeyAndTime) {
  testing::TempDir dir;
  auto store = Open(dir.path());
  base::SimulatedClock clock(1'700'000'000'000'000);
  AuditLog log(store.get(), &clock);
  for (uint64_t p = 1; p <= 6; ++p) {
    ASSERT_TRUE(log.Record(1, Read(p % 2 ? "k1" : "k2", p)).ok());
    clock.Advance(1'000'000);
  }
  ASSERT_TRUE(log.Record(2, Read("other", 1)).ok());  // another workspace
  ASSERT_TRUE(log.Record(1, {.key_id = "k1", .action = "segment_members", .subject = "segment vip", .count = 3}).ok());

  auto all = log.List(1, {});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(Profiles(*all), (std::vector<uint64_t>{0, 6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(all->entries[0].subject, "segment vip");
  EXPECT_EQ(all->entries[0].count, 3u);
  EXPECT_EQ(all->entries[1].at, 1'700'000'005'000'000);
  EXPECT_TRUE(all->next_cursor.empty());

  EXPECT_EQ(Profiles(*log.List(1, {.profile = 3})), (std::vector<uint64_t>{3}));
  EXPECT_EQ(Profiles(*log.List(2, {.profile = 1})), (std::vector<uint64_t>{1}));
  EXPECT_EQ(log.List(2, {.profile = 1})->entries[0].key_id, "other");
  EXPECT_EQ(Profiles(*log.List(1, {.key_id = "k2"})), (std::vector<uint64_t>{6, 4, 2}));
  EXPECT_EQ(Profiles(*log.List(1, {.since = 1'700'000'002'000'000, .until = 1'700'000'004'000'000})),
            (std::vector<uint64_t>{4, 3}));
  EXPECT_TRUE(log.List(1, {.since = 1'700'000'004'000'000, .until = 1'700'000'002'000'000})->entries.empty());
  EXPECT_TRUE(log.List(1, {.until = -5})->entries.empty());

  // Pages of two, following the cursor, give every entry once.
  std::vector<uint64_t> paged;
  AuditQuery q{.limit = 2};
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 10);
    auto page = log.List(1, q);
    ASSERT_TRUE(page.ok());
    for (uint64_t p : Profiles(*page)) paged.push_back(p);
    if (page->next_cursor.empty()) break;
    q.cursor = page->next_cursor;
  }
  EXPECT_EQ(paged, Profiles(*all));
  EXPECT_EQ(base::GetErrorDetails(log.List(1, {.cursor = "zz"}).status()).code, "invalid_cursor");
}

TEST(AuditLog, EntriesOfTheSameMicrosecondAreAllKeptAndSurviveReopening) {
  testing::TempDir dir;
  base::SimulatedClock clock(1'700'000'000'000'000);  // time stands still
  {
    auto store = Open(dir.path());
    AuditLog log(store.get(), &clock);
    for (uint64_t p = 1; p <= 50; ++p) ASSERT_TRUE(log.Record(1, Read("k", p)).ok());
    ASSERT_TRUE(log.Sync().ok());
  }
  auto store = Open(dir.path());
  AuditLog log(store.get(), &clock);
  for (uint64_t p = 51; p <= 60; ++p) ASSERT_TRUE(log.Record(1, Read("k", p)).ok());
  auto page = log.List(1, {.limit = 1000});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->entries.size(), 60u);
  EXPECT_EQ(log.List(1, {.profile = 42})->entries.size(), 1u);
}

TEST(AuditLog, EntryJson) {
  AuditEntry e{.at = 1'700'000'000'000'000, .key_id = "ab12", .key_name = "desk \"1\"", .profile = 7,
               .action = "profile_events", .purposes = {"marketing", "necessary"}, .count = 2};
  EXPECT_EQ(AuditEntryJson(e),
            "{\"at\":\"2023-11-14T22:13:20.000Z\",\"key\":{\"id\":\"ab12\",\"name\":\"desk \\\"1\\\"\"},"
            "\"profile_id\":\"7\",\"action\":\"profile_events\",\"purposes\":[\"marketing\",\"necessary\"],"
            "\"subject\":null,\"count\":2}");
}

}  // namespace
}  // namespace rapport::trust

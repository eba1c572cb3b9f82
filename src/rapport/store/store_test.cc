#include "rapport/store/store.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "absl/strings/str_cat.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/store/envelope.h"

namespace rapport::store {
namespace {

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            absl::StrCat("rapport_store_test_", getpid(), "_", counter_++);
    std::filesystem::remove_all(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

EventWrite Event(std::string message_id, std::string user, base::Micros ts, uint32_t ws = 1) {
  EventWrite e;
  e.workspace = ws;
  e.message_id = std::move(message_id);
  e.user_id = std::move(user);
  e.timestamp = ts;
  e.received_at = ts;
  e.payload = absl::StrCat("{\"messageId\":\"", e.message_id, "\"}");
  return e;
}

std::unique_ptr<Store> OpenStore(const std::string& path, const base::Clock* clock = nullptr,
                                 base::Registry* metrics = nullptr) {
  StoreOptions options;
  options.path = path;
  if (clock) options.clock = clock;
  options.metrics = metrics;
  auto store = Store::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return std::move(*store);
}

// Runs `fn` on the `meta` column family of a closed store, through RocksDB itself.
void WithMeta(const std::string& path, const std::function<void(rocksdb::DB*, rocksdb::ColumnFamilyHandle*)>& fn) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), path, descriptors, &handles, &db).ok());
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "meta") fn(db, handles[i]);
  }
  for (rocksdb::ColumnFamilyHandle* h : handles) db->DestroyColumnFamilyHandle(h);
  delete db;
}

void SetFormat(const std::string& path, const std::string& format) {
  WithMeta(path, [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta) {
    EXPECT_TRUE(db->Put(rocksdb::WriteOptions(), meta, "format", format).ok());
  });
}

std::string Format(const std::string& path) {
  std::string format;
  WithMeta(path, [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta) {
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), meta, "format", &format).ok());
  });
  return format;
}

TEST(Store, OpensOlderFormatsAsThreeAndRefusesUnknownFormats) {
  TempDir dir;
  OpenStore(dir.path()).reset();
  EXPECT_EQ(Format(dir.path()), "3");
  // A store written before derived records had format 2, or before sealed records: opened, and
  // marked so that an older build refuses it rather than misread the records this build writes.
  for (const char* older : {"1", "2"}) {
    SetFormat(dir.path(), older);
    OpenStore(dir.path()).reset();
    EXPECT_EQ(Format(dir.path()), "3");
  }
  SetFormat(dir.path(), "7");
  StoreOptions options;
  options.path = dir.path();
  auto refused = Store::Open(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("format version 7"), std::string::npos) << refused.status();
}

TEST(Store, KeepsToTheMasterKeyItWasWrittenWith) {
  TempDir dir;
  OpenStore(dir.path()).reset();  // a new store makes its key
  const std::string key_file = dir.path() + "/master.key";
  ASSERT_TRUE(std::filesystem::exists(key_file));
  EXPECT_EQ(std::filesystem::status(key_file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  StoreOptions options;
  options.path = dir.path();
  ASSERT_TRUE(Store::Open(options).ok());  // the same key again
  // Another key, a missing one, a malformed one: refused with a reason, nothing overwritten.
  const std::string other = dir.path() + "/other.key";
  {
    std::ofstream(other) << std::string(64, 'a') << "\n";
  }
  options.master_key_file = other;
  EXPECT_EQ(base::GetErrorDetails(Store::Open(options).status()).code, "master_key_mismatch");
  options.master_key_file = dir.path() + "/nowhere.key";
  EXPECT_EQ(base::GetErrorDetails(Store::Open(options).status()).code, "master_key_missing");
  EXPECT_FALSE(std::filesystem::exists(options.master_key_file)) << "no new key for a store that had one";
  {
    std::ofstream(other) << "not hex";
  }
  options.master_key_file = other;
  EXPECT_EQ(base::GetErrorDetails(Store::Open(options).status()).code, "master_key_invalid");
  options.master_key_file = "";
  EXPECT_TRUE(Store::Open(options).ok());
}

// What is sealed is not on disk in plaintext, reads back through its key, and is gone for good
// once the key is destroyed and purged.
TEST(Store, SealedEventsAreUnreadableOnceTheirKeyIsDestroyed) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::string sealed;
  ASSERT_TRUE(store->RunExclusiveAndWait([&](StateTxn& t) -> absl::Status {
    RAPPORT_RETURN_IF_ERROR(t.Seal(1, 7, "aad", "trait: Ada Lovelace-Byron", &sealed));  // makes key 7
    t.Put("z-sealed", sealed);
    return absl::OkStatus();
  }).ok());
  EXPECT_EQ(sealed.find("Lovelace"), std::string::npos);
  auto reader = store->NewStateReader();
  EXPECT_EQ(*reader->Open(1, "aad", sealed), "trait: Ada Lovelace-Byron");
  EXPECT_EQ(reader->Open(2, "aad", sealed).status().code(), absl::StatusCode::kNotFound);  // another workspace
  EXPECT_EQ(reader->KeyedHash(1, "x").size(), 32u);
  EXPECT_NE(reader->KeyedHash(1, "x"), reader->KeyedHash(2, "x"));
  reader.reset();  // (an open snapshot would keep the key in the table files until it closes)
  ASSERT_TRUE(store->RunExclusiveAndWait([](StateTxn& t) {
    t.DestroyDataKey(1, 7);
    return absl::OkStatus();
  }).ok());
  ASSERT_TRUE(store->Purge(1, {7}).ok());
  auto later = store->NewStateReader();
  EXPECT_EQ(base::GetErrorDetails(later->Open(1, "aad", sealed).status()).code, "data_key_destroyed");
}

TEST(Store, StoresAndReadsBackPerPersonInTimeOrder) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  // Arrival order differs from event-time order.
  auto r = store->CommitEventsAndWait(
      {Event("m3", "alice", 300), Event("m1", "alice", 100), Event("b1", "bob", 50),
       Event("m2", "alice", 200)});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 4u);
  for (const auto& result : *r) EXPECT_EQ(result.outcome, WriteOutcome::kStored);

  auto page = store->ReadPersonEvents(1, IdKind::kUserId, "alice", "", 10);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->events.size(), 3u);
  EXPECT_EQ(page->events[0].payload, "{\"messageId\":\"m1\"}");
  EXPECT_EQ(page->events[1].payload, "{\"messageId\":\"m2\"}");
  EXPECT_EQ(page->events[2].payload, "{\"messageId\":\"m3\"}");
  EXPECT_TRUE(page->next_cursor.empty());
  // Another workspace sees nothing of workspace 1.
  auto other = store->ReadPersonEvents(2, IdKind::kUserId, "alice", "", 10);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->events.empty());
}

TEST(Store, PersonsWhoseIdsPrefixEachOtherStayApart) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  const std::string long_id(300, 'a');  // the length's high byte is used
  std::vector<EventWrite> events;
  int n = 0;
  for (const std::string& id : {std::string("ab"), std::string("abc"), std::string("a"), long_id,
                                long_id + "a", std::string("")}) {
    if (id.empty()) continue;
    for (int i = 0; i < 3; ++i) events.push_back(Event(absl::StrCat("m", n++), id, 100 - i));
  }
  // Flushed and unflushed entries must both be found: write, compact (flush), write more.
  ASSERT_TRUE(store->CommitEventsAndWait(events).ok());
  ASSERT_TRUE(store->CompactAll().ok());
  ASSERT_TRUE(store->CommitEventsAndWait({Event("late", "ab", 0)}).ok());
  for (const std::string& id : {std::string("ab"), std::string("abc"), std::string("a"), long_id,
                                long_id + "a"}) {
    auto page = store->ReadPersonEvents(1, IdKind::kUserId, id, "", 100);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->events.size(), id == "ab" ? 4u : 3u) << id.size();
    for (size_t i = 1; i < page->events.size(); ++i) {
      EXPECT_LE(page->events[i - 1].timestamp, page->events[i].timestamp);
    }
  }
  EXPECT_TRUE(store->ReadPersonEvents(1, IdKind::kUserId, "b", "", 100)->events.empty());
}

TEST(Store, PagesCoverEveryEventOnce) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  std::vector<EventWrite> events;
  for (int i = 0; i < 95; ++i) events.push_back(Event(absl::StrCat("m", i), "u", (i * 7919) % 101));
  ASSERT_TRUE(store->CommitEventsAndWait(std::move(events)).ok());
  std::string cursor;
  std::set<std::string> seen;
  base::Micros last = -1;
  int pages = 0;
  do {
    auto page = store->ReadPersonEvents(1, IdKind::kUserId, "u", cursor, 10);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& e : page->events) {
      EXPECT_GE(e.timestamp, last);
      last = e.timestamp;
      EXPECT_TRUE(seen.insert(e.payload).second);
    }
    cursor = page->next_cursor;
    ++pages;
  } while (!cursor.empty());
  EXPECT_EQ(seen.size(), 95u);
  EXPECT_EQ(pages, 10);
  EXPECT_FALSE(store->ReadPersonEvents(1, IdKind::kUserId, "u", "not-a-cursor", 10).ok());
}

TEST(Store, DeduplicatesWithinARequestAcrossRequestsAndAcrossRestarts) {
  TempDir dir;
  uint64_t first_seq;
  {
    auto store = OpenStore(dir.path());
    auto r = store->CommitEventsAndWait({Event("a", "u", 1), Event("a", "u", 1)});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)[0].outcome, WriteOutcome::kStored);
    EXPECT_EQ((*r)[1].outcome, WriteOutcome::kDuplicate);
    EXPECT_EQ((*r)[1].seq, (*r)[0].seq);
    first_seq = (*r)[0].seq;
    // Same messageId in another workspace is a different event.
    auto other = store->CommitEventsAndWait({Event("a", "u", 1, /*ws=*/2)});
    EXPECT_EQ((*other)[0].outcome, WriteOutcome::kStored);
  }
  auto store = OpenStore(dir.path());
  auto r = store->CommitEventsAndWait({Event("a", "u", 1), Event("b", "u", 2)});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kDuplicate);
  EXPECT_EQ((*r)[0].seq, first_seq);
  EXPECT_EQ((*r)[1].outcome, WriteOutcome::kStored);
  EXPECT_GT((*r)[1].seq, first_seq + 1);  // sequence numbers continue after a restart
  auto page = store->ReadPersonEvents(1, IdKind::kUserId, "u", "", 10);
  EXPECT_EQ(page->events.size(), 2u);
}

TEST(Store, DedupeWindowExpiresAndCompactionReclaimsIt) {
  TempDir dir;
  base::SimulatedClock clock(1'000'000'000'000'000);
  auto store = OpenStore(dir.path(), &clock);
  ASSERT_EQ((*store->CommitEventsAndWait({Event("a", "u", 1)}))[0].outcome, WriteOutcome::kStored);
  clock.Advance(7 * base::kMicrosPerDay - 1);
  EXPECT_EQ((*store->CommitEventsAndWait({Event("a", "u", 1)}))[0].outcome,
            WriteOutcome::kDuplicate);
  clock.Advance(2);
  ASSERT_TRUE(store->CompactAll().ok());
  EXPECT_EQ((*store->CommitEventsAndWait({Event("a", "u", 1)}))[0].outcome, WriteOutcome::kStored);
}

TEST(Store, ConcurrentCommitsStoreEachEventExactlyOnceInSharedSyncs) {
  TempDir dir;
  base::Registry metrics;
  auto store = OpenStore(dir.path(), nullptr, &metrics);
  constexpr int kThreads = 8, kRequests = 40, kPerRequest = 5;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<uint64_t> seqs;
  int duplicates = 0;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRequests; ++r) {
        std::vector<EventWrite> events;
        // Every messageId is sent by two threads: exactly one of them stores it.
        for (int i = 0; i < kPerRequest; ++i) {
          events.push_back(Event(absl::StrCat("m", t / 2, "-", r, "-", i), "u", r));
        }
        auto result = store->CommitEventsAndWait(std::move(events));
        ASSERT_TRUE(result.ok()) << result.status();
        std::lock_guard lock(mu);
        for (const auto& e : *result) {
          if (e.outcome == WriteOutcome::kStored) {
            EXPECT_TRUE(seqs.insert(e.seq).second);
          } else {
            ++duplicates;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seqs.size(), size_t{kThreads / 2 * kRequests * kPerRequest});
  EXPECT_EQ(duplicates, kThreads / 2 * kRequests * kPerRequest);
  int stored = 0;
  ASSERT_TRUE(store->ScanEvents(0, [&](const StoredEvent&) { return ++stored, true; }).ok());
  EXPECT_EQ(stored, kThreads / 2 * kRequests * kPerRequest);
  // Group commit: fewer write groups than requests.
  auto& groups = metrics.GetHistogram("rapport_store_commit_group_requests", "",
                                      base::CountBuckets());
  EXPECT_LT(groups.Count(), uint64_t{kThreads * kRequests});
}

TEST(Store, ScanIsInArrivalOrderFromASequence) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  auto r = store->CommitEventsAndWait({Event("x", "u", 30), Event("y", "u", 10), Event("z", "u", 20)});
  std::vector<std::string> order;
  ASSERT_TRUE(store->ScanEvents((*r)[1].seq, [&](const StoredEvent& e) {
    order.push_back(e.payload);
    return true;
  }).ok());
  EXPECT_EQ(order, (std::vector<std::string>{"{\"messageId\":\"y\"}", "{\"messageId\":\"z\"}"}));
}

TEST(Store, SecondWriterIsRefusedButAReaderMayOpen) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store->CommitEventsAndWait({Event("a", "u", 1)}).ok());
  StoreOptions options;
  options.path = dir.path();
  auto second = Store::Open(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use"), std::string_view::npos);

  options.read_only = true;
  auto reader = Store::Open(options);
  ASSERT_TRUE(reader.ok()) << reader.status();
  int n = 0;
  ASSERT_TRUE((*reader)->ScanEvents(0, [&](const StoredEvent&) { return ++n, true; }).ok());
  EXPECT_EQ(n, 1);
  EXPECT_EQ((*reader)->CommitEventsAndWait({Event("b", "u", 1)}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(Store, AFullQueueRefusesAtOnceAndAnswersExactlyOnce) {
  TempDir dir;
  StoreOptions options;
  options.path = dir.path();
  options.max_queued_requests = 0;
  auto store = Store::Open(options);
  ASSERT_TRUE(store.ok());
  int calls = 0;
  absl::Status answer;
  (*store)->CommitEvents({Event("a", "u", 1)}, [&](absl::StatusOr<std::vector<EventResult>> r) {
    ++calls;
    answer = r.status();
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(answer.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(answer.message().find("overloaded"), std::string_view::npos);
}

TEST(Store, MetaIsDurableAndScannable) {
  TempDir dir;
  {
    auto store = OpenStore(dir.path());
    ASSERT_TRUE(store->WriteMeta({{"w/1", "one"}, {"w/2", "two"}, {"x/1", "other"}}).ok());
  }
  auto store = OpenStore(dir.path());
  std::vector<std::string> seen;
  ASSERT_TRUE(store->ScanMeta("w/", [&](std::string_view k, std::string_view v) {
    seen.push_back(std::string(k) + "=" + std::string(v));
    return true;
  }).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"w/1=one", "w/2=two"}));
  EXPECT_EQ(**store->GetMeta("x/1"), "other");
  EXPECT_FALSE(store->GetMeta("nope")->has_value());
}

TEST(Envelope, RefusesKindsItDoesNotKnow) {
  std::string sealed;
  SealPersonalData("secret", &sealed);
  EXPECT_EQ(*OpenPersonalData(sealed), "secret");
  EXPECT_EQ(*EnvelopeKeyId(sealed), 0u);
  sealed[1] = 2;
  EXPECT_EQ(OpenPersonalData(sealed).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(OpenPersonalData("\x01").ok());
}

TEST(Envelope, SealsWithADataKey) {
  DataKey key, other;
  key.fill(1);
  other.fill(2);
  std::string a, b;
  SealPersonalData(key, 77, "where", "alice@example.com", &a);
  SealPersonalData(key, 77, "where", "alice@example.com", &b);
  EXPECT_NE(a, b);  // a fresh nonce each time
  EXPECT_EQ(a.find("alice"), std::string::npos);
  EXPECT_EQ(*EnvelopeKeyId(a), 77u);
  EXPECT_EQ(*OpenPersonalData(key, "where", a), "alice@example.com");
  EXPECT_EQ(OpenPersonalData(other, "where", a).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(OpenPersonalData(key, "elsewhere", a).status().code(), absl::StatusCode::kDataLoss);
  // Without its key it cannot be taken for plaintext.
  EXPECT_EQ(OpenPersonalData(a).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(OpenPersonalData(key, "where", a.substr(0, 20)).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Store, IntervalSyncCommitsPromptly) {
  TempDir dir;
  StoreOptions options;
  options.path = dir.path();
  options.sync = {SyncPolicy::Mode::kInterval, 50};
  auto store = Store::Open(options);
  ASSERT_TRUE(store.ok());
  // Many commits while the syncer thread is also waiting: none may wait for a later one.
  for (int i = 0; i < 200; ++i) {
    std::promise<absl::StatusOr<std::vector<EventResult>>> done;
    auto answer = done.get_future();
    (*store)->CommitEvents({Event(absl::StrCat("i", i), "u", i)},
                           [&done](auto r) { done.set_value(std::move(r)); });
    ASSERT_EQ(answer.wait_for(std::chrono::seconds(5)), std::future_status::ready) << i;
    ASSERT_TRUE(answer.get().ok());
    if (i % 20 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(55));
  }
}

TEST(ParseSyncPolicy, AcceptsTheDocumentedForms) {
  EXPECT_EQ(ParseSyncPolicy("always")->mode, SyncPolicy::Mode::kAlways);
  auto interval = ParseSyncPolicy("interval:50");
  ASSERT_TRUE(interval.ok());
  EXPECT_EQ(interval->mode, SyncPolicy::Mode::kInterval);
  EXPECT_EQ(interval->interval_ms, 50);
  EXPECT_FALSE(ParseSyncPolicy("interval:0").ok());
  EXPECT_FALSE(ParseSyncPolicy("interval:").ok());
  EXPECT_FALSE(ParseSyncPolicy("never").ok());
}


// Counts events per user in the state (an event whose messageId starts with "reset" deletes the
// count instead), and can be told to fail. It refuses events whose messageId starts with
// "refuse" (storing nothing for them) and stores "{}" instead of those starting with "shrink".
class CountingHook final : public CommitHook {
 public:
  struct Prepared final : PreparedEvent {
    std::string user;
  };
  absl::StatusOr<std::unique_ptr<PreparedEvent>> Prepare(const EventWrite& e) const override {
    auto p = std::make_unique<Prepared>();
    p->user = e.user_id;
    return p;
  }
  absl::StatusOr<Verdict> Apply(const EventWrite& e, uint64_t seq, const PreparedEvent& prepared,
                                StateTxn& state) override {
    if (fail_on == e.message_id) return absl::InternalError("told to fail");
    if (e.message_id.starts_with("refuse")) return Verdict{absl::PermissionDeniedError("refused")};
    if (e.message_id.starts_with("shrink")) {
      // While the hook works, the group's readers see the reduced form.
      state.ReplaceEvent(seq, "{}");
      auto event = state.ReadEvent(seq);
      if (!event.ok() || !*event || (*event)->payload != "{}") return absl::InternalError("not replaced");
      return Verdict{absl::PermissionDeniedError("shrunk"), "{}"};
    }
    const std::string key = "count/" + static_cast<const Prepared&>(prepared).user;
    auto current = state.Get(key);
    if (!current.ok()) return current.status();
    // Reads see this group's earlier writes, and its events.
    auto event = state.ReadEvent(seq);
    if (!event.ok() || !*event || (*event)->payload != e.payload) {
      return absl::InternalError("the event being applied is not readable");
    }
    const int read = current->has_value() ? std::stoi(**current) : 0;
    reads.push_back({seq, static_cast<const Prepared&>(prepared).user, read});
    if (e.message_id.starts_with("reset")) {
      state.Delete(key);
    } else {
      state.Put(key, std::to_string(read + 1));
    }
    return Verdict{};
  }
  void AfterGroup(bool committed) override { (committed ? commits : failures)++; }

  std::string fail_on;
  int commits = 0;
  int failures = 0;
  struct Read {
    uint64_t seq;
    std::string user;
    int count;  // the count the event saw (0: none)
  };
  std::vector<Read> reads;  // every Apply, on the writer thread
};

std::map<std::string, std::string> ScanAll(StateReader& reader, std::string_view prefix,
                                           std::string_view from = "") {
  std::map<std::string, std::string> out;
  EXPECT_TRUE(reader
                  .Scan(prefix, from,
                        [&](std::string_view k, std::string_view v) {
                          out.emplace(k, v);
                          return true;
                        })
                  .ok());
  return out;
}

TEST(Store, HookAppliesInTheSameBatchAndSeesEarlierWritesOfTheGroup) {
  TempDir dir;
  CountingHook hook;
  StoreOptions options;
  options.path = dir.path();
  options.hook = &hook;
  auto store = *Store::Open(options);
  ASSERT_TRUE(store->CommitEventsAndWait({Event("a1", "alice", 1), Event("a2", "alice", 2),
                                          Event("b1", "bob", 3), Event("a1", "alice", 1)})
                  .ok());
  auto reader = store->NewStateReader();
  EXPECT_EQ(ScanAll(*reader, "count/"),
            (std::map<std::string, std::string>{{"count/alice", "2"}, {"count/bob", "1"}}));
  EXPECT_EQ(ScanAll(*reader, "count/", "count/b").size(), 1u);

  // A failing hook fails the whole group: neither the events nor the state are written.
  hook.fail_on = "a4";
  auto failed = store->CommitEventsAndWait({Event("a3", "alice", 4), Event("a4", "alice", 5)});
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(hook.failures, 1);
  hook.fail_on.clear();
  auto again = store->CommitEventsAndWait({Event("a3", "alice", 4)});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].outcome, WriteOutcome::kStored);
  reader = store->NewStateReader();
  EXPECT_EQ(*reader->Get("count/alice"), "3");
}

// A refused event is not stored and takes no seq; one stored in a reduced form is stored as
// that, and deduplicated like any other.
TEST(Store, HookRefusesEventsOrStoresThemReduced) {
  TempDir dir;
  CountingHook hook;
  StoreOptions options;
  options.path = dir.path();
  options.hook = &hook;
  auto store = *Store::Open(options);
  auto results = store->CommitEventsAndWait(
      {Event("a1", "alice", 1), Event("refuse-1", "alice", 2), Event("shrink-1", "alice", 3),
       Event("a2", "alice", 4)});
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 4u);
  EXPECT_EQ((*results)[0].outcome, WriteOutcome::kStored);
  EXPECT_EQ((*results)[1].outcome, WriteOutcome::kRefused);
  EXPECT_EQ((*results)[1].reason.message(), "refused");
  EXPECT_EQ((*results)[1].seq, 0u);
  EXPECT_EQ((*results)[2].outcome, WriteOutcome::kRefused);
  EXPECT_EQ((*results)[2].reason.message(), "shrunk");
  EXPECT_EQ((*results)[2].seq, (*results)[0].seq + 1);  // the refused one took no seq
  EXPECT_EQ((*results)[3].seq, (*results)[0].seq + 2);
  std::vector<std::pair<uint64_t, std::string>> stored;
  ASSERT_TRUE(store->ScanEvents(0, [&](const StoredEvent& e) {
    stored.emplace_back(e.seq, e.payload);
    return true;
  }).ok());
  ASSERT_EQ(stored.size(), 3u);
  EXPECT_EQ(stored[1], std::make_pair((*results)[2].seq, std::string("{}")));
  auto page = store->ReadPersonEvents(1, IdKind::kUserId, "alice", "", 10);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->events.size(), 3u);

  // The refused one left no dedupe record: sent again, it is judged again. The reduced one did.
  auto again = store->CommitEventsAndWait({Event("refuse-1", "alice", 2), Event("shrink-1", "alice", 3)});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].outcome, WriteOutcome::kRefused);
  EXPECT_EQ((*again)[1].outcome, WriteOutcome::kDuplicate);
}

// The writer applies a group while the committer is still writing earlier ones: every
// read-modify-write must see every earlier group's writes, whether they are still in flight, in
// the state cache, evicted from it, or only in RocksDB. Counts per user must come out exact,
// under concurrent commits, deletes, duplicates and exclusive tasks that scan (and so wait for
// the groups in flight), with the cache off, tiny (constant eviction) and large.
TEST(Store, PipelinedGroupsSeeEveryEarlierWrite) {
  for (size_t cache_bytes : {size_t{0}, size_t{2048}, size_t{1} << 20}) {
    SCOPED_TRACE(cache_bytes);
    TempDir dir;
    CountingHook hook;
    StoreOptions options;
    options.path = dir.path();
    options.hook = &hook;
    options.state_cache_bytes = cache_bytes;
    auto store = *Store::Open(options);
    constexpr int kThreads = 8, kRequests = 40, kPerRequest = 4, kUsers = 2;
    std::mutex mu;
    // Per user, the stored events by seq (from the results): true for a reset.
    std::map<std::string, std::map<uint64_t, bool>> stored;
    std::atomic<bool> stop = false;
    // Scans see the database itself, so they wait for the groups in flight: every count they
    // see is one a hook wrote (a whole number ≥ 1; a reset deletes the key).
    std::thread scanner([&] {
      while (!stop) {
        ASSERT_TRUE(store
                        ->RunExclusiveAndWait([&](StateTxn& t) {
                          for (const auto& [k, v] : ScanAll(t, "count/")) EXPECT_GE(std::stoi(v), 1) << k;
                          return absl::OkStatus();
                        })
                        .ok());
      }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int r = 0; r < kRequests; ++r) {
          std::vector<EventWrite> events;
          for (int i = 0; i < kPerRequest; ++i) {
            // Threads t and t+1 send the same messageIds: one of each pair is a duplicate.
            const bool reset = i == kPerRequest - 1 && r % 2 == 1;  // last: a group may end on it
            events.push_back(Event(absl::StrCat(reset ? "reset" : "m", t / 2, "-", r, "-", i),
                                   absl::StrCat("u", (r + i) % kUsers), r));
          }
          std::vector<std::pair<std::string, bool>> users;
          for (const EventWrite& e : events) users.emplace_back(e.user_id, e.message_id.starts_with("reset"));
          auto result = store->CommitEventsAndWait(std::move(events));
          ASSERT_TRUE(result.ok()) << result.status();
          std::lock_guard lock(mu);
          for (size_t i = 0; i < result->size(); ++i) {
            if ((*result)[i].outcome == WriteOutcome::kStored) {
              stored[users[i].first][(*result)[i].seq] = users[i].second;
            }
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    stop = true;
    scanner.join();
    auto reader = store->NewStateReader();
    std::map<std::string, std::string> expected;
    std::map<uint64_t, int> expected_read;  // by seq: the count the event must have seen
    size_t total = 0;
    for (const auto& [user, events] : stored) {
      int count = 0;  // applied in seq order: a reset deletes, the rest count
      for (const auto& [seq, reset] : events) {
        expected_read[seq] = count;
        count = reset ? 0 : count + 1;
      }
      if (!events.rbegin()->second) expected["count/" + user] = std::to_string(count);
      total += events.size();
    }
    // Every read, not only the last: a stale one is caught even when a later reset hides it.
    ASSERT_EQ(hook.reads.size(), total);
    for (const auto& read : hook.reads) ASSERT_EQ(read.count, expected_read.at(read.seq)) << read.seq;
    EXPECT_EQ(total, size_t{kThreads / 2 * kRequests * kPerRequest});
    EXPECT_EQ(ScanAll(*reader, "count/"), expected);
  }
}

TEST(Store, ExclusiveTaskScansMergedWritesAndCommitsAtomically) {
  TempDir dir;
  auto store = OpenStore(dir.path());
  ASSERT_TRUE(store
                  ->RunExclusiveAndWait([](StateTxn& t) {
                    t.Put("k/1", "one");
                    t.Put("k/3", "three");
                    t.Put("other", "x");
                    return absl::OkStatus();
                  })
                  .ok());
  std::map<std::string, std::string> seen;
  ASSERT_TRUE(store
                  ->RunExclusiveAndWait([&](StateTxn& t) {
                    t.Delete("k/1");
                    t.Put("k/2", "two");
                    t.Put("k/3", "THREE");
                    seen = ScanAll(t, "k/");
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(seen, (std::map<std::string, std::string>{{"k/2", "two"}, {"k/3", "THREE"}}));
  // A failed task writes nothing.
  EXPECT_FALSE(store
                   ->RunExclusiveAndWait([](StateTxn& t) {
                     t.Put("k/4", "four");
                     return absl::AbortedError("no");
                   })
                   .ok());
  auto reader = store->NewStateReader();
  EXPECT_EQ(ScanAll(*reader, "k/"), seen);
  // The reader is a snapshot: later writes do not show in it.
  ASSERT_TRUE(store->RunExclusiveAndWait([](StateTxn& t) {
                     t.Put("k/5", "five");
                     return absl::OkStatus();
                   }).ok());
  EXPECT_EQ(ScanAll(*reader, "k/").size(), 2u);
  EXPECT_EQ(ScanAll(*store->NewStateReader(), "k/").size(), 3u);
}

}  // namespace
}  // namespace rapport::store

#include "rapport/store/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/statistics.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <future>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include <fmt/format.h>

#include <charconv>

#include "absl/strings/str_cat.h"
#include "rapport/base/mutex.h"
#include "rapport/base/check.h"
#include "rapport/base/cursor.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"
#include "rapport/store/envelope.h"
#include "rapport/store/internal/keyring.h"
#include "rapport/store/internal/keys.h"
#include "rapport/store/internal/state_cache.h"
#include <spdlog/spdlog.h>

#include <cstdarg>

namespace rapport::store {
namespace {

using internal::DecodeDedupe;
using internal::DecodeEvent;
using internal::DedupeKey;
using internal::DedupeValue;
using internal::EventKey;
using internal::EventValue;
using internal::PersonKey;
using internal::PersonPrefix;

constexpr char kFormatKey[] = "format";
// 3: sealed profile and derived-state records (docs/formats/store.md). 2: derived-state records
// of format 2. An older store is opened and marked 3, since an older build cannot read what
// this one writes.
constexpr char kFormatVersion[] = "3";
constexpr const char* kPreviousFormatVersions[] = {"1", "2"};
constexpr size_t kMaxGroupRequests = 1024;
constexpr size_t kMaxGroupBytes = size_t{32} << 20;
const std::string kIndexValue(1, internal::kValueVersion);

enum Cf { kMeta, kEvents, kPerson, kDedupe, kState, kAudit, kNumCfs };
constexpr const char* kCfNames[kNumCfs] = {"meta", "events", "person", "dedupe", "state", "audit"};

absl::Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string message = fmt::format("{}: {}", what, s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  return absl::UnavailableError(message);
}

// Drops deduplication records whose window has passed. Reads ignore expired records too, so
// this only reclaims space; it never changes an answer.
class DedupeExpiryFilter final : public rocksdb::CompactionFilter {
 public:
  explicit DedupeExpiryFilter(const base::Clock* clock) : clock_(clock) {}
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*,
              bool*) const override {
    auto record = DecodeDedupe(std::string_view(value.data(), value.size()));
    return record && record->expires_at <= clock_->Now();
  }
  const char* Name() const override { return "rapport.DedupeExpiryFilter"; }

 private:
  const base::Clock* clock_;
};

// RocksDB's own diagnostics go to rapport's log (stderr), not to a LOG file in the data
// directory: on a full disk that file fails too, and RocksDB's recovery thread then aborts the
// process on an assertion when it writes to it (Debian's librocksdb keeps assertions on).
class SpdlogLogger final : public rocksdb::Logger {
 public:
  SpdlogLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[1024];
    std::vsnprintf(buf, sizeof buf, format, ap);
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      spdlog::error("rocksdb: {}", buf);
    } else {
      spdlog::warn("rocksdb: {}", buf);
    }
  }
};

// The person-index prefix of a key: workspace(4) kind(1) id_len(2) id. Every read of the index
// stays within one prefix, so RocksDB may bucket the memtable and filter SSTs by it.
class PersonPrefixTransform final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "rapport.PersonPrefix.v1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), PrefixLength(key));
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() >= 7 && key.size() >= PrefixLength(key);
  }

 private:
  static size_t PrefixLength(const rocksdb::Slice& key) {
    const auto* p = reinterpret_cast<const uint8_t*>(key.data());
    return 7 + ((size_t{p[5]} << 8) | p[6]);
  }
};

struct Pending {
  std::vector<EventWrite> events;
  std::vector<std::unique_ptr<PreparedEvent>> prepared;  // one per event when there is a hook
  size_t bytes = 0;
  CommitCallback done;
  // An exclusive task instead of events (then `done` is unset).
  StateTask task;
  TaskCallback task_done;
};

// Scans [max(prefix, from), end of prefix) of `cf` through `it`, merged with `overlay` (pending
// writes of the current group; nullopt = deleted), overlay winning on equal keys.
absl::Status MergedScan(
    rocksdb::Iterator* it, const std::map<std::string, std::optional<std::string>, std::less<>>* overlay,
    std::string_view prefix, std::string_view from,
    absl::FunctionRef<bool(std::string_view, std::string_view)> fn) {
  const std::string_view start = from.empty() || from < prefix ? prefix : from;
  it->Seek(rocksdb::Slice(start.data(), start.size()));
  auto in_prefix = [&](std::string_view k) { return k.starts_with(prefix); };
  using OverlayIt = std::map<std::string, std::optional<std::string>, std::less<>>::const_iterator;
  OverlayIt o, o_end;
  if (overlay) {
    o = overlay->lower_bound(start);
    o_end = overlay->end();
  }
  for (;;) {
    const bool db_ok = it->Valid() && in_prefix(std::string_view(it->key().data(), it->key().size()));
    const bool ov_ok = overlay && o != o_end && in_prefix(o->first);
    if (!db_ok && !ov_ok) break;
    std::string_view db_key = db_ok ? std::string_view(it->key().data(), it->key().size()) : "";
    if (ov_ok && (!db_ok || o->first <= db_key)) {
      if (db_ok && o->first == db_key) it->Next();
      if (o->second && !fn(o->first, *o->second)) return absl::OkStatus();
      ++o;
    } else {
      if (!fn(db_key, std::string_view(it->value().data(), it->value().size()))) {
        return absl::OkStatus();
      }
      it->Next();
    }
  }
  return FromRocks(it->status(), "scanning state");
}

// The data key `id` of `ws` as `get` reads it from the state; nullopt if it was destroyed.
absl::StatusOr<std::optional<DataKey>> ReadDataKey(
    const internal::Keyring& keyring, uint32_t ws, uint64_t id,
    absl::FunctionRef<absl::StatusOr<std::optional<std::string>>(std::string_view)> get) {
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> wrapped, get(internal::DataKeyKey(ws, id)));
  if (!wrapped) return std::nullopt;
  RAPPORT_ASSIGN_OR_RETURN(DataKey key, keyring.Unwrap(ws, id, *wrapped));
  return key;
}

absl::Status KeyDestroyed(uint32_t ws, uint64_t id) {
  return base::MakeError(absl::StatusCode::kNotFound, "data_key_destroyed",
                         fmt::format("the data key {} of workspace {} was destroyed: its data was erased", id, ws));
}

// Opens personal data sealed in the state with `aad`, its key read through `get`.
absl::StatusOr<std::string> OpenWith(
    const internal::Keyring& keyring, uint32_t ws, std::string_view aad, std::string_view sealed,
    absl::FunctionRef<absl::StatusOr<std::optional<std::string>>(std::string_view)> get) {
  RAPPORT_ASSIGN_OR_RETURN(uint64_t id, EnvelopeKeyId(sealed));
  if (id == 0) {
    RAPPORT_ASSIGN_OR_RETURN(std::string_view plain, OpenPersonalData(sealed));
    return std::string(plain);
  }
  RAPPORT_ASSIGN_OR_RETURN(std::optional<DataKey> key, ReadDataKey(keyring, ws, id, get));
  if (!key) return KeyDestroyed(ws, id);
  return OpenPersonalData(*key, aad, sealed);
}

absl::StatusOr<std::optional<std::string>> GetFrom(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                                                   const rocksdb::ReadOptions& options, std::string_view key,
                                                   std::string_view what) {
  std::string value;
  rocksdb::Status s = db->Get(options, cf, rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  RAPPORT_RETURN_IF_ERROR(FromRocks(s, what));
  return value;
}

// A snapshot view for readers on any thread.
class SnapshotReader final : public StateReader {
 public:
  SnapshotReader(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* state, rocksdb::ColumnFamilyHandle* events,
                 const internal::Keyring* keyring)
      : db_(db), state_(state), events_(events), keyring_(keyring), snapshot_(db->GetSnapshot()) {
    options_.snapshot = snapshot_;
  }
  ~SnapshotReader() override { db_->ReleaseSnapshot(snapshot_); }

  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override {
    std::string value;
    rocksdb::Status s = db_->Get(options_, state_, rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) return std::nullopt;
    RAPPORT_RETURN_IF_ERROR(FromRocks(s, "reading state"));
    return value;
  }
  absl::Status Scan(std::string_view prefix, std::string_view from,
                    absl::FunctionRef<bool(std::string_view, std::string_view)> fn) override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options_, state_));
    return MergedScan(it.get(), nullptr, prefix, from, fn);
  }
  absl::StatusOr<std::optional<StoredEvent>> ReadEvent(uint64_t seq) override {
    return ReadStoredEvent(db_, events_, options_, seq, [&](uint32_t ws, uint64_t id) {
      return ReadDataKey(*keyring_, ws, id, [&](std::string_view k) { return Get(k); });
    });
  }
  absl::StatusOr<std::string> Open(uint32_t ws, std::string_view aad, std::string_view sealed) override {
    return OpenWith(*keyring_, ws, aad, sealed, [&](std::string_view k) { return Get(k); });
  }
  std::string KeyedHash(uint32_t ws, std::string_view data) const override {
    return keyring_->KeyedHash(ws, data);
  }

  static absl::StatusOr<std::optional<StoredEvent>> ReadStoredEvent(
      rocksdb::DB* db, rocksdb::ColumnFamilyHandle* events, const rocksdb::ReadOptions& options,
      uint64_t seq, const internal::KeySource& keys) {
    const std::string key = EventKey(seq);
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> value, GetFrom(db, events, options, key, "reading an event"));
    if (!value) return std::nullopt;
    return DecodeEvent(key, *value, keys);
  }

 private:
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* state_;
  rocksdb::ColumnFamilyHandle* events_;
  const internal::Keyring* keyring_;
  const rocksdb::Snapshot* snapshot_;
  rocksdb::ReadOptions options_;
};

// The writes of groups applied before the current one whose WriteBatches may not be written
// yet (the writer applies the next group while the committer writes and syncs the last).
class EarlierGroups {
 public:
  // The newest earlier write of `key` (nullopt inside: deleted), or nullptr if none wrote it.
  virtual const std::optional<std::string>* Find(std::string_view key) const = 0;
  // Waits until every earlier group is written: for reads that need the database itself.
  virtual void Drain() = 0;

 protected:
  ~EarlierGroups() = default;
};

using Overlay = std::map<std::string, std::optional<std::string>, std::less<>>;

// The writer thread's view during one commit group: the database plus the writes of earlier
// groups not yet written plus the group's own writes.
class GroupTxn final : public StateTxn {
 public:
  GroupTxn(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* state, rocksdb::ColumnFamilyHandle* events,
           rocksdb::ColumnFamilyHandle* person, rocksdb::ColumnFamilyHandle* dedupe, internal::StateCache* cache,
           EarlierGroups* earlier, const internal::Keyring* keyring)
      : db_(db), state_(state), events_(events), person_(person), dedupe_(dedupe), cache_(cache), earlier_(earlier),
        keyring_(keyring) {}

  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override {
    if (auto it = overlay_.find(key); it != overlay_.end()) return it->second;
    if (const std::optional<std::string>* earlier = earlier_->Find(key)) return *earlier;
    if (const std::optional<std::string>* cached = cache_->Find(key)) return *cached;
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), state_, rocksdb::Slice(key.data(), key.size()), &value);
    if (s.IsNotFound()) {
      cache_->Put(key, std::nullopt);
      return std::nullopt;
    }
    RAPPORT_RETURN_IF_ERROR(FromRocks(s, "reading state"));
    cache_->Put(key, value);
    return value;
  }
  absl::Status Scan(std::string_view prefix, std::string_view from,
                    absl::FunctionRef<bool(std::string_view, std::string_view)> fn) override {
    earlier_->Drain();
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), state_));
    return MergedScan(it.get(), &overlay_, prefix, from, fn);
  }
  absl::StatusOr<std::optional<StoredEvent>> ReadEvent(uint64_t seq) override {
    if (auto it = group_events_.find(seq); it != group_events_.end()) {
      const EventWrite& e = *it->second;
      auto replaced = replaced_.find(seq);
      auto key = group_keys_.find(seq);
      return StoredEvent{seq, key == group_keys_.end() ? 0 : key->second, e.workspace, e.timestamp,
                         e.received_at, replaced != replaced_.end() ? replaced->second : e.payload};
    }
    if (auto it = event_writes_.find(seq); it != event_writes_.end() && !it->second) return std::nullopt;
    earlier_->Drain();
    auto keys = [&](uint32_t ws, uint64_t id) { return DataKeyOf(ws, id); };
    if (auto it = event_writes_.find(seq); it != event_writes_.end()) {
      RAPPORT_ASSIGN_OR_RETURN(std::optional<StoredEvent> e, DecodeEvent(EventKey(seq), *it->second, keys));
      return e;
    }
    return SnapshotReader::ReadStoredEvent(db_, events_, rocksdb::ReadOptions(), seq, keys);
  }
  absl::StatusOr<std::string> Open(uint32_t ws, std::string_view aad, std::string_view sealed) override {
    return OpenWith(*keyring_, ws, aad, sealed, [&](std::string_view k) { return Get(k); });
  }
  std::string KeyedHash(uint32_t ws, std::string_view data) const override {
    return keyring_->KeyedHash(ws, data);
  }

  void DestroyDataKey(uint32_t ws, uint64_t id) override {
    const std::string key = internal::DataKeyKey(ws, id);
    if (auto wrapped = Get(key); wrapped.ok() && *wrapped) keyring_->Forget(**wrapped);
    Delete(key);
  }
  absl::Status Seal(uint32_t ws, uint64_t id, std::string_view aad, std::string_view plaintext,
                    std::string* out) override {
    RAPPORT_ASSIGN_OR_RETURN(DataKey key, MadeDataKey(ws, id));
    SealPersonalData(key, id, aad, plaintext, out);
    return absl::OkStatus();
  }
  absl::Status ResealEvent(uint64_t seq, uint64_t key_id) override {
    if (group_events_.contains(seq)) {
      group_keys_[seq] = key_id;  // sealed when the group is written
      return absl::OkStatus();
    }
    RAPPORT_ASSIGN_OR_RETURN(std::optional<StoredEvent> e, ReadEvent(seq));
    if (!e) return absl::NotFoundError(fmt::format("there is no event {} to seal again", seq));
    if (e->key_id == key_id) return absl::OkStatus();
    RAPPORT_ASSIGN_OR_RETURN(DataKey key, MadeDataKey(e->workspace, key_id));
    EventWrite w;
    w.workspace = e->workspace;
    w.timestamp = e->timestamp;
    w.received_at = e->received_at;
    w.payload = std::move(e->payload);
    event_writes_.insert_or_assign(seq, internal::EventValue(w, seq, key_id, &key));
    return absl::OkStatus();
  }
  absl::Status DeleteEvent(const StoredEvent& e, std::string_view message_id, std::string_view user_id,
                           std::string_view anonymous_id) override {
    const uint64_t seq = e.seq;
    if (group_events_.contains(seq)) {
      return absl::InternalError(fmt::format("event {} cannot be deleted while it is being stored", seq));
    }
    event_writes_.insert_or_assign(seq, std::nullopt);
    if (!message_id.empty()) dedupe_deletes_.push_back(DedupeKey(e.workspace, message_id));
    if (!user_id.empty() && user_id.size() <= 0xFFFF) {
      person_deletes_.push_back(PersonKey(e.workspace, IdKind::kUserId, user_id, e.timestamp, seq));
    }
    if (!anonymous_id.empty() && anonymous_id.size() <= 0xFFFF) {
      person_deletes_.push_back(PersonKey(e.workspace, IdKind::kAnonymousId, anonymous_id, e.timestamp, seq));
    }
    return absl::OkStatus();
  }
  void Put(std::string_view key, std::string_view value) override {
    overlay_.insert_or_assign(std::string(key), std::string(value));
  }
  void Delete(std::string_view key) override { overlay_.insert_or_assign(std::string(key), std::nullopt); }
  void ReplaceEvent(uint64_t seq, std::string payload) override {
    if (group_events_.contains(seq)) replaced_.insert_or_assign(seq, std::move(payload));
  }

  // An event of the group, for ReadEvent while the group is applied.
  void AddEvent(uint64_t seq, const EventWrite* event) { group_events_.emplace(seq, event); }
  // The data key a group event is to be sealed with (0: plaintext), and its bytes.
  void SetEventKey(uint64_t seq, uint64_t key_id) { group_keys_[seq] = key_id; }
  absl::StatusOr<std::pair<uint64_t, std::optional<DataKey>>> EventKeyOf(uint64_t seq, uint32_t ws) {
    auto it = group_keys_.find(seq);
    if (it == group_keys_.end() || it->second == 0) return std::pair<uint64_t, std::optional<DataKey>>{0, std::nullopt};
    RAPPORT_ASSIGN_OR_RETURN(std::optional<DataKey> key, DataKeyOf(ws, it->second));
    if (!key) return absl::InternalError(fmt::format("event {} is to be sealed with data key {}, which does not exist", seq, it->second));
    return std::pair<uint64_t, std::optional<DataKey>>{it->second, key};
  }
  // Once the event's own payload is the replacement.
  void RemoveReplaced(uint64_t seq) { replaced_.erase(seq); }
  // An event the hook refused: it is not stored, and its seq goes to the next one.
  void RemoveEvent(uint64_t seq) {
    group_events_.erase(seq);
    replaced_.erase(seq);
    group_keys_.erase(seq);
  }
  // Once the group is applied: the committer frees its events after answering their requests.
  void DropEvents() {
    group_events_.clear();
    replaced_.clear();
    group_keys_.clear();
  }
  bool empty() const {
    return overlay_.empty() && event_writes_.empty() && person_deletes_.empty() && dedupe_deletes_.empty();
  }
  // This group's write of `key`, as EarlierGroups::Find.
  const std::optional<std::string>* Find(std::string_view key) const {
    auto it = overlay_.find(key);
    return it == overlay_.end() ? nullptr : &it->second;
  }
  // Adds the group's state writes (and events sealed again or deleted) to `batch`.
  void WriteTo(rocksdb::WriteBatch* batch) const {
    for (const auto& [key, value] : overlay_) {
      if (value) {
        batch->Put(state_, key, *value);
      } else {
        batch->Delete(state_, key);
      }
    }
    for (const auto& [seq, value] : event_writes_) {
      if (value) {
        batch->Put(events_, EventKey(seq), *value);
      } else {
        batch->Delete(events_, EventKey(seq));
      }
    }
    for (const std::string& key : person_deletes_) batch->Delete(person_, key);
    for (const std::string& key : dedupe_deletes_) batch->Delete(dedupe_, key);
  }
  // Once the batch is written: the group's writes become the cache's committed values.
  void Committed() {
    for (auto& [key, value] : overlay_) cache_->Update(key, std::move(value));
    overlay_.clear();
    event_writes_.clear();
    person_deletes_.clear();
    dedupe_deletes_.clear();
  }

 private:
  absl::StatusOr<std::optional<DataKey>> DataKeyOf(uint32_t ws, uint64_t id) {
    return ReadDataKey(*keyring_, ws, id, [&](std::string_view k) { return Get(k); });
  }
  // Data key `id` of `ws`, made now if it does not exist.
  absl::StatusOr<DataKey> MadeDataKey(uint32_t ws, uint64_t id) {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<DataKey> existing, DataKeyOf(ws, id));
    if (existing) return *existing;
    if (!keyring_->has_master()) {
      return absl::FailedPreconditionError("the store was opened without a master key: it cannot make data keys");
    }
    auto [key, wrapped] = keyring_->NewDataKey(ws, id);
    Put(internal::DataKeyKey(ws, id), wrapped);
    return key;
  }

  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* state_;
  rocksdb::ColumnFamilyHandle* events_;
  rocksdb::ColumnFamilyHandle* person_;
  rocksdb::ColumnFamilyHandle* dedupe_;
  internal::StateCache* cache_;
  EarlierGroups* earlier_;
  const internal::Keyring* keyring_;
  Overlay overlay_;
  absl::flat_hash_map<uint64_t, const EventWrite*> group_events_;
  absl::flat_hash_map<uint64_t, std::string> replaced_;  // ReplaceEvent's, until the verdict
  absl::flat_hash_map<uint64_t, uint64_t> group_keys_;   // group event → its data key
  std::map<uint64_t, std::optional<std::string>> event_writes_;  // stored events: sealed again, or deleted
  std::vector<std::string> person_deletes_;
  std::vector<std::string> dedupe_deletes_;
};

// A commit group the writer has applied, on its way through the committer.
struct Applied {
  std::vector<Pending> group;
  std::vector<std::vector<EventResult>> results;  // one per request
  // The events to store, in order: the committer builds the WriteBatch (copying the group's
  // bytes is work the writer, the pipeline's busiest stage, need not do).
  struct Stored {
    uint32_t request;
    uint32_t index;  // in the request's events
    uint64_t seq;
    uint64_t key_id = 0;  // the data key it is sealed with (0: plaintext)
    DataKey key = {};
  };
  std::vector<Stored> stored;
  base::Micros now = 0;  // the dedupe window starts here
  std::unique_ptr<GroupTxn> txn;  // its state writes, for the groups applied after it
  absl::flat_hash_map<std::string, uint64_t> seen;  // dedupe key → seq of its events
  // Set by the committer (under Impl::mu) once the batch is written, or failed to be.
  bool written = false;
  absl::Status status;
};

}  // namespace

absl::StatusOr<SyncPolicy> ParseSyncPolicy(std::string_view text) {
  if (text == "always") return SyncPolicy{};
  if (text.starts_with("interval:")) {
    const std::string_view digits = text.substr(9);
    int ms = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ms);
    if (ec == std::errc() && end == digits.data() + digits.size() && ms >= 1 && ms <= 60000) {
      return SyncPolicy{SyncPolicy::Mode::kInterval, ms};
    }
  }
  return base::InvalidField("invalid_sync", "--sync",
                            fmt::format("--sync must be 'always' or 'interval:<ms>' with ms from "
                                        "1 to 60000, not '{}'",
                                        text));
}

struct Store::Impl final : EarlierGroups {
  StoreOptions options;
  std::unique_ptr<DedupeExpiryFilter> dedupe_filter;
  std::shared_ptr<rocksdb::Statistics> statistics;
  std::shared_ptr<rocksdb::Cache> block_cache;
  rocksdb::DB* db = nullptr;
  rocksdb::ColumnFamilyHandle* cf[kNumCfs] = {};
  internal::Keyring keyring;

  // The data key `id` of `ws` as committed (not at a snapshot); nullopt if destroyed. With a
  // memo for scans that meet the same keys again.
  absl::StatusOr<std::optional<DataKey>> CommittedDataKey(
      uint32_t ws, uint64_t id, absl::flat_hash_map<std::pair<uint32_t, uint64_t>, std::optional<DataKey>>* memo) const {
    if (auto it = memo->find({ws, id}); it != memo->end()) return it->second;
    RAPPORT_ASSIGN_OR_RETURN(std::optional<DataKey> key,
                             ReadDataKey(keyring, ws, id, [&](std::string_view k) {
                               return GetFrom(db, cf[kState], rocksdb::ReadOptions(), k, "reading a data key");
                             }));
    if (memo->size() > 4096) memo->clear();
    memo->emplace(std::pair{ws, id}, key);
    return key;
  }
  GroupTxn NewGroupTxn() { return GroupTxn(db, cf[kState], cf[kEvents], cf[kPerson], cf[kDedupe], cache.get(), this, &keyring); }

  base::Mutex mu;
  base::CondVar work_cv;     // the writer waits here for commits (or closing)
  base::CondVar commit_cv;   // the committer waits here for applied groups
  base::CondVar written_cv;  // the writer waits here for the committer
  base::CondVar sync_cv;     // the interval syncer waits here (or for closing)
  std::deque<Pending> queue ABSL_GUARDED_BY(mu);
  size_t queued_bytes ABSL_GUARDED_BY(mu) = 0;
  bool closing ABSL_GUARDED_BY(mu) = false;
  bool closed ABSL_GUARDED_BY(mu) = false;
  absl::Status latched ABSL_GUARDED_BY(mu);  // why writes stopped; OK while they go on
  std::deque<Applied*> to_commit ABSL_GUARDED_BY(mu);  // applied, for the committer, in order
  bool writer_done ABSL_GUARDED_BY(mu) = false;        // the committer may stop when drained

  // Two threads in a pipeline: the writer takes commit groups from the queue, deduplicates
  // them and runs the hook (identity, profiles) against the state as it will be once every
  // earlier group is written; the committer writes and syncs each group's WriteBatch, in order,
  // and answers its requests. So one group's fsync and memtable inserts overlap the next one's
  // work. An exclusive task waits until every earlier group is written, then runs and commits
  // on the writer alone.
  std::thread writer;
  std::thread committer;
  std::thread syncer;
  double batch_bytes_per_event = 0;  // the committer's: of the last event group's WriteBatch
  // The writer thread's alone after Open.
  uint64_t next_seq = 1;
  std::unique_ptr<internal::StateCache> cache;
  std::deque<std::unique_ptr<Applied>> in_flight;  // applied, not yet folded into the cache
  // What /metrics reads; the registry's collector keeps it, and may outlive the store.
  struct Probe {
    base::Mutex mu;
    rocksdb::DB* db ABSL_GUARDED_BY(mu) = nullptr;  // null once the store is closed
    rocksdb::ColumnFamilyHandle* cf[kNumCfs] = {};
    std::shared_ptr<rocksdb::Cache> block_cache;
    // The state cache's figures, published by the writer after each group.
    std::atomic<uint64_t> cache_bytes{0}, cache_hits{0}, cache_misses{0};
  };
  std::shared_ptr<Probe> probe;  // null without metrics
  void PublishCacheStats() {
    if (!probe) return;
    probe->cache_bytes.store(cache->bytes(), std::memory_order_relaxed);
    probe->cache_hits.store(cache->hits(), std::memory_order_relaxed);
    probe->cache_misses.store(cache->misses(), std::memory_order_relaxed);
  }

  // Metrics (null when options.metrics is null).
  base::Histogram* commit_seconds = nullptr;
  base::Histogram* group_requests = nullptr;
  base::Histogram* group_events = nullptr;
  base::Gauge* queue_depth = nullptr;
  base::Gauge* read_only_gauge = nullptr;
  base::Counter* write_failures = nullptr;
  base::Counter* queue_full = nullptr;

  // Queues a commit, taking `done` only on success.
  absl::Status Enqueue(std::vector<EventWrite> events, CommitCallback& done);

  absl::Status Latch(absl::Status why) {
    base::MutexLock lock(&mu);
    if (latched.ok()) {
      latched = absl::UnavailableError(
          absl::StrCat("the store stopped accepting writes after a failure: ", why.message()));
      if (read_only_gauge) read_only_gauge->Set(1);
      if (write_failures) write_failures->Inc();
    }
    return latched;
  }

  // EarlierGroups, for the writer's GroupTxn.
  const std::optional<std::string>* Find(std::string_view key) const override {
    for (auto it = in_flight.rbegin(); it != in_flight.rend(); ++it) {
      if (const std::optional<std::string>* v = (*it)->txn->Find(key)) return v;
    }
    return nullptr;
  }
  void Drain() override { Fold(0); }

  // Writer: folds the groups the committer has written into the cache, oldest first, waiting
  // for the oldest while more than `keep` are in flight.
  void Fold(size_t keep);
  // Writer: the seq of an event with dedupe key `key` in a group in flight, if any.
  std::optional<uint64_t> SeenInFlight(const std::string& key) const;

  void WriterLoop();
  void CommitLoop();
  void SyncLoop();
  // Every write of the store goes through here, one at a time: the committer's groups are the
  // store's group commit already, and one writer at a time keeps RocksDB from merging batches of
  // several threads (which it does inside a library TSan cannot see into).
  rocksdb::Status Write(const rocksdb::WriteOptions& wo, rocksdb::WriteBatch* batch) {
    base::MutexLock lock(&write_mu);
    return db->Write(wo, batch);
  }
  base::Mutex write_mu;
  // One small WriteBatch of `puts` to column family `cf`, outside the commit groups (meta,
  // audit); a failure latches the store. `what` names it in the error.
  absl::Status WriteSmall(Cf cf, const std::vector<std::pair<std::string, std::string>>& puts, bool sync,
                          std::string_view what);
  void ApplyGroup(std::vector<Pending> group);
  // Committer: the WriteBatch of an applied group (its events, their dedupe and person index
  // entries, and its state writes).
  void BuildBatch(const Applied& a, rocksdb::WriteBatch* batch);
  void RunTask(Pending& p);
  void RegisterMetrics();
  // Open: reads (or, for a new store, creates) the master key and checks it is this store's.
  absl::Status LoadKeyring();
};

constexpr char kKeyCheckKey[] = "keycheck";

absl::Status Store::Impl::LoadKeyring() {
  const std::string path =
      options.master_key_file.empty() ? options.path + "/master.key" : options.master_key_file;
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> check,
                           GetFrom(db, cf[kMeta], rocksdb::ReadOptions(), kKeyCheckKey, "reading the master key's check"));
  // A key is created only for a store that has none yet; one that had a key never gets another.
  RAPPORT_ASSIGN_OR_RETURN(std::optional<DataKey> master, internal::LoadMasterKey(path, !check && !options.read_only));
  if (!master) {
    if (!check) return absl::OkStatus();  // read-only, and nothing was ever sealed
    return base::MakeError(absl::StatusCode::kFailedPrecondition, "master_key_missing",
                           fmt::format("the store at {} holds data encrypted with a master key, and there is no "
                                       "key file at {} (--master-key-file): restore it from where it is kept",
                                       options.path, path));
  }
  keyring = internal::Keyring(*master);
  if (!check) {
    if (options.read_only) return absl::OkStatus();
    return WriteSmall(kMeta, {{kKeyCheckKey, keyring.Check()}}, /*sync=*/true, "writing the master key's check");
  }
  if (*check != keyring.Check()) {
    keyring = internal::Keyring();
    return base::MakeError(absl::StatusCode::kFailedPrecondition, "master_key_mismatch",
                           fmt::format("the master key in {} is not the one the store at {} was written with",
                                       path, options.path));
  }
  return absl::OkStatus();
}

// Groups applied ahead of the committer: enough to keep it busy while the writer works.
constexpr size_t kMaxInFlight = 2;

void Store::Impl::WriterLoop() {
  // RocksDB counts per-operation statistics in a thread-local context by default; rapport reads
  // none of them, and on this thread they cost more than the lookups they count.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  for (;;) {
    std::vector<Pending> group;
    {
      base::MutexLock lock(&mu);
      while (queue.empty() && !closing) work_cv.Wait(&mu);
      if (queue.empty()) break;
      size_t bytes = 0;
      // An exclusive task commits alone: its failure must not take others' events with it.
      while (!queue.empty() && group.size() < kMaxGroupRequests && bytes < kMaxGroupBytes &&
             (group.empty() || (!queue.front().task && !group.front().task))) {
        bytes += queue.front().bytes;
        queued_bytes -= queue.front().bytes;
        group.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      if (queue_depth) queue_depth->Set(static_cast<double>(queue.size()));
    }
    if (group.front().task) {
      Fold(0);
      RunTask(group.front());
    } else {
      ApplyGroup(std::move(group));
    }
  }
  Fold(0);
  base::MutexLock lock(&mu);
  writer_done = true;
  commit_cv.Signal();
}

void Store::Impl::Fold(size_t keep) {
  while (!in_flight.empty()) {
    Applied& oldest = *in_flight.front();
    {
      base::MutexLock lock(&mu);
      if (!oldest.written) {
        if (in_flight.size() <= keep) return;
        while (!oldest.written) written_cv.Wait(&mu);
      }
    }
    if (oldest.status.ok()) {
      oldest.txn->Committed();
    } else {
      cache->Clear();  // the store is latched; nothing it learnt is worth keeping
    }
    in_flight.pop_front();
  }
}

std::optional<uint64_t> Store::Impl::SeenInFlight(const std::string& key) const {
  for (auto it = in_flight.rbegin(); it != in_flight.rend(); ++it) {
    if (auto s = (*it)->seen.find(key); s != (*it)->seen.end()) return s->second;
  }
  return std::nullopt;
}

void Store::Impl::RunTask(Pending& p) {
  absl::Status status;
  {
    base::MutexLock lock(&mu);
    status = latched;
  }
  GroupTxn txn = NewGroupTxn();
  if (status.ok()) status = std::move(p.task)(txn);
  if (status.ok() && !txn.empty()) {
    rocksdb::WriteBatch batch;
    txn.WriteTo(&batch);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    rocksdb::Status ws = Write(wo, &batch);
    if (ws.ok()) {
      txn.Committed();
    } else {
      status = Latch(FromRocks(ws, "writing to the store"));
    }
  }
  if (options.hook) options.hook->AfterGroup(status.ok());
  PublishCacheStats();
  std::move(p.task_done)(std::move(status));
}

void Store::Impl::ApplyGroup(std::vector<Pending> group) {
  Fold(kMaxInFlight - 1);
  absl::Status status;
  {
    base::MutexLock lock(&mu);
    status = latched;
  }
  auto applied = std::make_unique<Applied>();
  Applied& a = *applied;
  a.group = std::move(group);
  a.results.resize(a.group.size());
  a.txn = std::make_unique<GroupTxn>(NewGroupTxn());
  uint64_t seq = next_seq;
  if (status.ok()) {
    const base::Micros now = options.clock->Now();
    a.now = now;
    std::string existing;
    for (size_t r = 0; r < a.group.size() && status.ok(); ++r) {
      Pending& p = a.group[r];
      a.results[r].reserve(p.events.size());
      for (size_t i = 0; i < p.events.size(); ++i) {
        const EventWrite& e = p.events[i];
        std::string dkey = DedupeKey(e.workspace, e.message_id);
        if (auto it = a.seen.find(dkey); it != a.seen.end()) {
          a.results[r].push_back({WriteOutcome::kDuplicate, it->second});
          continue;
        }
        if (std::optional<uint64_t> original = SeenInFlight(dkey)) {
          a.results[r].push_back({WriteOutcome::kDuplicate, *original});
          continue;
        }
        rocksdb::Status gs = db->Get(rocksdb::ReadOptions(), cf[kDedupe], dkey, &existing);
        if (gs.ok()) {
          auto record = DecodeDedupe(existing);
          if (record && record->expires_at > now) {
            a.results[r].push_back({WriteOutcome::kDuplicate, record->seq});
            continue;
          }
        } else if (!gs.IsNotFound()) {
          status = FromRocks(gs, "reading the deduplication record");
          break;
        }
        const uint64_t s = seq;
        if (options.hook) {
          a.txn->AddEvent(s, &e);
          absl::StatusOr<Verdict> verdict = options.hook->Apply(e, s, *p.prepared[i], *a.txn);
          if (!verdict.ok()) {
            status = verdict.status();
            break;
          }
          if (!verdict->refused.ok()) {
            if (verdict->stored_instead.empty()) {
              a.txn->RemoveEvent(s);
              a.results[r].push_back({WriteOutcome::kRefused, 0, std::move(verdict->refused)});
              continue;
            }
            // Stored in its reduced form: the group's readers and the batch see that one.
            a.txn->RemoveReplaced(s);
            p.events[i].payload = std::move(verdict->stored_instead);
            a.results[r].push_back({WriteOutcome::kRefused, s, std::move(verdict->refused)});
          } else {
            a.results[r].push_back({WriteOutcome::kStored, s});
          }
          a.txn->SetEventKey(s, verdict->seal_key);
        } else {
          a.results[r].push_back({WriteOutcome::kStored, s});
        }
        ++seq;
        a.stored.push_back({static_cast<uint32_t>(r), static_cast<uint32_t>(i), s});
        a.seen.emplace(std::move(dkey), s);
      }
    }
    // The keys are known once the whole group is applied (a rebuild may seal an event of the
    // group with another profile's key).
    for (Applied::Stored& st : a.stored) {
      if (!status.ok()) break;
      auto key = a.txn->EventKeyOf(st.seq, a.group[st.request].events[st.index].workspace);
      if (!key.ok()) {
        status = key.status();
        break;
      }
      st.key_id = key->first;
      if (key->second) st.key = *key->second;
    }
  }
  if (options.hook) options.hook->AfterGroup(status.ok());
  PublishCacheStats();
  if (group_requests) {
    group_requests->Observe(static_cast<double>(a.group.size()));
    group_events->Observe(static_cast<double>(a.stored.size()));
  }
  if (!status.ok()) {
    // Nothing of the group is written; later groups never saw its writes.
    for (Pending& p : a.group) std::move(p.done)(status);
    return;
  }
  next_seq = seq;
  a.txn->DropEvents();
  {
    base::MutexLock lock(&mu);
    to_commit.push_back(&a);
    commit_cv.Signal();
  }
  in_flight.push_back(std::move(applied));
}

void Store::Impl::BuildBatch(const Applied& a, rocksdb::WriteBatch* batch) {
  // Sized like the last group's per event (at most twice a group's payload limit: one event
  // can write much more, e.g. a merge moving a long timeline), so building a large batch does
  // not copy it as it grows.
  const double estimate = batch_bytes_per_event * 1.25 * static_cast<double>(a.stored.size());
  *batch = rocksdb::WriteBatch(static_cast<size_t>(std::min(estimate, 2.0 * kMaxGroupBytes)));
  for (const Applied::Stored& s : a.stored) {
    const Pending& p = a.group[s.request];
    const EventWrite& e = p.events[s.index];
    batch->Put(cf[kEvents], EventKey(s.seq), EventValue(e, s.seq, s.key_id, s.key_id ? &s.key : nullptr));
    if (!e.user_id.empty()) {
      batch->Put(cf[kPerson], PersonKey(e.workspace, IdKind::kUserId, e.user_id, e.timestamp, s.seq),
                 kIndexValue);
    }
    if (!e.anonymous_id.empty()) {
      batch->Put(cf[kPerson],
                 PersonKey(e.workspace, IdKind::kAnonymousId, e.anonymous_id, e.timestamp, s.seq),
                 kIndexValue);
    }
  }
  for (const auto& [dedupe_key, seq] : a.seen) {  // the keys the writer built to look them up
    batch->Put(cf[kDedupe], dedupe_key, DedupeValue(seq, a.now + options.dedupe_window));
  }
  a.txn->WriteTo(batch);
  if (!a.stored.empty()) {
    batch_bytes_per_event = static_cast<double>(batch->GetDataSize()) / static_cast<double>(a.stored.size());
  }
}

void Store::Impl::CommitLoop() {
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  for (;;) {
    Applied* a;
    absl::Status status;
    {
      base::MutexLock lock(&mu);
      while (to_commit.empty() && !writer_done) commit_cv.Wait(&mu);
      if (to_commit.empty()) return;
      a = to_commit.front();
      to_commit.pop_front();
      status = latched;  // a failed write before this one: this group built on it
    }
    rocksdb::WriteBatch batch;
    if (status.ok()) BuildBatch(*a, &batch);
    if (status.ok() && batch.Count() > 0) {
      rocksdb::WriteOptions wo;
      wo.sync = options.sync.mode == SyncPolicy::Mode::kAlways;
      const auto start = std::chrono::steady_clock::now();
      rocksdb::Status ws = Write(wo, &batch);
      if (commit_seconds) {
        commit_seconds->Observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      if (!ws.ok()) status = Latch(FromRocks(ws, "writing to the store"));
    }
    for (size_t r = 0; r < a->group.size(); ++r) {
      if (status.ok()) {
        std::move(a->group[r].done)(std::move(a->results[r]));
      } else {
        std::move(a->group[r].done)(status);
      }
    }
    // The requests are answered: their events are freed here, not on the writer (which keeps
    // only the group's state writes and dedupe keys, for the groups after it).
    std::vector<Pending>().swap(a->group);
    base::MutexLock lock(&mu);
    a->status = std::move(status);
    a->written = true;
    written_cv.Signal();
  }
}

absl::Status Store::Impl::WriteSmall(Cf family, const std::vector<std::pair<std::string, std::string>>& puts,
                                     bool sync, std::string_view what) {
  if (options.read_only) return absl::FailedPreconditionError("the store was opened read-only");
  {
    base::MutexLock lock(&mu);
    if (!latched.ok()) return latched;
  }
  rocksdb::WriteBatch batch;
  for (const auto& [k, v] : puts) batch.Put(cf[family], k, v);
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = Write(wo, &batch);
  if (!s.ok()) return Latch(FromRocks(s, what));
  return absl::OkStatus();
}

void Store::Impl::SyncLoop() {
  for (;;) {
    {
      base::MutexLock lock(&mu);
      if (!closing) sync_cv.WaitWithTimeout(&mu, std::chrono::milliseconds(options.sync.interval_ms));
      if (closing) return;
    }
    rocksdb::Status s = db->SyncWAL();
    if (!s.ok()) Latch(FromRocks(s, "syncing the write-ahead log")).IgnoreError();
  }
}

void Store::Impl::RegisterMetrics() {
  base::Registry* m = options.metrics;
  if (!m) return;
  commit_seconds = &m->GetHistogram("rapport_store_commit_seconds",
                                    "Time to write (and, with --sync=always, fsync) one commit group.",
                                    base::LatencyBuckets());
  group_requests = &m->GetHistogram("rapport_store_commit_group_requests",
                                    "Requests committed together in one WriteBatch.",
                                    base::CountBuckets());
  group_events = &m->GetHistogram("rapport_store_commit_group_events",
                                  "Events stored by one commit group.", base::CountBuckets());
  queue_depth = &m->GetGauge("rapport_store_commit_queue_requests",
                             "Requests waiting for the store's writer.");
  read_only_gauge = &m->GetGauge("rapport_store_read_only",
                                 "1 when the store latched read-only after a write failure.");
  write_failures = &m->GetCounter("rapport_store_write_failures_total",
                                  "Failed writes to the store (each latches it read-only).");
  queue_full = &m->GetCounter("rapport_store_queue_full_total",
                              "Commits refused because the commit queue was full.");
  probe = std::make_shared<Probe>();
  {
    base::MutexLock lock(&probe->mu);
    probe->db = db;
  }
  for (int i = 0; i < kNumCfs; ++i) probe->cf[i] = cf[i];
  probe->block_cache = block_cache;
  m->AddCollector([probe = probe](std::string* out) {
    base::MutexLock lock(&probe->mu);
    rocksdb::DB* const db = probe->db;  // stays open while the lock is held
    if (!db) return;
    auto per_cf = [&](const char* name, const char* help, const std::string& property) {
      absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " gauge\n");
      uint64_t v = 0;
      for (int i = 0; i < kNumCfs; ++i) {
        if (probe->cf[i] && db->GetIntProperty(probe->cf[i], property, &v)) {
          absl::StrAppend(out, name, "{cf=\"", kCfNames[i], "\"} ", v, "\n");
        }
      }
    };
    per_cf("rapport_store_sst_bytes", "Bytes of table files on disk, per column family.",
           "rocksdb.total-sst-files-size");
    per_cf("rapport_store_memtable_bytes", "Bytes of memtables, per column family.",
           "rocksdb.cur-size-all-mem-tables");
    per_cf("rapport_store_keys_estimate", "RocksDB's estimate of the keys, per column family.",
           "rocksdb.estimate-num-keys");
    absl::StrAppend(
        out,
        "# HELP rapport_store_block_cache_bytes Bytes in RocksDB's block cache (data, index and filter blocks).\n"
        "# TYPE rapport_store_block_cache_bytes gauge\n"
        "rapport_store_block_cache_bytes ", probe->block_cache->GetUsage(), "\n",
        "# HELP rapport_store_state_cache_bytes Bytes in the writer's cache of committed state.\n"
        "# TYPE rapport_store_state_cache_bytes gauge\n"
        "rapport_store_state_cache_bytes ", probe->cache_bytes.load(std::memory_order_relaxed), "\n",
        "# HELP rapport_store_state_cache_hits_total Reads of state answered by the writer's cache.\n"
        "# TYPE rapport_store_state_cache_hits_total counter\n"
        "rapport_store_state_cache_hits_total ", probe->cache_hits.load(std::memory_order_relaxed), "\n",
        "# HELP rapport_store_state_cache_misses_total Reads of state the writer's cache could not answer.\n"
        "# TYPE rapport_store_state_cache_misses_total counter\n"
        "rapport_store_state_cache_misses_total ", probe->cache_misses.load(std::memory_order_relaxed), "\n");
  });
  std::shared_ptr<rocksdb::Statistics> stats = statistics;
  m->AddCollector([stats](std::string* out) {
    rocksdb::HistogramData wal;
    stats->histogramData(rocksdb::WAL_FILE_SYNC_MICROS, &wal);
    absl::StrAppend(out,
                    "# HELP rapport_store_wal_sync_seconds fsync of RocksDB's write-ahead log.\n"
                    "# TYPE rapport_store_wal_sync_seconds summary\n");
    absl::StrAppend(out, "rapport_store_wal_sync_seconds{quantile=\"0.5\"} ", wal.median / 1e6, "\n");
    absl::StrAppend(out, "rapport_store_wal_sync_seconds{quantile=\"0.99\"} ", wal.percentile99 / 1e6,
                    "\n");
    absl::StrAppend(out, "rapport_store_wal_sync_seconds_sum ", static_cast<double>(wal.sum) / 1e6,
                    "\n");
    absl::StrAppend(out, "rapport_store_wal_sync_seconds_count ", wal.count, "\n");
  });
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("the store needs a directory");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->dedupe_filter = std::make_unique<DedupeExpiryFilter>(options.clock);
  impl->cache = std::make_unique<internal::StateCache>(options.state_cache_bytes);
  impl->statistics = rocksdb::CreateDBStatistics();
  impl->statistics->set_stats_level(rocksdb::StatsLevel::kExceptTimeForMutex);

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  // Compactions yield the CPU to requests waiting for their acknowledgement: on a small machine
  // they otherwise show up as the ack latency's tail. Flushes keep normal priority, because a
  // full memtable that cannot flush stops writes (measured in bench/RESULTS.md).
  if (!options.read_only) {
    rocksdb::Env::Default()->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW);
  }
  // One writer thread commits every event batch: the single-writer memtable path is cheaper
  // (and keeps a splice hint that makes the sequential `events` keys nearly free to insert).
  db_options.allow_concurrent_memtable_write = false;
  db_options.enable_write_thread_adaptive_yield = false;
  db_options.statistics = impl->statistics;
  db_options.keep_log_file_num = 5;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.info_log = std::make_shared<SpdlogLogger>();

  // Memory stays bounded however large the store grows: every column family's data, index and
  // filter blocks share one LRU cache (index and filter blocks otherwise stay in memory for
  // every table file, growing with the data), next to the memtables and the state cache.
  // Filters and indexes are partitioned into small blocks (a whole-file filter of a large table
  // is megabytes, and would be read from disk again for each lookup once the cache evicts it);
  // only their small top levels are pinned.
  impl->block_cache = rocksdb::NewLRUCache(options.block_cache_bytes, /*num_shard_bits=*/4);
  auto table_options = [&](bool bloom) {
    rocksdb::BlockBasedTableOptions t;
    if (bloom) {
      t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      t.partition_filters = true;
    }
    t.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
    t.metadata_block_size = 4096;
    t.block_cache = impl->block_cache;
    t.cache_index_and_filter_blocks = true;
    t.cache_index_and_filter_blocks_with_high_priority = true;
    t.pin_top_level_index_and_filter = true;
    t.pin_l0_filter_and_index_blocks_in_cache = true;
    return rocksdb::NewBlockBasedTableFactory(t);
  };
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (int i = 0; i < kNumCfs; ++i) {
    rocksdb::ColumnFamilyOptions cf_options;
    cf_options.compression = rocksdb::kLZ4Compression;
    if (i == kEvents) cf_options.write_buffer_size = size_t{64} << 20;
    if (i == kPerson) {
      // Index entries arrive in random person order but are only ever read within one person:
      // a memtable hashed by person keeps each insert to a short per-person list instead of a
      // walk down one large skip list (this index was a third of the ingest CPU).
      cf_options.prefix_extractor = std::make_shared<PersonPrefixTransform>();
      cf_options.memtable_factory.reset(rocksdb::NewHashSkipListRepFactory(1 << 20));
    }
    if (i == kDedupe) {
      // Almost every lookup is for a new messageId: a whole-key bloom filter on the memtable
      // answers those without walking the skip list.
      cf_options.memtable_prefix_bloom_size_ratio = 0.05;
      cf_options.memtable_whole_key_filtering = true;
      cf_options.compaction_filter = impl->dedupe_filter.get();
      cf_options.table_factory.reset(table_options(/*bloom=*/true));
    } else {
      cf_options.table_factory.reset(table_options(/*bloom=*/i == kMeta || i == kState));
    }
    descriptors.emplace_back(kCfNames[i], cf_options);
  }

  if (options.read_only) {
    // A store written before the audit log has no such column family; read it without one.
    std::vector<std::string> existing;
    if (rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing).ok() &&
        std::find(existing.begin(), existing.end(), kCfNames[kAudit]) == existing.end()) {
      descriptors.pop_back();
    }
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, options.path, descriptors, &handles, &impl->db)
          : rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &impl->db);
  if (!s.ok()) {
    if (s.ToString().find("lock") != std::string::npos) {
      return base::MakeError(
          absl::StatusCode::kFailedPrecondition, "store_in_use",
          fmt::format("the store at {} is in use by another process (is `rapport serve` "
                      "running on it?)",
                      options.path));
    }
    if (options.read_only && s.IsPathNotFound()) {
      return absl::NotFoundError(absl::StrCat("there is no store at ", options.path));
    }
    return FromRocks(s, absl::StrCat("opening the store at ", options.path));
  }
  // handles[0] is the default column family, which rapport does not use but must keep open.
  for (int i = 0; i < kNumCfs; ++i) impl->cf[i] = i + 1 < static_cast<int>(handles.size()) ? handles[i + 1] : nullptr;
  impl->db->DestroyColumnFamilyHandle(handles[0]);


  auto store = std::unique_ptr<Store>(new Store(std::move(impl)));
  Impl& st = *store->impl_;

  std::string format;
  s = st.db->Get(rocksdb::ReadOptions(), st.cf[kMeta], kFormatKey, &format);
  if (s.IsNotFound() && !options.read_only) {
    RAPPORT_RETURN_IF_ERROR(store->WriteMeta({{kFormatKey, kFormatVersion}}));
  } else if (!s.ok() && !s.IsNotFound()) {
    return FromRocks(s, "reading the store's format version");
  } else if (s.ok() && std::find(std::begin(kPreviousFormatVersions), std::end(kPreviousFormatVersions), format) !=
                            std::end(kPreviousFormatVersions)) {
    if (!options.read_only) RAPPORT_RETURN_IF_ERROR(store->WriteMeta({{kFormatKey, kFormatVersion}}));
  } else if (s.ok() && format != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the store at ", options.path, " has format version ", format,
        ", which this build (format ", kFormatVersion, ") cannot read"));
  }

  RAPPORT_RETURN_IF_ERROR(st.LoadKeyring());

  std::unique_ptr<rocksdb::Iterator> it(st.db->NewIterator(rocksdb::ReadOptions(), st.cf[kEvents]));
  it->SeekToLast();
  if (it->Valid() && it->key().size() == 8) {
    st.next_seq = internal::GetU64(std::string_view(it->key().data(), 8)) + 1;
  }
  RAPPORT_RETURN_IF_ERROR(FromRocks(it->status(), "finding the last event"));

  st.RegisterMetrics();
  if (!options.read_only) {
    st.writer = std::thread([&st] { st.WriterLoop(); });
    st.committer = std::thread([&st] { st.CommitLoop(); });
    if (options.sync.mode == SyncPolicy::Mode::kInterval) {
      st.syncer = std::thread([&st] { st.SyncLoop(); });
    }
  }
  return store;
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() { Close(); }

void Store::Close() {
  Impl& st = *impl_;
  {
    base::MutexLock lock(&st.mu);
    if (st.closed) return;
    st.closing = true;
    st.work_cv.SignalAll();
    st.sync_cv.SignalAll();
  }
  if (st.writer.joinable()) st.writer.join();
  if (st.committer.joinable()) st.committer.join();
  if (st.syncer.joinable()) st.syncer.join();
  if (!st.options.read_only) {
    rocksdb::Status s = st.db->SyncWAL();
    if (!s.ok()) RAPPORT_BUG(absl::StrCat("final WAL sync failed: ", s.ToString()));
  }
  if (st.probe) {
    base::MutexLock lock(&st.probe->mu);
    st.probe->db = nullptr;
  }
  for (auto*& handle : st.cf) {
    if (handle) st.db->DestroyColumnFamilyHandle(handle);
    handle = nullptr;
  }
  rocksdb::Status s = st.db->Close();
  if (!s.ok()) RAPPORT_BUG(absl::StrCat("closing the store failed: ", s.ToString()));
  delete st.db;
  st.db = nullptr;
  base::MutexLock lock(&st.mu);
  st.closed = true;
}

void Store::CommitEvents(std::vector<EventWrite> events, CommitCallback done) {
  absl::Status refused = impl_->Enqueue(std::move(events), done);
  if (!refused.ok()) std::move(done)(std::move(refused));
}

absl::Status Store::Impl::Enqueue(std::vector<EventWrite> events, CommitCallback& done) {
  Impl& st = *this;
  if (st.options.read_only) {
    return absl::FailedPreconditionError("the store was opened read-only");
  }
  Pending p;
  for (const EventWrite& e : events) {
    RAPPORT_DCHECK(!e.message_id.empty());
    p.bytes += internal::kEventHeader + 2 + e.payload.size();
    if (st.options.hook) {
      RAPPORT_ASSIGN_OR_RETURN(std::unique_ptr<PreparedEvent> prepared, st.options.hook->Prepare(e));
      p.prepared.push_back(std::move(prepared));
    }
  }
  p.events = std::move(events);

  base::MutexLock lock(&st.mu);
  if (!st.latched.ok()) return st.latched;
  if (st.closing) return absl::UnavailableError("the store is closing");
  if (st.queue.size() >= st.options.max_queued_requests ||
      st.queued_bytes + p.bytes > st.options.max_queued_bytes) {
    if (st.queue_full) st.queue_full->Inc();
    return base::MakeError(absl::StatusCode::kUnavailable, "overloaded",
                           "the server is overloaded (its commit queue is full); retry after a "
                           "short pause");
  }
  // Taken only now: on every refusal above, the caller still holds `done` to answer with.
  p.done = std::move(done);
  st.queued_bytes += p.bytes;
  st.queue.push_back(std::move(p));
  if (st.queue_depth) st.queue_depth->Set(static_cast<double>(st.queue.size()));
  st.work_cv.Signal();
  return absl::OkStatus();
}

void Store::RunExclusive(StateTask task, TaskCallback done) {
  Impl& st = *impl_;
  absl::Status refused;
  {
    base::MutexLock lock(&st.mu);
    if (st.options.read_only) {
      refused = absl::FailedPreconditionError("the store was opened read-only");
    } else if (!st.latched.ok()) {
      refused = st.latched;
    } else if (st.closing) {
      refused = absl::UnavailableError("the store is closing");
    } else if (st.queue.size() >= st.options.max_queued_requests) {
      refused = base::MakeError(absl::StatusCode::kUnavailable, "overloaded",
                                "the server is overloaded (its commit queue is full); retry "
                                "after a short pause");
    } else {
      Pending p;
      p.task = std::move(task);
      p.task_done = std::move(done);
      st.queue.push_back(std::move(p));
      st.work_cv.Signal();
      return;
    }
  }
  std::move(done)(std::move(refused));
}

absl::Status Store::RunExclusiveAndWait(StateTask task) {
  std::promise<absl::Status> promise;
  auto future = promise.get_future();
  RunExclusive(std::move(task), [&promise](absl::Status s) { promise.set_value(std::move(s)); });
  return future.get();
}

std::unique_ptr<StateReader> Store::NewStateReader() const {
  return std::make_unique<SnapshotReader>(impl_->db, impl_->cf[kState], impl_->cf[kEvents], &impl_->keyring);
}

absl::StatusOr<std::vector<EventResult>> Store::CommitEventsAndWait(std::vector<EventWrite> events) {
  std::promise<absl::StatusOr<std::vector<EventResult>>> promise;
  auto future = promise.get_future();
  CommitEvents(std::move(events), [&promise](absl::StatusOr<std::vector<EventResult>> r) {
    promise.set_value(std::move(r));
  });
  return future.get();
}

absl::StatusOr<EventPage> Store::ReadPersonEvents(uint32_t workspace, IdKind kind,
                                                  std::string_view id, std::string_view cursor,
                                                  size_t limit) const {
  const Impl& st = *impl_;
  if (limit == 0) return absl::InvalidArgumentError("limit must be at least 1");
  if (id.size() > 0xFFFF) return absl::InvalidArgumentError("identifier too long");
  const std::string prefix = PersonPrefix(workspace, kind, id);
  std::string start = prefix;
  std::string after;
  if (!cursor.empty()) {
    RAPPORT_ASSIGN_OR_RETURN(std::string suffix, base::DecodeCursor(cursor, 16));
    after = prefix + suffix;
    start = after;
  }
  rocksdb::ReadOptions ro;
  std::unique_ptr<rocksdb::Iterator> it(st.db->NewIterator(ro, st.cf[kPerson]));
  std::vector<uint64_t> seqs;
  std::string last_suffix;
  bool more = false;
  for (it->Seek(start); it->Valid(); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(prefix) || key.size() != prefix.size() + 16) break;
    if (key == after) continue;
    if (seqs.size() == limit) {
      more = true;
      break;
    }
    seqs.push_back(internal::GetU64(key.substr(prefix.size() + 8)));
    last_suffix = std::string(key.substr(prefix.size()));
  }
  RAPPORT_RETURN_IF_ERROR(FromRocks(it->status(), "reading the person index"));

  EventPage page;
  std::vector<std::string> keys;
  keys.reserve(seqs.size());
  for (uint64_t s : seqs) keys.push_back(EventKey(s));
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::ColumnFamilyHandle*> cfs(keys.size(), st.cf[kEvents]);
  std::vector<std::string> values;
  std::vector<rocksdb::Status> statuses = st.db->MultiGet(ro, cfs, slices, &values);
  absl::flat_hash_map<std::pair<uint32_t, uint64_t>, std::optional<DataKey>> memo;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;  // erased since the index was read
    RAPPORT_RETURN_IF_ERROR(FromRocks(statuses[i], "reading an event"));
    RAPPORT_ASSIGN_OR_RETURN(std::optional<StoredEvent> event,
                             DecodeEvent(keys[i], values[i], [&](uint32_t ws, uint64_t id) {
                               return st.CommittedDataKey(ws, id, &memo);
                             }));
    if (event) page.events.push_back(*std::move(event));
  }
  if (more) page.next_cursor = base::EncodeCursor(last_suffix);
  return page;
}

absl::Status Store::ScanEvents(uint64_t from_seq,
                               absl::FunctionRef<bool(const StoredEvent&)> fn) const {
  const Impl& st = *impl_;
  std::unique_ptr<rocksdb::Iterator> it(
      st.db->NewIterator(rocksdb::ReadOptions(), st.cf[kEvents]));
  absl::flat_hash_map<std::pair<uint32_t, uint64_t>, std::optional<DataKey>> memo;
  for (it->Seek(EventKey(from_seq)); it->Valid(); it->Next()) {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<StoredEvent> event,
                             DecodeEvent(std::string_view(it->key().data(), it->key().size()),
                                         std::string_view(it->value().data(), it->value().size()),
                                         [&](uint32_t ws, uint64_t id) { return st.CommittedDataKey(ws, id, &memo); }));
    if (!event) continue;  // erased
    if (!fn(*event)) break;
  }
  return FromRocks(it->status(), "scanning events");
}

absl::StatusOr<std::optional<std::string>> Store::GetMeta(std::string_view key) const {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf[kMeta], key, &value);
  if (s.IsNotFound()) return std::nullopt;
  RAPPORT_RETURN_IF_ERROR(FromRocks(s, "reading metadata"));
  return value;
}

absl::Status Store::WriteMeta(const std::vector<std::pair<std::string, std::string>>& puts, bool sync) {
  return impl_->WriteSmall(kMeta, puts, sync, "writing metadata");
}

absl::Status Store::ScanMeta(
    std::string_view prefix,
    absl::FunctionRef<bool(std::string_view key, std::string_view value)> fn) const {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cf[kMeta]));
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    if (!key.starts_with(prefix)) break;
    if (!fn(key, std::string_view(it->value().data(), it->value().size()))) break;
  }
  return FromRocks(it->status(), "scanning metadata");
}

absl::Status Store::AppendAudit(const std::vector<std::pair<std::string, std::string>>& puts) {
  return impl_->WriteSmall(kAudit, puts, /*sync=*/false, "writing the audit log");
}

absl::Status Store::ScanAudit(
    std::string_view lower, std::string_view upper, bool reverse,
    absl::FunctionRef<bool(std::string_view key, std::string_view value)> fn) const {
  if (!impl_->cf[kAudit]) return absl::OkStatus();  // a read-only store from before the audit log
  rocksdb::ReadOptions ro;
  rocksdb::Slice lo(lower.data(), lower.size()), hi(upper.data(), upper.size());
  ro.iterate_lower_bound = &lo;
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cf[kAudit]));
  for (reverse ? it->SeekToLast() : it->SeekToFirst(); it->Valid(); reverse ? it->Prev() : it->Next()) {
    if (!fn(std::string_view(it->key().data(), it->key().size()),
            std::string_view(it->value().data(), it->value().size()))) {
      break;
    }
  }
  return FromRocks(it->status(), "reading the audit log");
}

absl::Status Store::SyncLog() {
  if (impl_->options.read_only) return absl::OkStatus();
  rocksdb::Status s = impl_->db->SyncWAL();
  if (!s.ok()) return impl_->Latch(FromRocks(s, "syncing the log"));
  return absl::OkStatus();
}

absl::Status Store::health() const {
  base::MutexLock lock(&impl_->mu);
  return impl_->latched;
}

absl::Status Store::Purge(uint32_t ws, const std::vector<uint64_t>& destroyed_keys) {
  Impl& st = *impl_;
  if (st.options.read_only) return absl::FailedPreconditionError("the store was opened read-only");
  // Every memtable to a table file: the write-ahead logs that held the keys are then obsolete,
  // and RocksDB deletes them (none are kept: WAL_ttl_seconds and WAL_size_limit_MB are 0).
  std::vector<rocksdb::ColumnFamilyHandle*> all;
  for (auto* handle : st.cf) {
    if (handle) all.push_back(handle);
  }
  rocksdb::FlushOptions flush;
  flush.wait = true;
  RAPPORT_RETURN_IF_ERROR(FromRocks(st.db->Flush(flush, all), "flushing after an erasure"));
  // The table files that held them are rewritten without them (the tombstones meet the keys).
  if (destroyed_keys.empty()) return absl::OkStatus();
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  compact.exclusive_manual_compaction = false;  // automatic compactions go on meanwhile
  const auto [lo, hi] = std::minmax_element(destroyed_keys.begin(), destroyed_keys.end());
  const std::string first = internal::DataKeyKey(ws, *lo), last = internal::DataKeyKey(ws, *hi);
  const rocksdb::Slice begin(first), end(last);
  return FromRocks(st.db->CompactRange(compact, st.cf[kState], &begin, &end), "compacting after an erasure");
}

absl::Status Store::CompactAll() {
  for (auto* handle : impl_->cf) {
    if (!handle) continue;
    rocksdb::CompactRangeOptions options;
    options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    RAPPORT_RETURN_IF_ERROR(
        FromRocks(impl_->db->CompactRange(options, handle, nullptr, nullptr), "compacting"));
  }
  return absl::OkStatus();
}

}  // namespace rapport::store

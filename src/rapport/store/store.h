// The store: rapport's only user of RocksDB. It owns the column families, key encodings
// (docs/formats/store.md), the envelope around personal data, the sync policy and group commit.
//
// Durability contract: the callback of CommitEvents reports success only after the events are
// in RocksDB's write-ahead log and, with SyncPolicy kAlways, that log is fsync'd. Requests that
// arrive while a commit is being synced wait and are committed together in one WriteBatch and
// one fsync (group commit). If a write fails, the store latches into read-only mode: every later
// commit fails with Unavailable, reads go on, and health() reports why.
//
// Thread safety: every public method may be called from any thread.
#ifndef RAPPORT_STORE_STORE_H_
#define RAPPORT_STORE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rapport/base/clock.h"
#include "rapport/base/metrics.h"
#include "rapport/base/time.h"

namespace rapport::store {

struct SyncPolicy {
  enum class Mode {
    // Every commit group is fsync'd before any of its callbacks run. Nothing acknowledged is
    // lost on power failure or kernel crash.
    kAlways,
    // Commits are written to the OS (surviving a crash of the process, e.g. kill -9) and a
    // background thread fsyncs the log every `interval_ms`. A power failure or kernel crash
    // can lose the acknowledged events of the last interval.
    kInterval,
  };
  Mode mode = Mode::kAlways;
  int interval_ms = 0;
};

// Parses "always" or "interval:<ms>" (1 ≤ ms ≤ 60000).
absl::StatusOr<SyncPolicy> ParseSyncPolicy(std::string_view text);

class CommitHook;

struct StoreOptions {
  std::string path;  // directory of the RocksDB store; created if missing (unless read_only)
  SyncPolicy sync;   // default: kAlways
  // How long a messageId is remembered for deduplication, from when the event was stored.
  // Default 7 days. Expired records are dropped at compaction; reads ignore them before that.
  base::Micros dedupe_window = 7 * base::kMicrosPerDay;
  // Bounds of the commit queue; beyond either, CommitEvents answers Unavailable at once
  // instead of queueing. Defaults: 4096 requests, 256 MiB of payload.
  size_t max_queued_requests = 4096;
  size_t max_queued_bytes = size_t{256} << 20;
  // Bytes of committed state (identity index, profiles, derived state) the writer keeps in
  // memory in front of RocksDB; least recently used entries leave first. 0 disables it.
  size_t state_cache_bytes = size_t{256} << 20;
  // RocksDB's block cache, shared by every column family, holding their index and filter
  // blocks too (so memory does not grow with the store). Default 128 MiB (the operating
  // system's page cache keeps the compressed table files besides).
  size_t block_cache_bytes = size_t{128} << 20;
  // The file holding the master key (64 hex digits) that wraps the profiles' data keys; "" =
  // `<path>/master.key`. A new store creates it (mode 0600) with a random key. A store whose data
  // is encrypted refuses to open without it, or with another key (docs/operations.md#master-key).
  std::string master_key_file;
  // Opens without the store's lock and without writing: for `rapport export` next to a running
  // server. Commits fail with FailedPrecondition.
  bool read_only = false;
  const base::Clock* clock = base::RealClock::Get();  // not owned; must outlive the Store
  base::Registry* metrics = nullptr;                  // optional, not owned; must outlive it
  // The later stages' work on every stored event (identity, profiles), applied in the same
  // WriteBatch as the event. Optional, not owned; must outlive the Store.
  CommitHook* hook = nullptr;
};

// The identifier types an event is indexed under for per-person reads.
enum class IdKind : uint8_t { kUserId = 'u', kAnonymousId = 'a' };

// One event to store. `payload` is the event's JSON as it will be returned by reads; it is
// personal data and is written through the envelope (docs/formats/store.md).
struct EventWrite {
  uint32_t workspace = 0;
  std::string message_id;  // non-empty; the deduplication key within the workspace
  base::Micros timestamp = 0;
  base::Micros received_at = 0;
  std::string user_id;       // empty when absent
  std::string anonymous_id;  // empty when absent
  std::string payload;
  // Imported from an export: it was admitted where it was first stored, and the hook does not
  // judge it again (consent is the source's, with its settings and at its time).
  bool admitted = false;
};

enum class WriteOutcome {
  kStored,
  kDuplicate,
  // The hook refused the event (CommitHook::Apply's Verdict): it is not stored as sent.
  kRefused,
};

struct EventResult {
  WriteOutcome outcome;
  // Arrival sequence number: of this event, or of the original for a duplicate; for a refused
  // event, of what was stored instead (0 if nothing was).
  uint64_t seq;
  absl::Status reason = {};  // why, for kRefused
};

struct StoredEvent {
  uint64_t seq = 0;
  uint64_t key_id = 0;  // the data key its payload is sealed with; 0: stored in plaintext
  uint32_t workspace = 0;
  base::Micros timestamp = 0;
  base::Micros received_at = 0;
  std::string payload;
};

struct EventPage {
  std::vector<StoredEvent> events;
  std::string next_cursor;  // empty on the last page
};

// Read access to the `state` column family, whose key space belongs to the stages after collect
// (identity graph, profiles; docs/formats/store.md), and to events by seq.
class StateReader {
 public:
  virtual ~StateReader() = default;
  virtual absl::StatusOr<std::optional<std::string>> Get(std::string_view key) = 0;
  // Calls `fn` for each key that starts with `prefix` and is ≥ `from` ("" = the prefix's first
  // key), in key order, until it returns false. `fn` must not write to the state.
  virtual absl::Status Scan(
      std::string_view prefix, std::string_view from,
      absl::FunctionRef<bool(std::string_view key, std::string_view value)> fn) = 0;
  // The event stored under `seq`; nullopt if there is none (or its data key was destroyed).
  virtual absl::StatusOr<std::optional<StoredEvent>> ReadEvent(uint64_t seq) = 0;

  // Personal data in the state, sealed by StateTxn::Seal with the same `aad`: its plaintext.
  // NotFound (code data_key_destroyed) when its data key was destroyed.
  virtual absl::StatusOr<std::string> Open(uint32_t ws, std::string_view aad, std::string_view sealed) = 0;
  // A 32-byte keyed hash of `data`, with a key of workspace `ws` derived from the master key:
  // to look identifiers up without storing them (the suppression list).
  virtual std::string KeyedHash(uint32_t ws, std::string_view data) const = 0;
};

// Read-modify-write access for the writer thread: reads see the writes made earlier in the same
// commit group; writes join the group's one WriteBatch and reach the store only if it commits.
class StateTxn : public StateReader {
 public:
  virtual void Put(std::string_view key, std::string_view value) = 0;
  virtual void Delete(std::string_view key) = 0;
  // For CommitHook::Apply refusing the event `seq` with Verdict::stored_instead: from now on
  // ReadEvent(seq) in this group returns `payload`, as will be stored. Other callers: no effect.
  virtual void ReplaceEvent(uint64_t seq, std::string payload) = 0;

  // --- Data keys (docs/formats/store.md#data-keys): one per profile, id = the profile's id.
  // Appends `plaintext` sealed with data key `id` of `ws` to `out`, making that key first if it
  // does not exist.
  virtual absl::Status Seal(uint32_t ws, uint64_t id, std::string_view aad, std::string_view plaintext,
                            std::string* out) = 0;
  // Destroys data key `id`: what it sealed can no longer be read, here or in any copy, once the
  // commit is written and Store::Purge has run.
  virtual void DestroyDataKey(uint32_t ws, uint64_t id) = 0;
  // Seals the stored event `seq` again with data key `key_id` (made if it does not exist; the
  // event's bytes change, not its payload). NotFound if there is no such event.
  virtual absl::Status ResealEvent(uint64_t seq, uint64_t key_id) = 0;
  // Deletes the stored event `e` (as ReadEvent returned it), its deduplication record (under
  // `message_id`) and its person-index entries under `user_id` and `anonymous_id` (as sent; ""
  // for none).
  virtual absl::Status DeleteEvent(const StoredEvent& e, std::string_view message_id, std::string_view user_id,
                                   std::string_view anonymous_id) = 0;
};

// What a CommitHook computes from an event alone, before the event reaches the writer.
class PreparedEvent {
 public:
  virtual ~PreparedEvent() = default;
};

// What the hook decided about one event.
struct Verdict {
  // OK: the event is stored. Otherwise why not (a Status with base::ErrorDetails, e.g.
  // consent_missing): the event is not written, nor its deduplication record, and it takes no
  // seq (the next event gets it) — unless `stored_instead` is set. A hook refusing with nothing
  // stored instead must have written nothing for the event.
  absl::Status refused;
  // With a refusal: the payload stored instead under the event's messageId and seq (same
  // identifiers, workspace and times), deduplicated and indexed like any event; "" for
  // nothing. The hook's state writes for the event must match it (StateTxn::ReplaceEvent shows
  // it to the group's readers while the hook works).
  std::string stored_instead;
  // The data key the stored payload is sealed with (one the hook sealed with: it exists); 0:
  // plaintext.
  uint64_t seal_key = 0;
};

// The stages after collect, applied to every newly stored event in the same WriteBatch, so that
// the next read after an acknowledgement sees their effects. Only the store calls it.
class CommitHook {
 public:
  virtual ~CommitHook() = default;
  // On the committing caller's thread, for each event: work that needs no state (parsing). An
  // error refuses the whole commit with it.
  virtual absl::StatusOr<std::unique_ptr<PreparedEvent>> Prepare(const EventWrite& event) const = 0;
  // On the writer thread, once per new event (not for duplicates), in commit order, with the
  // seq the event gets if stored. `state` reads see every earlier group's writes, written or
  // still on their way to the database, and the group's own events by seq. An error fails the
  // commit group: nothing of it is written, every request in it gets the error.
  virtual absl::StatusOr<Verdict> Apply(const EventWrite& event, uint64_t seq,
                                        const PreparedEvent& prepared, StateTxn& state) = 0;
  // On the writer thread after each group: whether its writes go to the store (a hook that
  // caches state must drop what it learnt from a group that does not). An event group's writes
  // are written after this call, while the next group may already be applied; if that write
  // fails, the store latches read-only, the groups after it fail too, and nothing more is
  // committed — but their AfterGroup(true) was called. An exclusive task's writes are written
  // before it.
  virtual void AfterGroup(bool committed) = 0;
};

// A unit of work on the state, run alone on the writer thread (serialised with every commit).
using StateTask = absl::AnyInvocable<absl::Status(StateTxn&) &&>;
using TaskCallback = absl::AnyInvocable<void(absl::Status) &&>;

// Called exactly once, on one of the store's threads: keep it short (post elsewhere).
using CommitCallback = absl::AnyInvocable<void(absl::StatusOr<std::vector<EventResult>>) &&>;

class Store {
 public:
  // Opens (creating if needed) the store. FailedPrecondition when another process holds it.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();  // Close()s.

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Queues `events` for one atomic WriteBatch. Events whose (workspace, message_id) was stored
  // within the dedupe window — or appears earlier in the same or a concurrent commit — are not
  // written again and report kDuplicate; those the hook refuses report kRefused. `done` is called exactly once, on a store thread: once
  // the group is written (and synced), with one result per event, in order; or with the hook's
  // error, or Unavailable when the write failed; or at once, on the
  // calling thread, with Unavailable ("overloaded") when the queue is full or the store is
  // latched read-only or closing, FailedPrecondition when it was opened read-only.
  void CommitEvents(std::vector<EventWrite> events, CommitCallback done);

  // CommitEvents, waiting for the result (for the CLI and tests).
  absl::StatusOr<std::vector<EventResult>> CommitEventsAndWait(std::vector<EventWrite> events);

  // Events of one person by identifier, oldest first (by timestamp, then arrival). `cursor` is
  // "" for the first page or a next_cursor from an earlier page; `limit` ≥ 1.
  absl::StatusOr<EventPage> ReadPersonEvents(uint32_t workspace, IdKind kind,
                                             std::string_view id, std::string_view cursor,
                                             size_t limit) const;

  // Calls `fn` for every stored event with seq ≥ `from_seq`, in arrival order, until it
  // returns false.
  absl::Status ScanEvents(uint64_t from_seq,
                          absl::FunctionRef<bool(const StoredEvent&)> fn) const;

  // Runs `task` on the writer thread, alone in its commit group, and commits its writes in one
  // synced WriteBatch (none if it fails). `done` is called exactly once with the task's error,
  // the store's, or OK — on the writer thread, or at once when the store refuses (as above).
  void RunExclusive(StateTask task, TaskCallback done);
  absl::Status RunExclusiveAndWait(StateTask task);

  // A consistent view (one RocksDB snapshot) of the state and events, for reads from any
  // thread. It stays usable until destroyed; destroy it before the Store.
  std::unique_ptr<StateReader> NewStateReader() const;

  // The small "meta" key space (workspaces, keys): see docs/formats/store.md.
  absl::StatusOr<std::optional<std::string>> GetMeta(std::string_view key) const;
  // Writes all `puts` in one WriteBatch, synced unless `sync` is false (then it survives a crash
  // of the process, and the next synced write makes it durable).
  absl::Status WriteMeta(const std::vector<std::pair<std::string, std::string>>& puts, bool sync = true);
  absl::Status ScanMeta(std::string_view prefix,
                        absl::FunctionRef<bool(std::string_view key, std::string_view value)> fn)
      const;

  // The audit log's key space (trust::AuditLog; docs/formats/store.md). AppendAudit writes
  // `puts` in one WriteBatch without waiting for an fsync: they are in the write-ahead log (and
  // survive a crash of the process) when it returns; SyncLog makes them survive a crash of the
  // machine.
  absl::Status AppendAudit(const std::vector<std::pair<std::string, std::string>>& puts);
  // Calls `fn` for the audit keys in [lower, upper), ascending (or descending when `reverse`),
  // until it returns false.
  absl::Status ScanAudit(std::string_view lower, std::string_view upper, bool reverse,
                         absl::FunctionRef<bool(std::string_view key, std::string_view value)> fn)
      const;
  // fsyncs the write-ahead log.
  absl::Status SyncLog();

  // OK, or why the store no longer accepts writes.
  absl::Status health() const;

  // Compacts every column family (runs the dedupe expiry filter). For tests and maintenance.
  absl::Status CompactAll();

  // After data keys were destroyed (StateTxn::DestroyDataKey) and the commit written: removes
  // every copy of them from the disk, so that what they sealed is unreadable in the write-ahead
  // log and in old table files. Flushes every memtable (the logs that hold the keys are then
  // deleted) and compacts the keys' range. Takes up to about a second on a large store.
  absl::Status Purge(uint32_t ws, const std::vector<uint64_t>& destroyed_keys);

  // Stops accepting commits, finishes those queued, syncs and closes the database. Idempotent.
  void Close();

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rapport::store

#endif  // RAPPORT_STORE_STORE_H_

// The audit log: who read whose personal data, when, and for which purposes (GET /api/v1/audit,
// docs/api/audit.md). Every route that answers personal data records an entry before it
// answers; an entry that cannot be written fails the read (503), so nothing is read unlogged.
//
// Entries are kept in the store's audit key space twice: by time, and by profile (for a
// person's export). An entry is in the store's write-ahead log before Record returns (it
// survives a crash of the process); Sync makes it survive a crash of the machine, and the
// server calls it every second.
//
// Thread safety: all methods may be called from any thread.
#ifndef RAPPORT_TRUST_AUDIT_H_
#define RAPPORT_TRUST_AUDIT_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rapport/base/clock.h"
#include "rapport/store/store.h"

namespace rapport::trust {

struct AuditEntry {
  base::Micros at = 0;                // set by Record
  std::string key_id;                 // the key that read (KeyInfo::id)
  std::string key_name;
  uint64_t profile = 0;               // whose data; 0 when the read was not of one profile
  std::string action;                 // the route's name, e.g. "profile_events"
  std::vector<std::string> purposes;  // the key's purposes; empty = not restricted
  std::string subject;                // what else names the read, e.g. "segment vip" (may be "")
  uint64_t count = 0;                 // items answered (events, members), when a list
};

struct AuditQuery {
  std::optional<uint64_t> profile;  // only entries about this profile
  std::string key_id;               // only entries of this key ("" = any)
  base::Micros since = 0;           // at ≥ since
  base::Micros until = 0;           // at < until (0 = no bound)
  std::string cursor;               // from the previous page's next_cursor
  size_t limit = 100;
};

struct AuditPage {
  std::vector<AuditEntry> entries;  // newest first
  std::string next_cursor;          // "" on the last page
};

class AuditLog {
 public:
  // How many entries one List call looks at when filtering by key before it returns a page
  // (maybe short, with a cursor to go on).
  static constexpr size_t kScanBudget = 100000;

  // `store` and `clock` (not owned) must outlive this.
  AuditLog(store::Store* store, const base::Clock* clock);

  // Writes `entry` (its `at` set to now) for workspace `ws`.
  absl::Status Record(uint32_t ws, AuditEntry entry);

  // Entries of `ws`, newest first. InvalidArgument (invalid_cursor) for a cursor not made here.
  absl::StatusOr<AuditPage> List(uint32_t ws, const AuditQuery& query) const;

  // Makes the entries recorded so far survive a crash of the machine (fsync of the store's log);
  // does nothing when there are none.
  absl::Status Sync();

 private:
  store::Store* const store_;
  const base::Clock* const clock_;
  // Tell apart entries of the same microsecond (a simulated clock repeats them), also across
  // restarts: the high half is drawn for each AuditLog, the low half counts.
  const uint64_t instance_;
  std::atomic<uint64_t> next_{0};
  std::atomic<bool> unsynced_{false};
};

// The JSON of one entry (docs/api/audit.md).
std::string AuditEntryJson(const AuditEntry& e);

}  // namespace rapport::trust

#endif  // RAPPORT_TRUST_AUDIT_H_

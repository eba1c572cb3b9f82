#include "rapport/trust/audit.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "rapport/base/codec.h"
#include "rapport/base/crypto.h"
#include "rapport/base/endian.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"
#include "rapport/base/time.h"
#include "rapport/wire/json_text.h"

namespace rapport::trust {
namespace {

// Audit key space (docs/formats/store.md):
//   'a' ws(4) at(8) n(8)             → entry   (by time)
//   'p' ws(4) profile(8) at(8) n(8)  → entry   (by profile; only entries with a profile)
// Integers big-endian, so keys sort by time. `n` tells apart entries of the same microsecond.
constexpr uint8_t kEntryVersion = 1;
constexpr size_t kStampBytes = 16;  // at(8) n(8)

std::string Prefix(char kind, uint32_t ws, std::optional<uint64_t> profile) {
  std::string k(1, kind);
  base::PutU32(&k, ws);
  if (profile) base::PutU64(&k, *profile);
  return k;
}

std::string Stamp(base::Micros at, uint64_t n) {
  std::string k;
  base::PutU64(&k, static_cast<uint64_t>(at));
  base::PutU64(&k, n);
  return k;
}

std::string Encode(const AuditEntry& e) {
  base::Writer w;
  w.U8(kEntryVersion);
  w.Signed(e.at);
  w.Bytes(e.key_id);
  w.Bytes(e.key_name);
  w.Varint(e.profile);
  w.Bytes(e.action);
  w.Bytes(absl::StrJoin(e.purposes, ","));
  w.Bytes(e.subject);
  w.Varint(e.count);
  return std::move(w).Finish();
}

std::optional<AuditEntry> Decode(std::string_view value) {
  base::Reader r(value);
  AuditEntry e;
  uint8_t version = 0;
  std::string_view purposes;
  r.U8(&version);
  r.Signed(&e.at);
  r.Bytes(&e.key_id);
  r.Bytes(&e.key_name);
  r.Varint(&e.profile);
  r.Bytes(&e.action);
  r.Bytes(&purposes);
  r.Bytes(&e.subject);
  r.Varint(&e.count);
  if (!r.done() || version != kEntryVersion) return std::nullopt;
  if (!purposes.empty()) {
    for (absl::string_view p : absl::StrSplit(base::AsAbsl(purposes), ',')) e.purposes.emplace_back(p);
  }
  return e;
}

}  // namespace

AuditLog::AuditLog(store::Store* store, const base::Clock* clock)
    : store_(store), clock_(clock), instance_(std::stoull(base::RandomToken("", 4), nullptr, 16) << 32) {}

absl::Status AuditLog::Record(uint32_t ws, AuditEntry entry) {
  entry.at = clock_->Now();
  const std::string stamp = Stamp(entry.at, instance_ | (next_.fetch_add(1) & 0xffffffffu));
  const std::string value = Encode(entry);
  std::vector<std::pair<std::string, std::string>> puts{{Prefix('a', ws, std::nullopt) + stamp, value}};
  if (entry.profile) puts.emplace_back(Prefix('p', ws, entry.profile) + stamp, value);
  RAPPORT_RETURN_IF_ERROR(store_->AppendAudit(puts));
  unsynced_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<AuditPage> AuditLog::List(uint32_t ws, const AuditQuery& q) const {
  if (q.until != 0 && q.until <= q.since) return AuditPage{};  // an empty range
  const std::string prefix = q.profile ? Prefix('p', ws, *q.profile) : Prefix('a', ws, std::nullopt);
  std::string lower = prefix + Stamp(std::max<base::Micros>(q.since, 0), 0);
  std::string upper = q.until > 0 ? prefix + Stamp(q.until, 0) : prefix + std::string(kStampBytes, '\xff');
  if (!q.cursor.empty()) {
    if (q.cursor.size() != 2 * kStampBytes ||
        !std::all_of(q.cursor.begin(), q.cursor.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); })) {
      return base::InvalidField("invalid_cursor", "cursor", "the cursor was not made by this server");
    }
    upper = std::min(upper, prefix + absl::HexStringToBytes(base::AsAbsl(q.cursor)));  // the cursor is the last entry answered: exclusive
  }
  AuditPage page;
  absl::Status bad;
  size_t scanned = 0;
  std::string last;
  RAPPORT_RETURN_IF_ERROR(store_->ScanAudit(lower, upper, /*reverse=*/true,
                                            [&](std::string_view key, std::string_view value) {
    if (page.entries.size() == q.limit || scanned == kScanBudget) {
      page.next_cursor = absl::BytesToHexString(base::AsAbsl(last));
      return false;
    }
    ++scanned;
    last = std::string(key.substr(prefix.size()));
    std::optional<AuditEntry> e = Decode(value);
    if (!e) {
      bad = absl::DataLossError("an audit entry cannot be decoded");
      return false;
    }
    if (q.key_id.empty() || e->key_id == q.key_id) page.entries.push_back(*std::move(e));
    return true;
  }));
  RAPPORT_RETURN_IF_ERROR(bad);
  return page;
}

absl::Status AuditLog::Sync() {
  if (!unsynced_.exchange(false, std::memory_order_acq_rel)) return absl::OkStatus();
  absl::Status st = store_->SyncLog();
  if (!st.ok()) unsynced_.store(true);
  return st;
}

std::string AuditEntryJson(const AuditEntry& e) {
  std::string out = "{\"at\":" + wire::Quote(base::FormatIso8601(e.at)) + ",\"key\":{\"id\":" + wire::Quote(e.key_id) +
                    ",\"name\":" + wire::Quote(e.key_name) + "},\"profile_id\":";
  out += e.profile ? wire::Quote(std::to_string(e.profile)) : "null";
  out += ",\"action\":" + wire::Quote(e.action) + ",\"purposes\":";
  if (e.purposes.empty()) {
    out += "null";
  } else {
    out += '[';
    for (size_t i = 0; i < e.purposes.size(); ++i) out += (i ? "," : "") + wire::Quote(e.purposes[i]);
    out += ']';
  }
  out += ",\"subject\":";
  out += e.subject.empty() ? "null" : wire::Quote(e.subject);
  out += fmt::format(",\"count\":{}}}", e.count);
  return out;
}

}  // namespace rapport::trust

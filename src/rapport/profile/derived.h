// What rapport derives for a profile from its events and the workspace's definitions: the
// state of each computed trait, the segments it is in, and when that may next change with time
// alone. One record per profile, written in the event's WriteBatch; the membership index (who
// is in a segment), its counts and the due index (which profiles the sweep must look at when)
// are kept beside it. Encodings: docs/formats/store.md.
//
// Thread safety: values and free functions.
#ifndef RAPPORT_PROFILE_DERIVED_H_
#define RAPPORT_PROFILE_DERIVED_H_

#include <cstdint>
#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rapport/base/time.h"
#include "rapport/profile/computed.h"

namespace rapport::profile {

enum class DefinitionKind : char { kComputed = 'c', kSegment = 's' };

// "computed trait" or "segment", for messages.
std::string_view DefinitionKindName(DefinitionKind kind);

struct Membership {
  std::string segment;
  base::Micros entered_at = 0;
};

struct DerivedState {
  std::map<std::string, TraitState> traits;  // by computed trait name
  std::vector<Membership> segments;          // sorted by name
  base::Micros due = 0;                      // its entry in the due index; 0 none

  bool InSegment(std::string_view name) const;
};

std::string EncodeDerived(const DerivedState& d);
std::optional<DerivedState> DecodeDerived(std::string_view bytes);

// Keys (all in the `state` column family).
std::string DerivedKey(uint32_t ws, uint64_t id);                             // 'c' ws id
std::string MemberPrefix(uint32_t ws, std::string_view segment);              // 'g' ws len name
std::string MemberKey(uint32_t ws, std::string_view segment, uint64_t id);    // … id → entered_at
std::string MemberCountKey(uint32_t ws, std::string_view segment);            // 'G' ws name → count
std::string DuePrefix();                                                       // 'w'
std::string DueKey(base::Micros at, uint32_t ws, uint64_t id);               // 'w' at ws id
std::string DefinitionPrefix(uint32_t ws, DefinitionKind kind);
std::string DefinitionKey(uint32_t ws, DefinitionKind kind, std::string_view name);  // 'D' ws kind name
std::string JobKey(uint64_t id);                                              // 'J' id
std::string NextJobKey();                                                      // 'N'
// A membership change on the timeline: the timeline key of (ts, seq) followed by 'm' and the
// segment's name; its value is "entered" or "exited".
std::string MembershipTimelineKey(uint32_t ws, uint64_t id, base::Micros ts, uint64_t seq,
                                  std::string_view segment);

// A membership change found on a timeline: the segment, the change and its time.
struct MembershipChange {
  std::string segment;
  bool entered = false;
  base::Micros at = 0;
};
std::optional<MembershipChange> DecodeMembershipTimeline(std::string_view key, std::string_view value);

struct DueEntry {
  base::Micros at;
  uint32_t ws;
  uint64_t id;
};
std::optional<DueEntry> DecodeDueKey(std::string_view key);
std::optional<uint64_t> DecodeMemberKeyId(std::string_view key);  // the id at the end

// A backfill job: recomputes one definition over every profile of a workspace, a chunk of
// profiles at a time, its progress committed with each chunk.
enum class JobState : uint8_t { kQueued, kRunning, kDone, kFailed, kSuperseded };
std::string_view JobStateName(JobState s);

struct Job {
  uint64_t id = 0;
  uint32_t ws = 0;
  DefinitionKind kind = DefinitionKind::kComputed;
  std::string target;    // the definition's name
  uint64_t version = 0;  // the definition's version it computes
  JobState state = JobState::kQueued;
  uint64_t cursor = 1;  // the next profile id to look at
  uint64_t total = 0;   // profile ids to look at (those that existed when it was queued)
  uint64_t profiles = 0;  // live profiles recomputed so far
  base::Micros created_at = 0;
  base::Micros started_at = 0;
  base::Micros finished_at = 0;
  std::string error;

  bool finished() const { return state != JobState::kQueued && state != JobState::kRunning; }
  uint64_t done() const { return std::min(total, cursor - 1); }
};
std::string EncodeJob(const Job& job);
std::optional<Job> DecodeJob(uint64_t id, std::string_view bytes);

std::string EncodeU64(uint64_t v);
std::optional<uint64_t> DecodeU64(std::string_view v);

}  // namespace rapport::profile

#endif  // RAPPORT_PROFILE_DERIVED_H_

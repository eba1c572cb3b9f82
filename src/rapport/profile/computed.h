// Computed traits: per-profile aggregates of the events that match a definition (count, sum,
// average, min, max, first, last, distinct count, most frequent value, RFM, hour × weekday
// activity), over all time or a sliding window that expires as time passes.
//
// The state of one trait on one profile is a commutative summary of its events — adding events
// in any order, or merging two profiles' states, gives the same value — so profiles stay
// independent of arrival order. All-time traits keep a fixed-size aggregate; windowed traits
// keep the events still inside the window (at most kMaxWindowEntries) and compute the value at
// read time, so a read is exact at any instant even before the sweep drops expired entries.
//
// docs/computed-traits.md is the reference.
//
// Thread safety: definitions are immutable after Compile; states are values.
#ifndef RAPPORT_PROFILE_COMPUTED_H_
#define RAPPORT_PROFILE_COMPUTED_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rapport/base/codec.h"
#include "rapport/base/time.h"
#include "rapport/profile/expression.h"
#include "rapport/profile/record.h"
#include "rapport/wire/definition_json.h"
#include "rapport/wire/event_facts.h"

namespace rapport::profile {

enum class ComputedKind : uint8_t {
  kCount, kSum, kAverage, kMin, kMax, kFirst, kLast, kDistinct, kMostFrequent, kRfm, kActivity,
};

// Limits of a definition's property path.
inline constexpr size_t kMaxPropertyPathBytes = 200;
inline constexpr size_t kMaxPropertyPathParts = 8;  // as a field path in an expression

// Limits of one trait's state on one profile.
inline constexpr size_t kMaxWindowEntries = 10'000;  // windowed: the oldest beyond are dropped
inline constexpr size_t kMaxDistinctValues = 1'000;  // distinct / most frequent: later values not kept

struct ComputedTraitDef {
  wire::ComputedTraitSpec spec;
  uint64_t version = 0;
  ComputedKind kind = ComputedKind::kCount;
  base::Micros window = 0;  // 0: all time
  std::vector<std::string> property;  // the property's path; empty when the kind reads none
  bool property_is_timestamp = false;  // first/last of "timestamp": the event's time
  std::shared_ptr<const Expression> where;  // nullptr: every event (of `spec.event`)
  absl::TimeZone zone;                       // activity

  const std::string& name() const { return spec.name; }
  // The type of computed.NAME (part "") or computed.NAME.PART, for the segment language.
  std::optional<Type> TypeOf(std::string_view part, std::string* why) const;
};

// A definition's name (computed trait or segment): [a-z][a-z0-9_]{0,63}. InvalidArgument
// (invalid_name, field "name") otherwise.
absl::Status CheckDefinitionName(std::string_view name);

// Validates a spec: name [a-z][a-z0-9_]{0,63}, a known kind, the property the kind needs, a
// window duration, the `where` predicate (over properties, event and type), a time zone.
// InvalidArgument naming the member at fault.
absl::StatusOr<ComputedTraitDef> CompileComputedTrait(const wire::ComputedTraitSpec& spec,
                                                      uint64_t version);

// What one event contributes to a trait.
struct Observation {
  OrderKey key;
  std::string json;  // the property's JSON text ("" for kinds that read none)
  bool operator<(const Observation& o) const { return key < o.key; }
};

// The observation `facts` (at `key`) makes for `def`, or nullopt if the event does not match
// (another event name, `where` false, or the property missing where the kind needs it).
std::optional<Observation> Observe(const ComputedTraitDef& def, const wire::EventFacts& facts,
                                   const OrderKey& key);

// A summary of observations; which parts matter depends on the kind.
struct Aggregate {
  uint64_t count = 0;
  uint64_t numbers = 0;  // observations with a numeric value
  double sum = 0;
  double min = 0;
  double max = 0;
  std::optional<Observation> first;
  std::optional<Observation> last;
  std::map<std::string, uint64_t> values;  // value JSON → count (at most kMaxDistinctValues)
  bool values_overflow = false;
  std::vector<uint32_t> hours;  // activity: 7 × 24 counters, Monday 00h first; empty: all zero

  // Returns false only when nothing a segment can read (ComputedValue, every part) changed:
  // a max below the maximum, a known value for distinct, a most frequent value still ahead.
  // Without `track`, true (finding out costs a pass over the values of most_frequent).
  bool Add(const ComputedTraitDef& def, const Observation& o, bool track = true);
  void Merge(const Aggregate& other);
};

struct TraitState {
  uint64_t version = 0;  // of the definition it was computed with
  Aggregate all_time;                // window == 0
  std::vector<Observation> entries;  // window > 0: inside the window, sorted by key
  uint64_t dropped = 0;              // window entries dropped over kMaxWindowEntries

  // Returns false only when nothing a segment can read of it at `now` changed (as Aggregate's;
  // a windowed state: when the observation is already outside the window, `track` or not).
  bool Add(const ComputedTraitDef& def, Observation o, base::Micros now, bool track = true);
  void Merge(const ComputedTraitDef& def, TraitState other, base::Micros now);
  // Drops window entries that have left the window by `now` (reads ignore them anyway).
  void Expire(const ComputedTraitDef& def, base::Micros now);
  // The summary at `now` (windowed: of the entries inside (now − window, ∞)).
  Aggregate At(const ComputedTraitDef& def, base::Micros now) const;
  // When the value next changes with time alone (a window entry leaves); Evaluation::kNever.
  base::Micros NextExpiry(const ComputedTraitDef& def, base::Micros now) const;
};

// The value as JSON text, and as the segment language sees computed.NAME[.PART].
std::string ComputedJson(const ComputedTraitDef& def, const Aggregate& a, base::Micros now);
Value ComputedValue(const ComputedTraitDef& def, const Aggregate& a, std::string_view part,
                    base::Micros now);

// A JSON value (the member at `path` inside `json`) as the segment language sees it.
Value ValueFromJson(std::string_view json, std::span<const std::string> path);

// The stored form of a state (inside the profile's derived-state record, docs/formats/store.md):
// written in the record's current format, read in either (`format` 1 or 2, the record's version).
inline constexpr uint8_t kTraitStateFormat = 2;
void EncodeTraitState(base::Writer& w, const TraitState& state);
bool DecodeTraitState(base::Reader& r, TraitState* state, uint8_t format = kTraitStateFormat);

}  // namespace rapport::profile

#endif  // RAPPORT_PROFILE_COMPUTED_H_

// A workspace's computed-trait and segment definitions, compiled and checked together: every
// computed.NAME and segment("NAME") a segment names exists and has the type it is used with,
// segments do not depend on themselves, and segments are ordered so that those another depends
// on are evaluated first. Changing a definition gives a new Definitions (copy on write): the
// engine publishes it for readers when the change commits.
//
// Thread safety: immutable once built; shared between threads through shared_ptr<const>.
#ifndef RAPPORT_PROFILE_DEFINITIONS_H_
#define RAPPORT_PROFILE_DEFINITIONS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "rapport/base/time.h"
#include "rapport/profile/computed.h"
#include "rapport/profile/derived.h"
#include "rapport/profile/expression.h"
#include "rapport/wire/definition_json.h"

namespace rapport::profile {

// Per workspace.
inline constexpr size_t kMaxComputedTraits = 100;
inline constexpr size_t kMaxSegments = 200;

// How a definition is kept in the store (docs/formats/store.md).
struct StoredDefinition {
  uint64_t version = 0;  // 1 on creation, +1 on every change
  base::Micros created_at = 0;
  base::Micros updated_at = 0;
  uint64_t job = 0;      // the backfill job of this version
  std::string spec_json;  // wire::ComputedTraitSpecJson / SegmentSpecJson
};
std::string EncodeStoredDefinition(const StoredDefinition& d);
std::optional<StoredDefinition> DecodeStoredDefinition(std::string_view bytes);

// The profile.* fields, as bits: which ones a segment reads, which ones an event changed.
enum ProfileField : uint8_t { kFirstSeen = 1, kLastSeen = 2, kEventCount = 4 };
inline constexpr std::pair<ProfileField, const char*> kProfileFields[] = {
    {kFirstSeen, "first_seen"}, {kLastSeen, "last_seen"}, {kEventCount, "event_count"}};

struct SegmentDef {
  wire::SegmentSpec spec;
  uint64_t version = 0;
  std::shared_ptr<const Expression> expression;
  // Resolved against the Definitions that hold it, so evaluation looks nothing up by name:
  std::vector<int> field_slots;        // the workspace's number of each of expression->fields()
  std::vector<size_t> computed_reads;  // the computed traits it names, as indexes in computed()
  std::vector<size_t> segment_reads;   // the segments it names, as indexes in segments() (earlier)
  uint8_t profile_reads = 0;           // the profile.* fields it reads (ProfileField bits)
  const std::string& name() const { return spec.name; }
};

class Definitions {
 public:
  Definitions() = default;

  // From the stored definitions. DataLoss if one no longer compiles.
  static absl::StatusOr<std::shared_ptr<const Definitions>> FromStored(
      const std::vector<StoredDefinition>& computed, const std::vector<StoredDefinition>& segments);

  // These definitions with `spec` added or replacing the one of its name, at `version`.
  // InvalidArgument for a bad spec; FailedPrecondition (409) when a segment that uses the
  // trait would no longer type-check, or a limit is reached.
  absl::StatusOr<std::shared_ptr<const Definitions>> WithComputed(const wire::ComputedTraitSpec& spec,
                                                                  uint64_t version) const;
  // InvalidArgument for a bad spec or expression (with position); FailedPrecondition when it
  // would make segments depend on themselves, or a limit is reached.
  absl::StatusOr<std::shared_ptr<const Definitions>> WithSegment(const wire::SegmentSpec& spec,
                                                                 uint64_t version) const;

  const std::vector<ComputedTraitDef>& computed() const { return computed_; }  // by name
  const std::vector<SegmentDef>& segments() const { return segments_; }  // dependencies first
  const ComputedTraitDef* FindComputed(std::string_view name) const;
  const SegmentDef* FindSegment(std::string_view name) const;
  // Indexes in computed() and segments(); nullopt if there is none of that name.
  std::optional<size_t> ComputedIndex(std::string_view name) const;
  std::optional<size_t> SegmentIndex(std::string_view name) const;
  // Indexes in segments(), in order of name (how a profile's memberships are kept).
  const std::vector<size_t>& segments_by_name() const { return segments_by_name_; }
  // How many distinct fields the segments read (SegmentDef::field_slots are below it).
  size_t field_slots() const { return field_slots_; }
  // Whether a segment reads computed()[i] (if none does, what changed in it need not be known).
  bool read_by_segments(size_t i) const { return i < read_by_segments_.size() && read_by_segments_[i]; }
  bool empty() const { return computed_.empty() && segments_.empty(); }

 private:
  // Compiles `segment_specs` against computed_ and orders them into segments_.
  absl::Status SetSegments(std::vector<std::pair<wire::SegmentSpec, uint64_t>> segment_specs);

  // Rebuilds the name indexes below after computed_ or segments_ changed.
  void Index();

  std::vector<ComputedTraitDef> computed_;
  std::vector<SegmentDef> segments_;
  absl::flat_hash_map<std::string, size_t> computed_index_;
  absl::flat_hash_map<std::string, size_t> segment_index_;
  std::vector<size_t> segments_by_name_;
  size_t field_slots_ = 0;
  std::vector<bool> read_by_segments_;  // by index in computed_
};

}  // namespace rapport::profile

#endif  // RAPPORT_PROFILE_DEFINITIONS_H_

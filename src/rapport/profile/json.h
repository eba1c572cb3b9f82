// The profile API's JSON (docs/api/profiles.md).
//
// Thread safety: free functions on their arguments only.
#ifndef RAPPORT_PROFILE_JSON_H_
#define RAPPORT_PROFILE_JSON_H_

#include <cstdint>
#include <string>
#include <optional>
#include <string_view>
#include <vector>

#include "rapport/profile/engine.h"
#include "rapport/profile/definitions.h"
#include "rapport/profile/derived.h"
#include "rapport/profile/record.h"

namespace rapport::profile {

// GET /api/v1/profiles/{id}: identifiers, traits, computed traits (their values at `now`),
// segments, the state of each purpose, first/last seen. `requested` is the id that was asked
// for (shown as merged_from when the profile was merged into `p`). With `visible` (a reader
// restricted to purposes: trust::VisiblePurposes), computed traits and segments are shown only
// when it holds analytics, and `restricted_to` lists it.
std::string ProfileJson(const ProfileRecord& p, uint64_t requested, const Definitions& defs,
                        const DerivedState& derived, const trust::PurposePolicy& policy, base::Micros now,
                        const std::vector<std::string>* visible = nullptr);

// GET and PUT /api/v1/profiles/{id}/consent: every purpose of the workspace with its state at
// `now`, the recorded choice (time, source, text version, event) and what it gives the person.
std::string ConsentJson(const ProfileRecord& p, const trust::PurposePolicy& policy, base::Micros now);

// A definition as the API shows it: its spec, version, times and backfill job.
std::string DefinitionJson(const StoredDefinition& d, const std::optional<Job>& job);
std::string JobJson(const Job& job);
std::string MembersJson(std::string_view segment, const MembersPage& page);

// GET /api/v1/profiles/{id}/identities: each identifier with why it belongs, the merges that
// formed the profile and the links that were refused.
std::string IdentitiesJson(const ProfileRecord& p);

// GET /api/v1/profiles/{id}/events.
std::string TimelineJson(uint64_t id, const TimelinePage& page);

// POST /api/v1/profiles/{id}/split.
std::string SplitJson(const std::vector<uint64_t>& profiles);

}  // namespace rapport::profile

#endif  // RAPPORT_PROFILE_JSON_H_

// The profile engine: for every stored event, resolves its identifiers to one profile (merging
// profiles the event links, within the workspace's merge protection), records why each
// identifier belongs and which links were refused, and updates the profile's traits (last write
// wins by event time) and its timeline — all in the event's own WriteBatch, through the store's
// CommitHook. Reads are served from consistent snapshots on any thread.
//
// Order independence: a profile's state depends on its events, not on the order they arrived.
// Links without conflicts commute; when an event arrives earlier (by event time) than events
// already applied to profiles involved in a refused link, those profiles are rebuilt from their
// stored events in event-time order (bounded by EngineOptions; beyond, the event is applied as
// it comes and rapport_profile_rebuilds_skipped_total counts it).
//
// Thread safety: the CommitHook methods run on the store's writer thread only (the store
// guarantees it); the read methods may be called from any thread.
#ifndef RAPPORT_PROFILE_ENGINE_H_
#define RAPPORT_PROFILE_ENGINE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "rapport/base/metrics.h"
#include "rapport/identity/identifier.h"
#include "rapport/profile/record.h"
#include "rapport/store/store.h"

namespace rapport::profile {

struct EngineOptions {
  // Merge protection for every workspace (docs/identity.md has the defaults).
  identity::MergeRules rules;
  // Bounds of one rebuild: profiles (default 64) and events (default 100,000). A rebuild runs on
  // the store's writer thread and holds up every commit meanwhile.
  size_t max_rebuild_profiles = 64;
  size_t max_rebuild_events = 100'000;
  base::Registry* metrics = nullptr;  // optional, not owned
};

struct TimelinePage {
  std::vector<store::StoredEvent> events;  // oldest first (event time, then arrival)
  std::string next_cursor;                 // "" on the last page
};

class Engine final : public store::CommitHook {
 public:
  explicit Engine(EngineOptions options);
  ~Engine() override;

  // store::CommitHook.
  absl::StatusOr<std::unique_ptr<store::PreparedEvent>> Prepare(
      const store::EventWrite& event) const override;
  absl::Status Apply(const store::EventWrite& event, uint64_t seq,
                     const store::PreparedEvent& prepared, store::StateTxn& state) override;
  void AfterGroup(bool committed) override;

  // Reads. `id` may be a profile that was merged into another: the live one is returned
  // (its `id` then differs). NotFound if there is no such profile.
  static absl::StatusOr<ProfileRecord> Read(store::StateReader& state, uint32_t ws, uint64_t id);
  // The profile an identifier (normalised with the engine's rules) belongs to. NotFound if none;
  // InvalidArgument if the value is not an identifier.
  absl::StatusOr<ProfileRecord> Lookup(store::StateReader& state, uint32_t ws,
                                       const wire::RawIdentifier& identifier) const;
  // The events of a profile, in event-time order; `cursor` "" or a next_cursor; limit ≥ 1.
  static absl::StatusOr<TimelinePage> Timeline(store::StateReader& state, uint32_t ws,
                                               uint64_t id, std::string_view cursor, size_t limit);

  // Undoes a wrong merge: keeps `identifier` apart from the profile's other identifiers from now
  // on and rebuilds the profile (and those it conflicts with) from the stored events. Run with
  // Store::RunExclusive. NotFound if there is no profile `id`; FailedPrecondition (409) if the
  // identifier is not on it or is its only one. Returns the profiles that now hold the
  // identifiers the profile had, sorted.
  absl::StatusOr<std::vector<uint64_t>> Split(store::StateTxn& state, uint32_t ws, uint64_t id,
                                              const wire::RawIdentifier& identifier);

  const identity::MergeRules& rules() const { return options_.rules; }

 private:
  class Run;
  friend class Run;

  absl::StatusOr<const identity::Separations*> SeparationsOf(store::StateTxn& state, uint32_t ws);

  EngineOptions options_;
  // Writer thread only: separations per workspace, loaded on first use.
  absl::flat_hash_map<uint32_t, identity::Separations> separations_;
  base::Counter* merges_ = nullptr;
  base::Counter* blocked_ = nullptr;
  base::Counter* rebuilds_ = nullptr;
  base::Counter* rebuilds_skipped_ = nullptr;
  base::Counter* unattributed_ = nullptr;
};

}  // namespace rapport::profile

#endif  // RAPPORT_PROFILE_ENGINE_H_

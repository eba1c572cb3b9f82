// The profile engine: first judges each new event against the consent of the person it names
// (trust/consent.h): an event whose purpose they have not granted is refused and not stored
// (only its consent record is, when it changes their choices). Whether an event is admitted
// depends on the consent when it arrives; all that follows holds for what is stored.
//
// For every stored event, it resolves its identifiers to one profile (merging
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
// Computed traits and segments (definitions.h) are kept in the same WriteBatch: each event
// updates the computed traits it matches, and the segments of every profile it changed are
// evaluated before the commit; entering and leaving a segment is written on the profile's
// timeline and in the segment's member index. What changes with time alone (windows, now())
// is found through the due index by Sweep; definition changes are backfilled by jobs.
//
// Thread safety: the CommitHook methods, the definition changes, RunJobStep and Sweep run on
// the store's writer thread only (hook calls by the store's guarantee; the others through
// Store::RunExclusive); the read methods may be called from any thread.
#ifndef RAPPORT_PROFILE_ENGINE_H_
#define RAPPORT_PROFILE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "rapport/base/clock.h"
#include "rapport/base/metrics.h"
#include "rapport/base/mutex.h"
#include "rapport/identity/identifier.h"
#include "rapport/profile/definitions.h"
#include "rapport/profile/derived.h"
#include "rapport/profile/record.h"
#include "rapport/store/store.h"
#include "rapport/trust/consent.h"
#include "rapport/wire/event_facts.h"

namespace rapport::profile {

struct EngineOptions {
  // Merge protection of every workspace without settings of its own (docs/identity.md has the
  // defaults).
  identity::MergeRules rules;
  // Bounds of one rebuild: profiles (default 64) and events (default 100,000). A rebuild runs on
  // the store's writer thread and holds up every commit meanwhile.
  size_t max_rebuild_profiles = 64;
  size_t max_rebuild_events = 100'000;
  base::Registry* metrics = nullptr;  // optional, not owned
  // Evaluation time of windows and now(); not owned, must outlive the engine.
  const base::Clock* clock = base::RealClock::Get();
};

// How a definition change treats an existing definition of the same name.
enum class PutMode {
  kCreate,   // FailedPrecondition (409 definition_exists) if it exists
  kReplace,  // NotFound (404) if it does not
  kUpsert,   // either; an identical spec changes nothing (no new version, no job)
};

struct DefinitionChange {
  StoredDefinition stored;
  std::optional<Job> job;  // the backfill of this version; none when nothing changed
  bool created = false;
};

struct MembersPage {
  uint64_t count = 0;  // members now
  std::vector<std::pair<uint64_t, base::Micros>> members;  // profile id, entered at; by id
  std::string next_cursor;
};

// One entry of a profile's timeline: an event, or the profile entering or leaving a segment.
struct TimelineItem {
  store::StoredEvent event;                 // when `membership` is unset
  std::optional<MembershipChange> membership;
};

struct TimelinePage {
  std::vector<TimelineItem> items;  // oldest first (event time, then arrival)
  std::string next_cursor;          // "" on the last page
};

// What an erasure removed (docs/gdpr.md#erasure): the receipt's scope.
struct Erasure {
  uint64_t profile_id = 0;
  std::vector<uint64_t> profiles;  // records deleted: the profile and those merged into it
  uint64_t events = 0;
  uint64_t identifiers = 0;
  uint64_t traits = 0;
  uint64_t computed_traits = 0;
  uint64_t segments = 0;
  std::vector<uint64_t> destroyed_keys;  // data keys destroyed (for Store::Purge)
  std::vector<Suppression> suppressed;
};

// The largest profile an erasure takes at once (its events are deleted in one WriteBatch).
inline constexpr uint64_t kMaxErasureEvents = 1'000'000;

// NotFound (404 definition_not_found): there is no such computed trait or segment.
absl::Status NoSuchDefinition(DefinitionKind kind, std::string_view name);

class Engine final : public store::CommitHook {
 public:
  explicit Engine(EngineOptions options);
  ~Engine() override;

  // store::CommitHook.
  absl::StatusOr<std::unique_ptr<store::PreparedEvent>> Prepare(
      const store::EventWrite& event) const override;
  // Refuses an event whose purpose the person has not granted (trust/consent.h), storing its
  // consent record instead when it carried choices.
  absl::StatusOr<store::Verdict> Apply(const store::EventWrite& event, uint64_t seq,
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

  // --- Erasure and the suppression list (docs/gdpr.md).
  // Writer thread (RunExclusive): erases the live profile `id` (following merges): destroys the
  // data keys of its events and records, deletes its events (with their index entries), record,
  // timeline, computed traits, segment memberships, identifiers, the records of the profiles
  // merged into it, and what other profiles kept of its identifiers (conflicts, splits); adds its
  // identifiers to the suppression list under `receipt`. NotFound (profile_not_found) if there is
  // no such profile; FailedPrecondition (erasure_too_large) beyond kMaxErasureEvents events.
  absl::StatusOr<Erasure> Erase(store::StateTxn& state, uint32_t ws, uint64_t id, const std::string& receipt);
  // The suppression list of `ws`, by hash, after `after` (a hash; "" from the start).
  static absl::StatusOr<std::vector<Suppression>> Suppressions(store::StateReader& state, uint32_t ws,
                                                              std::string_view after, size_t limit);
  // The hash an identifier is suppressed under (normalised as events' identifiers are).
  // InvalidArgument if it is not an identifier.
  absl::StatusOr<std::string> SuppressionHash(store::StateReader& state, uint32_t ws,
                                              const wire::RawIdentifier& identifier) const;
  // The suppression of an identifier, or nullopt if it is not suppressed.
  absl::StatusOr<std::optional<Suppression>> FindSuppression(store::StateReader& state, uint32_t ws,
                                                             const wire::RawIdentifier& identifier) const;
  // Writer thread (RunExclusive): lifts a suppression; events naming the identifier are stored
  // again from the next one. NotFound (suppression_not_found) if there is none.
  absl::Status LiftSuppression(store::StateTxn& state, uint32_t ws, std::string_view hash);

  // --- Definitions (docs/api/definitions.md).
  // The definitions of `ws` (empty if none): those published by the writer, or read from
  // `state`. Any thread.
  absl::StatusOr<std::shared_ptr<const Definitions>> DefinitionsFor(store::StateReader& state,
                                                                    uint32_t ws) const;
  // The stored definition `name`, or nullopt; DataLoss if it cannot be decoded.
  static absl::StatusOr<std::optional<StoredDefinition>> ReadDefinition(store::StateReader& state, uint32_t ws,
                                                                        DefinitionKind kind, std::string_view name);
  static absl::StatusOr<std::vector<StoredDefinition>> ListDefinitions(store::StateReader& state,
                                                                       uint32_t ws, DefinitionKind kind);
  // Writer thread (RunExclusive): adds or changes a definition and queues its backfill job.
  // InvalidArgument for a bad spec (expressions with position and expected), 409/404 per `mode`
  // and for changes that would break segments using it (definitions.h).
  absl::StatusOr<DefinitionChange> PutComputedTrait(store::StateTxn& state, uint32_t ws,
                                                    const wire::ComputedTraitSpec& spec, PutMode mode);
  absl::StatusOr<DefinitionChange> PutSegment(store::StateTxn& state, uint32_t ws,
                                              const wire::SegmentSpec& spec, PutMode mode);

  // Writer thread: queues a new backfill of the current version of a definition (after an
  // operator's repair, say), superseding its unfinished earlier job. NotFound if there is no
  // such definition.
  absl::StatusOr<Job> Backfill(store::StateTxn& state, uint32_t ws, DefinitionKind kind,
                               const std::string& name);

  // --- Jobs.
  static absl::StatusOr<Job> ReadJob(store::StateReader& state, uint64_t id);
  // Jobs queued or running (to resume after a restart), oldest first.
  static absl::StatusOr<std::vector<uint64_t>> UnfinishedJobs(store::StateReader& state);
  // Writer thread: recomputes the job's definition on up to `max_profiles` more profiles and
  // commits the progress with them. Returns the job as it now is (finished() when done).
  absl::StatusOr<Job> RunJobStep(store::StateTxn& state, uint64_t id, size_t max_profiles);
  // Writer thread: ends an unfinished job as failed with `error` (its step cannot succeed: a
  // record it needs cannot be read). Its definition keeps what the job did so far; a manual
  // backfill queues it again. Returns the job as it now is.
  absl::StatusOr<Job> FailJob(store::StateTxn& state, uint64_t id, std::string error);

  // --- Time.
  // Whether some profile's computed traits or segments changed with time by `now`. Any thread.
  static absl::StatusOr<bool> AnythingDue(store::StateReader& state, base::Micros now);
  // Writer thread: re-evaluates up to `max_profiles` profiles that are due; returns how many.
  absl::StatusOr<size_t> Sweep(store::StateTxn& state, size_t max_profiles);

  // --- Reads of what is derived.
  static absl::StatusOr<DerivedState> ReadDerived(store::StateReader& state, uint32_t ws, uint64_t id);
  // The members of a segment by profile id; NotFound if `segment` is not defined.
  absl::StatusOr<MembersPage> Members(store::StateReader& state, uint32_t ws, std::string_view segment,
                                      std::string_view cursor, size_t limit) const;

  // --- Merge protection per workspace (docs/api/settings.md).
  // The rules of `ws` as committed in `state` (the engine's copy when it has one): its own, or
  // EngineOptions::rules if it has none. Any thread.
  absl::StatusOr<std::shared_ptr<const identity::MergeRules>> ReadRules(store::StateReader& state,
                                                                        uint32_t ws) const;
  // Writer thread (RunExclusive): sets the rules of `ws`. They decide every link from the next
  // event on; profiles already linked stay as they are (a split undoes a merge).
  void PutRules(store::StateTxn& state, uint32_t ws, const identity::MergeRules& rules);

  // --- Purposes per workspace (docs/consent.md).
  // The purposes of `ws` as committed (PurposePolicy::Defaults() if it has none). Any thread.
  absl::StatusOr<std::shared_ptr<const trust::PurposePolicy>> ReadPolicy(store::StateReader& state,
                                                                         uint32_t ws) const;
  // Writer thread (RunExclusive): sets them; they decide every event from the next one on.
  void PutPolicy(store::StateTxn& state, uint32_t ws, const trust::PurposePolicy& policy);

  base::Micros Now() const { return options_.clock->Now(); }

 private:
  class Run;
  friend class Run;

  absl::StatusOr<const identity::Separations*> SeparationsOf(store::StateTxn& state, uint32_t ws);
  // Writer thread: the suppression list of `ws` (hashes), loaded on first use.
  absl::StatusOr<const absl::flat_hash_set<std::string>*> SuppressedOf(store::StateTxn& state, uint32_t ws);
  // Writer thread: a refusal if the event names a suppressed identifier (OK otherwise).
  absl::Status CheckSuppressed(store::StateTxn& state, uint32_t ws, const wire::EventFacts& facts);
  // Writer thread: ReadRules, keeping what it read for the next events (only the writer fills
  // the copy, so a reader's older snapshot cannot put stale rules in it).
  absl::StatusOr<std::shared_ptr<const identity::MergeRules>> RulesFor(store::StateTxn& state, uint32_t ws);
  // Writer thread: ReadPolicy, kept likewise.
  absl::StatusOr<std::shared_ptr<const trust::PurposePolicy>> PolicyFor(store::StateTxn& state, uint32_t ws);
  absl::StatusOr<Job> QueueJob(store::StateTxn& state, uint32_t ws, DefinitionKind kind,
                               const std::string& name, uint64_t version);
  // The job's computed trait is no longer being backfilled.
  void EndBackfill(const Job& job);
  static absl::StatusOr<std::shared_ptr<const Definitions>> LoadDefinitions(store::StateReader& state,
                                                                            uint32_t ws);
  absl::StatusOr<DefinitionChange> Put(store::StateTxn& state, uint32_t ws, DefinitionKind kind,
                                       const std::string& name, const std::string& spec_json,
                                       PutMode mode,
                                       const std::function<absl::StatusOr<std::shared_ptr<const Definitions>>(
                                           const Definitions&, uint64_t version)>& apply);

  EngineOptions options_;
  // Writer thread only: separations per workspace, loaded on first use.
  absl::flat_hash_map<uint32_t, identity::Separations> separations_;
  // Writer thread only: suppression lists per workspace, loaded on first use.
  absl::flat_hash_map<uint32_t, absl::flat_hash_set<std::string>> suppressed_;
  // Writer thread only: computed traits with a backfill under way, per workspace (a merge
  // recomputes them from the merged timeline, as the halves may not be backfilled yet).
  absl::flat_hash_map<uint32_t, std::set<std::string>> backfilling_;
  // Definitions per workspace, as committed (or about to be, by the writer).
  mutable base::Mutex mu_;
  mutable absl::flat_hash_map<uint32_t, std::shared_ptr<const Definitions>> definitions_
      ABSL_GUARDED_BY(mu_);
  mutable absl::flat_hash_map<uint32_t, std::shared_ptr<const identity::MergeRules>> rules_
      ABSL_GUARDED_BY(mu_);
  mutable absl::flat_hash_map<uint32_t, std::shared_ptr<const trust::PurposePolicy>> policies_
      ABSL_GUARDED_BY(mu_);
  base::Counter* merges_ = nullptr;
  base::Counter* blocked_ = nullptr;
  base::Counter* rebuilds_ = nullptr;
  base::Counter* rebuilds_skipped_ = nullptr;
  base::Counter* unattributed_ = nullptr;
  base::Counter* segment_changes_ = nullptr;
  base::Counter* swept_ = nullptr;
};

}  // namespace rapport::profile

#endif  // RAPPORT_PROFILE_ENGINE_H_

#include "rapport/profile/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <unordered_map>

#include "absl/container/flat_hash_set.h"
#include "rapport/base/cursor.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"
#include "rapport/identity/rules_json.h"
#include "rapport/trust/consent_json.h"
#include "rapport/wire/event_facts.h"

namespace rapport::profile {
namespace {

using identity::Identifier;

constexpr int kMaxRedirectHops = 64;

struct Prepared final : store::PreparedEvent {
  wire::EventFacts facts;
  // What the event contributes to each computed trait of `defs` (the workspace's definitions
  // when it was prepared, on the request's thread), so the writer need not work it out.
  std::shared_ptr<const Definitions> defs;
  std::vector<std::optional<Observation>> observations;
};

absl::Status Corrupt(std::string_view what, uint64_t id) {
  return absl::DataLossError(fmt::format("the {} of profile {} cannot be decoded", what, id));
}

// A live profile's record and derived state hold personal data (identifiers, traits, consent,
// computed values): they are stored sealed with the profile's own data key, as kSealed ·
// envelope, bound to their state key (docs/formats/store.md). Records of merged profiles name
// only the survivor and stay plain.
constexpr char kSealed = '\x80';

// The stored bytes of `plain`, to be written under `key` for profile `id` (whose data key is made
// with its first record).
absl::StatusOr<std::string> Sealed(store::StateTxn& state, uint32_t ws, uint64_t id, std::string_view key,
                                   std::string_view plain) {
  std::string out(1, kSealed);
  RAPPORT_RETURN_IF_ERROR(state.Seal(ws, id, key, plain, &out));
  return out;
}

// The plain bytes of what is stored under `key` (sealed or not).
absl::StatusOr<std::string> Unsealed(store::StateReader& state, uint32_t ws, std::string_view key,
                                     std::string bytes) {
  if (bytes.empty() || bytes[0] != kSealed) return bytes;
  return state.Open(ws, key, std::string_view(bytes).substr(1));
}

// The profile record stored under ProfileKey(ws, id), or nullopt.
absl::StatusOr<std::optional<ProfileRecord>> ReadRecord(store::StateReader& state, uint32_t ws, uint64_t id) {
  const std::string key = ProfileKey(ws, id);
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, state.Get(key));
  if (!bytes) return std::nullopt;
  RAPPORT_ASSIGN_OR_RETURN(std::string plain, Unsealed(state, ws, key, *std::move(bytes)));
  auto record = DecodeProfile(id, plain);
  if (!record) return Corrupt("record", id);
  return record;
}

// The derived state stored for profile `id`, or nullopt.
absl::StatusOr<std::optional<DerivedState>> ReadDerivedRecord(store::StateReader& state, uint32_t ws, uint64_t id) {
  const std::string key = DerivedKey(ws, id);
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, state.Get(key));
  if (!bytes) return std::nullopt;
  RAPPORT_ASSIGN_OR_RETURN(std::string plain, Unsealed(state, ws, key, *std::move(bytes)));
  auto d = DecodeDerived(plain);
  if (!d) return Corrupt("computed traits", id);
  return d;
}

std::string Joined(const std::vector<Identifier>& ids) {
  std::string out;
  for (const Identifier& id : ids) {
    if (!out.empty()) out += ", ";
    out += id.ToString();
  }
  return out;
}

}  // namespace

// The work of one event (or one rebuild or split) for one workspace, on the writer thread:
// loads records through the transaction, keeps them while it works and writes the changed ones
// back in Flush().
class Engine::Run {
 public:
  // `seq` is the event being applied (0 for a split, a sweep or a job): membership changes are
  // written on the timeline at (now, seq).
  Run(Engine& engine, store::StateTxn& txn, uint32_t ws, const identity::Separations& separations,
      const Definitions& defs, uint64_t seq)
      : engine_(engine),
        txn_(txn),
        ws_(ws),
        separations_(separations),
        defs_(defs),
        now_(engine.Now()),
        seq_(seq) {}

  // The live profile `id` (following merges), or nullptr if there is none.
  absl::StatusOr<ProfileRecord*> Load(uint64_t id) {
    for (int hop = 0; hop < kMaxRedirectHops; ++hop) {
      auto it = records_.find(id);
      if (it == records_.end()) {
        RAPPORT_ASSIGN_OR_RETURN(std::optional<ProfileRecord> record, ReadRecord(txn_, ws_, id));
        if (!record) return nullptr;
        it = records_.emplace(id, *std::move(record)).first;
      }
      if (!it->second.merged_into) return &it->second;
      id = it->second.merged_into;
    }
    return absl::DataLossError(fmt::format("profile {} redirects more than {} times", id, kMaxRedirectHops));
  }

  // The workspace's purposes, fetched once per run.
  absl::StatusOr<const trust::PurposePolicy*> Policy() {
    if (!policy_) {
      RAPPORT_ASSIGN_OR_RETURN(policy_, engine_.PolicyFor(txn_, ws_));
    }
    return policy_.get();
  }

  // The live profile an identifier belongs to, or nullptr.
  absl::StatusOr<ProfileRecord*> ProfileOf(const Identifier& id) {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> value, txn_.Get(IdentifierKey(ws_, id)));
    if (!value) return nullptr;
    auto pid = DecodeProfileId(*value);
    if (!pid) return absl::DataLossError(fmt::format("the index entry of {} cannot be decoded", id.ToString()));
    return Load(*pid);
  }

  // Consent for a live event: its purpose in, the refusal out (OK when admitted).
  struct Admission {
    std::string_view purpose;
    absl::Status refused;
    // Whether the event's choices change what the person chose for some purpose (a new purpose,
    // or a newer choice with another state): only then is a refused event's record kept.
    bool changes_consent = false;
  };

  // Applies one event; returns the profile it now belongs to (0: it names nobody).
  // `observed`: as ObserveEvent's. With `admission` (a live event whose purpose is not
  // `necessary`), first checks that the person the event names — the profiles it would join,
  // with the event's own choices — granted the purpose; if not, writes nothing, sets
  // admission->refused and returns 0.
  absl::StatusOr<uint64_t> ApplyEvent(const wire::EventFacts& f, base::Micros ts, uint64_t seq,
                                      bool allow_rebuild,
                                      const std::vector<std::optional<Observation>>* observed = nullptr,
                                      Admission* admission = nullptr);

  // Rebuilds `closure` from its stored events plus `extra` (an event being applied now);
  // returns the profile the extra event now belongs to (0 without one).
  absl::StatusOr<uint64_t> Rebuild(const std::vector<uint64_t>& closure, const wire::EventFacts* extra_facts,
                       base::Micros extra_ts, uint64_t extra_seq);

  // `start` and every profile reachable from it through refused links; false if that exceeds
  // the rebuild bounds.
  absl::StatusOr<bool> Closure(std::vector<uint64_t> start, std::vector<uint64_t>* out);

  // Writes the changed records back; re-evaluates the segments of every changed profile and
  // retires the derived state of profiles that were merged away.
  absl::Status Flush();

  // Recomputes `def` on profile `id` from its timeline.
  absl::Status RecomputeTrait(uint64_t id, const ComputedTraitDef& def);

  // Engine::Erase's work, but the suppression list.
  absl::Status Erase(ProfileRecord& p, Erasure* out);
  // Marks the live profile `id` for evaluation at Flush; false if there is none.
  absl::StatusOr<bool> Touch(uint64_t id) {
    RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* r, Load(id));
    if (!r) return false;
    Dirty(r->id);
    ChangedAll(r->id);
    return true;
  }

 private:
  // The derived state of `id` (loaded, or empty if it has none yet); marks it to be written.
  absl::StatusOr<DerivedState*> Derived(uint64_t id);
  // The derived state of `id` if it has one.
  absl::StatusOr<DerivedState*> DerivedIfAny(uint64_t id);
  // The record stored at exactly `id` (no redirects followed), or nullptr.
  absl::StatusOr<const ProfileRecord*> RecordAt(uint64_t id);
  // `observed`: what the event contributes to each of defs_.computed(), if already known.
  void ObserveEvent(ProfileRecord* target, const wire::EventFacts& f, const OrderKey& key,
                    const std::vector<std::optional<Observation>>* observed);
  // What changed on a profile in this run: segments whose inputs did not change keep their
  // membership without being evaluated (time is the due index's business).
  struct Changes {
    bool all = false;     // merged, rebuilt, recomputed, swept: evaluate every segment
    uint8_t profile = 0;  // the profile.* fields an event changed (ProfileField bits)
    bool traits = false;  // a trait changed
    std::vector<bool> computed;  // by index in the definitions: the computed traits that changed
  };
  absl::Status Evaluate(const ProfileRecord& p, DerivedState& d, const Changes& changes);
  void ChangedAll(uint64_t id) { changes_[id].all = true; }
  absl::Status Retire(uint64_t id);
  absl::Status AddToCount(std::string_view segment, int delta);

  absl::StatusOr<ProfileRecord*> Create(const OrderKey& first);
  absl::Status MergeInto(ProfileRecord* target, ProfileRecord* absorbed, const OrderKey& key,
                         const std::string& via);
  void Dirty(uint64_t id) { dirty_.insert(id); }

  Engine& engine_;
  store::StateTxn& txn_;
  const uint32_t ws_;
  const identity::Separations& separations_;
  std::unordered_map<uint64_t, ProfileRecord> records_;  // node-based: pointers stay valid
  absl::flat_hash_set<uint64_t> dirty_;
  // During a rebuild: the first event of each rebuilt profile → its id, so a profile that is
  // recreated by the same first event keeps its id.
  std::map<OrderKey, uint64_t> reuse_;
  // During a rebuild: events are applied again; the metrics counted them the first time.
  bool replaying_ = false;
  const Definitions& defs_;
  const base::Micros now_;
  const uint64_t seq_;
  std::unordered_map<uint64_t, DerivedState> derived_;
  absl::flat_hash_set<uint64_t> derived_dirty_;
  absl::Status deferred_error_;  // from ObserveEvent, reported by Flush
  absl::flat_hash_set<uint64_t> stored_derived_;  // derived states read from the store
  absl::flat_hash_set<uint64_t> recompute_;  // merged during a backfill: recompute those traits
  absl::flat_hash_map<uint64_t, Changes> changes_;
  std::vector<std::optional<Value>> field_cache_;  // Evaluate's, kept for its allocation
  std::shared_ptr<const trust::PurposePolicy> policy_;  // Policy()'s
};

namespace {

const TraitState* StateFor(const DerivedState& d, const ComputedTraitDef& def) {
  auto it = d.traits.find(def.name());
  return it == d.traits.end() || it->second.version != def.version ? nullptr : &it->second;
}

// What a segment reads: the profile, its derived state and the segments evaluated before it.
class ProfileEnv final : public Env {
 public:
  // `in`: by index in defs.segments(), whether the profile is in it (set for those evaluated so
  // far). `cache`: defs.field_slots() values, empty or kept from the last profile (cleared here).
  ProfileEnv(const ProfileRecord& p, const DerivedState& d, const Definitions& defs, base::Micros now,
             const std::vector<char>& in, std::vector<std::optional<Value>>& cache)
      : p_(p), d_(d), defs_(defs), now_(now), in_(in), cache_(cache) {
    cache_.assign(defs.field_slots(), std::nullopt);
  }

  // Each field is read once per evaluation of all segments (many segments read the same ones).
  Value Field(Root root, const std::vector<std::string>& path, int slot) const override {
    if (slot < 0) return Read(root, path);
    std::optional<Value>& cached = cache_[static_cast<size_t>(slot)];
    if (!cached) cached = Read(root, path);
    return *cached;
  }
  bool InSegment(std::string_view name) const override {
    std::optional<size_t> i = defs_.SegmentIndex(name);
    return i && in_[*i];
  }
  base::Micros Now() const override { return now_; }

 private:
  Value Read(Root root, const std::vector<std::string>& path) const {
    switch (root) {
      case Root::kTraits: {
        const Trait* t = p_.FindTrait(path[0]);
        return t ? ValueFromJson(t->json, std::span(path).subspan(1)) : Value::Missing();
      }
      case Root::kComputed: {
        const ComputedTraitDef* def = defs_.FindComputed(path[0]);
        if (!def) return Value::Missing();
        const TraitState* state = StateFor(d_, *def);
        if (!state) return ComputedValue(*def, Aggregate{}, path.size() > 1 ? path[1] : "", now_);
        if (def->window == 0) return ComputedValue(*def, state->all_time, path.size() > 1 ? path[1] : "", now_);
        return ComputedValue(*def, state->At(*def, now_), path.size() > 1 ? path[1] : "", now_);
      }
      case Root::kProfile:
        if (path[0] == "first_seen") return Value::Time(p_.first.timestamp);
        if (path[0] == "last_seen") return Value::Time(p_.last.timestamp);
        return Value::Number(static_cast<double>(p_.event_count));
      default: return Value::Missing();
    }
  }

  const ProfileRecord& p_;
  const DerivedState& d_;
  const Definitions& defs_;
  const base::Micros now_;
  const std::vector<char>& in_;
  std::vector<std::optional<Value>>& cache_;  // by field slot
};

}  // namespace

absl::StatusOr<DerivedState*> Engine::Run::DerivedIfAny(uint64_t id) {
  auto it = derived_.find(id);
  if (it != derived_.end()) return &it->second;
  RAPPORT_ASSIGN_OR_RETURN(std::optional<DerivedState> d, ReadDerivedRecord(txn_, ws_, id));
  if (!d) return nullptr;
  stored_derived_.insert(id);
  return &derived_.emplace(id, *std::move(d)).first->second;
}

absl::StatusOr<DerivedState*> Engine::Run::Derived(uint64_t id) {
  RAPPORT_ASSIGN_OR_RETURN(DerivedState* d, DerivedIfAny(id));
  if (!d) d = &derived_[id];
  derived_dirty_.insert(id);
  return d;
}

absl::StatusOr<const ProfileRecord*> Engine::Run::RecordAt(uint64_t id) {
  auto it = records_.find(id);
  if (it != records_.end()) return &it->second;
  RAPPORT_ASSIGN_OR_RETURN(std::optional<ProfileRecord> record, ReadRecord(txn_, ws_, id));
  if (!record) return nullptr;
  return &records_.emplace(id, *std::move(record)).first->second;
}

void Engine::Run::ObserveEvent(ProfileRecord* target, const wire::EventFacts& f, const OrderKey& key,
                               const std::vector<std::optional<Observation>>* observed) {
  const std::vector<ComputedTraitDef>& all = defs_.computed();
  DerivedState* d = nullptr;
  std::map<std::string, TraitState>::iterator pos;  // the states and `all` are both in name order
  for (size_t i = 0; i < all.size(); ++i) {
    const ComputedTraitDef& def = all[i];
    std::optional<Observation> o = observed ? (*observed)[i] : Observe(def, f, key);
    if (!o) continue;
    if (!d) {
      auto loaded = Derived(target->id);
      if (!loaded.ok()) {
        deferred_error_.Update(loaded.status());
        return;
      }
      d = *loaded;
      pos = d->traits.begin();
    }
    while (pos != d->traits.end() && pos->first < def.name()) ++pos;
    if (pos == d->traits.end() || pos->first != def.name()) pos = d->traits.emplace_hint(pos, def.name(), TraitState{});
    TraitState& state = pos->second;
    const bool reset = state.version != def.version;
    if (reset) {
      state = TraitState{};
      state.version = def.version;
    }
    // The state is written back either way; segments that read the trait are evaluated only
    // if what they can read of it changed.
    if (!state.Add(def, *std::move(o), now_, defs_.read_by_segments(i)) && !reset) continue;
    std::vector<bool>& changed = changes_[target->id].computed;
    changed.resize(all.size());
    changed[i] = true;
  }
}

absl::Status Engine::Run::RecomputeTrait(uint64_t id, const ComputedTraitDef& def) {
  TraitState state;
  state.version = def.version;
  std::vector<TimelineEntry> events;
  RAPPORT_RETURN_IF_ERROR(txn_.Scan(TimelinePrefix(ws_, id), "", [&](std::string_view k, std::string_view) {
    if (auto entry = DecodeTimelineKey(k)) events.push_back(*entry);
    return true;
  }));
  for (const TimelineEntry& e : events) {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<store::StoredEvent> event, txn_.ReadEvent(e.seq));
    if (!event) return absl::DataLossError(fmt::format("event {} of profile {} is missing", e.seq, id));
    RAPPORT_ASSIGN_OR_RETURN(wire::EventFacts facts, wire::ReadEventFacts(event->payload));
    if (auto o = Observe(def, facts, {event->timestamp, facts.message_id})) state.Add(def, *std::move(o), now_);
  }
  RAPPORT_ASSIGN_OR_RETURN(DerivedState* d, Derived(id));
  d->traits[def.name()] = std::move(state);
  ChangedAll(id);
  return absl::OkStatus();
}

absl::Status Engine::Run::AddToCount(std::string_view segment, int delta) {
  const std::string key = MemberCountKey(ws_, segment);
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> value, txn_.Get(key));
  uint64_t count = 0;
  if (value) {
    auto decoded = DecodeU64(*value);
    if (!decoded) return absl::DataLossError(fmt::format("the member count of segment {} cannot be decoded", segment));
    count = *decoded;
  }
  count = delta < 0 ? (count > 0 ? count - 1 : 0) : count + 1;
  txn_.Put(key, EncodeU64(count));
  return absl::OkStatus();
}

absl::Status Engine::Run::Evaluate(const ProfileRecord& p, DerivedState& d, const Changes& changes) {
  base::Micros next = Evaluation::kNever;
  // The states and the definitions are both in name order: walk them together.
  const std::vector<ComputedTraitDef>& computed = defs_.computed();
  auto def_it = computed.begin();
  for (auto it = d.traits.begin(); it != d.traits.end();) {
    while (def_it != computed.end() && def_it->name() < it->first) ++def_it;
    const ComputedTraitDef* def = def_it != computed.end() && def_it->name() == it->first ? &*def_it : nullptr;
    if (!def || it->second.version != def->version) {
      it = d.traits.erase(it);  // a definition that changed: its backfill recomputes it
      continue;
    }
    it->second.Expire(*def, now_);
    next = std::min(next, it->second.NextExpiry(*def, now_));
    ++it;
  }
  // Everything is evaluated the first time (a segment may hold for a profile that changed
  // nothing it reads, e.g. !exists(traits.plan)) and when a time change is overdue.
  const bool all = changes.all || !stored_derived_.contains(p.id) || (d.due && d.due <= now_);
  const std::vector<SegmentDef>& segments = defs_.segments();
  std::vector<char> was_in(segments.size()), in(segments.size());
  std::vector<char> moved(segments.size());  // membership changed in this evaluation
  // Memberships are in name order too: each one's segment index (-1: no longer defined).
  const std::vector<size_t>& by_name = defs_.segments_by_name();
  std::vector<int> old_index(d.segments.size(), -1);
  for (size_t m = 0, k = 0; m < d.segments.size(); ++m) {
    while (k < by_name.size() && segments[by_name[k]].name() < d.segments[m].segment) ++k;
    if (k < by_name.size() && segments[by_name[k]].name() == d.segments[m].segment) {
      old_index[m] = static_cast<int>(by_name[k]);
      was_in[by_name[k]] = 1;
    }
  }
  bool skipped = false;
  const ProfileEnv env(p, d, defs_, now_, in, field_cache_);
  for (size_t i = 0; i < segments.size(); ++i) {
    const SegmentDef& seg = segments[i];
    const Expression& e = *seg.expression;
    bool stale = all || (changes.profile & seg.profile_reads) || (changes.traits && e.Reads(Root::kTraits));
    for (size_t c : seg.computed_reads) stale = stale || (c < changes.computed.size() && changes.computed[c]);
    for (size_t s : seg.segment_reads) stale = stale || moved[s];
    in[i] = was_in[i];
    if (stale) {
      const Evaluation r = e.Evaluate(env, seg.field_slots);
      next = std::min(next, r.next_change);
      in[i] = r.matched;
    } else {
      skipped = true;
    }
    moved[i] = in[i] != was_in[i];
  }
  // A segment not evaluated may still change with time: keep its (earlier) due time.
  if (skipped && d.due > now_) next = std::min(next, d.due);
  // Memberships stay sorted by name: walk the old ones and the segments by name together.
  std::vector<Membership> now_in;
  auto old = d.segments.begin();
  for (size_t i : by_name) {
    if (!in[i]) continue;
    const std::string& name = segments[i].name();
    while (old != d.segments.end() && old->segment < name) ++old;
    if (old != d.segments.end() && old->segment == name) {
      now_in.push_back(*old);
      continue;
    }
    now_in.push_back({name, now_});
    txn_.Put(MemberKey(ws_, name, p.id), EncodeU64(static_cast<uint64_t>(now_)));
    RAPPORT_RETURN_IF_ERROR(AddToCount(name, +1));
    txn_.Put(MembershipTimelineKey(ws_, p.id, now_, seq_, name), "entered");
    if (engine_.segment_changes_ && !replaying_) engine_.segment_changes_->Inc();
  }
  for (size_t m_i = 0; m_i < d.segments.size(); ++m_i) {
    const Membership& m = d.segments[m_i];
    const int i = old_index[m_i];
    if (i >= 0 && in[static_cast<size_t>(i)]) continue;
    txn_.Delete(MemberKey(ws_, m.segment, p.id));
    RAPPORT_RETURN_IF_ERROR(AddToCount(m.segment, -1));
    if (i >= 0) {
      txn_.Put(MembershipTimelineKey(ws_, p.id, now_, seq_, m.segment), "exited");
      if (engine_.segment_changes_ && !replaying_) engine_.segment_changes_->Inc();
    }
  }
  d.segments = std::move(now_in);
  if (next == Evaluation::kNever) next = 0;
  // The due entry may be early, never late: one still ahead and not later than needed stays
  // (the sweep re-evaluates the profile then and moves it), so an event that only pushes the
  // next change later, as most do (e.g. now() - computed.last_seen_at < 1d), rewrites no index.
  const bool keep = d.due > now_ && (next == 0 || d.due <= next);
  if (next != d.due && !keep) {
    if (d.due) txn_.Delete(DueKey(d.due, ws_, p.id));
    if (next) txn_.Put(DueKey(next, ws_, p.id), "");
    d.due = next;
  }
  return absl::OkStatus();
}

absl::Status Engine::Run::Retire(uint64_t id) {
  RAPPORT_ASSIGN_OR_RETURN(DerivedState* d, DerivedIfAny(id));
  if (!d) return absl::OkStatus();
  for (const Membership& m : d->segments) {
    txn_.Delete(MemberKey(ws_, m.segment, id));
    RAPPORT_RETURN_IF_ERROR(AddToCount(m.segment, -1));
  }
  if (d->due) txn_.Delete(DueKey(d->due, ws_, id));
  txn_.Delete(DerivedKey(ws_, id));
  derived_.erase(id);
  derived_dirty_.erase(id);
  return absl::OkStatus();
}

absl::Status Engine::Run::Flush() {
  RAPPORT_RETURN_IF_ERROR(deferred_error_);
  std::vector<uint64_t> ids(dirty_.begin(), dirty_.end());
  for (uint64_t id : derived_dirty_) {
    if (!dirty_.contains(id)) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    if (dirty_.contains(id)) {
      auto it = records_.find(id);
      if (it != records_.end()) {
        const std::string key = ProfileKey(ws_, id);
        if (it->second.merged_into) {
          txn_.Put(key, EncodeProfile(it->second));
        } else {
          RAPPORT_ASSIGN_OR_RETURN(std::string sealed, Sealed(txn_, ws_, id, key, EncodeProfile(it->second)));
          txn_.Put(key, sealed);
        }
      }
    }
    if (defs_.empty() && !derived_.contains(id)) continue;
    RAPPORT_ASSIGN_OR_RETURN(const ProfileRecord* r, RecordAt(id));
    if (!r || r->merged_into) {
      RAPPORT_RETURN_IF_ERROR(Retire(id));
      continue;
    }
    if (recompute_.contains(id)) {
      auto pending = engine_.backfilling_.find(ws_);
      if (pending != engine_.backfilling_.end()) {
        for (const std::string& name : pending->second) {
          if (const ComputedTraitDef* def = defs_.FindComputed(name)) RAPPORT_RETURN_IF_ERROR(RecomputeTrait(id, *def));
        }
      }
    }
    RAPPORT_ASSIGN_OR_RETURN(DerivedState* d, Derived(id));
    RAPPORT_RETURN_IF_ERROR(Evaluate(*r, *d, changes_[id]));
    if (d->traits.empty() && d->segments.empty() && d->due == 0) {
      if (stored_derived_.contains(id)) txn_.Delete(DerivedKey(ws_, id));
    } else {
      const std::string key = DerivedKey(ws_, id);
      RAPPORT_ASSIGN_OR_RETURN(std::string sealed, Sealed(txn_, ws_, id, key, EncodeDerived(*d)));
      txn_.Put(key, sealed);
    }
  }
  dirty_.clear();
  derived_dirty_.clear();
  recompute_.clear();
  changes_.clear();
  return absl::OkStatus();
}

absl::StatusOr<ProfileRecord*> Engine::Run::Create(const OrderKey& first) {
  uint64_t id = 0;
  if (auto it = reuse_.find(first); it != reuse_.end()) {
    id = it->second;
    reuse_.erase(it);
  } else {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> next, txn_.Get(NextIdKey(ws_)));
    id = 1;
    if (next) {
      auto decoded = DecodeProfileId(*next);
      if (!decoded) return absl::DataLossError("the next profile id cannot be decoded");
      id = *decoded;
    }
    txn_.Put(NextIdKey(ws_), EncodeProfileId(id + 1));
  }
  ProfileRecord& r = records_[id];
  r = ProfileRecord{};
  r.id = id;
  r.first = r.last = first;
  Dirty(id);
  return &r;
}

absl::Status Engine::Run::MergeInto(ProfileRecord* target, ProfileRecord* q, const OrderKey& key,
                                    const std::string& via) {
  for (const IdentityEntry& e : q->identities) {
    txn_.Put(IdentifierKey(ws_, e.identifier), EncodeProfileId(target->id));
    target->identities.push_back(e);
  }
  for (MergeEntry& m : q->merges) target->merges.push_back(std::move(m));
  std::stable_sort(target->merges.begin(), target->merges.end(),
                   [](const MergeEntry& a, const MergeEntry& b) { return a.at < b.at; });
  target->AddMerge({key.timestamp, key.message_id, q->id, via});  // sorted first, then trimmed
  for (BlockedEntry& b : q->blocked) target->blocked.push_back(std::move(b));
  std::stable_sort(target->blocked.begin(), target->blocked.end(),
                   [](const BlockedEntry& a, const BlockedEntry& b) { return a.at < b.at; });
  if (target->blocked.size() > ProfileRecord::kMaxHistory) {
    target->blocked.erase(target->blocked.begin(),
                          target->blocked.end() - ProfileRecord::kMaxHistory);
  }
  target->blocked_total += q->blocked_total;
  for (const Identifier& c : q->conflicts) target->AddConflict(c);
  for (const Trait& t : q->traits) target->SetTrait(t.name, t.json, t.set_by);
  target->consents.Merge(q->consents);
  target->first = std::min(target->first, q->first);
  target->last = std::max(target->last, q->last);
  target->event_count += q->event_count;
  // Its events stay sealed with its keys, which the target now holds.
  target->keys.push_back(q->id);
  target->keys.insert(target->keys.end(), q->keys.begin(), q->keys.end());

  // The timeline moves whole (events and membership changes): same suffix, new profile.
  const std::string from = TimelinePrefix(ws_, q->id);
  const std::string to = TimelinePrefix(ws_, target->id);
  std::vector<std::pair<std::string, std::string>> moved;
  RAPPORT_RETURN_IF_ERROR(txn_.Scan(from, "", [&](std::string_view k, std::string_view v) {
    moved.emplace_back(k, v);
    return true;
  }));
  for (const auto& [k, v] : moved) {
    txn_.Delete(k);
    txn_.Put(to + k.substr(from.size()), v);
  }
  if (!defs_.empty()) {
    RAPPORT_ASSIGN_OR_RETURN(DerivedState* absorbed, DerivedIfAny(q->id));
    if (absorbed && !absorbed->traits.empty()) {
      RAPPORT_ASSIGN_OR_RETURN(DerivedState* into, Derived(target->id));
      for (auto& [name, state] : absorbed->traits) {
        const ComputedTraitDef* def = defs_.FindComputed(name);
        if (!def || state.version != def->version) continue;
        TraitState& t = into->traits[name];
        if (t.version != def->version) {
          t = TraitState{};
          t.version = def->version;
        }
        t.Merge(*def, std::move(state), now_);
      }
      absorbed->traits.clear();
    }
    if (engine_.backfilling_.contains(ws_)) recompute_.insert(target->id);
    derived_dirty_.insert(q->id);  // retired at Flush: memberships, due entry
  }
  ChangedAll(target->id);
  const uint64_t absorbed_id = q->id;
  *q = ProfileRecord{};
  q->id = absorbed_id;
  q->merged_into = target->id;
  Dirty(absorbed_id);
  Dirty(target->id);
  if (engine_.merges_ && !replaying_) engine_.merges_->Inc();
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Engine::Run::ApplyEvent(const wire::EventFacts& f, base::Micros ts,
                                                 uint64_t seq, bool allow_rebuild,
                                                 const std::vector<std::optional<Observation>>* observed,
                                                 Admission* admission) {
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const identity::MergeRules> rules_of_ws,
                           engine_.RulesFor(txn_, ws_));
  const identity::MergeRules& rules = *rules_of_ws;
  RAPPORT_ASSIGN_OR_RETURN(const trust::PurposePolicy* policy, Policy());
  const OrderKey key{ts, f.message_id};
  const std::vector<std::pair<std::string, trust::Choice>> choices = trust::ChoicesOf(f, ts, *policy);
  // Whether the person `profiles` make up, with this event's choices, granted the purpose.
  auto admitted = [&](const std::vector<uint64_t>& profiles) -> absl::StatusOr<bool> {
    trust::ConsentSet combined;
    const trust::ConsentSet* consents = &combined;
    if (profiles.size() == 1 && choices.empty()) {
      // The common case, judged on the profile's own set without copying it.
      RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* r, Load(profiles.front()));
      if (r) consents = &r->consents;
    } else {
      for (uint64_t id : profiles) {
        RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* r, Load(id));
        if (r) combined.Merge(r->consents);
      }
      for (const auto& [purpose, choice] : choices) {
        const trust::Choice* current = combined.Find(purpose);
        if (!current || (trust::Supersedes(choice, *current) && current->state != choice.state)) {
          admission->changes_consent = true;
        }
        combined.Record(purpose, choice);
      }
    }
    admission->refused = trust::Permits(*consents, admission->purpose, *policy, now_);
    return admission->refused.ok();
  };

  // Normalise; a value that identifies nobody is recorded on the profile, not linked.
  std::vector<Identifier> ids;
  std::vector<std::pair<Identifier, std::string>> sources;
  std::vector<BlockedEntry> unusable;
  // In a replay, an erased person's identifiers link nothing (a live event naming them was
  // refused before it got here: Engine::CheckSuppressed).
  const absl::flat_hash_set<std::string>* suppressed = nullptr;
  if (replaying_) {
    RAPPORT_ASSIGN_OR_RETURN(suppressed, engine_.SuppressedOf(txn_, ws_));
  }
  auto take = [&](const wire::RawIdentifier& raw) {
    auto id = identity::Normalize(raw, rules);
    if (id.ok() && suppressed && !suppressed->empty() &&
        suppressed->contains(txn_.KeyedHash(ws_, SuppressionInput(*id)))) {
      return;
    }
    if (!id.ok()) {
      unusable.push_back({ts, f.message_id, fmt::format("{}:{}", raw.type, raw.value),
                          fmt::format("{} (from {})", base::AsStd(id.status().message()), raw.source)});
      return;
    }
    sources.emplace_back(*id, raw.source);
    ids.push_back(*std::move(id));
  };
  for (const wire::RawIdentifier& raw : f.identifiers) take(raw);
  if (f.type == wire::EventType::kAlias && !f.previous_id.empty()) {
    // previousId is the earlier userId if one is known, else an anonymousId (Segment's alias).
    RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* as_user, ProfileOf({"user_id", f.previous_id}));
    take({as_user ? "user_id" : "anonymous_id", f.previous_id, "previousId"});
  }
  if (ids.empty()) {
    if (admission) {
      RAPPORT_ASSIGN_OR_RETURN(bool ok, admitted({}));
      if (!ok) return 0;
    }
    if (engine_.unattributed_ && !replaying_) engine_.unattributed_->Inc();
    return 0;
  }

  // Plan the link against the profiles the identifiers already belong to.
  std::unordered_map<uint64_t, identity::LinkedProfile> linked;
  absl::Status lookup_error;
  auto profile_of = [&](const Identifier& id) -> const identity::LinkedProfile* {
    auto p = ProfileOf(id);
    if (!p.ok()) {
      lookup_error.Update(p.status());
      return nullptr;
    }
    if (!*p) return nullptr;
    auto [it, inserted] = linked.try_emplace((*p)->id);
    if (inserted) {
      it->second.id = (*p)->id;
      for (const IdentityEntry& e : (*p)->identities) it->second.identifiers.push_back(e.identifier);
    }
    return &it->second;
  };
  identity::LinkPlan plan = identity::PlanLink(ids, rules, separations_, profile_of);
  RAPPORT_RETURN_IF_ERROR(lookup_error);
  if (admission) {
    // Nothing is written before this point.
    RAPPORT_ASSIGN_OR_RETURN(bool ok, admitted(plan.profiles));
    if (!ok) return 0;
  }

  std::vector<uint64_t> involved = plan.profiles;
  for (const identity::Dropped& d : plan.dropped) {
    if (d.other_profile) involved.push_back(d.other_profile);
  }
  bool conflicted = !plan.dropped.empty();
  for (uint64_t id : involved) {
    RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* r, Load(id));
    if (r && !r->conflicts.empty()) conflicted = true;
  }
  if (allow_rebuild && conflicted) {
    std::vector<uint64_t> closure;
    RAPPORT_ASSIGN_OR_RETURN(bool bounded, Closure(involved, &closure));
    if (!bounded) {
      if (engine_.rebuilds_skipped_) engine_.rebuilds_skipped_->Inc();
    } else {
      bool late = false;
      for (uint64_t id : closure) {
        RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* r, Load(id));
        if (r && key < r->last) late = true;
      }
      if (late) {
        return Rebuild(closure, &f, ts, seq);
      }
    }
  }

  // Execute the plan: the profile with the earliest first event absorbs the others.
  std::vector<ProfileRecord*> joined;
  for (uint64_t id : plan.profiles) {
    RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* r, Load(id));
    if (r) joined.push_back(r);
  }
  std::sort(joined.begin(), joined.end(), [](const ProfileRecord* a, const ProfileRecord* b) {
    return std::tie(a->first, a->id) < std::tie(b->first, b->id);
  });
  ProfileRecord* target = nullptr;
  const bool created = joined.empty();
  if (created) {
    RAPPORT_ASSIGN_OR_RETURN(target, Create(key));
  } else {
    target = joined.front();
    const std::string via = Joined(plan.accepted);
    for (size_t i = 1; i < joined.size(); ++i) {
      RAPPORT_RETURN_IF_ERROR(MergeInto(target, joined[i], key, via));
    }
  }
  // The identifier that ties the new ones to the profile: the most trusted one already on it.
  const Identifier* anchor = nullptr;
  for (const Identifier& id : plan.accepted) {
    if (!created && target->Has(id)) {
      anchor = &id;
      break;
    }
  }
  for (const Identifier& id : plan.accepted) {
    if (target->Has(id)) continue;
    std::string source;
    for (const auto& [sid, src] : sources) {
      if (sid == id) {
        source = src;
        break;
      }
    }
    std::string reason =
        anchor ? fmt::format("sent together with {} (in {})", anchor->ToString(),
                             wire::EventTypeName(f.type))
               : fmt::format("first identifier of this profile (in {})", wire::EventTypeName(f.type));
    if (!anchor) anchor = &id;
    target->identities.push_back({id, ts, f.message_id, std::move(source), std::move(reason)});
    txn_.Put(IdentifierKey(ws_, id), EncodeProfileId(target->id));
  }
  for (const identity::Dropped& d : plan.dropped) {
    target->AddBlocked({ts, f.message_id, d.identifier.ToString(),
                        d.other_profile
                            ? fmt::format("not merged with profile {}: {}", d.other_profile, d.reason)
                            : fmt::format("not linked: {}", d.reason)});
    target->AddConflict(d.identifier);
    if (engine_.blocked_ && !replaying_) engine_.blocked_->Inc();
    if (d.other_profile) {
      RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* other, Load(d.other_profile));
      if (other && other != target) {
        other->AddBlocked({ts, f.message_id, d.identifier.ToString(),
                           fmt::format("not merged with profile {}: {}", target->id, d.reason)});
        other->AddConflict(plan.accepted.front());
        Dirty(other->id);
      }
    }
  }
  for (BlockedEntry& b : unusable) {
    target->AddBlocked(std::move(b));
    if (engine_.blocked_ && !replaying_) engine_.blocked_->Inc();
  }
  Changes& changed = changes_[target->id];
  changed.profile |= kEventCount | (key < target->first ? kFirstSeen : 0) | (target->last < key ? kLastSeen : 0);
  if (f.type == wire::EventType::kIdentify) {
    for (const auto& [name, json] : f.traits) changed.traits |= target->SetTrait(name, json, key);
  }
  for (const auto& [purpose, choice] : choices) target->consents.Record(purpose, choice);
  if (!defs_.computed().empty()) ObserveEvent(target, f, key, observed);
  target->first = std::min(target->first, key);
  target->last = std::max(target->last, key);
  ++target->event_count;
  txn_.Put(TimelineKey(ws_, target->id, ts, seq), f.message_id);
  Dirty(target->id);
  return target->id;
}

absl::StatusOr<bool> Engine::Run::Closure(std::vector<uint64_t> start, std::vector<uint64_t>* out) {
  absl::flat_hash_set<uint64_t> seen;
  size_t events = 0;
  while (!start.empty()) {
    const uint64_t id = start.back();
    start.pop_back();
    RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* r, Load(id));
    if (!r || !seen.insert(r->id).second) continue;
    out->push_back(r->id);
    events += r->event_count;
    if (out->size() > engine_.options_.max_rebuild_profiles ||
        events > engine_.options_.max_rebuild_events) {
      return false;
    }
    for (const Identifier& c : r->conflicts) {
      RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* other, ProfileOf(c));
      if (other) start.push_back(other->id);
    }
  }
  std::sort(out->begin(), out->end());
  return true;
}

absl::StatusOr<uint64_t> Engine::Run::Rebuild(const std::vector<uint64_t>& closure,
                                  const wire::EventFacts* extra_facts, base::Micros extra_ts,
                                  uint64_t extra_seq) {
  if (engine_.rebuilds_) engine_.rebuilds_->Inc();
  struct Item {
    base::Micros ts;
    std::string message_id;
    uint64_t seq;
  };
  std::vector<Item> items;
  std::map<uint64_t, uint64_t> first_seq;  // old profile → seq of its first event
  std::vector<uint64_t> old_keys;          // the data keys the closure's events are sealed with
  reuse_.clear();
  for (uint64_t id : closure) {
    RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* r, Load(id));
    if (!r) continue;
    reuse_.emplace(r->first, r->id);
    old_keys.push_back(r->id);
    old_keys.insert(old_keys.end(), r->keys.begin(), r->keys.end());
    std::vector<std::string> keys;
    RAPPORT_RETURN_IF_ERROR(txn_.Scan(TimelinePrefix(ws_, id), "",
                                      [&](std::string_view k, std::string_view v) {
                                        auto entry = DecodeTimelineKey(k);
                                        if (entry) {
                                          items.push_back({entry->timestamp, std::string(v), entry->seq});
                                          if (OrderKey{entry->timestamp, std::string(v)} == r->first) {
                                            first_seq.emplace(id, entry->seq);
                                          }
                                        }
                                        keys.emplace_back(k);
                                        return true;
                                      }));
    for (const std::string& k : keys) txn_.Delete(k);
    for (const IdentityEntry& e : r->identities) txn_.Delete(IdentifierKey(ws_, e.identifier));
    txn_.Delete(ProfileKey(ws_, id));
    if (!defs_.empty()) {
      // Computed traits are recomputed by the replay; memberships stay to be compared with.
      RAPPORT_ASSIGN_OR_RETURN(DerivedState* d, DerivedIfAny(id));
      if (d) {
        d->traits.clear();
        derived_dirty_.insert(id);
      }
      ChangedAll(id);
    }
    records_.erase(id);
    dirty_.erase(id);
  }
  if (extra_facts) items.push_back({extra_ts, extra_facts->message_id, extra_seq});
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return std::tie(a.ts, a.message_id, a.seq) < std::tie(b.ts, b.message_id, b.seq);
  });

  std::map<uint64_t, uint64_t> now_in;  // seq → profile it was applied to
  std::map<uint64_t, uint64_t> sealed_with;  // seq → its data key (stored events)
  replaying_ = true;
  for (const Item& item : items) {
    uint64_t pid = 0;
    if (extra_facts && item.seq == extra_seq) {
      RAPPORT_ASSIGN_OR_RETURN(pid, ApplyEvent(*extra_facts, item.ts, item.seq, false));
    } else {
      RAPPORT_ASSIGN_OR_RETURN(std::optional<store::StoredEvent> event, txn_.ReadEvent(item.seq));
      if (!event) return absl::DataLossError(fmt::format("event {} of a profile is missing", item.seq));
      RAPPORT_ASSIGN_OR_RETURN(wire::EventFacts facts, wire::ReadEventFacts(event->payload));
      RAPPORT_ASSIGN_OR_RETURN(pid, ApplyEvent(facts, event->timestamp, item.seq, false));
      sealed_with[item.seq] = event->key_id;
    }
    now_in[item.seq] = pid;
  }
  replaying_ = false;
  // Each data key belongs to one live profile: an event that now belongs to a profile that does
  // not hold its key is sealed again with that profile's own key; keys no live profile holds
  // any more are destroyed.
  absl::flat_hash_set<uint64_t> held;
  for (const auto& [seq, key] : sealed_with) {
    RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* owner, Load(now_in[seq]));
    if (!owner) {
      held.insert(key);  // it names nobody now: it stays readable with its key
      continue;
    }
    const bool holds = key == owner->id || std::find(owner->keys.begin(), owner->keys.end(), key) != owner->keys.end();
    if (!holds) RAPPORT_RETURN_IF_ERROR(txn_.ResealEvent(seq, owner->id));
  }
  for (const auto& [id, r] : records_) {
    if (r.merged_into) continue;
    held.insert(id);
    held.insert(r.keys.begin(), r.keys.end());
  }
  for (uint64_t key : old_keys) {
    if (!held.contains(key)) txn_.DestroyDataKey(ws_, key);
  }
  // A rebuilt profile whose id was not reused now lives where its first event went.
  for (const auto& [first_key, old_id] : reuse_) {
    auto first = first_seq.find(old_id);
    if (first == first_seq.end()) continue;
    const uint64_t target = now_in[first->second];
    if (target == 0 || target == old_id) continue;
    ProfileRecord& redirect = records_[old_id];
    redirect = ProfileRecord{};
    redirect.id = old_id;
    redirect.merged_into = target;
    Dirty(old_id);
  }
  reuse_.clear();
  if (!extra_facts) return 0;
  // The live profile the extra event is on (a later event of the replay may have merged the one
  // it landed on): its key seals the event.
  RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* holder, Load(now_in[extra_seq]));
  return holder ? holder->id : 0;
}

Engine::Engine(EngineOptions options) : options_(std::move(options)) {
  if (base::Registry* m = options_.metrics) {
    merges_ = &m->GetCounter("rapport_identity_merges_total", "Profiles merged into another.");
    blocked_ = &m->GetCounter("rapport_identity_blocked_links_total",
                              "Identifiers not linked, by merge protection or as placeholders.");
    rebuilds_ = &m->GetCounter("rapport_profile_rebuilds_total",
                               "Profiles rebuilt from their events (late events, splits).");
    rebuilds_skipped_ = &m->GetCounter(
        "rapport_profile_rebuilds_skipped_total",
        "Late events applied as they came because a rebuild would exceed its bounds.");
    unattributed_ = &m->GetCounter("rapport_profile_unattributed_events_total",
                                   "Stored events that name no usable identifier.");
    segment_changes_ = &m->GetCounter("rapport_segment_changes_total",
                                      "Profiles entering or leaving a segment.");
    swept_ = &m->GetCounter("rapport_sweep_profiles_total",
                            "Profiles re-evaluated because a window or now() changed them.");
  }
}

Engine::~Engine() = default;

absl::StatusOr<std::unique_ptr<store::PreparedEvent>> Engine::Prepare(
    const store::EventWrite& event) const {
  auto facts = wire::ReadEventFacts(event.payload);
  if (!facts.ok()) {
    return absl::InternalError(fmt::format("a stored event cannot be read back: {}",
                                           base::AsStd(facts.status().message())));
  }
  auto prepared = std::make_unique<Prepared>();
  prepared->facts = *std::move(facts);
  {
    base::MutexLock lock(&mu_);
    if (auto it = definitions_.find(event.workspace); it != definitions_.end()) prepared->defs = it->second;
  }
  if (prepared->defs) {
    const OrderKey key{event.timestamp, prepared->facts.message_id};
    prepared->observations.reserve(prepared->defs->computed().size());
    for (const ComputedTraitDef& def : prepared->defs->computed()) {
      prepared->observations.push_back(Observe(def, prepared->facts, key));
    }
  }
  return prepared;
}

absl::StatusOr<const identity::Separations*> Engine::SeparationsOf(store::StateTxn& state,
                                                                    uint32_t ws) {
  auto it = separations_.find(ws);
  if (it != separations_.end()) return &it->second;
  identity::Separations loaded;
  bool corrupt = false;
  RAPPORT_RETURN_IF_ERROR(state.Scan(SeparationPrefix(ws), "", [&](std::string_view k, std::string_view v) {
    auto id = DecodeSeparationKey(k);
    auto apart = DecodeIdentifiers(v);
    if (!id || !apart) {
      corrupt = true;
      return false;
    }
    loaded[*id].insert(apart->begin(), apart->end());
    return true;
  }));
  if (corrupt) return absl::DataLossError("a split record cannot be decoded");
  return &separations_.emplace(ws, std::move(loaded)).first->second;
}

absl::StatusOr<store::Verdict> Engine::Apply(const store::EventWrite& event, uint64_t seq,
                                             const store::PreparedEvent& prepared, store::StateTxn& state) {
  RAPPORT_ASSIGN_OR_RETURN(const identity::Separations* separations, SeparationsOf(state, event.workspace));
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const Definitions> defs, DefinitionsFor(state, event.workspace));
  Run run(*this, state, event.workspace, *separations, *defs, seq);
  RAPPORT_ASSIGN_OR_RETURN(const trust::PurposePolicy* policy, run.Policy());
  const Prepared& p = static_cast<const Prepared&>(prepared);
  // Observed against other definitions (changed since): the writer observes again.
  const auto* observed = p.defs == defs ? &p.observations : nullptr;
  Run::Admission admission{trust::PurposeOf(p.facts, *policy), absl::OkStatus()};
  // An import was judged where it was first stored.
  const bool judge = admission.purpose != trust::kNecessary && !event.admitted;
  // An erased person's identifiers are refused, imports included.
  if (absl::Status suppressed = CheckSuppressed(state, event.workspace, p.facts); !suppressed.ok()) {
    if (base::GetErrorDetails(suppressed).code != "identifier_suppressed") return suppressed;
    return store::Verdict{.refused = std::move(suppressed)};
  }
  RAPPORT_ASSIGN_OR_RETURN(
      const uint64_t pid,
      run.ApplyEvent(p.facts, event.timestamp, seq, true, observed, judge ? &admission : nullptr));
  if (admission.refused.ok()) {
    RAPPORT_RETURN_IF_ERROR(run.Flush());  // seals the profile's record: its key exists
    return store::Verdict{.seal_key = pid};
  }
  // Refused; nothing is written yet. When it changes what the person chose, that change is
  // kept all the same — a withdrawal must hold even when the event that says it is not stored —
  // as its consent record, which is all that is stored of it. A choice that only repeats the
  // person's (a consent manager sends them with every event) leaves no trace of the visit.
  if (!admission.changes_consent) return store::Verdict{std::move(admission.refused)};
  std::string record = wire::ConsentRecordOf(event.payload);
  RAPPORT_ASSIGN_OR_RETURN(wire::EventFacts facts, wire::ReadEventFacts(record));
  state.ReplaceEvent(seq, record);  // what the group's readers (a recompute) see of this seq
  RAPPORT_ASSIGN_OR_RETURN(const uint64_t holder, run.ApplyEvent(facts, event.timestamp, seq, true));
  RAPPORT_RETURN_IF_ERROR(run.Flush());
  return store::Verdict{
      .refused = std::move(admission.refused), .stored_instead = std::move(record), .seal_key = holder};
}

void Engine::AfterGroup(bool committed) {
  if (committed) return;
  // Reloaded from the store on next use.
  separations_.clear();
  suppressed_.clear();
  base::MutexLock lock(&mu_);
  definitions_.clear();
  rules_.clear();
  policies_.clear();
}

absl::StatusOr<std::shared_ptr<const identity::MergeRules>> Engine::ReadRules(store::StateReader& state,
                                                                              uint32_t ws) const {
  {
    base::MutexLock lock(&mu_);
    auto it = rules_.find(ws);
    if (it != rules_.end()) return it->second;
  }
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> stored, state.Get(MergeRulesKey(ws)));
  if (!stored) return std::make_shared<const identity::MergeRules>(options_.rules);
  auto parsed = identity::ParseMergeRules(*stored, identity::UnknownMembers::kIgnore);
  if (!parsed.ok()) {
    return absl::DataLossError(fmt::format("the merge protection settings of workspace {} cannot be read: {}",
                                           ws, base::AsStd(parsed.status().message())));
  }
  return std::make_shared<const identity::MergeRules>(*std::move(parsed));
}

absl::StatusOr<std::shared_ptr<const identity::MergeRules>> Engine::RulesFor(store::StateTxn& state, uint32_t ws) {
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const identity::MergeRules> rules, ReadRules(state, ws));
  base::MutexLock lock(&mu_);
  return rules_.try_emplace(ws, std::move(rules)).first->second;
}

absl::StatusOr<std::shared_ptr<const trust::PurposePolicy>> Engine::ReadPolicy(store::StateReader& state,
                                                                                uint32_t ws) const {
  {
    base::MutexLock lock(&mu_);
    auto it = policies_.find(ws);
    if (it != policies_.end()) return it->second;
  }
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> stored, state.Get(PurposePolicyKey(ws)));
  if (!stored) return std::make_shared<const trust::PurposePolicy>(trust::PurposePolicy::Defaults());
  auto parsed = trust::ParsePurposePolicy(*stored, /*ignore_unknown=*/true);
  if (!parsed.ok()) {
    return absl::DataLossError(fmt::format("the purpose settings of workspace {} cannot be read: {}", ws,
                                           base::AsStd(parsed.status().message())));
  }
  return std::make_shared<const trust::PurposePolicy>(*std::move(parsed));
}

absl::StatusOr<std::shared_ptr<const trust::PurposePolicy>> Engine::PolicyFor(store::StateTxn& state,
                                                                               uint32_t ws) {
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const trust::PurposePolicy> policy, ReadPolicy(state, ws));
  base::MutexLock lock(&mu_);
  return policies_.try_emplace(ws, std::move(policy)).first->second;
}

void Engine::PutPolicy(store::StateTxn& state, uint32_t ws, const trust::PurposePolicy& policy) {
  state.Put(PurposePolicyKey(ws), trust::PurposePolicyJson(policy));
  base::MutexLock lock(&mu_);
  policies_[ws] = std::make_shared<const trust::PurposePolicy>(policy);
}

void Engine::PutRules(store::StateTxn& state, uint32_t ws, const identity::MergeRules& rules) {
  state.Put(MergeRulesKey(ws), identity::MergeRulesJson(rules));
  base::MutexLock lock(&mu_);
  rules_[ws] = std::make_shared<const identity::MergeRules>(rules);
}

absl::StatusOr<std::vector<uint64_t>> Engine::Split(store::StateTxn& state, uint32_t ws, uint64_t id,
                                                    const wire::RawIdentifier& raw) {
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const identity::MergeRules> rules, RulesFor(state, ws));
  RAPPORT_ASSIGN_OR_RETURN(Identifier apart, identity::Normalize(raw, *rules));
  RAPPORT_RETURN_IF_ERROR(SeparationsOf(state, ws).status());
  identity::Separations& separations = separations_[ws];
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const Definitions> defs, DefinitionsFor(state, ws));
  Run run(*this, state, ws, separations, *defs, 0);
  RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* profile, run.Load(id));
  if (!profile) {
    return base::MakeError(absl::StatusCode::kNotFound, "profile_not_found",
                           fmt::format("there is no profile {}", id));
  }
  if (!profile->Has(apart)) {
    return base::MakeError(absl::StatusCode::kFailedPrecondition, "identifier_not_on_profile",
                           fmt::format("{} is not an identifier of profile {}; nothing to split",
                                       apart.ToString(), profile->id),
                           "identifier");
  }
  if (profile->identities.size() == 1) {
    return base::MakeError(absl::StatusCode::kFailedPrecondition, "nothing_to_split",
                           fmt::format("{} is the only identifier of profile {}", apart.ToString(),
                                       profile->id),
                           "identifier");
  }
  std::vector<Identifier> before;
  for (const IdentityEntry& e : profile->identities) before.push_back(e.identifier);
  for (const Identifier& other : before) {
    if (other == apart) continue;
    separations[apart].insert(other);
    separations[other].insert(apart);
  }
  for (const Identifier& changed : before) {
    auto& set = separations[changed];
    std::vector<Identifier> list(set.begin(), set.end());
    std::sort(list.begin(), list.end());
    state.Put(SeparationKey(ws, changed), EncodeIdentifiers(list));
  }
  std::vector<uint64_t> closure;
  RAPPORT_ASSIGN_OR_RETURN(bool bounded, run.Closure({profile->id}, &closure));
  if (!bounded) {
    return base::MakeError(absl::StatusCode::kFailedPrecondition, "split_too_large",
                           fmt::format("profile {} and those linked to it hold more than {} "
                                       "profiles or {} events: too large to rebuild at once",
                                       profile->id, options_.max_rebuild_profiles,
                                       options_.max_rebuild_events));
  }
  RAPPORT_RETURN_IF_ERROR(run.Rebuild(closure, nullptr, 0, 0).status());
  std::vector<uint64_t> now;
  for (const Identifier& id : before) {
    RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* r, run.ProfileOf(id));
    if (r && std::find(now.begin(), now.end(), r->id) == now.end()) now.push_back(r->id);
  }
  std::sort(now.begin(), now.end());
  RAPPORT_RETURN_IF_ERROR(run.Flush());
  return now;
}

absl::Status Engine::Run::Erase(ProfileRecord& p, Erasure* out) {
  out->profile_id = p.id;
  // Events and the timeline (membership changes included).
  std::vector<std::pair<std::string, std::string>> timeline;  // key, messageId (events)
  RAPPORT_RETURN_IF_ERROR(txn_.Scan(TimelinePrefix(ws_, p.id), "", [&](std::string_view k, std::string_view v) {
    timeline.emplace_back(k, v);
    return true;
  }));
  for (const auto& [k, message_id] : timeline) {
    txn_.Delete(k);
    auto entry = DecodeTimelineKey(k);
    if (!entry || k.size() != TimelineKey(ws_, p.id, 0, 0).size()) continue;  // a membership change
    RAPPORT_ASSIGN_OR_RETURN(std::optional<store::StoredEvent> event, txn_.ReadEvent(entry->seq));
    if (!event) continue;
    // Its person-index entries are under the userId and anonymousId as sent (an event that does
    // not parse is deleted all the same, with its deduplication record: sent again, it is
    // refused by the suppression list).
    std::string user_id, anonymous_id;
    if (auto facts = wire::ReadEventFacts(event->payload); facts.ok()) {
      for (const wire::RawIdentifier& raw : facts->identifiers) {
        if (raw.source == "userId") user_id = raw.value;
        if (raw.source == "anonymousId") anonymous_id = raw.value;
      }
    }
    RAPPORT_RETURN_IF_ERROR(txn_.DeleteEvent(*event, message_id, user_id, anonymous_id));
    ++out->events;
  }
  // Computed traits and memberships (and the segments' counts).
  RAPPORT_ASSIGN_OR_RETURN(DerivedState* d, DerivedIfAny(p.id));
  if (d) {
    out->computed_traits = d->traits.size();
    out->segments = d->segments.size();
  }
  RAPPORT_RETURN_IF_ERROR(Retire(p.id));
  // What other profiles kept of its identifiers: refused links and splits.
  std::vector<Identifier> mine;
  for (const IdentityEntry& e : p.identities) mine.push_back(e.identifier);
  auto is_mine = [&](const Identifier& id) { return std::find(mine.begin(), mine.end(), id) != mine.end(); };
  for (const Identifier& c : p.conflicts) {
    RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* other, ProfileOf(c));
    if (!other || other->id == p.id) continue;
    std::erase_if(other->conflicts, is_mine);
    std::erase_if(other->blocked, [&](const BlockedEntry& b) {
      return std::any_of(mine.begin(), mine.end(), [&](const Identifier& id) {
        const std::string named = id.ToString();
        return b.identifier == named || b.reason.find(named) != std::string::npos;
      });
    });
    Dirty(other->id);
  }
  for (const Identifier& id : mine) {
    txn_.Delete(IdentifierKey(ws_, id));
    const std::string key = SeparationKey(ws_, id);
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> apart, txn_.Get(key));
    if (!apart) continue;
    txn_.Delete(key);
    auto list = DecodeIdentifiers(*apart);
    if (!list) return absl::DataLossError("a split record cannot be decoded");
    for (const Identifier& other : *list) {
      if (is_mine(other)) continue;
      const std::string other_key = SeparationKey(ws_, other);
      RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> theirs, txn_.Get(other_key));
      auto their_list = theirs ? DecodeIdentifiers(*theirs) : std::nullopt;
      if (!their_list) continue;
      std::erase_if(*their_list, is_mine);
      if (their_list->empty()) {
        txn_.Delete(other_key);
      } else {
        txn_.Put(other_key, EncodeIdentifiers(*their_list));
      }
    }
  }
  out->identifiers = mine.size();
  out->traits = p.traits.size();
  // The records: its own and those of the profiles merged into it (which name only it).
  out->profiles.push_back(p.id);
  for (uint64_t k : p.keys) {
    RAPPORT_ASSIGN_OR_RETURN(const ProfileRecord* absorbed, RecordAt(k));
    if (absorbed && absorbed->merged_into) {
      RAPPORT_RETURN_IF_ERROR(Retire(k));
      txn_.Delete(ProfileKey(ws_, k));
      out->profiles.push_back(k);
    }
  }
  txn_.Delete(ProfileKey(ws_, p.id));
  // Last, the keys: every copy of what they sealed becomes unreadable.
  out->destroyed_keys.push_back(p.id);
  out->destroyed_keys.insert(out->destroyed_keys.end(), p.keys.begin(), p.keys.end());
  for (uint64_t k : out->destroyed_keys) txn_.DestroyDataKey(ws_, k);
  for (uint64_t id : out->profiles) {
    records_.erase(id);
    dirty_.erase(id);
  }
  std::sort(out->profiles.begin(), out->profiles.end());
  return absl::OkStatus();
}

absl::StatusOr<Erasure> Engine::Erase(store::StateTxn& state, uint32_t ws, uint64_t id, const std::string& receipt) {
  RAPPORT_RETURN_IF_ERROR(SeparationsOf(state, ws).status());
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const Definitions> defs, DefinitionsFor(state, ws));
  Run run(*this, state, ws, separations_[ws], *defs, 0);
  RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* p, run.Load(id));
  if (!p) {
    return base::MakeError(absl::StatusCode::kNotFound, "profile_not_found", fmt::format("there is no profile {}", id));
  }
  if (p->event_count > kMaxErasureEvents) {
    return base::MakeError(absl::StatusCode::kFailedPrecondition, "erasure_too_large",
                           fmt::format("profile {} has {} events, more than the {} an erasure takes at once",
                                       p->id, p->event_count, kMaxErasureEvents));
  }
  RAPPORT_RETURN_IF_ERROR(SuppressedOf(state, ws).status());  // loaded before it grows below
  Erasure out;
  const base::Micros now = Now();
  for (const IdentityEntry& e : p->identities) {
    Suppression s{state.KeyedHash(ws, SuppressionInput(e.identifier)), e.identifier.type, now, receipt};
    state.Put(SuppressionKey(ws, s.hash), EncodeSuppression(s));
    suppressed_[ws].insert(s.hash);
    out.suppressed.push_back(std::move(s));
  }
  RAPPORT_RETURN_IF_ERROR(run.Erase(*p, &out));
  RAPPORT_RETURN_IF_ERROR(run.Flush());
  separations_.erase(ws);  // reloaded without its identifiers
  return out;
}

absl::StatusOr<const absl::flat_hash_set<std::string>*> Engine::SuppressedOf(store::StateTxn& state, uint32_t ws) {
  auto it = suppressed_.find(ws);
  if (it != suppressed_.end()) return &it->second;
  absl::flat_hash_set<std::string> loaded;
  const std::string prefix = SuppressionPrefix(ws);
  RAPPORT_RETURN_IF_ERROR(state.Scan(prefix, "", [&](std::string_view k, std::string_view) {
    loaded.insert(std::string(k.substr(prefix.size())));
    return true;
  }));
  return &suppressed_.emplace(ws, std::move(loaded)).first->second;
}

absl::Status Engine::CheckSuppressed(store::StateTxn& state, uint32_t ws, const wire::EventFacts& facts) {
  RAPPORT_ASSIGN_OR_RETURN(const absl::flat_hash_set<std::string>* suppressed, SuppressedOf(state, ws));
  if (suppressed->empty()) return absl::OkStatus();
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const identity::MergeRules> rules, RulesFor(state, ws));
  auto check = [&](const wire::RawIdentifier& raw) -> absl::Status {
    auto id = identity::Normalize(raw, *rules);
    if (!id.ok() || !suppressed->contains(state.KeyedHash(ws, SuppressionInput(*id)))) return absl::OkStatus();
    return base::MakeError(absl::StatusCode::kPermissionDenied, "identifier_suppressed",
                           fmt::format("the person this event names ({} from {}) was erased at their request; "
                                       "events naming them are refused until an admin lifts the suppression",
                                       id->type, raw.source),
                           raw.source);
  };
  for (const wire::RawIdentifier& raw : facts.identifiers) RAPPORT_RETURN_IF_ERROR(check(raw));
  if (facts.type == wire::EventType::kAlias && !facts.previous_id.empty()) {
    for (const char* type : {"user_id", "anonymous_id"}) {
      RAPPORT_RETURN_IF_ERROR(check({type, facts.previous_id, "previousId"}));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Suppression>> Engine::Suppressions(store::StateReader& state, uint32_t ws,
                                                              std::string_view after, size_t limit) {
  std::vector<Suppression> out;
  const std::string prefix = SuppressionPrefix(ws);
  const std::string from = after.empty() ? "" : SuppressionKey(ws, after);
  bool corrupt = false;
  RAPPORT_RETURN_IF_ERROR(state.Scan(prefix, from, [&](std::string_view k, std::string_view v) {
    if (k == from) return true;
    if (out.size() == limit) return false;
    auto s = DecodeSuppression(k.substr(prefix.size()), v);
    if (!s) {
      corrupt = true;
      return false;
    }
    out.push_back(*std::move(s));
    return true;
  }));
  if (corrupt) return absl::DataLossError("a suppression record cannot be decoded");
  return out;
}

absl::StatusOr<std::string> Engine::SuppressionHash(store::StateReader& state, uint32_t ws,
                                                    const wire::RawIdentifier& raw) const {
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const identity::MergeRules> rules, ReadRules(state, ws));
  RAPPORT_ASSIGN_OR_RETURN(Identifier id, identity::Normalize(raw, *rules));
  return state.KeyedHash(ws, SuppressionInput(id));
}

absl::StatusOr<std::optional<Suppression>> Engine::FindSuppression(store::StateReader& state, uint32_t ws,
                                                                   const wire::RawIdentifier& raw) const {
  RAPPORT_ASSIGN_OR_RETURN(std::string hash, SuppressionHash(state, ws, raw));
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> stored, state.Get(SuppressionKey(ws, hash)));
  if (!stored) return std::nullopt;
  auto s = DecodeSuppression(hash, *stored);
  if (!s) return absl::DataLossError("a suppression record cannot be decoded");
  return s;
}

absl::Status Engine::LiftSuppression(store::StateTxn& state, uint32_t ws, std::string_view hash) {
  const std::string key = SuppressionKey(ws, hash);
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> existing, state.Get(key));
  if (!existing) {
    return base::MakeError(absl::StatusCode::kNotFound, "suppression_not_found",
                           "there is no suppression with this hash");
  }
  state.Delete(key);
  if (auto it = suppressed_.find(ws); it != suppressed_.end()) it->second.erase(std::string(hash));
  return absl::OkStatus();
}

absl::StatusOr<ProfileRecord> Engine::Read(store::StateReader& state, uint32_t ws, uint64_t id) {
  const uint64_t requested = id;
  for (int hop = 0; hop < kMaxRedirectHops; ++hop) {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<ProfileRecord> record, ReadRecord(state, ws, id));
    if (!record) break;
    if (!record->merged_into) return *std::move(record);
    id = record->merged_into;
    if (hop + 1 == kMaxRedirectHops) {
      return absl::DataLossError(fmt::format("profile {} redirects more than {} times", requested,
                                             kMaxRedirectHops));
    }
  }
  return base::MakeError(absl::StatusCode::kNotFound, "profile_not_found",
                         fmt::format("there is no profile {}", requested));
}

absl::StatusOr<ProfileRecord> Engine::Lookup(store::StateReader& state, uint32_t ws,
                                             const wire::RawIdentifier& raw) const {
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const identity::MergeRules> rules, ReadRules(state, ws));
  RAPPORT_ASSIGN_OR_RETURN(Identifier id, identity::Normalize(raw, *rules));
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> value, state.Get(IdentifierKey(ws, id)));
  auto pid = value ? DecodeProfileId(*value) : std::nullopt;
  if (!pid) {
    return base::MakeError(absl::StatusCode::kNotFound, "profile_not_found",
                           fmt::format("no profile has the identifier {}", id.ToString()));
  }
  return Read(state, ws, *pid);
}

absl::StatusOr<TimelinePage> Engine::Timeline(store::StateReader& state, uint32_t ws, uint64_t id,
                                              std::string_view cursor, size_t limit) {
  if (limit == 0) return absl::InvalidArgumentError("limit must be at least 1");
  const std::string prefix = TimelinePrefix(ws, id);
  std::string after;
  if (!cursor.empty()) {
    RAPPORT_ASSIGN_OR_RETURN(after, base::DecodeCursor(cursor, 0));
    if (after.size() < 16) return base::InvalidField("invalid_cursor", "cursor", "the cursor is not one this API gave");
    after = prefix + after;
  }
  TimelinePage page;
  std::vector<std::pair<size_t, uint64_t>> to_read;  // item, event seq
  std::string last_suffix;
  bool more = false;
  RAPPORT_RETURN_IF_ERROR(state.Scan(prefix, after, [&](std::string_view k, std::string_view v) {
    if (k == after) return true;
    if (page.items.size() == limit) {
      more = true;
      return false;
    }
    if (auto entry = DecodeTimelineKey(k)) {
      to_read.emplace_back(page.items.size(), entry->seq);
      page.items.emplace_back();
    } else if (auto change = DecodeMembershipTimeline(k, v)) {
      page.items.push_back({{}, *std::move(change)});
    } else {
      return true;
    }
    last_suffix = std::string(k.substr(prefix.size()));
    return true;
  }));
  for (const auto& [index, seq] : to_read) {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<store::StoredEvent> event, state.ReadEvent(seq));
    if (!event) return absl::DataLossError(fmt::format("event {} of profile {} is missing", seq, id));
    page.items[index].event = *std::move(event);
  }
  if (more) page.next_cursor = base::EncodeCursor(last_suffix);
  return page;
}

// --- Definitions.

absl::StatusOr<std::vector<StoredDefinition>> Engine::ListDefinitions(store::StateReader& state, uint32_t ws,
                                                                      DefinitionKind kind) {
  std::vector<StoredDefinition> out;
  bool corrupt = false;
  RAPPORT_RETURN_IF_ERROR(state.Scan(DefinitionPrefix(ws, kind), "", [&](std::string_view, std::string_view v) {
    auto d = DecodeStoredDefinition(v);
    if (!d) {
      corrupt = true;
      return false;
    }
    out.push_back(*std::move(d));
    return true;
  }));
  if (corrupt) return absl::DataLossError("a stored definition cannot be decoded");
  return out;
}

absl::StatusOr<std::shared_ptr<const Definitions>> Engine::LoadDefinitions(store::StateReader& state,
                                                                           uint32_t ws) {
  RAPPORT_ASSIGN_OR_RETURN(std::vector<StoredDefinition> computed,
                           ListDefinitions(state, ws, DefinitionKind::kComputed));
  RAPPORT_ASSIGN_OR_RETURN(std::vector<StoredDefinition> segments,
                           ListDefinitions(state, ws, DefinitionKind::kSegment));
  return Definitions::FromStored(computed, segments);
}

absl::StatusOr<std::shared_ptr<const Definitions>> Engine::DefinitionsFor(store::StateReader& state,
                                                                          uint32_t ws) const {
  {
    base::MutexLock lock(&mu_);
    auto it = definitions_.find(ws);
    if (it != definitions_.end()) return it->second;
  }
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const Definitions> loaded, LoadDefinitions(state, ws));
  base::MutexLock lock(&mu_);
  return definitions_.try_emplace(ws, std::move(loaded)).first->second;
}

absl::Status NoSuchDefinition(DefinitionKind kind, std::string_view name) {
  return base::MakeError(absl::StatusCode::kNotFound, "definition_not_found",
                         fmt::format("there is no {} '{}'", DefinitionKindName(kind), name), "name");
}

absl::StatusOr<std::optional<StoredDefinition>> Engine::ReadDefinition(store::StateReader& state, uint32_t ws,
                                                                       DefinitionKind kind, std::string_view name) {
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, state.Get(DefinitionKey(ws, kind, name)));
  if (!bytes) return std::nullopt;
  auto d = DecodeStoredDefinition(*bytes);
  if (!d) return absl::DataLossError(fmt::format("the {} '{}' cannot be decoded", DefinitionKindName(kind), name));
  return d;
}

absl::StatusOr<DefinitionChange> Engine::Put(
    store::StateTxn& state, uint32_t ws, DefinitionKind kind, const std::string& name,
    const std::string& spec_json, PutMode mode,
    const std::function<absl::StatusOr<std::shared_ptr<const Definitions>>(const Definitions&, uint64_t)>& apply) {
  RAPPORT_ASSIGN_OR_RETURN(std::optional<StoredDefinition> existing, ReadDefinition(state, ws, kind, name));
  if (mode == PutMode::kCreate && existing) {
    return base::MakeError(absl::StatusCode::kAlreadyExists, "definition_exists",
                           fmt::format("there is already a {} '{}' (change it with PUT)",
                                       DefinitionKindName(kind), name),
                           "name");
  }
  if (mode == PutMode::kReplace && !existing) return NoSuchDefinition(kind, name);
  if (existing && existing->spec_json == spec_json) return DefinitionChange{*existing, std::nullopt, false};
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const Definitions> defs, DefinitionsFor(state, ws));
  const uint64_t version = existing ? existing->version + 1 : 1;
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const Definitions> changed, apply(*defs, version));

  const base::Micros now = Now();
  RAPPORT_ASSIGN_OR_RETURN(Job job, QueueJob(state, ws, kind, name, version));
  StoredDefinition stored{version, existing ? existing->created_at : now, now, job.id, spec_json};
  state.Put(DefinitionKey(ws, kind, name), EncodeStoredDefinition(stored));
  {
    base::MutexLock lock(&mu_);
    definitions_[ws] = std::move(changed);
  }
  return DefinitionChange{std::move(stored), std::move(job), !existing};
}

absl::StatusOr<Job> Engine::QueueJob(store::StateTxn& state, uint32_t ws, DefinitionKind kind,
                                     const std::string& name, uint64_t version) {
  const base::Micros now = Now();
  Job job;
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> next_job, state.Get(NextJobKey()));
  job.id = next_job ? DecodeU64(*next_job).value_or(0) : 1;
  if (job.id == 0) return absl::DataLossError("the next job id cannot be decoded");
  state.Put(NextJobKey(), EncodeU64(job.id + 1));
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> next_profile, state.Get(NextIdKey(ws)));
  job.total = next_profile ? DecodeProfileId(*next_profile).value_or(1) - 1 : 0;
  job.ws = ws;
  job.kind = kind;
  job.target = name;
  job.version = version;
  job.created_at = now;
  if (job.total == 0) {
    job.state = JobState::kDone;
    job.started_at = job.finished_at = now;
  } else if (kind == DefinitionKind::kComputed) {
    backfilling_[ws].insert(name);
  }
  state.Put(JobKey(job.id), EncodeJob(job));
  return job;
}

absl::StatusOr<Job> Engine::Backfill(store::StateTxn& state, uint32_t ws, DefinitionKind kind,
                                     const std::string& name) {
  RAPPORT_ASSIGN_OR_RETURN(std::optional<StoredDefinition> existing, ReadDefinition(state, ws, kind, name));
  if (!existing) return NoSuchDefinition(kind, name);
  // The new job does all the earlier one of this version would still do.
  if (existing->job) {
    RAPPORT_ASSIGN_OR_RETURN(Job earlier, ReadJob(state, existing->job));
    if (!earlier.finished()) {
      earlier.state = JobState::kSuperseded;
      earlier.finished_at = Now();
      EndBackfill(earlier);
      state.Put(JobKey(earlier.id), EncodeJob(earlier));
    }
  }
  RAPPORT_ASSIGN_OR_RETURN(Job job, QueueJob(state, ws, kind, name, existing->version));
  existing->job = job.id;
  state.Put(DefinitionKey(ws, kind, name), EncodeStoredDefinition(*existing));
  return job;
}

absl::StatusOr<DefinitionChange> Engine::PutComputedTrait(store::StateTxn& state, uint32_t ws,
                                                          const wire::ComputedTraitSpec& spec, PutMode mode) {
  return Put(state, ws, DefinitionKind::kComputed, spec.name, wire::ComputedTraitSpecJson(spec), mode,
             [&](const Definitions& defs, uint64_t version) { return defs.WithComputed(spec, version); });
}

absl::StatusOr<DefinitionChange> Engine::PutSegment(store::StateTxn& state, uint32_t ws,
                                                    const wire::SegmentSpec& spec, PutMode mode) {
  return Put(state, ws, DefinitionKind::kSegment, spec.name, wire::SegmentSpecJson(spec), mode,
             [&](const Definitions& defs, uint64_t version) { return defs.WithSegment(spec, version); });
}

// --- Jobs.

absl::StatusOr<Job> Engine::ReadJob(store::StateReader& state, uint64_t id) {
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, state.Get(JobKey(id)));
  if (!bytes) {
    return base::MakeError(absl::StatusCode::kNotFound, "job_not_found", fmt::format("there is no job {}", id));
  }
  auto job = DecodeJob(id, *bytes);
  if (!job) return absl::DataLossError(fmt::format("job {} cannot be decoded", id));
  return *std::move(job);
}

absl::StatusOr<std::vector<uint64_t>> Engine::UnfinishedJobs(store::StateReader& state) {
  std::vector<uint64_t> out;
  bool corrupt = false;
  RAPPORT_RETURN_IF_ERROR(state.Scan("J", "", [&](std::string_view k, std::string_view v) {
    auto id = DecodeU64(k.substr(1));
    auto job = id ? DecodeJob(*id, v) : std::nullopt;
    if (!job) {
      corrupt = true;
      return false;
    }
    if (!job->finished()) out.push_back(job->id);
    return true;
  }));
  if (corrupt) return absl::DataLossError("a job record cannot be decoded");
  return out;
}

void Engine::EndBackfill(const Job& job) {
  if (job.kind != DefinitionKind::kComputed) return;
  auto it = backfilling_.find(job.ws);
  if (it == backfilling_.end()) return;
  it->second.erase(job.target);
  if (it->second.empty()) backfilling_.erase(it);
}

absl::StatusOr<Job> Engine::FailJob(store::StateTxn& state, uint64_t id, std::string error) {
  RAPPORT_ASSIGN_OR_RETURN(Job job, ReadJob(state, id));
  if (job.finished()) return job;
  job.state = JobState::kFailed;
  job.finished_at = Now();
  job.error = std::move(error);
  EndBackfill(job);
  state.Put(JobKey(job.id), EncodeJob(job));
  return job;
}

absl::StatusOr<Job> Engine::RunJobStep(store::StateTxn& state, uint64_t id, size_t max_profiles) {
  RAPPORT_ASSIGN_OR_RETURN(Job job, ReadJob(state, id));
  if (job.finished()) return job;
  const base::Micros now = Now();
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const Definitions> defs, DefinitionsFor(state, job.ws));
  const ComputedTraitDef* computed = nullptr;
  uint64_t current = 0;
  if (job.kind == DefinitionKind::kComputed) {
    computed = defs->FindComputed(job.target);
    current = computed ? computed->version : 0;
  } else if (const SegmentDef* seg = defs->FindSegment(job.target)) {
    current = seg->version;
  }
  auto finish = [&](JobState s) {
    job.state = s;
    job.finished_at = now;
    EndBackfill(job);
  };
  if (current != job.version) {
    finish(JobState::kSuperseded);
  } else {
    if (job.state == JobState::kQueued) {
      job.state = JobState::kRunning;
      job.started_at = now;
    }
    if (computed) backfilling_[job.ws].insert(job.target);
    RAPPORT_RETURN_IF_ERROR(SeparationsOf(state, job.ws).status());
    Run run(*this, state, job.ws, separations_[job.ws], *defs, 0);
    // The profiles in [cursor, total], at most max_profiles live ones.
    std::vector<uint64_t> live;
    uint64_t last = job.cursor - 1;
    const std::string prefix = ProfileKey(job.ws, 0).substr(0, 5);
    bool corrupt = false;
    RAPPORT_RETURN_IF_ERROR(state.Scan(prefix, ProfileKey(job.ws, job.cursor), [&](std::string_view k, std::string_view v) {
      auto pid = DecodeProfileId(k.substr(5));
      if (!pid) {
        corrupt = true;
        return false;
      }
      if (*pid > job.total || live.size() == max_profiles) return false;
      last = *pid;
      if (!v.empty() && v[0] == kSealed) {  // only live profiles' records are sealed
        live.push_back(*pid);
        return true;
      }
      auto record = DecodeProfile(*pid, v);
      if (!record) {
        corrupt = true;
        return false;
      }
      if (!record->merged_into) live.push_back(*pid);
      return true;
    }));
    if (corrupt) return absl::DataLossError("a profile record cannot be decoded");
    for (uint64_t pid : live) {
      if (computed) RAPPORT_RETURN_IF_ERROR(run.RecomputeTrait(pid, *computed));
      RAPPORT_RETURN_IF_ERROR(run.Touch(pid).status());
    }
    RAPPORT_RETURN_IF_ERROR(run.Flush());
    job.profiles += live.size();
    job.cursor = live.size() < max_profiles ? job.total + 1 : last + 1;
    if (job.cursor > job.total) finish(JobState::kDone);
  }
  state.Put(JobKey(job.id), EncodeJob(job));
  return job;
}

// --- Time.

absl::StatusOr<bool> Engine::AnythingDue(store::StateReader& state, base::Micros now) {
  bool due = false;
  RAPPORT_RETURN_IF_ERROR(state.Scan(DuePrefix(), "", [&](std::string_view k, std::string_view) {
    auto entry = DecodeDueKey(k);
    due = entry && entry->at <= now;
    return false;
  }));
  return due;
}

absl::StatusOr<size_t> Engine::Sweep(store::StateTxn& state, size_t max_profiles) {
  const base::Micros now = Now();
  std::map<uint32_t, std::vector<DueEntry>> by_workspace;
  size_t n = 0;
  RAPPORT_RETURN_IF_ERROR(state.Scan(DuePrefix(), "", [&](std::string_view k, std::string_view) {
    auto entry = DecodeDueKey(k);
    if (!entry || entry->at > now || n == max_profiles) return false;
    by_workspace[entry->ws].push_back(*entry);
    ++n;
    return true;
  }));
  size_t evaluated = 0;
  for (const auto& [ws, entries] : by_workspace) {
    RAPPORT_RETURN_IF_ERROR(SeparationsOf(state, ws).status());
    RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const Definitions> defs, DefinitionsFor(state, ws));
    Run run(*this, state, ws, separations_[ws], *defs, 0);
    for (const DueEntry& e : entries) {
      RAPPORT_ASSIGN_OR_RETURN(bool live, run.Touch(e.id));
      // A profile that is gone just loses the entry; a live one is re-evaluated (which moves
      // or removes the entry: its derived state names it).
      if (!live) state.Delete(DueKey(e.at, ws, e.id));
      evaluated += live ? 1 : 0;
    }
    RAPPORT_RETURN_IF_ERROR(run.Flush());
  }
  if (swept_) swept_->Inc(evaluated);
  return n;
}

// --- Reads of what is derived.

absl::StatusOr<DerivedState> Engine::ReadDerived(store::StateReader& state, uint32_t ws, uint64_t id) {
  RAPPORT_ASSIGN_OR_RETURN(std::optional<DerivedState> d, ReadDerivedRecord(state, ws, id));
  if (!d) return DerivedState{};
  return *std::move(d);
}

absl::StatusOr<MembersPage> Engine::Members(store::StateReader& state, uint32_t ws, std::string_view segment,
                                            std::string_view cursor, size_t limit) const {
  if (limit == 0) return absl::InvalidArgumentError("limit must be at least 1");
  RAPPORT_ASSIGN_OR_RETURN(std::shared_ptr<const Definitions> defs, DefinitionsFor(state, ws));
  if (!defs->FindSegment(segment)) {
    return base::MakeError(absl::StatusCode::kNotFound, "segment_not_found",
                           fmt::format("there is no segment '{}'", segment));
  }
  MembersPage page;
  RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> count, state.Get(MemberCountKey(ws, segment)));
  if (count) page.count = DecodeU64(*count).value_or(0);
  const std::string prefix = MemberPrefix(ws, segment);
  std::string after;
  if (!cursor.empty()) {
    RAPPORT_ASSIGN_OR_RETURN(std::string suffix, base::DecodeCursor(cursor, 8));
    after = prefix + suffix;
  }
  bool more = false;
  RAPPORT_RETURN_IF_ERROR(state.Scan(prefix, after, [&](std::string_view k, std::string_view v) {
    if (k == after) return true;
    if (page.members.size() == limit) {
      more = true;
      return false;
    }
    auto id = DecodeMemberKeyId(k);
    auto at = DecodeU64(v);
    if (id && at) page.members.emplace_back(*id, static_cast<base::Micros>(*at));
    return true;
  }));
  if (more) page.next_cursor = base::EncodeCursor(EncodeU64(page.members.back().first));
  return page;
}

}  // namespace rapport::profile

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
#include "rapport/wire/event_facts.h"

namespace rapport::profile {
namespace {

using identity::Identifier;

constexpr int kMaxRedirectHops = 64;

struct Prepared final : store::PreparedEvent {
  wire::EventFacts facts;
};

absl::Status Corrupt(std::string_view what, uint64_t id) {
  return absl::DataLossError(fmt::format("the {} of profile {} cannot be decoded", what, id));
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
  Run(Engine& engine, store::StateTxn& txn, uint32_t ws, const identity::Separations& separations)
      : engine_(engine), txn_(txn), ws_(ws), separations_(separations) {}

  // The live profile `id` (following merges), or nullptr if there is none.
  absl::StatusOr<ProfileRecord*> Load(uint64_t id) {
    for (int hop = 0; hop < kMaxRedirectHops; ++hop) {
      auto it = records_.find(id);
      if (it == records_.end()) {
        RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, txn_.Get(ProfileKey(ws_, id)));
        if (!bytes) return nullptr;
        auto record = DecodeProfile(id, *bytes);
        if (!record) return Corrupt("record", id);
        it = records_.emplace(id, *std::move(record)).first;
      }
      if (!it->second.merged_into) return &it->second;
      id = it->second.merged_into;
    }
    return absl::DataLossError(fmt::format("profile {} redirects more than {} times", id, kMaxRedirectHops));
  }

  // The live profile an identifier belongs to, or nullptr.
  absl::StatusOr<ProfileRecord*> ProfileOf(const Identifier& id) {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> value, txn_.Get(IdentifierKey(ws_, id)));
    if (!value) return nullptr;
    auto pid = DecodeProfileId(*value);
    if (!pid) return absl::DataLossError(fmt::format("the index entry of {} cannot be decoded", id.ToString()));
    return Load(*pid);
  }

  // Applies one event; returns the profile it now belongs to (0: it names nobody).
  absl::StatusOr<uint64_t> ApplyEvent(const wire::EventFacts& f, base::Micros ts, uint64_t seq,
                                      bool allow_rebuild);

  // Rebuilds `closure` from its stored events plus `extra` (an event being applied now);
  // returns the profile the extra event now belongs to (0 without one).
  absl::StatusOr<uint64_t> Rebuild(const std::vector<uint64_t>& closure, const wire::EventFacts* extra_facts,
                       base::Micros extra_ts, uint64_t extra_seq);

  // `start` and every profile reachable from it through refused links; false if that exceeds
  // the rebuild bounds.
  absl::StatusOr<bool> Closure(std::vector<uint64_t> start, std::vector<uint64_t>* out);

  absl::Status Flush() {
    for (uint64_t id : dirty_) {
      auto it = records_.find(id);
      if (it != records_.end()) txn_.Put(ProfileKey(ws_, id), EncodeProfile(it->second));
    }
    dirty_.clear();
    return absl::OkStatus();
  }

 private:
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
};

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
  target->first = std::min(target->first, q->first);
  target->last = std::max(target->last, q->last);
  target->event_count += q->event_count;

  std::vector<std::pair<std::string, std::string>> moved;
  RAPPORT_RETURN_IF_ERROR(txn_.Scan(TimelinePrefix(ws_, q->id), "",
                                    [&](std::string_view k, std::string_view v) {
                                      moved.emplace_back(k, v);
                                      return true;
                                    }));
  for (const auto& [k, v] : moved) {
    auto entry = DecodeTimelineKey(k);
    if (!entry) return Corrupt("timeline", q->id);
    txn_.Delete(k);
    txn_.Put(TimelineKey(ws_, target->id, entry->timestamp, entry->seq), v);
  }
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
                                                 uint64_t seq, bool allow_rebuild) {
  const identity::MergeRules& rules = engine_.options_.rules;
  const OrderKey key{ts, f.message_id};

  // Normalise; a value that identifies nobody is recorded on the profile, not linked.
  std::vector<Identifier> ids;
  std::vector<std::pair<Identifier, std::string>> sources;
  std::vector<BlockedEntry> unusable;
  auto take = [&](const wire::RawIdentifier& raw) {
    auto id = identity::Normalize(raw, rules);
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
  if (f.type == wire::EventType::kIdentify) {
    for (const auto& [name, json] : f.traits) target->SetTrait(name, json, key);
  }
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
  reuse_.clear();
  for (uint64_t id : closure) {
    RAPPORT_ASSIGN_OR_RETURN(ProfileRecord* r, Load(id));
    if (!r) continue;
    reuse_.emplace(r->first, r->id);
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
    records_.erase(id);
    dirty_.erase(id);
  }
  if (extra_facts) items.push_back({extra_ts, extra_facts->message_id, extra_seq});
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return std::tie(a.ts, a.message_id, a.seq) < std::tie(b.ts, b.message_id, b.seq);
  });

  std::map<uint64_t, uint64_t> now_in;  // seq → profile it was applied to
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
    }
    now_in[item.seq] = pid;
  }
  replaying_ = false;
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
  return extra_facts ? now_in[extra_seq] : 0;
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

absl::Status Engine::Apply(const store::EventWrite& event, uint64_t seq,
                           const store::PreparedEvent& prepared, store::StateTxn& state) {
  RAPPORT_ASSIGN_OR_RETURN(const identity::Separations* separations, SeparationsOf(state, event.workspace));
  Run run(*this, state, event.workspace, *separations);
  RAPPORT_RETURN_IF_ERROR(
      run.ApplyEvent(static_cast<const Prepared&>(prepared).facts, event.timestamp, seq, true).status());
  return run.Flush();
}

void Engine::AfterGroup(bool committed) {
  if (!committed) separations_.clear();  // reloaded from the store on next use
}

absl::StatusOr<std::vector<uint64_t>> Engine::Split(store::StateTxn& state, uint32_t ws, uint64_t id,
                                                    const wire::RawIdentifier& raw) {
  RAPPORT_ASSIGN_OR_RETURN(Identifier apart, identity::Normalize(raw, options_.rules));
  RAPPORT_RETURN_IF_ERROR(SeparationsOf(state, ws).status());
  identity::Separations& separations = separations_[ws];
  Run run(*this, state, ws, separations);
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

absl::StatusOr<ProfileRecord> Engine::Read(store::StateReader& state, uint32_t ws, uint64_t id) {
  const uint64_t requested = id;
  for (int hop = 0; hop < kMaxRedirectHops; ++hop) {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, state.Get(ProfileKey(ws, id)));
    if (!bytes) break;
    auto record = DecodeProfile(id, *bytes);
    if (!record) return Corrupt("record", id);
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
  RAPPORT_ASSIGN_OR_RETURN(Identifier id, identity::Normalize(raw, options_.rules));
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
    RAPPORT_ASSIGN_OR_RETURN(std::string suffix, base::DecodeCursor(cursor, 16));
    after = prefix + suffix;
  }
  std::vector<uint64_t> seqs;
  std::string last_suffix;
  bool more = false;
  RAPPORT_RETURN_IF_ERROR(state.Scan(prefix, after, [&](std::string_view k, std::string_view) {
    if (k == after) return true;
    if (seqs.size() == limit) {
      more = true;
      return false;
    }
    auto entry = DecodeTimelineKey(k);
    if (entry) seqs.push_back(entry->seq);
    last_suffix = std::string(k.substr(prefix.size()));
    return true;
  }));
  TimelinePage page;
  for (uint64_t seq : seqs) {
    RAPPORT_ASSIGN_OR_RETURN(std::optional<store::StoredEvent> event, state.ReadEvent(seq));
    if (!event) return absl::DataLossError(fmt::format("event {} of profile {} is missing", seq, id));
    page.events.push_back(*std::move(event));
  }
  if (more) page.next_cursor = base::EncodeCursor(last_suffix);
  return page;
}

}  // namespace rapport::profile

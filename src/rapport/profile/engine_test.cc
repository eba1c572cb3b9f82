#include "rapport/profile/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "rapport/base/clock.h"
#include "rapport/base/error.h"
#include "rapport/base/endian.h"
#include "rapport/identity/rules_json.h"
#include "rapport/trust/consent.h"
#include "tests/lib/temp_dir.h"

namespace rapport::profile {
namespace {

constexpr uint32_t kWs = 1;

struct Ev {
  std::string message_id;
  base::Micros ts;
  std::string json;  // the stored event JSON
};

// A stored event JSON with the given members (`extra` is `"k":v,...` or ""). Unless `consent`
// is false, a track, page or screen event carries the person's grant of analytics, its purpose
// (as a site with a consent manager sends it); the consent tests below set their own.
Ev Make(std::string id, base::Micros ts, std::string type, std::string extra, bool consent = true) {
  if (consent && (type == "track" || type == "page" || type == "screen")) {
    constexpr std::string_view kGrant = R"("consent":{"categoryPreferences":{"analytics":true}})";
    if (auto at = extra.find(R"("context":{)"); at != std::string::npos) {
      extra.insert(at + 11, std::string(kGrant) + ",");
    } else {
      extra += fmt::format(R"({}"context":{{{}}})", extra.empty() ? "" : ",", kGrant);
    }
  }
  std::string json = fmt::format(R"({{"type":"{}","messageId":"{}"{}{}}})", type, id,
                                 extra.empty() ? "" : ",", extra);
  return {std::move(id), ts, std::move(json)};
}

class Harness {
 public:
  explicit Harness(EngineOptions options = {}) : engine_(std::move(options)) {
    store::StoreOptions so;
    so.path = dir_.path();
    so.hook = &engine_;
    store_ = *store::Store::Open(so);
  }
  void Send(std::vector<Ev> events, uint32_t ws = kWs, bool admitted = false) {
    std::vector<store::EventWrite> writes;
    for (Ev& e : events) {
      store::EventWrite w;
      w.admitted = admitted;
      w.workspace = ws;
      w.message_id = e.message_id;
      w.timestamp = e.ts;
      w.received_at = e.ts;
      w.payload = e.json;
      writes.push_back(std::move(w));
    }
    auto r = store_->CommitEventsAndWait(std::move(writes));
    ASSERT_TRUE(r.ok()) << r.status();
    last_results_ = *std::move(r);
  }
  // The store's results of the last Send.
  const std::vector<store::EventResult>& results() const { return last_results_; }
  // "purpose=state@messageId,…" of a profile's recorded choices.
  std::string Consent(const ProfileRecord& r) {
    std::string out;
    for (const auto& [purpose, c] : r.consents.choices()) {
      out += fmt::format("{}={}@{},", purpose, trust::ConsentStateName(c.state), c.message_id);
    }
    return out;
  }
  // The stored payload of every event, by messageId.
  std::map<std::string, std::string> StoredEvents() {
    std::map<std::string, std::string> out;
    EXPECT_TRUE(store_->ScanEvents(0, [&](const store::StoredEvent& e) {
      auto at = e.payload.find("\"messageId\":\"");
      out[e.payload.substr(at + 13, e.payload.find('"', at + 13) - at - 13)] = e.payload;
      return true;
    }).ok());
    return out;
  }
  absl::StatusOr<ProfileRecord> Lookup(std::string type, std::string value, uint32_t ws = kWs) {
    auto reader = store_->NewStateReader();
    return engine_.Lookup(*reader, ws, {std::move(type), std::move(value), "test"});
  }
  std::vector<std::string> TimelineIds(uint64_t id) {
    auto reader = store_->NewStateReader();
    std::vector<std::string> out;
    std::string cursor;
    do {
      auto page = Engine::Timeline(*reader, kWs, id, cursor, 2);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const auto& item : page->items) {
        if (item.membership) continue;
        const store::StoredEvent& e = item.event;
        auto at = e.payload.find("\"messageId\":\"");
        out.push_back(e.payload.substr(at + 13, e.payload.find('"', at + 13) - at - 13));
      }
      cursor = page->next_cursor;
    } while (!cursor.empty());
    return out;
  }
  // Every event of a live profile is sealed with a data key the profile holds (its own, or
  // one of the profiles merged into it): erasing the profile destroys exactly those keys.
  void ExpectKeysHeld(const ProfileRecord& r) {
    auto reader = store_->NewStateReader();
    auto page = Engine::Timeline(*reader, kWs, r.id, "", 100000);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& item : page->items) {
      if (item.membership) continue;
      const uint64_t key = item.event.key_id;
      EXPECT_TRUE(key == r.id || std::find(r.keys.begin(), r.keys.end(), key) != r.keys.end())
          << "event " << item.event.seq << " of profile " << r.id << " is sealed with key " << key;
    }
  }
  // Every live profile as: identifiers | events | traits | first,last,count.
  std::set<std::string> Canon() {
    auto reader = store_->NewStateReader();
    std::set<std::string> out;
    std::string prefix(1, 'p');
    base::PutU32(&prefix, kWs);
    std::vector<uint64_t> ids;
    EXPECT_TRUE(reader
                    ->Scan(prefix, "",
                           [&](std::string_view k, std::string_view v) {
                             const uint64_t id = base::GetU64(k.substr(5));
                             if (!v.empty() && v[0] == '\x80') {  // sealed: a live profile
                               ids.push_back(id);
                               return true;
                             }
                             auto r = DecodeProfile(id, v);
                             EXPECT_TRUE(r.has_value());
                             EXPECT_TRUE(r && r->merged_into) << "a live profile's record is stored sealed";
                             return true;
                           })
                    .ok());
    for (uint64_t id : ids) {
      auto r = *Engine::Read(*reader, kWs, id);
      std::set<std::string> idents;
      for (const auto& e : r.identities) idents.insert(e.identifier.ToString());
      ExpectKeysHeld(r);
      auto events = TimelineIds(id);
      std::sort(events.begin(), events.end());
      std::string traits;
      for (const auto& t : r.traits) traits += t.name + "=" + t.json + ";";
      out.insert(fmt::format("{} | {} | {} | {},{},{} | {} | {}", fmt::join(idents, ","), fmt::join(events, ","),
                             traits, r.first.message_id, r.last.message_id, r.event_count, Derived(id),
                             Consent(r)));
    }
    return out;
  }
  store::Store& store() { return *store_; }
  Engine& engine() { return engine_; }

  void Define(const std::vector<wire::ComputedTraitSpec>& computed, const std::vector<wire::SegmentSpec>& segments) {
    for (const auto& spec : computed) {
      ASSERT_TRUE(store_->RunExclusiveAndWait([&](store::StateTxn& txn) {
        return engine_.PutComputedTrait(txn, kWs, spec, PutMode::kUpsert).status();
      }).ok()) << spec.name;
    }
    for (const auto& spec : segments) {
      auto st = store_->RunExclusiveAndWait([&](store::StateTxn& txn) {
        return engine_.PutSegment(txn, kWs, spec, PutMode::kUpsert).status();
      });
      ASSERT_TRUE(st.ok()) << spec.name << ": " << st;
    }
  }
  // Runs every unfinished job to its end, `chunk` profiles per step.
  void RunJobs(size_t chunk) {
    auto reader = store_->NewStateReader();
    auto jobs = *Engine::UnfinishedJobs(*reader);
    reader.reset();
    for (uint64_t id : jobs) {
      for (bool done = false; !done;) {
        ASSERT_TRUE(store_->RunExclusiveAndWait([&](store::StateTxn& txn) -> absl::Status {
          auto job = engine_.RunJobStep(txn, id, chunk);
          if (!job.ok()) return job.status();
          done = job->finished();
          return absl::OkStatus();
        }).ok());
      }
    }
  }
  size_t Sweep() {
    size_t n = 0;
    EXPECT_TRUE(store_->RunExclusiveAndWait([&](store::StateTxn& txn) -> absl::Status {
      auto swept = engine_.Sweep(txn, 100);
      if (swept.ok()) n = *swept;
      return swept.status();
    }).ok());
    return n;
  }
  // Computed values and segments of a profile: "name=json;…|segment,…".
  std::string Derived(uint64_t id) {
    auto reader = store_->NewStateReader();
    auto p = Engine::Read(*reader, kWs, id);
    EXPECT_TRUE(p.ok());
    auto defs = *engine_.DefinitionsFor(*reader, kWs);
    auto d = *Engine::ReadDerived(*reader, kWs, p->id);
    std::string out;
    for (const ComputedTraitDef& def : defs->computed()) {
      auto it = d.traits.find(def.name());
      const bool current = it != d.traits.end() && it->second.version == def.version;
      out += def.name() + "=" +
             ComputedJson(def, current ? it->second.At(def, engine_.Now()) : Aggregate{}, engine_.Now()) + ";";
    }
    out += "|";
    for (const Membership& m : d.segments) out += m.segment + ",";
    return out;
  }
  // The membership changes on a profile's timeline: "+name" / "-name", in order.
  std::vector<std::string> Changes(uint64_t id) {
    auto reader = store_->NewStateReader();
    auto page = Engine::Timeline(*reader, kWs, id, "", 1000);
    std::vector<std::string> out;
    for (const auto& item : page->items) {
      if (item.membership) out.push_back((item.membership->entered ? "+" : "-") + item.membership->segment);
    }
    return out;
  }
  // The due index: when each profile is next looked at by the sweep.
  std::vector<base::Micros> DueTimes() {
    auto reader = store_->NewStateReader();
    std::vector<base::Micros> out;
    EXPECT_TRUE(reader->Scan(DuePrefix(), "", [&](std::string_view k, std::string_view) {
      if (auto e = DecodeDueKey(k)) out.push_back(e->at);
      return true;
    }).ok());
    return out;
  }
  MembersPage Members(std::string segment) {
    auto reader = store_->NewStateReader();
    auto page = engine_.Members(*reader, kWs, segment, "", 100);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? *page : MembersPage{};
  }

 private:
  testing::TempDir dir_;
  Engine engine_;
  std::unique_ptr<store::Store> store_;
  std::vector<store::EventResult> last_results_;
};

TEST(Engine, DevicesOfOnePersonBecomeOneProfileWithEveryEvent) {
  Harness h;
  h.Send({Make("p1", 100, "page", R"("anonymousId":"phone","name":"Home")"),
          Make("p2", 200, "page", R"("anonymousId":"laptop","name":"Shoes")")});
  EXPECT_NE(h.Lookup("anonymous_id", "phone")->id, h.Lookup("anonymous_id", "laptop")->id);
  h.Send({Make("i1", 300, "identify",
               R"("anonymousId":"phone","userId":"ann","traits":{"email":" Ann@Example.com","plan":"free"})")});
  h.Send({Make("t1", 400, "track",
               R"("anonymousId":"laptop","userId":"ann","event":"Order Completed","properties":{"revenue":30})")});
  auto ann = h.Lookup("user_id", "ann");
  ASSERT_TRUE(ann.ok()) << ann.status();
  EXPECT_EQ(h.Lookup("email", "ann@example.com")->id, ann->id);
  EXPECT_EQ(h.Lookup("anonymous_id", "laptop")->id, ann->id);
  EXPECT_EQ(h.TimelineIds(ann->id), (std::vector<std::string>{"p1", "p2", "i1", "t1"}));
  EXPECT_EQ(ann->event_count, 4u);
  EXPECT_EQ(ann->first.timestamp, 100);
  EXPECT_EQ(ann->last.timestamp, 400);
  ASSERT_EQ(ann->merges.size(), 1u);
  EXPECT_EQ(ann->merges[0].event, "t1");
  // The surviving id is that of the profile seen first; the other id still answers.
  auto reader = h.store().NewStateReader();
  EXPECT_EQ(Engine::Read(*reader, kWs, ann->merges[0].absorbed)->id, ann->id);
  // Why each identifier belongs.
  std::map<std::string, std::string> why;
  for (const auto& e : ann->identities) why[e.identifier.ToString()] = e.reason + " @" + e.event;
  EXPECT_EQ(why["anonymous_id:phone"], "first identifier of this profile (in page) @p1");
  EXPECT_EQ(why["user_id:ann"], "sent together with anonymous_id:phone (in identify) @i1");
  EXPECT_EQ(why["email:ann@example.com"], "sent together with anonymous_id:phone (in identify) @i1");
}

TEST(Engine, TraitsAreLastWriteWinsByEventTimeNotArrival) {
  Harness h;
  h.Send({Make("i2", 200, "identify", R"("userId":"u","traits":{"plan":"pro","city":"Delft"})")});
  h.Send({Make("i1", 100, "identify", R"("userId":"u","traits":{"plan":"free","age":40})")});
  auto u = *h.Lookup("user_id", "u");
  ASSERT_EQ(u.traits.size(), 3u);
  EXPECT_EQ(u.FindTrait("plan")->json, "\"pro\"");
  EXPECT_EQ(u.FindTrait("age")->json, "40");
  EXPECT_EQ(u.FindTrait("plan")->set_by.message_id, "i2");
  EXPECT_EQ(h.TimelineIds(u.id), (std::vector<std::string>{"i1", "i2"}));
}

TEST(Engine, MergeProtectionIsRecordedOnBothProfiles) {
  Harness h;
  h.Send({Make("a", 100, "track", R"("userId":"ann","anonymousId":"kiosk","event":"x")")});
  h.Send({Make("b", 200, "track", R"("userId":"bob","anonymousId":"kiosk","event":"x")")});
  h.Send({Make("c", 300, "identify", R"("userId":"null","anonymousId":"kiosk")")});
  auto ann = *h.Lookup("user_id", "ann");
  auto bob = *h.Lookup("user_id", "bob");
  EXPECT_NE(ann.id, bob.id);
  EXPECT_EQ(h.Lookup("anonymous_id", "kiosk")->id, ann.id);
  EXPECT_EQ(h.TimelineIds(bob.id), (std::vector<std::string>{"b"}));
  ASSERT_EQ(bob.blocked.size(), 1u);
  EXPECT_EQ(bob.blocked[0].identifier, "anonymous_id:kiosk");
  EXPECT_NE(bob.blocked[0].reason.find(fmt::format("not merged with profile {}", ann.id)), std::string::npos);
  EXPECT_NE(bob.blocked[0].reason.find("2 user_id identifiers"), std::string::npos);
  // ann's profile shows the refused link and the placeholder userId.
  ASSERT_EQ(ann.blocked.size(), 2u);
  EXPECT_EQ(ann.blocked[1].identifier, "user_id:null");
  EXPECT_NE(ann.blocked[1].reason.find("blocked value"), std::string::npos);
  EXPECT_EQ(ann.blocked_total, 2u);
}

// Each workspace links by its own rules; one without settings keeps the engine's defaults, and
// settings survive a restart (they are read back from the store).
TEST(Engine, MergeProtectionIsPerWorkspace) {
  Harness h;
  const identity::MergeRules lenient =
      *identity::ParseMergeRules(R"({"max_per_type":{"user_id":2},"blocked_values":["kiosk-7"]})");
  ASSERT_TRUE(h.store().RunExclusiveAndWait([&](store::StateTxn& txn) {
    h.engine().PutRules(txn, 2, lenient);
    return absl::OkStatus();
  }).ok());
  for (uint32_t ws : {kWs, uint32_t{2}}) {
    h.Send({Make("a", 100, "track", R"("userId":"ann","anonymousId":"kiosk","event":"x")"),
            Make("b", 200, "track", R"("userId":"bob","anonymousId":"kiosk","event":"x")"),
            Make("c", 300, "track", R"("userId":"bob","anonymousId":"kiosk-7","event":"x")")},
           ws);
  }
  EXPECT_NE(h.Lookup("user_id", "ann")->id, h.Lookup("user_id", "bob")->id);
  EXPECT_TRUE(h.Lookup("anonymous_id", "kiosk-7").ok());
  EXPECT_EQ(h.Lookup("user_id", "ann", 2)->id, h.Lookup("user_id", "bob", 2)->id);
  EXPECT_EQ(base::GetErrorDetails(h.Lookup("anonymous_id", "kiosk-7", 2).status()).code, "blocked_value");

  Engine fresh({});
  auto reader = h.store().NewStateReader();
  EXPECT_EQ(identity::MergeRulesJson(**fresh.ReadRules(*reader, 2)), identity::MergeRulesJson(lenient));
  EXPECT_EQ(identity::MergeRulesJson(**fresh.ReadRules(*reader, kWs)), identity::MergeRulesJson({}));
}

TEST(Engine, AliasLinksPreviousIdToUserId) {
  Harness h;
  h.Send({Make("p", 100, "page", R"("anonymousId":"a1")"),
          Make("al", 200, "alias", R"("userId":"u9","previousId":"a1")")});
  EXPECT_EQ(h.Lookup("user_id", "u9")->id, h.Lookup("anonymous_id", "a1")->id);
}

TEST(Engine, SplitUndoesAWrongMergeFromTheStoredEvents) {
  Harness h;
  // Ann logged in once on a shared tablet; later a child used it, and everything it did landed
  // on Ann's profile.
  h.Send({Make("1", 100, "identify", R"("userId":"ann","anonymousId":"a-ann","traits":{"email":"ann@x.nl"})"),
          Make("2", 200, "page", R"("userId":"ann","anonymousId":"tablet","name":"Login")"),
          Make("3", 300, "page", R"("anonymousId":"tablet","name":"Games")"),
          Make("4", 400, "identify", R"("anonymousId":"tablet","traits":{"name":"Kid"})"),
          Make("5", 500, "track", R"("userId":"ann","event":"Order Completed")")});
  auto before = *h.Lookup("user_id", "ann");
  ASSERT_EQ(before.identities.size(), 4u);
  ASSERT_EQ(before.event_count, 5u);
  ASSERT_EQ(before.FindTrait("name")->json, "\"Kid\"");

  std::vector<uint64_t> after;
  ASSERT_TRUE(h.store()
                  .RunExclusiveAndWait([&](store::StateTxn& t) -> absl::Status {
                    auto r = h.engine().Split(t, kWs, before.id, {"anonymous_id", "tablet", "api"});
                    if (!r.ok()) return r.status();
                    after = *r;
                    return absl::OkStatus();
                  })
                  .ok());
  auto ann = *h.Lookup("user_id", "ann");
  auto kid = *h.Lookup("anonymous_id", "tablet");
  EXPECT_EQ(ann.id, before.id);  // the profile keeps its id
  EXPECT_NE(kid.id, ann.id);
  EXPECT_EQ(after, (std::vector<uint64_t>{std::min(ann.id, kid.id), std::max(ann.id, kid.id)}));
  EXPECT_EQ(h.TimelineIds(ann.id), (std::vector<std::string>{"1", "2", "5"}));
  EXPECT_EQ(h.TimelineIds(kid.id), (std::vector<std::string>{"3", "4"}));
  EXPECT_EQ(kid.FindTrait("name")->json, "\"Kid\"");
  EXPECT_EQ(ann.FindTrait("name"), nullptr);
  // The refusal is visible on both, and new events keep them apart.
  h.Send({Make("6", 600, "identify", R"("anonymousId":"tablet","userId":"ann")")});
  EXPECT_NE(h.Lookup("anonymous_id", "tablet")->id, h.Lookup("user_id", "ann")->id);
  EXPECT_NE(h.Lookup("user_id", "ann")->blocked.back().reason.find("split apart"), std::string::npos);

  // Errors: an identifier that is not on the profile, and an unknown profile.
  absl::Status not_on = h.store().RunExclusiveAndWait([&](store::StateTxn& t) {
    return h.engine().Split(t, kWs, ann.id, {"email", "nobody@x.nl", "api"}).status();
  });
  EXPECT_EQ(not_on.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(base::GetErrorDetails(not_on).code, "identifier_not_on_profile");
  absl::Status missing = h.store().RunExclusiveAndWait([&](store::StateTxn& t) {
    return h.engine().Split(t, kWs, 999, {"email", "ann@x.nl", "api"}).status();
  });
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
}

TEST(Engine, EraseDestroysTheKeysAndSuppressesTheIdentifiers) {
  Harness h;
  h.Send({Make("1", 100, "page", R"("anonymousId":"a-ann","name":"Pricing")"),
          Make("2", 200, "identify", R"("userId":"ann","traits":{"email":"ann@x.nl","name":"Ann Smith"})"),
          // Links the anonymous visit: that profile is merged into Ann's, its events keep its key.
          Make("3", 300, "track", R"("userId":"ann","anonymousId":"a-ann","event":"Order Completed")"),
          Make("4", 400, "identify", R"("userId":"bob","traits":{"email":"bob@x.nl"})")});
  auto ann = *h.Lookup("user_id", "ann");
  ASSERT_EQ(ann.event_count, 3u);
  ASSERT_EQ(ann.keys.size(), 1u);  // the anonymous profile's key
  h.ExpectKeysHeld(ann);
  const uint64_t bob = h.Lookup("user_id", "bob")->id;

  Erasure erased;
  ASSERT_TRUE(h.store()
                  .RunExclusiveAndWait([&](store::StateTxn& t) -> absl::Status {
                    auto r = h.engine().Erase(t, kWs, ann.keys[0], "er_test");  // via the merged id
                    if (!r.ok()) return r.status();
                    erased = *std::move(r);
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(erased.profile_id, ann.id);
  EXPECT_EQ(erased.events, 3u);
  EXPECT_EQ(erased.identifiers, 3u);  // anonymous_id, user_id, email
  EXPECT_EQ(erased.traits, 2u);
  EXPECT_EQ(erased.profiles, (std::vector<uint64_t>{std::min(ann.id, ann.keys[0]), std::max(ann.id, ann.keys[0])}));
  EXPECT_EQ(erased.destroyed_keys.size(), 2u);
  EXPECT_EQ(erased.suppressed.size(), 3u);
  ASSERT_TRUE(h.store().Purge(kWs, erased.destroyed_keys).ok());

  // Nothing of Ann is readable; Bob is untouched.
  EXPECT_EQ(h.Lookup("user_id", "ann").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(h.Lookup("email", "ann@x.nl").status().code(), absl::StatusCode::kNotFound);
  auto reader = h.store().NewStateReader();
  EXPECT_EQ(Engine::Read(*reader, kWs, ann.id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Engine::Read(*reader, kWs, ann.keys[0]).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(h.StoredEvents().size(), 1u);
  EXPECT_TRUE(h.StoredEvents().contains("4"));
  EXPECT_EQ(h.Lookup("user_id", "bob")->id, bob);
  auto page = h.store().ReadPersonEvents(kWs, store::IdKind::kUserId, "ann", "", 10);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->events.empty());

  // New events naming any of her identifiers are refused (an import too); others are stored.
  for (bool admitted : {false, true}) {
    h.Send({Make(admitted ? "5i" : "5", 500, "identify", R"("userId":"someone","traits":{"email":" ANN@x.nl "})"),
            Make(admitted ? "6i" : "6", 600, "page", R"("anonymousId":"a-ann")"),
            Make(admitted ? "7i" : "7", 700, "page", R"("userId":"carl")")},
           kWs, admitted);
    ASSERT_EQ(h.results().size(), 3u);
    EXPECT_EQ(h.results()[0].outcome, store::WriteOutcome::kRefused);
    EXPECT_EQ(base::GetErrorDetails(h.results()[0].reason).code, "identifier_suppressed");
    EXPECT_EQ(h.results()[0].reason.message().find("ann"), std::string::npos);  // it names no value
    EXPECT_EQ(h.results()[1].outcome, store::WriteOutcome::kRefused);
    EXPECT_EQ(h.results()[2].outcome, store::WriteOutcome::kStored);
  }
  EXPECT_EQ(h.Lookup("user_id", "someone").status().code(), absl::StatusCode::kNotFound);

  // The list holds hashes, not values; an admin lifts one, and her events are stored again.
  auto list = Engine::Suppressions(*h.store().NewStateReader(), kWs, "", 10);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  for (const Suppression& s : *list) {
    EXPECT_EQ(s.hash.size(), 32u);
    EXPECT_EQ(s.receipt, "er_test");
  }
  auto hash = h.engine().SuppressionHash(*h.store().NewStateReader(), kWs, {"anonymous_id", "a-ann", "api"});
  ASSERT_TRUE(hash.ok());
  ASSERT_TRUE(h.store().RunExclusiveAndWait([&](store::StateTxn& t) {
    return h.engine().LiftSuppression(t, kWs, *hash);
  }).ok());
  absl::Status again = h.store().RunExclusiveAndWait([&](store::StateTxn& t) {
    return h.engine().LiftSuppression(t, kWs, *hash);
  });
  EXPECT_EQ(base::GetErrorDetails(again).code, "suppression_not_found");
  h.Send({Make("8", 800, "page", R"("anonymousId":"a-ann")")});
  EXPECT_EQ(h.results()[0].outcome, store::WriteOutcome::kStored);
  EXPECT_EQ(h.Lookup("anonymous_id", "a-ann")->event_count, 1u);  // a new profile, with nothing of before

  absl::Status missing = h.store().RunExclusiveAndWait([&](store::StateTxn& t) {
    return h.engine().Erase(t, kWs, 999, "er_x").status();
  });
  EXPECT_EQ(base::GetErrorDetails(missing).code, "profile_not_found");
}

// A split leaves the events of one key on two profiles: they are sealed again with the key of
// the profile that now holds them, so erasing one side leaves the other whole.
TEST(Engine, EraseAfterASplitKeepsTheOtherSide) {
  Harness h;
  h.Send({Make("1", 100, "identify", R"("userId":"ann","anonymousId":"a-ann","traits":{"email":"ann@x.nl"})"),
          Make("2", 200, "page", R"("userId":"ann","anonymousId":"tablet","name":"Login")"),
          Make("3", 300, "page", R"("anonymousId":"tablet","name":"Games")"),
          Make("4", 400, "identify", R"("anonymousId":"tablet","traits":{"name":"Kid"})")});
  const uint64_t before = h.Lookup("user_id", "ann")->id;
  ASSERT_TRUE(h.store().RunExclusiveAndWait([&](store::StateTxn& t) {
    return h.engine().Split(t, kWs, before, {"anonymous_id", "tablet", "api"}).status();
  }).ok());
  // A link the split refuses: both profiles record it, naming the other's identifier.
  h.Send({Make("5", 500, "identify", R"("anonymousId":"tablet","userId":"ann")")});
  auto ann = *h.Lookup("user_id", "ann");
  auto kid = *h.Lookup("anonymous_id", "tablet");
  ASSERT_NE(ann.id, kid.id);
  h.ExpectKeysHeld(ann);
  h.ExpectKeysHeld(kid);
  Erasure erased;
  ASSERT_TRUE(h.store().RunExclusiveAndWait([&](store::StateTxn& t) -> absl::Status {
    auto r = h.engine().Erase(t, kWs, ann.id, "er_1");
    if (!r.ok()) return r.status();
    erased = *std::move(r);
    return absl::OkStatus();
  }).ok());
  ASSERT_TRUE(h.store().Purge(kWs, erased.destroyed_keys).ok());
  EXPECT_EQ(h.TimelineIds(kid.id), (std::vector<std::string>{"3", "4"}));
  EXPECT_EQ(h.Lookup("anonymous_id", "tablet")->FindTrait("name")->json, "\"Kid\"");
  // (The refused link's event "5" was Ann's: it went with her.)
  // The kid's profile no longer keeps Ann's identifiers (its record of the refused link).
  const ProfileRecord kid_after = *h.Lookup("anonymous_id", "tablet");
  for (const auto& b : kid_after.blocked) {
    EXPECT_EQ(b.identifier.find("ann"), std::string::npos) << b.identifier;
    EXPECT_EQ(b.reason.find("ann"), std::string::npos) << b.reason;
  }
  for (const auto& c : kid_after.conflicts) EXPECT_EQ(c.value.find("ann"), std::string::npos);
  EXPECT_EQ(h.StoredEvents().size(), 2u);
}

// An event of another person that named the erased one (a link merge protection refused) stays
// on that person's timeline; replaying it (a split, a late event) must not link the erased
// identifier to them.
TEST(Engine, ARebuildAfterAnErasureDoesNotLinkTheErasedIdentifiers) {
  Harness h;
  h.Send({Make("1", 100, "identify", R"("userId":"ann","traits":{"email":"ann@x.nl"})"),
          Make("2", 200, "identify", R"("userId":"bob","anonymousId":"b-phone")"),
          // Bob types Ann's email: a second user_id for her profile, so the link is refused.
          Make("3", 300, "identify", R"("userId":"bob","traits":{"email":"ann@x.nl"})")});
  const uint64_t ann = h.Lookup("user_id", "ann")->id;
  const uint64_t bob = h.Lookup("user_id", "bob")->id;
  ASSERT_NE(ann, bob);
  ASSERT_EQ(h.Lookup("email", "ann@x.nl")->id, ann);
  ASSERT_TRUE(h.store().RunExclusiveAndWait([&](store::StateTxn& t) {
    return h.engine().Erase(t, kWs, ann, "er_1").status();
  }).ok());
  // A split of Bob rebuilds him from his events, event 3 included.
  ASSERT_TRUE(h.store().RunExclusiveAndWait([&](store::StateTxn& t) {
    return h.engine().Split(t, kWs, bob, {"anonymous_id", "b-phone", "api"}).status();
  }).ok());
  EXPECT_EQ(h.Lookup("email", "ann@x.nl").status().code(), absl::StatusCode::kNotFound);
  const ProfileRecord b = *h.Lookup("user_id", "bob");
  for (const auto& e : b.identities) EXPECT_NE(e.identifier.value, "ann@x.nl");
  for (const auto& x : b.blocked) EXPECT_EQ(x.identifier.find("ann"), std::string::npos) << x.identifier;
  h.ExpectKeysHeld(b);
}

// Random events over a small identifier space, ingested in two arrival orders (same
// timestamps, different batching): identical profiles, traits and timelines.
TEST(Engine, ProfilesDoNotDependOnArrivalOrder) {
  std::mt19937 rng(20261123);
  for (int round = 0; round < 60; ++round) {
    std::vector<Ev> events;
    const int n = 10 + static_cast<int>(rng() % 30);
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> members;
      auto pick = [&](int k) { return static_cast<int>(rng() % k); };
      if (pick(3) == 0) members.push_back(fmt::format(R"("userId":"u{}")", pick(3)));
      if (pick(3) != 0 || members.empty()) members.push_back(fmt::format(R"("anonymousId":"a{}")", pick(5)));
      std::string context;
      if (pick(4) == 0) context = fmt::format(R"("context":{{"device":{{"id":"d{}"}}}})", pick(3));
      if (!context.empty()) members.push_back(context);
      std::string type = "track";
      if (pick(3) == 0) {
        type = "identify";
        members.push_back(fmt::format(R"("traits":{{"email":"e{}@x.nl","plan":"p{}"}})", pick(4), pick(3)));
      } else if (pick(8) == 0) {
        type = "alias";
        members = {fmt::format(R"("userId":"u{}")", pick(3)), fmt::format(R"("previousId":"a{}")", pick(5))};
      } else {
        members.push_back(fmt::format(R"("event":"e","properties":{{"total":{}}})", pick(4)));
      }
      events.push_back(Make(fmt::format("m{}", i), 1000 + pick(8) * 10, type, fmt::format("{}", fmt::join(members, ","))));
    }
    base::SimulatedClock clock(1000 + 75 * 10);
    EngineOptions options;
    options.rules.default_max = 2;  // make limits bite in a small space
    options.clock = &clock;
    Harness first(options), second(options), later(options);
    auto define = [](Harness* h) {
      h->Define({{.name = "buys", .kind = "count", .event = "e"},
                 {.name = "recent", .kind = "count", .window = "0.00003s"},  // the last 30 µs
                 {.name = "spend", .kind = "sum", .property = "total"},
                 {.name = "fav", .kind = "most_frequent", .property = "total"},
                 {.name = "last_seen_at", .kind = "last", .property = "timestamp"},
                 {.name = "low", .kind = "min", .property = "total"},
                 {.name = "top", .kind = "max", .property = "total"},
                 {.name = "kinds", .kind = "distinct", .property = "total"},
                 {.name = "opening", .kind = "first", .property = "total"}},
                {{.name = "buyers", .expression = "computed.buys >= 2"},
                 {.name = "active", .expression = "computed.recent >= 1 && !segment(\"buyers\")"},
                 {.name = "quiet", .expression = "now() - computed.last_seen_at > 0.00004s"},
                 {.name = "plan1", .expression = "traits.plan == \"p1\" || segment(\"active\")"},
                 // Segments re-evaluated only when what they read changed (a late event moves
                 // first_seen; most events leave min, max, distinct and first as they are).
                 {.name = "early", .expression = "now() - profile.first_seen > 0.0007s"},
                 {.name = "busy", .expression = "profile.event_count >= 3"},
                 {.name = "cheap", .expression = "computed.low <= 1"},
                 {.name = "big", .expression = "computed.top >= 2"},
                 {.name = "varied", .expression = "computed.kinds >= 3"},
                 {.name = "opened_high", .expression = "computed.opening >= 2 && !segment(\"cheap\")"}});
    };
    define(&first);
    define(&second);
    std::vector<Ev> a = events, b = events;
    std::shuffle(a.begin(), a.end(), rng);
    std::shuffle(b.begin(), b.end(), rng);
    for (auto& e : a) first.Send({e});
    for (size_t i = 0; i < b.size(); i += 3) {
      second.Send(std::vector<Ev>(b.begin() + i, b.begin() + std::min(b.size(), i + 3)));
    }
    ASSERT_EQ(first.Canon(), second.Canon()) << "round " << round;
    // And what was kept up event by event (segments evaluated only when what they read
    // changed) is what a full computation gives: the definitions created after the events,
    // backfilled over every profile.
    for (auto& e : a) later.Send({e});
    define(&later);
    later.RunJobs(4);
    ASSERT_EQ(first.Canon(), later.Canon()) << "round " << round << " (backfilled)";
  }
}

std::string ReasonOf(const store::EventResult& r) { return base::GetErrorDetails(r.reason).code; }

TEST(Engine, AnEventIsStoredOnlyWithConsentForItsPurpose) {
  Harness h;
  // No consent: analytics is refused, nothing is stored and nobody is created.
  h.Send({Make("t1", 100, "track", R"("userId":"ann","event":"Viewed")", /*consent=*/false)});
  ASSERT_EQ(h.results()[0].outcome, store::WriteOutcome::kRefused);
  EXPECT_EQ(ReasonOf(h.results()[0]), "consent_missing");
  EXPECT_EQ(base::GetErrorDetails(h.results()[0].reason).field, "analytics");
  EXPECT_EQ(h.Lookup("user_id", "ann").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(h.StoredEvents().empty());

  // identify is necessary: stored without consent.
  h.Send({Make("i1", 200, "identify", R"("userId":"ann","traits":{"name":"Ann"})")});
  EXPECT_EQ(h.results()[0].outcome, store::WriteOutcome::kStored);
  // The grant comes with the event (Segment's consent) and lets it in.
  h.Send({Make("t2", 300, "track", R"("userId":"ann","event":"Viewed")")});
  EXPECT_EQ(h.results()[0].outcome, store::WriteOutcome::kStored);
  EXPECT_EQ(h.Consent(*h.Lookup("user_id", "ann")), "analytics=granted@t2,");

  // A withdrawal on an event: the event is refused, its consent record is stored instead (the
  // choice must hold even though the event does not), with nothing else of the event.
  h.Send({Make("t3", 400, "track",
               R"("userId":"ann","event":"Viewed","properties":{"item":"shoes"},)"
               R"("context":{"consent":{"categoryPreferences":{"Analytics":false}},"ip":"10.0.0.1"})",
               /*consent=*/false)});
  ASSERT_EQ(h.results()[0].outcome, store::WriteOutcome::kRefused);
  EXPECT_EQ(ReasonOf(h.results()[0]), "consent_denied");
  EXPECT_NE(h.results()[0].seq, 0u);
  const std::string record = h.StoredEvents()["t3"];
  EXPECT_NE(record.find(R"("event":"Consent Changed")"), std::string::npos) << record;
  EXPECT_EQ(record.find("shoes"), std::string::npos) << record;
  EXPECT_EQ(record.find("10.0.0.1"), std::string::npos) << record;
  auto ann = *h.Lookup("user_id", "ann");
  EXPECT_EQ(h.Consent(ann), "analytics=denied@t3,");
  EXPECT_EQ(h.TimelineIds(ann.id), (std::vector<std::string>{"i1", "t2", "t3"}));

  // A refused event that only repeats the refusal (a consent manager sends it on every event)
  // leaves no trace of the visit.
  h.Send({Make("t3b", 450, "track",
               R"("userId":"ann","event":"Viewed","context":{"consent":{"categoryPreferences":{"Analytics":false}}})",
               /*consent=*/false)});
  EXPECT_EQ(ReasonOf(h.results()[0]), "consent_denied");
  EXPECT_FALSE(h.StoredEvents().contains("t3b"));
  // An import was judged where it was first stored.
  h.Send({Make("imp", 460, "track", R"("userId":"ann","event":"Viewed")", /*consent=*/false)}, kWs,
         /*admitted=*/true);
  EXPECT_EQ(h.results()[0].outcome, store::WriteOutcome::kStored);
  // From the next event on, nothing of that purpose gets in; with no choices on it, nothing at
  // all is stored.
  h.Send({Make("t4", 500, "track", R"("userId":"ann","event":"Viewed")", /*consent=*/false)});
  EXPECT_EQ(ReasonOf(h.results()[0]), "consent_denied");
  EXPECT_EQ(h.results()[0].seq, 0u);
  EXPECT_FALSE(h.StoredEvents().contains("t4"));
  // An older grant arriving late does not undo the newer refusal.
  h.Send({Make("t0", 350, "track", R"("userId":"ann","event":"Viewed")")});
  EXPECT_EQ(ReasonOf(h.results()[0]), "consent_denied");
  // The person's own newer choice does.
  h.Send({Make("t5", 600, "track", R"("userId":"ann","event":"Viewed")")});
  EXPECT_EQ(h.results()[0].outcome, store::WriteOutcome::kStored);
  EXPECT_EQ(h.Consent(*h.Lookup("user_id", "ann")), "analytics=granted@t5,");
}

TEST(Engine, ALinkingEventIsJudgedOnThePersonItsProfilesMakeUp) {
  Harness h;
  // The phone granted analytics; ann (on her laptop) refused it later.
  h.Send({Make("p1", 100, "page", R"("anonymousId":"phone","name":"Home")")});
  h.Send({Make("i1", 150, "identify", R"("userId":"ann")")});
  h.Send({Make("p2", 200, "page",
               R"("userId":"ann","name":"Home","context":{"consent":{"categoryPreferences":{"analytics":false}}})",
               false)});
  EXPECT_EQ(ReasonOf(h.results()[0]), "consent_denied");
  // An event that links the phone to ann, without choices of its own: the person's latest
  // choice (ann's refusal) decides, and it is refused.
  h.Send({Make("p3", 300, "page", R"("userId":"ann","anonymousId":"phone","name":"Cart")", false)});
  EXPECT_EQ(ReasonOf(h.results()[0]), "consent_denied");
  // A necessary event links them: the merged profile keeps the latest choice.
  h.Send({Make("i2", 400, "identify", R"("userId":"ann","anonymousId":"phone")")});
  auto ann = *h.Lookup("user_id", "ann");
  EXPECT_EQ(ann.id, h.Lookup("anonymous_id", "phone")->id);
  EXPECT_EQ(h.Consent(ann), "analytics=denied@p2,");
}

// The same choices, arriving in either order over two profiles that merge, leave the same
// consent (the latest choice per purpose by event time).
TEST(Engine, MergedConsentDoesNotDependOnArrivalOrder) {
  auto events = [] {
    return std::vector<Ev>{
        Make("a", 100, "page",
             R"("anonymousId":"phone","name":"x","context":{"consent":{"categoryPreferences":{"marketing":true,"analytics":true}}})",
             false),
        Make("b", 200, "identify",
             R"("userId":"ann","context":{"consent":{"categoryPreferences":{"marketing":false,"location":true}}})"),
        Make("c", 300, "identify", R"("userId":"ann","anonymousId":"phone")"),
        Make("d", 50, "identify",
             R"("anonymousId":"phone","context":{"consent":{"purposes":{"location":false,"marketing":true}}})"),
    };
  };
  std::string expected;
  std::vector<Ev> order = events();
  std::sort(order.begin(), order.end(), [](const Ev& x, const Ev& y) { return x.message_id < y.message_id; });
  do {
    Harness h;
    for (const Ev& e : order) h.Send({e});
    const std::string got = h.Consent(*h.Lookup("user_id", "ann"));
    if (expected.empty()) expected = got;
    EXPECT_EQ(got, expected);
  } while (std::next_permutation(order.begin(), order.end(),
                                 [](const Ev& x, const Ev& y) { return x.message_id < y.message_id; }));
  EXPECT_EQ(expected, "analytics=granted@a,location=granted@b,marketing=denied@b,");
}

constexpr base::Micros kDay = base::kMicrosPerDay;
constexpr base::Micros kHour = kDay / 24;
constexpr base::Micros kT0 = 1'800'000'000LL * base::kMicrosPerSecond;

Ev Order(std::string id, base::Micros ts, std::string user, int total) {
  return Make(std::move(id), ts, "track",
              fmt::format(R"("userId":"{}","event":"Order Completed","properties":{{"total":{}}})", user, total));
}

TEST(Engine, SegmentsFollowEventsAndTime) {
  base::SimulatedClock clock(kT0);
  Harness h({.clock = &clock});
  h.Define({{.name = "orders_7d", .kind = "count", .event = "Order Completed", .window = "7d"},
            {.name = "last_order", .kind = "last", .event = "Order Completed", .property = "timestamp"}},
           {{.name = "active", .expression = "computed.orders_7d >= 2"},
            {.name = "lapsed", .expression = "now() - computed.last_order > 14d"},
            {.name = "active_pro", .expression = "segment(\"active\") && traits.plan == \"pro\""}});
  h.Send({Order("o1", kT0 - 3 * kDay, "ann", 10)});
  const uint64_t ann = h.Lookup("user_id", "ann")->id;
  EXPECT_EQ(h.Derived(ann), "last_order=\"" + base::FormatIso8601(kT0 - 3 * kDay) + "\";orders_7d=1;|");
  h.Send({Order("o2", kT0 - 1 * kDay, "ann", 20)});
  EXPECT_EQ(h.Derived(ann).substr(h.Derived(ann).find('|')), "|active,");
  h.Send({Make("i1", kT0, "identify", R"("userId":"ann","traits":{"plan":"pro"})")});
  EXPECT_EQ(h.Changes(ann), (std::vector<std::string>{"+active", "+active_pro"}));
  EXPECT_EQ(h.Members("active").count, 1u);
  EXPECT_EQ(h.Members("active_pro").members.at(0).first, ann);

  // Nothing is due until the first order leaves the 7-day window.
  EXPECT_EQ(h.Sweep(), 0u);
  clock.Set(kT0 + 4 * kDay);
  EXPECT_EQ(h.Sweep(), 1u);
  EXPECT_EQ(h.Derived(ann), "last_order=\"" + base::FormatIso8601(kT0 - kDay) + "\";orders_7d=1;|");
  EXPECT_EQ(h.Changes(ann), (std::vector<std::string>{"+active", "+active_pro", "-active", "-active_pro"}));
  EXPECT_EQ(h.Members("active").count, 0u);
  EXPECT_TRUE(h.Members("active").members.empty());
  // Fourteen days after the last order she is lapsed, found by the sweep at that moment.
  clock.Set(kT0 + 13 * kDay - 1);
  EXPECT_EQ(h.Sweep(), 1u);  // the second order leaves the window
  EXPECT_EQ(h.Changes(ann).size(), 4u);
  clock.Set(kT0 + 13 * kDay + 1);
  EXPECT_EQ(h.Sweep(), 1u);
  EXPECT_EQ(h.Changes(ann).back(), "+lapsed");
  EXPECT_EQ(h.Sweep(), 0u);  // and then nothing more can change with time alone
  // A new order brings her back at once, in the order's own batch.
  h.Send({Order("o3", kT0 + 13 * kDay, "ann", 5)});
  EXPECT_EQ(h.Changes(ann).back(), "-lapsed");
}

TEST(Engine, ADueEntryMayBeEarlyButNeverLate) {
  base::SimulatedClock clock(kT0);
  Harness h({.clock = &clock});
  h.Define({{.name = "last_seen", .kind = "last", .property = "timestamp"},
            {.name = "orders_7d", .kind = "count", .event = "Order Completed", .window = "7d"}},
           {{.name = "recent", .expression = "now() - computed.last_seen < 1d"},
            {.name = "buyer", .expression = "computed.orders_7d >= 1"}});
  // The due time of a comparison with now() is the microsecond after it flips.
  auto due = [](base::Micros flip) { return std::vector<base::Micros>{flip + 1}; };
  h.Send({Make("p1", kT0, "page", R"("userId":"ann")")});
  const uint64_t ann = h.Lookup("user_id", "ann")->id;
  EXPECT_EQ(h.DueTimes(), due(kT0 + kDay));
  // A later event only pushes the next change later: the entry stays where it was (early).
  h.Send({Make("p2", kT0 + 2 * kHour, "page", R"("userId":"ann")")});
  EXPECT_EQ(h.DueTimes(), due(kT0 + kDay));
  // The sweep then finds nothing changed and moves the entry to when something will.
  clock.Set(kT0 + kDay + 1);
  EXPECT_EQ(h.Sweep(), 1u);
  EXPECT_EQ(h.Changes(ann), (std::vector<std::string>{"+recent"}));
  EXPECT_EQ(h.DueTimes(), due(kT0 + kDay + 2 * kHour));
  // An event that brings the next change earlier moves the entry at once: an order made almost
  // 7 days ago leaves its window in an hour.
  h.Send({Order("o1", kT0 + kDay - 7 * kDay + kHour, "ann", 10)});
  EXPECT_EQ(h.Changes(ann), (std::vector<std::string>{"+recent", "+buyer"}));
  EXPECT_EQ(h.DueTimes(), (std::vector<base::Micros>{kT0 + kDay + kHour}));  // a window's edge
  clock.Set(kT0 + kDay + kHour - 1);
  EXPECT_EQ(h.Sweep(), 0u);
  clock.Set(kT0 + kDay + kHour);
  EXPECT_EQ(h.Sweep(), 1u);
  EXPECT_EQ(h.Changes(ann).back(), "-buyer");
  EXPECT_EQ(h.DueTimes(), due(kT0 + kDay + 2 * kHour));
  clock.Set(kT0 + kDay + 2 * kHour + 1);
  EXPECT_EQ(h.Sweep(), 1u);
  EXPECT_EQ(h.Changes(ann).back(), "-recent");
  EXPECT_TRUE(h.DueTimes().empty());
}

TEST(Engine, MergingProfilesMergesWhatIsComputed) {
  base::SimulatedClock clock(kT0);
  Harness h({.clock = &clock});
  h.Define({{.name = "orders", .kind = "count", .event = "Order Completed"},
            {.name = "spend", .kind = "sum", .property = "total"}},
           {{.name = "buyer", .expression = "computed.orders >= 1"}, {.name = "big", .expression = "computed.spend >= 50"}});
  h.Send({Make("a1", kT0 - 5, "track", R"("anonymousId":"phone","event":"Order Completed","properties":{"total":30})"),
          Make("a2", kT0 - 4, "track", R"("anonymousId":"laptop","event":"Order Completed","properties":{"total":25})")});
  EXPECT_EQ(h.Members("buyer").count, 2u);
  EXPECT_EQ(h.Members("big").count, 0u);
  h.Send({Make("i1", kT0 - 3, "identify", R"("anonymousId":"phone","userId":"ann")"),
          Make("i2", kT0 - 2, "identify", R"("anonymousId":"laptop","userId":"ann")")});
  const uint64_t ann = h.Lookup("user_id", "ann")->id;
  EXPECT_EQ(h.Derived(ann), "orders=2;spend=55;|big,buyer,");
  EXPECT_EQ(h.Members("buyer").count, 1u);  // the absorbed profile left the index
  EXPECT_EQ(h.Members("buyer").members.size(), 1u);
  EXPECT_EQ(h.Members("big").members.at(0).first, ann);
}

TEST(Engine, BackfillComputesWhatIngestionWould) {
  base::SimulatedClock clock(kT0);
  std::vector<Ev> events;
  for (int i = 0; i < 40; ++i) events.push_back(Order(fmt::format("o{}", i), kT0 - (i % 9) * kDay, fmt::format("u{}", i % 7), i));
  const std::vector<wire::ComputedTraitSpec> computed = {
      {.name = "orders_5d", .kind = "count", .window = "5d"}, {.name = "best", .kind = "max", .property = "total"}};
  const std::vector<wire::SegmentSpec> segments = {{.name = "many", .expression = "computed.orders_5d >= 3"}};
  Harness live({.clock = &clock}), later({.clock = &clock});
  live.Define(computed, segments);
  live.Send(events);
  later.Send(events);
  later.Define(computed, segments);
  EXPECT_NE(live.Canon(), later.Canon());  // before the backfill, the old profiles know nothing
  later.RunJobs(3);
  EXPECT_EQ(live.Canon(), later.Canon());
  EXPECT_EQ(live.Members("many").count, later.Members("many").count);
  EXPECT_GT(live.Members("many").count, 0u);
  // Changing a definition backfills its new version.
  later.Define({{.name = "orders_5d", .kind = "count", .window = "1d"}}, {});
  live.Define({{.name = "orders_5d", .kind = "count", .window = "1d"}}, {});
  later.RunJobs(5);
  live.RunJobs(5);
  EXPECT_EQ(live.Canon(), later.Canon());
  EXPECT_EQ(later.Members("many").count, 0u);
}

// A manual backfill supersedes the unfinished job of the same version instead of running
// beside it.
TEST(Engine, AManualBackfillSupersedesTheUnfinishedJob) {
  base::SimulatedClock clock(kT0);
  Harness h({.clock = &clock});
  h.Send({Order("o1", kT0, "u1", 5), Order("o2", kT0, "u2", 7)});
  h.Define({{.name = "best", .kind = "max", .property = "total"}}, {});
  auto reader = h.store().NewStateReader();
  const std::vector<uint64_t> queued = *Engine::UnfinishedJobs(*reader);
  ASSERT_EQ(queued.size(), 1u);
  Job again;
  ASSERT_TRUE(h.store().RunExclusiveAndWait([&](store::StateTxn& txn) -> absl::Status {
    auto job = h.engine().Backfill(txn, kWs, DefinitionKind::kComputed, "best");
    if (!job.ok()) return job.status();
    again = *job;
    return absl::OkStatus();
  }).ok());
  reader = h.store().NewStateReader();
  EXPECT_EQ(Engine::ReadJob(*reader, queued[0])->state, JobState::kSuperseded);
  EXPECT_EQ(*Engine::UnfinishedJobs(*reader), std::vector<uint64_t>{again.id});
  h.RunJobs(1);
  reader = h.store().NewStateReader();
  EXPECT_EQ(Engine::ReadJob(*reader, again.id)->state, JobState::kDone);
  EXPECT_EQ(Engine::ReadJob(*reader, again.id)->profiles, 2u);
}

TEST(Engine, DefinitionsAreCheckedTogether) {
  Harness h;
  h.Define({{.name = "orders", .kind = "count"}}, {{.name = "a", .expression = "computed.orders > 1"}});
  auto put_segment = [&](wire::SegmentSpec spec, PutMode mode) {
    return h.store().RunExclusiveAndWait([&](store::StateTxn& txn) {
      return h.engine().PutSegment(txn, kWs, spec, mode).status();
    });
  };
  auto code = [](const absl::Status& st) { return base::GetErrorDetails(st).code; };
  EXPECT_EQ(code(put_segment({.name = "b", .expression = "segment(\"b\")"}, PutMode::kCreate)), "segment_cycle");
  EXPECT_TRUE(put_segment({.name = "b", .expression = "segment(\"a\")"}, PutMode::kCreate).ok());
  EXPECT_EQ(code(put_segment({.name = "a", .expression = "segment(\"b\")"}, PutMode::kReplace)), "segment_cycle");
  EXPECT_EQ(code(put_segment({.name = "a", .expression = "true"}, PutMode::kCreate)), "definition_exists");
  EXPECT_EQ(code(put_segment({.name = "zz", .expression = "true"}, PutMode::kReplace)), "definition_not_found");
  // Turning `orders` into a first-of-a-string would break segment a.
  auto st = h.store().RunExclusiveAndWait([&](store::StateTxn& txn) {
    return h.engine().PutComputedTrait(txn, kWs, {.name = "orders", .kind = "rfm"}, PutMode::kReplace).status();
  });
  EXPECT_EQ(code(st), "definition_in_use");
  // A failed change leaves the definitions as they were.
  auto reader = h.store().NewStateReader();
  EXPECT_EQ((*h.engine().DefinitionsFor(*reader, kWs))->segments().size(), 2u);
}

TEST(Engine, DefinitionsResolveWhatSegmentsReadToIndexes) {
  auto defs = std::make_shared<const Definitions>();
  defs = *defs->WithComputed({.name = "orders", .kind = "count"}, 1);
  defs = *defs->WithComputed({.name = "spend", .kind = "sum", .property = "total"}, 1);
  defs = *defs->WithSegment({.name = "z_big", .expression = "computed.spend > 100 && traits.plan == \"pro\""}, 1);
  defs = *defs->WithSegment({.name = "a_loyal", .expression = "segment(\"z_big\") && computed.orders > 3"}, 1);
  defs = *defs->WithSegment({.name = "m_pro", .expression = "traits.plan == \"pro\""}, 1);
  const std::vector<SegmentDef>& segments = defs->segments();
  ASSERT_EQ(segments.size(), 3u);
  const SegmentDef& loyal = segments[*defs->SegmentIndex("a_loyal")];
  const SegmentDef& big = segments[*defs->SegmentIndex("z_big")];
  const SegmentDef& pro = segments[*defs->SegmentIndex("m_pro")];
  // A segment comes after those it names, and names them by index.
  EXPECT_LT(*defs->SegmentIndex("z_big"), *defs->SegmentIndex("a_loyal"));
  EXPECT_EQ(loyal.segment_reads, std::vector<size_t>{*defs->SegmentIndex("z_big")});
  EXPECT_EQ(loyal.computed_reads, std::vector<size_t>{*defs->ComputedIndex("orders")});
  EXPECT_EQ(big.computed_reads, std::vector<size_t>{*defs->ComputedIndex("spend")});
  // traits.plan has one number in every segment; the three distinct fields have three.
  EXPECT_EQ(defs->field_slots(), 3u);
  ASSERT_EQ(big.field_slots.size(), 2u);
  ASSERT_EQ(pro.field_slots.size(), 1u);
  EXPECT_EQ(big.field_slots[1], pro.field_slots[0]);
  EXPECT_NE(big.field_slots[0], big.field_slots[1]);
  EXPECT_NE(loyal.field_slots[0], big.field_slots[0]);
  // Memberships are kept by name.
  std::vector<std::string> by_name;
  for (size_t i : defs->segments_by_name()) by_name.push_back(segments[i].name());
  EXPECT_EQ(by_name, (std::vector<std::string>{"a_loyal", "m_pro", "z_big"}));
  // Which computed traits segments read, and which profile.* fields.
  EXPECT_TRUE(defs->read_by_segments(*defs->ComputedIndex("orders")));
  defs = *defs->WithComputed({.name = "unread", .kind = "count"}, 1);
  EXPECT_FALSE(defs->read_by_segments(*defs->ComputedIndex("unread")));
  defs = *defs->WithSegment({.name = "new_and_busy",
                             .expression = "now() - profile.first_seen < 7d && profile.event_count > 5"}, 1);
  EXPECT_EQ(defs->segments()[*defs->SegmentIndex("new_and_busy")].profile_reads, kFirstSeen | kEventCount);
  EXPECT_EQ(defs->segments()[*defs->SegmentIndex("m_pro")].profile_reads, 0);
}

}  // namespace
}  // namespace rapport::profile

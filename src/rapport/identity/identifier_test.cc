#include "rapport/identity/identifier.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "rapport/base/error.h"

namespace rapport::identity {
namespace {

Identifier Id(std::string type, std::string value) { return {std::move(type), std::move(value)}; }

absl::StatusOr<Identifier> Norm(std::string type, std::string value, MergeRules rules = {}) {
  return Normalize({std::move(type), std::move(value), "test"}, rules);
}

TEST(Normalize, EmailsAreTrimmedAndLowerCased) {
  EXPECT_EQ(Norm("email", "  Ann.Smith@Example.COM ")->value, "ann.smith@example.com");
  EXPECT_EQ(base::GetErrorDetails(Norm("email", "not-an-email").status()).code, "invalid_identifier");
  EXPECT_FALSE(Norm("email", "a@b@c").ok());
  EXPECT_FALSE(Norm("email", "@x.com").ok());
}

TEST(Normalize, PhonesBecomeE164WherePossible) {
  MergeRules nl;
  nl.default_country_code = "31";
  EXPECT_EQ(Norm("phone", "+31 6 1234 5678")->value, "+31612345678");
  EXPECT_EQ(Norm("phone", "0031 (6) 12-34-56-78")->value, "+31612345678");
  EXPECT_EQ(Norm("phone", "06 12345678", nl)->value, "+31612345678");
  EXPECT_EQ(Norm("phone", "06 12345678")->value, "0612345678");  // no country code known
  EXPECT_EQ(Norm("phone", "call me")->value, "call me");
}

TEST(Normalize, BlockedValuesIdentifyNobody) {
  for (const char* v : {"null", "NULL", " undefined ", "anonymous", "0", "-1", "0000",
                        "00000000-0000-0000-0000-000000000000", "---"}) {
    auto r = Norm("user_id", v);
    ASSERT_FALSE(r.ok()) << v;
    EXPECT_EQ(base::GetErrorDetails(r.status()).code, "blocked_value") << v;
  }
  for (const char* v : {"+", "()", "+0", "(000) 000-0000", " - "}) {
    EXPECT_EQ(base::GetErrorDetails(Norm("phone", v).status()).code, "blocked_value") << v;
  }
  EXPECT_TRUE(Norm("user_id", "007").ok());
  EXPECT_TRUE(Norm("user_id", "10").ok());
  EXPECT_EQ(Norm("user_id", "AbC")->value, "AbC");  // ids are exact
  EXPECT_FALSE(Norm("Bad Type!", "x").ok());
  EXPECT_EQ(Norm("CRM_ID", "x")->type, "crm_id");
}

TEST(MergeRules, PriorityAndLimitsHaveDocumentedDefaults) {
  MergeRules r;
  EXPECT_LT(r.RankOf("user_id"), r.RankOf("email"));
  EXPECT_LT(r.RankOf("phone"), r.RankOf("crm_id"));
  EXPECT_LT(r.RankOf("crm_id"), r.RankOf("device_id"));
  EXPECT_LT(r.RankOf("device_id"), r.RankOf("anonymous_id"));
  EXPECT_EQ(r.MaxFor("user_id"), 1);
  EXPECT_EQ(r.MaxFor("email"), 5);
}

// A tiny graph: identifier → profile.
struct Graph {
  std::map<uint64_t, LinkedProfile> profiles;
  void Add(uint64_t id, std::vector<Identifier> ids) { profiles[id] = {id, std::move(ids)}; }
  std::function<const LinkedProfile*(const Identifier&)> Lookup() const {
    return [this](const Identifier& id) -> const LinkedProfile* {
      for (const auto& [pid, p] : profiles) {
        if (std::find(p.identifiers.begin(), p.identifiers.end(), id) != p.identifiers.end()) return &p;
      }
      return nullptr;
    };
  }
};

TEST(PlanLink, JoinsProfilesWhenTheLimitsAllow) {
  Graph g;
  g.Add(1, {Id("anonymous_id", "phone-1")});
  g.Add(2, {Id("anonymous_id", "laptop-1")});
  g.Add(3, {Id("user_id", "ann"), Id("anonymous_id", "laptop-1b")});
  auto plan = PlanLink({Id("anonymous_id", "phone-1"), Id("user_id", "ann"), Id("anonymous_id", "laptop-1")},
                       {}, {}, g.Lookup());
  EXPECT_TRUE(plan.dropped.empty());
  EXPECT_EQ(plan.profiles, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(plan.accepted.front(), Id("user_id", "ann"));
}

TEST(PlanLink, TwoUserIdsNeverMergeAndTheLowerPriorityLinkIsDropped) {
  Graph g;
  g.Add(1, {Id("user_id", "ann"), Id("anonymous_id", "shared-laptop")});
  auto plan = PlanLink({Id("user_id", "bob"), Id("anonymous_id", "shared-laptop")}, {}, {}, g.Lookup());
  ASSERT_EQ(plan.accepted, (std::vector<Identifier>{Id("user_id", "bob")}));
  ASSERT_EQ(plan.dropped.size(), 1u);
  EXPECT_EQ(plan.dropped[0].identifier, Id("anonymous_id", "shared-laptop"));
  EXPECT_EQ(plan.dropped[0].other_profile, 1u);
  EXPECT_NE(plan.dropped[0].reason.find("2 user_id identifiers"), std::string::npos);
  EXPECT_TRUE(plan.profiles.empty());  // bob is new
}

TEST(PlanLink, PerTypeLimitCountsTheWholeUnion) {
  Graph g;
  g.Add(1, {Id("email", "a@x"), Id("email", "b@x"), Id("email", "c@x")});
  g.Add(2, {Id("email", "d@x"), Id("email", "e@x"), Id("anonymous_id", "z")});
  MergeRules rules;
  rules.default_max = 5;
  // 5 emails after the merge: allowed.
  auto ok = PlanLink({Id("email", "a@x"), Id("anonymous_id", "z")}, rules, {}, g.Lookup());
  EXPECT_TRUE(ok.dropped.empty());
  rules.default_max = 4;
  auto blocked = PlanLink({Id("email", "a@x"), Id("anonymous_id", "z")}, rules, {}, g.Lookup());
  ASSERT_EQ(blocked.dropped.size(), 1u);
  EXPECT_EQ(blocked.profiles, (std::vector<uint64_t>{1}));
}

TEST(PlanLink, SeparatedIdentifiersStayApart) {
  Graph g;
  g.Add(1, {Id("user_id", "ann")});
  Separations sep;
  sep[Id("user_id", "ann")].insert(Id("email", "family@x"));
  sep[Id("email", "family@x")].insert(Id("user_id", "ann"));
  auto plan = PlanLink({Id("user_id", "ann"), Id("email", "family@x")}, {}, sep, g.Lookup());
  ASSERT_EQ(plan.dropped.size(), 1u);
  EXPECT_NE(plan.dropped[0].reason.find("split apart"), std::string::npos);
}

TEST(PlanLink, ResultDoesNotDependOnInputOrder) {
  std::mt19937 rng(3);
  for (int round = 0; round < 500; ++round) {
    Graph g;
    std::vector<Identifier> pool;
    for (int p = 1; p <= 4; ++p) {
      std::vector<Identifier> ids;
      if (rng() % 2) ids.push_back(Id("user_id", "u" + std::to_string(p)));
      for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) {
        ids.push_back(Id(rng() % 2 ? "email" : "anonymous_id", std::to_string(p) + "-" + std::to_string(k)));
      }
      pool.insert(pool.end(), ids.begin(), ids.end());
      g.Add(p, ids);
    }
    pool.push_back(Id("user_id", "new"));
    std::vector<Identifier> input;
    for (int k = 0; k < 4; ++k) input.push_back(pool[rng() % pool.size()]);
    MergeRules rules;
    rules.default_max = 3;
    auto a = PlanLink(input, rules, {}, g.Lookup());
    std::shuffle(input.begin(), input.end(), rng);
    auto b = PlanLink(input, rules, {}, g.Lookup());
    EXPECT_EQ(a.accepted, b.accepted);
    EXPECT_EQ(a.profiles, b.profiles);
    ASSERT_EQ(a.dropped.size(), b.dropped.size());
    // Whatever is accepted respects the limits.
    std::map<std::string, int> per_type;
    std::set<Identifier> all(a.accepted.begin(), a.accepted.end());
    for (uint64_t p : a.profiles) all.insert(g.profiles[p].identifiers.begin(), g.profiles[p].identifiers.end());
    for (const auto& id : all) ++per_type[id.type];
    EXPECT_LE(per_type["user_id"], 1);
  }
}

}  // namespace
}  // namespace rapport::identity

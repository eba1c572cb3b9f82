#include "rapport/trust/consent.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "rapport/base/error.h"
#include "rapport/trust/consent_json.h"

namespace rapport::trust {
namespace {

constexpr base::Micros kDay = base::kMicrosPerDay;

Choice Make(ConsentState state, base::Micros at, std::string id = "m") {
  return Choice{state, at, std::move(id), std::string(kSourceEvent), ""};
}

wire::EventFacts Facts(wire::EventType type, std::string event) {
  wire::EventFacts f;
  f.type = type;
  f.event = std::move(event);
  f.message_id = "e1";
  return f;
}

TEST(Consent, FailsClosedExceptForNecessary) {
  const PurposePolicy policy = PurposePolicy::Defaults();
  ConsentSet none;
  EXPECT_TRUE(Permits(none, "necessary", policy, 0).ok());
  for (std::string_view purpose : kDefaultPurposes) {
    if (purpose == kNecessary) continue;
    absl::Status st = Permits(none, purpose, policy, 0);
    EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << purpose;
    EXPECT_EQ(base::GetErrorDetails(st).code, "consent_missing");
    EXPECT_EQ(base::GetErrorDetails(st).field, purpose);
  }
  // A purpose the workspace does not have is unknown, so refused too.
  EXPECT_EQ(base::GetErrorDetails(Permits(none, "research", policy, 0)).code, "consent_missing");

  ConsentSet set;
  set.Record("analytics", Make(ConsentState::kGranted, 10));
  set.Record("marketing", Make(ConsentState::kDenied, 10));
  EXPECT_TRUE(Permits(set, "analytics", policy, 20).ok());
  EXPECT_EQ(base::GetErrorDetails(Permits(set, "marketing", policy, 20)).code, "consent_denied");
}

TEST(Consent, GrantsExpireOnlyWhenTheWorkspaceSaysSoAndDenialsNever) {
  PurposePolicy policy = PurposePolicy::Defaults();
  ConsentSet set;
  set.Record("analytics", Make(ConsentState::kGranted, 0));
  set.Record("marketing", Make(ConsentState::kDenied, 0));
  EXPECT_EQ(StateOf(set, "analytics", policy, 5000 * kDay), ConsentState::kGranted);
  policy.grant_expires_after_days = 30;
  EXPECT_EQ(StateOf(set, "analytics", policy, 30 * kDay), ConsentState::kGranted);
  EXPECT_EQ(StateOf(set, "analytics", policy, 30 * kDay + 1), ConsentState::kUnknown);
  EXPECT_EQ(StateOf(set, "marketing", policy, 5000 * kDay), ConsentState::kDenied);
}

TEST(Consent, ChoicesAreKeptForABoundedNumberOfPurposes) {
  ConsentSet set;
  for (size_t i = 0; i < kMaxRecordedPurposes + 10; ++i) {
    set.Record("p" + std::to_string(i), Make(ConsentState::kGranted, 1));
  }
  EXPECT_EQ(set.choices().size(), kMaxRecordedPurposes);
  EXPECT_TRUE(set.Record("p0", Make(ConsentState::kDenied, 2)));  // known ones still change
}

TEST(Consent, TheLatestChoiceWinsAndTiesGoToTheStricter) {
  ConsentSet set;
  EXPECT_TRUE(set.Record("analytics", Make(ConsentState::kDenied, 10)));
  EXPECT_TRUE(set.Record("analytics", Make(ConsentState::kGranted, 20)));  // a newer choice
  EXPECT_FALSE(set.Record("analytics", Make(ConsentState::kDenied, 15)));  // late, older
  EXPECT_EQ(set.Find("analytics")->state, ConsentState::kGranted);
  EXPECT_TRUE(set.Record("analytics", Make(ConsentState::kDenied, 20)));  // same key: stricter
  EXPECT_FALSE(set.Record("analytics", Make(ConsentState::kGranted, 20)));
  EXPECT_EQ(set.Find("analytics")->state, ConsentState::kDenied);
}

// Property: however choices are spread over profiles and in whatever order they are recorded
// and merged, the outcome is the same (what makes consent order independent).
TEST(Consent, MergeIsCommutativeAssociativeAndOrderIndependent) {
  std::mt19937 rng(7);
  const std::string purposes[] = {"analytics", "marketing", "location"};
  for (int round = 0; round < 500; ++round) {
    std::vector<std::pair<std::string, Choice>> choices;
    const int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      choices.emplace_back(purposes[rng() % 3],
                           Make(rng() % 2 ? ConsentState::kGranted : ConsentState::kDenied,
                                static_cast<base::Micros>(rng() % 5), "m" + std::to_string(rng() % 3)));
    }
    ConsentSet all;
    for (const auto& [p, c] : choices) all.Record(p, c);

    std::shuffle(choices.begin(), choices.end(), rng);
    ConsentSet parts[3];
    for (const auto& [p, c] : choices) parts[rng() % 3].Record(p, c);
    ConsentSet ab = parts[0];
    ab.Merge(parts[1]);
    ConsentSet ab_c = ab;
    ab_c.Merge(parts[2]);
    ConsentSet bc = parts[1];
    bc.Merge(parts[2]);
    ConsentSet a_bc = parts[0];
    a_bc.Merge(bc);
    ConsentSet c_ba = parts[2];
    c_ba.Merge(parts[1]);
    c_ba.Merge(parts[0]);
    EXPECT_EQ(ab_c, all);
    EXPECT_EQ(a_bc, all);
    EXPECT_EQ(c_ba, all);
    ConsentSet twice = all;
    twice.Merge(all);
    EXPECT_EQ(twice, all);
  }
}

TEST(Consent, EventsMapToPurposesByNameThenType) {
  const PurposePolicy policy = PurposePolicy::Defaults();
  using wire::EventType;
  EXPECT_EQ(policy.PurposeOf(EventType::kIdentify, ""), "necessary");
  EXPECT_EQ(policy.PurposeOf(EventType::kAlias, ""), "necessary");
  EXPECT_EQ(policy.PurposeOf(EventType::kTrack, "Order Completed"), "analytics");
  EXPECT_EQ(policy.PurposeOf(EventType::kPage, "Home"), "analytics");
  EXPECT_EQ(policy.PurposeOf(EventType::kTrack, "Presence Detected"), "location");
  EXPECT_EQ(policy.PurposeOf(EventType::kTrack, "Email Opened"), "marketing");
  // rapport's own record of a change is necessary; a client's event of that name is not.
  wire::EventFacts record = Facts(EventType::kTrack, std::string(wire::kConsentRecordEvent));
  EXPECT_EQ(PurposeOf(record, policy), "analytics");
  record.consent.source = "api";
  EXPECT_EQ(PurposeOf(record, policy), "necessary");

  auto custom = ParsePurposePolicy(
      R"({"purposes":{"research":"We learn what to build next."},"types":{"page":"research"},
          "events":{"Order Completed":"necessary"},"categories":{"Advertising":"marketing"}})");
  ASSERT_TRUE(custom.ok()) << custom.status();
  EXPECT_EQ(custom->PurposeOf(EventType::kPage, "Home"), "research");
  EXPECT_EQ(custom->PurposeOf(EventType::kTrack, "Order Completed"), "necessary");
  EXPECT_EQ(custom->PurposeOf(EventType::kTrack, "Viewed"), "analytics");
  EXPECT_EQ(custom->PurposeOfCategory("Advertising"), "marketing");
  EXPECT_EQ(custom->PurposeOfCategory("Proactive Service"), "proactive_service");
  EXPECT_EQ(custom->PurposeOfCategory("Research"), "research");
  EXPECT_EQ(custom->PurposeOfCategory("Functional"), std::nullopt);
  EXPECT_EQ(custom->purposes.size(), 7u);
}

TEST(Consent, ChoicesOfAnEventGoThroughTheCategoryMap) {
  auto policy = ParsePurposePolicy(R"({"categories":{"Advertising":"marketing","Ads":"marketing"}})");
  ASSERT_TRUE(policy.ok());
  wire::EventFacts f = Facts(wire::EventType::kTrack, "Viewed");
  f.consent.categories = {{"Analytics", true}, {"Advertising", true}, {"Ads", false},
                          {"Functional", true}, {"Necessary", false}};
  f.consent.purposes = {{"location", true}, {"nonsense", true}};
  f.consent.text_version = "v3";
  auto choices = ChoicesOf(f, 42, *policy);
  std::sort(choices.begin(), choices.end(), [](auto& a, auto& b) { return a.first < b.first; });
  ASSERT_EQ(choices.size(), 3u);  // Functional, necessary and nonsense map to nothing asked
  EXPECT_EQ(choices[0].first, "analytics");
  EXPECT_EQ(choices[0].second, (Choice{ConsentState::kGranted, 42, "e1", "event", "v3"}));
  EXPECT_EQ(choices[1].first, "location");
  EXPECT_EQ(choices[2].first, "marketing");
  EXPECT_EQ(choices[2].second.state, ConsentState::kDenied);  // two answers for one purpose: no wins
  f.consent.source = "api";
  EXPECT_EQ(ChoicesOf(f, 42, *policy)[0].second.source, "api");
  // A choice is never dated after the server received it: a clock set ahead does not make it
  // outrank the person's later choices.
  f.consent.received_at = 40;
  EXPECT_EQ(ChoicesOf(f, 42, *policy)[0].second.at, 40);
  EXPECT_EQ(ChoicesOf(f, 39, *policy)[0].second.at, 39);
}

TEST(ConsentJson, PolicyRoundTripsAndRefusesWhatCannotBe) {
  auto policy = ParsePurposePolicy(R"({"grant_expires_after_days":365,"purposes":{"analytics":"Better pages."}})");
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->purposes.at("analytics"), "Better pages.");
  auto again = ParsePurposePolicy(PurposePolicyJson(*policy));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(PurposePolicyJson(*again), PurposePolicyJson(*policy));
  EXPECT_EQ(again->grant_expires_after_days, 365);

  struct Case {
    const char* json;
    const char* code;
    const char* field;
  } cases[] = {
      {R"({"unknown_means":"granted"})", "unknown_field", "unknown_means"},
      {R"({"types":{"track":"research"}})", "invalid_value", "types.track"},
      {R"({"types":{"click":"analytics"}})", "invalid_value", "types.click"},
      {R"({"events":{"Consent Changed":"necessary"}})", "invalid_value", "events.Consent Changed"},
      {R"({"purposes":{"Bad Name":"x"}})", "invalid_value", "purposes.Bad Name"},
      {R"({"purposes":{"research":""}})", "invalid_value", "purposes.research"},
      {R"({"grant_expires_after_days":-1})", "invalid_value", "grant_expires_after_days"},
      {R"({"categories":[]})", "invalid_type", "categories"},
      {R"([1])", "invalid_type", ""},
      {R"({)", "malformed_json", ""},
  };
  for (const Case& c : cases) {
    auto parsed = ParsePurposePolicy(c.json);
    ASSERT_FALSE(parsed.ok()) << c.json;
    EXPECT_EQ(base::GetErrorDetails(parsed.status()).code, c.code) << c.json;
    EXPECT_EQ(base::GetErrorDetails(parsed.status()).field, c.field) << c.json;
  }
  EXPECT_TRUE(ParsePurposePolicy(R"({"later_setting":1})", /*ignore_unknown=*/true).ok());
}

TEST(ConsentJson, UpdatesNameExistingPurposesOtherThanNecessary) {
  const PurposePolicy policy = PurposePolicy::Defaults();
  auto update = ParseConsentUpdate(R"({"purposes":{"marketing":"denied","analytics":"granted"},
                                       "text_version":"2026-11"})",
                                   policy);
  ASSERT_TRUE(update.ok()) << update.status();
  EXPECT_EQ(update->purposes, (std::vector<std::pair<std::string, bool>>{{"analytics", true}, {"marketing", false}}));
  EXPECT_EQ(update->text_version, "2026-11");
  const std::string message = ConsentChangeMessage(*update, kSourceApi, "userId", "ann", "consent-1");
  EXPECT_EQ(message,
            R"({"type":"track","event":"Consent Changed","messageId":"consent-1","userId":"ann",)"
            R"("context":{"consent":{"purposes":{"analytics":true,"marketing":false},"source":"api",)"
            R"("textVersion":"2026-11"}}})");

  for (const char* bad : {R"({"purposes":{"necessary":"denied"}})", R"({"purposes":{"research":"granted"}})",
                          R"({"purposes":{"marketing":true}})", R"({"purposes":{}})", R"({"why":"x"})"}) {
    auto parsed = ParseConsentUpdate(bad, policy);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace rapport::trust

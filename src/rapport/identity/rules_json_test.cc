#include "rapport/identity/rules_json.h"

#include <gtest/gtest.h>

#include "rapport/base/error.h"

namespace rapport::identity {
namespace {

TEST(MergeRulesJson, DefaultsRoundTripAndOmittedMembersKeepTheirDefaults) {
  const MergeRules defaults;
  auto back = ParseMergeRules(MergeRulesJson(defaults));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(MergeRulesJson(*back), MergeRulesJson(defaults));
  auto empty = ParseMergeRules("{}");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(MergeRulesJson(*empty), MergeRulesJson(defaults));
}

TEST(MergeRulesJson, ReadsEveryMember) {
  auto rules = ParseMergeRules(R"({"priority":["email","user_id","*"],"max_per_type":{"email":1,"user_id":2},
      "default_max":3,"blocked_values":["  N/A ","test@example.com","n/a"],"default_country_code":"31"})");
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_EQ(rules->priority, (std::vector<std::string>{"email", "user_id", "*"}));
  EXPECT_EQ(rules->MaxFor("email"), 1);
  EXPECT_EQ(rules->MaxFor("user_id"), 2);
  EXPECT_EQ(rules->MaxFor("device_id"), 3);
  EXPECT_EQ(rules->RankOf("email"), 0);
  EXPECT_EQ(rules->RankOf("device_id"), 2);
  // Added to the built-in placeholders; trimmed, lower-cased and once each, as compared.
  std::vector<std::string> expected = MergeRules{}.blocked_values;
  expected.push_back("n/a");
  expected.push_back("test@example.com");
  EXPECT_EQ(rules->blocked_values, expected);
  EXPECT_EQ(rules->default_country_code, "31");
  auto blocked = Normalize({"email", "Test@Example.com", "test"}, *rules);
  EXPECT_EQ(base::GetErrorDetails(blocked.status()).code, "blocked_value");
  auto phone = Normalize({"phone", "06 1234 5678", "test"}, *rules);
  ASSERT_TRUE(phone.ok());
  EXPECT_EQ(phone->value, "+31612345678");
}

// A partial body cannot weaken what it does not name: user_id keeps its limit of 1, and the
// placeholders stay blocked.
TEST(MergeRulesJson, PartialSettingsKeepTheProtectionsTheyDoNotName) {
  auto rules = ParseMergeRules(R"({"max_per_type":{"email":2},"blocked_values":["guest"]})");
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_EQ(rules->MaxFor("user_id"), 1);
  EXPECT_EQ(rules->MaxFor("email"), 2);
  for (const char* placeholder : {"null", "undefined", "anonymous", "guest"}) {
    EXPECT_EQ(base::GetErrorDetails(Normalize({"user_id", placeholder, "test"}, *rules).status()).code, "blocked_value")
        << placeholder;
  }
  auto raised = ParseMergeRules(R"({"max_per_type":{"user_id":2}})");
  ASSERT_TRUE(raised.ok());
  EXPECT_EQ(raised->MaxFor("user_id"), 2);
}

// What a newer build may store: members this one does not know are skipped when reading the
// store, refused from the API.
TEST(MergeRulesJson, StoredRulesWithUnknownMembersStillApply) {
  const char* stored = R"({"default_max":3,"merge_window_days":30})";
  EXPECT_EQ(base::GetErrorDetails(ParseMergeRules(stored).status()).code, "unknown_field");
  auto rules = ParseMergeRules(stored, UnknownMembers::kIgnore);
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_EQ(rules->default_max, 3);
}

// Found by tests/fuzz/api_json_fuzz: 64 types besides user_id were accepted, and with user_id's
// default that made 65, which the stored rules could not be read back with.
TEST(MergeRulesJson, WhatIsAcceptedReadsBackWithTheDefaultsCounted) {
  std::string body = "{\"max_per_type\":{";
  for (int i = 0; i < 64; ++i) body += (i ? "," : "") + std::string("\"t") + std::to_string(i) + "\":2";
  auto too_many = ParseMergeRules(body + "}}");
  EXPECT_EQ(base::GetErrorDetails(too_many.status()).code, "invalid_value");
  std::string fits = "{\"max_per_type\":{";
  for (int i = 0; i < 63; ++i) fits += (i ? "," : "") + std::string("\"t") + std::to_string(i) + "\":2";
  auto rules = ParseMergeRules(fits + "}}");
  ASSERT_TRUE(rules.ok()) << rules.status();
  auto again = ParseMergeRules(MergeRulesJson(*rules));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(MergeRulesJson(*again), MergeRulesJson(*rules));
}

TEST(MergeRulesJson, RefusesWhatItCannotUseNamingTheMember) {
  struct Case {
    const char* json;
    const char* code;
    const char* field;
  } cases[] = {
      {R"({"priorities":[]})", "unknown_field", "priorities"},
      {R"({"priority":[]})", "invalid_value", "priority"},
      {R"({"priority":"user_id"})", "invalid_type", "priority"},
      {R"({"priority":["Email"]})", "invalid_value", "priority"},
      {R"({"priority":["email","email"]})", "invalid_value", "priority"},
      {R"({"max_per_type":{"email":0}})", "invalid_value", "max_per_type.email"},
      {R"({"max_per_type":{"email":1.5}})", "invalid_value", "max_per_type.email"},
      {R"({"max_per_type":[]})", "invalid_type", "max_per_type"},
      {R"({"default_max":1001})", "invalid_value", "default_max"},
      {R"({"blocked_values":"null"})", "invalid_type", "blocked_values"},
      {R"({"blocked_values":[1]})", "invalid_value", "blocked_values"},
      {R"({"default_country_code":"+31"})", "invalid_value", "default_country_code"},
      {R"({"default_country_code":"0031"})", "invalid_value", "default_country_code"},
      {R"([])", "invalid_type", ""},
      {R"({"priority":)", "malformed_json", ""},
  };
  for (const Case& c : cases) {
    auto rules = ParseMergeRules(c.json);
    ASSERT_FALSE(rules.ok()) << c.json;
    EXPECT_EQ(base::GetErrorDetails(rules.status()).code, c.code) << c.json;
    EXPECT_EQ(base::GetErrorDetails(rules.status()).field, c.field) << c.json;
  }
}

}  // namespace
}  // namespace rapport::identity

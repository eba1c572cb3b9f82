#include "rapport/profile/record.h"

#include <gtest/gtest.h>

namespace rapport::profile {
namespace {

TEST(Record, RoundTripsAndRejectsDamage) {
  ProfileRecord p;
  p.id = 7;
  p.first = {100, "m1"};
  p.last = {-5, "m2"};
  p.event_count = 3;
  p.identities.push_back({{"email", "a@x"}, 100, "m1", "traits.email", "first"});
  p.merges.push_back({200, "m2", 9, "user_id:u"});
  p.blocked.push_back({300, "m3", "user_id:null", "blocked value"});
  p.blocked_total = 4;
  p.conflicts.push_back({"anonymous_id", "k"});
  ASSERT_TRUE(p.SetTrait("plan", "\"pro\"", {100, "m1"}));
  ASSERT_FALSE(p.SetTrait("plan", "\"free\"", {50, "m0"}));
  ASSERT_TRUE(p.SetTrait("age", "40", {50, "m0"}));
  const std::string bytes = EncodeProfile(p);
  auto back = DecodeProfile(7, bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(EncodeProfile(*back), bytes);
  EXPECT_EQ(back->traits[0].name, "age");
  EXPECT_EQ(back->FindTrait("plan")->json, "\"pro\"");
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(DecodeProfile(7, std::string_view(bytes).substr(0, cut)).has_value()) << cut;
  }
  ProfileRecord redirect;
  redirect.merged_into = 3;
  EXPECT_EQ(DecodeProfile(1, EncodeProfile(redirect))->merged_into, 3u);
}

TEST(Record, TraitTiesBreakOnMessageId) {
  ProfileRecord p;
  p.SetTrait("x", "1", {100, "b"});
  EXPECT_FALSE(p.SetTrait("x", "2", {100, "a"}));
  EXPECT_TRUE(p.SetTrait("x", "3", {100, "c"}));
  EXPECT_EQ(p.FindTrait("x")->json, "3");
}

TEST(Record, KeysSortATimelineByEventTime) {
  EXPECT_LT(TimelineKey(1, 2, -10, 9), TimelineKey(1, 2, 5, 1));
  EXPECT_LT(TimelineKey(1, 2, 5, 1), TimelineKey(1, 2, 5, 2));
  auto e = DecodeTimelineKey(TimelineKey(1, 2, -10, 9));
  EXPECT_EQ(e->timestamp, -10);
  EXPECT_EQ(e->seq, 9u);
  EXPECT_NE(IdentifierKey(1, {"a", "bc"}), IdentifierKey(1, {"ab", "c"}));
  EXPECT_EQ(DecodeSeparationKey(SeparationKey(3, {"email", "a@x"}))->value, "a@x");
}

}  // namespace
}  // namespace rapport::profile

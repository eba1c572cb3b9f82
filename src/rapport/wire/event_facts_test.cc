#include "rapport/wire/event_facts.h"

#include <gtest/gtest.h>

namespace rapport::wire {
namespace {

TEST(EventFacts, ReadsEveryIdentifierWhereTheSpecPutsIt) {
  auto f = ReadEventFacts(R"({"type":"identify","messageId":"m1","userId":"u1",
    "anonymousId":"a1","traits":{"email":" Ann@X.com ","phone":"+31 6 1234 5678","plan":"pro",
    "age":41,"address":{"city":"Delft"}},
    "context":{"traits":{"email":"other@x.com"},"device":{"id":"dev-1"},
      "externalIds":[{"id":"c-9","type":"crm_id","collection":"users"},{"id":42,"type":"shop_id"},
                     {"id":"x"},"junk",{"id":true,"type":"bad"}]},
    "timestamp":"2026-01-01T00:00:00.000Z"})");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->type, EventType::kIdentify);
  EXPECT_EQ(f->message_id, "m1");
  const std::vector<RawIdentifier> want = {
      {"user_id", "u1", "userId"},
      {"anonymous_id", "a1", "anonymousId"},
      {"email", " Ann@X.com ", "traits.email"},
      {"phone", "+31 6 1234 5678", "traits.phone"},
      {"email", "other@x.com", "context.traits.email"},
      {"device_id", "dev-1", "context.device.id"},
      {"crm_id", "c-9", "context.externalIds[0]"},
      {"shop_id", "42", "context.externalIds[1]"},
  };
  EXPECT_EQ(f->identifiers, want);
  ASSERT_EQ(f->traits.size(), 5u);
  EXPECT_EQ(f->traits[1], (std::pair<std::string, std::string>{"phone", "\"+31 6 1234 5678\""}));
  EXPECT_EQ(f->traits[4], (std::pair<std::string, std::string>{"address", "{\"city\":\"Delft\"}"}));
}

TEST(EventFacts, OnlyIdentifyChangesTraitsAndEachTypeNamesItsEvent) {
  auto track = ReadEventFacts(R"({"type":"track","messageId":"m","anonymousId":"a",
    "event":"Order Completed","traits":{"email":"no@x.com"},"properties":{"revenue":12.5,"sku":"A\u00e9\n","big":1e300,"list":[0.1,{"k":2.0}]}})");
  ASSERT_TRUE(track.ok());
  EXPECT_EQ(track->event, "Order Completed");
  EXPECT_TRUE(track->traits.empty());
  ASSERT_EQ(track->identifiers.size(), 1u);  // traits.email counts on identify only
  ASSERT_EQ(track->properties.size(), 4u);
  EXPECT_EQ(track->properties[0].second, "12.5");
  EXPECT_EQ(track->properties[1].second, "\"A\u00e9\\n\"");
  EXPECT_EQ(track->properties[2].second, "1e+300");
  EXPECT_EQ(track->properties[3].second, "[0.1,{\"k\":2}]");

  auto alias = ReadEventFacts(R"({"type":"alias","messageId":"m","userId":"u","previousId":"a"})");
  ASSERT_TRUE(alias.ok());
  EXPECT_EQ(alias->previous_id, "a");
  auto page = ReadEventFacts(R"({"type":"page","messageId":"m","userId":"u","name":"Home"})");
  EXPECT_EQ(page->event, "Home");

  EXPECT_FALSE(ReadEventFacts("[1]").ok());
  EXPECT_FALSE(ReadEventFacts(R"({"type":"nope"})").ok());
}

}  // namespace
}  // namespace rapport::wire

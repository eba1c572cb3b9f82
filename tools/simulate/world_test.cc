#include "tools/simulate/world.h"

#include <map>
#include <optional>
#include <set>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tools/simulate/report.h"

namespace rapport::simulate {
namespace {

namespace json = boost::json;

std::string Stream(const WorldOptions& o) {
  World w(o);
  std::string all;
  for (uint32_t h = 0; h < w.hours(); ++h) {
    for (const Event& e : w.Hour(h)) all += e.json + "\n";
  }
  return all;
}

TEST(World, TheSameSeedGivesTheSameStreamAndAnotherSeedAnother) {
  const WorldOptions o{.customers = 60, .days = 5, .seed = 7};
  const std::string a = Stream(o), b = Stream(o);
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, Stream({.customers = 60, .days = 5, .seed = 8}));
}

// Every event is valid JSON, inside its hour, in time order, with a unique messageId, and carries
// only identifiers of its own customer (or of a shared device).
TEST(World, EventsStayInTheirHourAndCarryTheirCustomersIdentifiers) {
  World w({.customers = 120, .days = 10, .seed = 3});
  std::set<std::string> ids;
  std::map<std::string, std::set<uint32_t>> owners;  // identifier → customers that sent it
  uint64_t messages = 0;
  for (uint32_t h = 0; h < w.hours(); ++h) {
    base::Micros last = 0;
    for (const Event& e : w.Hour(h)) {
      ASSERT_GE(e.timestamp, w.HourStart(h));
      ASSERT_LT(e.timestamp, w.HourStart(h + 1));
      ASSERT_GE(e.timestamp, last);
      last = e.timestamp;
      json::value v = json::parse(e.json);
      const json::object& o = v.as_object();
      ASSERT_TRUE(ids.insert(std::string(o.at("messageId").as_string())).second) << e.json;
      EXPECT_EQ(base::ParseIso8601(std::string(o.at("timestamp").as_string())).value(), e.timestamp);
      if (o.contains("userId")) owners[std::string(o.at("userId").as_string())].insert(e.customer);
      if (o.contains("anonymousId")) owners[std::string(o.at("anonymousId").as_string())].insert(e.customer);
      if (e.message) {
        ++messages;
        EXPECT_TRUE(e.message->sentiment == 1 || e.message->sentiment == -1);
        EXPECT_EQ(o.at("properties").at("text").as_string(), e.message->text);
      }
    }
  }
  EXPECT_GT(ids.size(), 1000u);
  EXPECT_GT(messages, 0u);
  // A user id belongs to one customer; an anonymous id to one, unless its laptop is shared.
  std::set<std::string> shared;
  for (const Device& d : w.devices()) {
    if (d.shared) shared.insert(d.anonymous_id);
  }
  for (const auto& [id, cs] : owners) {
    if (!shared.contains(id)) {
      EXPECT_EQ(cs.size(), 1u) << id;
    }
  }
  // The truth lists what was sent, once each, and never a shared device.
  for (const auto& list : w.sent_identifiers()) {
    std::set<std::pair<std::string, std::string>> seen(list.begin(), list.end());
    EXPECT_EQ(seen.size(), list.size());
    for (const auto& [type, value] : list) EXPECT_FALSE(shared.contains(value));
  }
}

// The evidence groups follow the events: a device's two ids are always linked; a user id, its
// email and a boiler are linked whenever the customer identified.
TEST(World, EvidenceLinksWhatWasSentTogether) {
  World w({.customers = 150, .days = 10, .seed = 9});
  for (uint32_t h = 0; h < w.hours(); ++h) w.Hour(h);
  const auto evidence = w.evidence();
  size_t customers_with_two_groups = 0;
  for (size_t c = 0; c < evidence.size(); ++c) {
    const auto& ids = w.sent_identifiers()[c];
    ASSERT_EQ(ids.size(), evidence[c].size());
    std::map<std::string, uint32_t> group;
    for (size_t i = 0; i < ids.size(); ++i) group[ids[i].first + ":" + ids[i].second] = evidence[c][i];
    const Customer& who = w.customers()[c];
    for (uint32_t d : who.devices) {
      const Device& dev = w.devices()[d];
      auto a = group.find("anonymous_id:" + dev.anonymous_id), b = group.find("device_id:" + dev.device_id);
      ASSERT_EQ(a == group.end(), b == group.end());
      if (a != group.end()) {
        EXPECT_EQ(a->second, b->second);
      }
    }
    if (auto e = group.find("email:" + who.email); e != group.end()) {
      EXPECT_EQ(e->second, group.at("user_id:" + who.user_id));
    }
    if (who.phone) {
      if (auto p = group.find("phone:" + *who.phone); p != group.end()) {
        EXPECT_EQ(p->second, group.at("user_id:" + who.user_id));
      }
    }
    if (auto crm = group.find("crm_id:" + who.crm_id); crm != group.end()) {
      EXPECT_EQ(crm->second, group.at("user_id:" + who.user_id));
    }
    std::set<uint32_t> distinct;
    for (uint32_t g : evidence[c]) distinct.insert(g);
    customers_with_two_groups += distinct.size() > 1;
  }
  // Some devices are never logged in on; most are.
  EXPECT_GT(customers_with_two_groups, 0u);
  EXPECT_LT(customers_with_two_groups, evidence.size() / 4);
}

// Logins give the phone (when the customer has one) and orders name the back office's id in
// context.externalIds; both are the customer's alone.
TEST(World, PhonesAndBackOfficeIdsTravelWithTheirCustomer) {
  World w({.customers = 200, .days = 7, .seed = 5});
  std::map<std::string, uint32_t> phone_owner, email_owner;
  uint32_t phones = 0;
  for (const Customer& c : w.customers()) {
    EXPECT_TRUE(email_owner.emplace(c.email, c.index).second) << c.email;
    if (!c.phone) continue;
    ++phones;
    EXPECT_TRUE(phone_owner.emplace(*c.phone, c.index).second) << *c.phone;
    EXPECT_EQ(c.phone->front(), '+');
  }
  EXPECT_GT(phones, 100u);
  EXPECT_LT(phones, 180u);
  uint64_t identifies_with_phone = 0, orders = 0;
  for (uint32_t h = 0; h < w.hours(); ++h) {
    for (const Event& e : w.Hour(h)) {
      const Customer& c = w.customers()[e.customer];
      json::value v = json::parse(e.json);
      const json::object& o = v.as_object();
      if (o.at("type") == "identify") {
        const json::object& traits = o.at("traits").as_object();
        EXPECT_EQ(traits.contains("phone"), c.phone.has_value());
        if (c.phone) {
          EXPECT_EQ(traits.at("phone").as_string(), *c.phone);
          ++identifies_with_phone;
        }
      }
      if (o.contains("event") && o.at("event") == "Order Completed") {
        ++orders;
        const json::array& ids = o.at("context").at("externalIds").as_array();
        ASSERT_EQ(ids.size(), 1u);
        EXPECT_EQ(ids[0].at("type"), "crm_id");
        EXPECT_EQ(ids[0].at("id").as_string(), c.crm_id);
      }
    }
  }
  EXPECT_GT(identifies_with_phone, 0u);
  EXPECT_GT(orders, 0u);
}

// A human gesture soon after a bad moment, at a decent hour, resolves it and lowers the churn
// hazard; one in quiet hours annoys; one long after changes nothing.
TEST(World, AWellTimedHumanGestureLowersChurnHazard) {
  World w({.customers = 400, .days = 20, .seed = 12});
  std::optional<uint32_t> hurt;
  for (uint32_t h = 0; h < w.hours() && !hurt; ++h) {
    w.Hour(h);
    for (const Customer& c : w.customers()) {
      if (!c.churned_on_day && c.unresolved_negatives > 0 && c.last_negative_at > 0 && c.churn_hazard > 0.004) {
        hurt = c.index;
        break;
      }
    }
  }
  ASSERT_TRUE(hurt.has_value());
  const Customer& c = w.customers()[*hurt];
  // The customer's local noon and 3 a.m. on the day after the bad moment.
  const base::Micros next_day = (c.last_negative_at / base::kMicrosPerDay + 1) * base::kMicrosPerDay;
  const base::Micros noon = next_day + (12 - c.utc_offset_hours) * 3600 * base::kMicrosPerSecond;
  const base::Micros three_am = next_day + (3 - c.utc_offset_hours) * 3600 * base::kMicrosPerSecond;
  const int negatives = c.unresolved_negatives;
  const double hazard = c.churn_hazard;
  EXPECT_FALSE(w.HumanGesture(c.index, three_am));
  EXPECT_DOUBLE_EQ(c.churn_hazard, hazard + 0.002);
  EXPECT_EQ(c.unresolved_negatives, negatives);
  EXPECT_FALSE(w.HumanGesture(c.index, noon + 4 * base::kMicrosPerDay));  // too late
  EXPECT_DOUBLE_EQ(c.churn_hazard, hazard + 0.002);
  EXPECT_TRUE(w.HumanGesture(c.index, noon));
  EXPECT_EQ(c.unresolved_negatives, negatives - 1);
  EXPECT_DOUBLE_EQ(c.churn_hazard, std::max(0.001, hazard + 0.002 - 0.006));
}

TEST(World, LateDeliveriesAndFailuresProduceTheirMoments) {
  World w({.customers = 400, .days = 30, .seed = 11});
  // Each day's counts hold exactly the events whose timestamp falls on that day.
  std::vector<std::map<std::string, uint64_t>> seen(30);
  for (uint32_t h = 0; h < w.hours(); ++h) {
    for (const Event& e : w.Hour(h)) {
      json::value v = json::parse(e.json);
      const json::object& o = v.as_object();
      const std::string kind(o.contains("event") ? o.at("event").as_string() : o.at("type").as_string());
      ++seen[static_cast<size_t>((e.timestamp - w.options().start) / base::kMicrosPerDay)][kind];
    }
  }
  ASSERT_EQ(w.days().size(), 30u);
  for (size_t d = 0; d < 30; ++d) EXPECT_EQ(w.days()[d].by_kind, seen[d]) << "day " << d;
  const DayCounts n = w.totals();
  EXPECT_GT(n.Of("Order Completed"), 0u);
  EXPECT_GT(n.Of("Order Delivered"), 0u);
  EXPECT_GT(n.Of("Payment Failed"), 0u);
  EXPECT_GT(n.messages_negative, 0u);
  EXPECT_GT(n.messages_positive, 0u);
  EXPECT_GT(n.Of("Boiler Failed"), 0u);
  EXPECT_GT(n.Of("Boiler Telemetry"), n.Of("Boiler Failed"));
  EXPECT_GT(n.late_deliveries, 0u);
  EXPECT_LE(n.late_deliveries, n.Of("Order Delivered"));
  EXPECT_GT(n.churned, 0u);
  EXPECT_LT(n.churned, 400u);
  EXPECT_EQ(n.Of("Message Sent"), n.messages_positive + n.messages_negative);
}

// The responses follow the hidden traits: a favourite category beats a disliked one, a high
// price puts off the price-sensitive, the preferred channel beats the disliked one, quiet hours
// and a fourth contact in a week lower the response and annoy.
TEST(World, ResponsesFollowTheHiddenTraits) {
  World w({.customers = 50, .days = 1, .seed = 4});
  const base::Micros noon = w.HourStart(12), three_am = w.HourStart(2);
  for (const Customer& c : w.customers()) {
    size_t best = 0, worst = 0;
    for (size_t k = 0; k < kCategories; ++k) {
      if (c.taste[k] > c.taste[best]) best = k;
      if (c.taste[k] < c.taste[worst]) worst = k;
    }
    EXPECT_GT(w.OfferAcceptance(c.index, best, 50), w.OfferAcceptance(c.index, worst, 50));
    if (c.price_sensitivity > 0.1) {
      EXPECT_GT(w.OfferAcceptance(c.index, best, 20), w.OfferAcceptance(c.index, best, 400));
    }
    EXPECT_GT(w.ContactResponse(c.index, c.preferred, noon, 0), w.ContactResponse(c.index, c.disliked, noon, 0));
    EXPECT_GT(w.ContactResponse(c.index, c.preferred, noon, 0), w.ContactResponse(c.index, c.preferred, three_am, 0));
    EXPECT_GT(w.ContactResponse(c.index, c.preferred, noon, 2), w.ContactResponse(c.index, c.preferred, noon, 3));
    EXPECT_FALSE(w.ContactAnnoys(c.index, c.preferred, noon, 0));
    EXPECT_TRUE(w.ContactAnnoys(c.index, c.preferred, three_am, 0));  // quiet hours end at 7-9
    EXPECT_TRUE(w.ContactAnnoys(c.index, c.disliked, noon, 0));
    EXPECT_TRUE(w.ContactAnnoys(c.index, c.preferred, noon, 3));
  }
}

// Golden: two customers, A = {a1, a2, a3}, B = {b1, b2}. The engine splits A into {a1, a2} and
// {a3}, wrongly joins a3 with b1, and does not know b2.
TEST(ScoreIdentity, CountsPairs) {
  Identifiers truth = {{{"t", "a1"}, {"t", "a2"}, {"t", "a3"}}, {{"t", "b1"}, {"t", "b2"}}};
  std::map<std::string, std::string> engine = {{"a1", "1"}, {"a2", "1"}, {"a3", "2"}, {"b1", "2"}};
  // Evidence: a1, a2, b1, b2 were linked by events; a3 never was.
  std::vector<std::vector<uint32_t>> evidence = {{0, 0, 2}, {0, 0}};
  IdentityScore s = ScoreIdentity(truth, evidence, [&](const std::string&, const std::string& v) -> std::optional<std::string> {
    auto it = engine.find(v);
    if (it == engine.end()) return std::nullopt;
    return it->second;
  });
  EXPECT_EQ(s.identifiers, 5u);
  EXPECT_EQ(s.not_found, 1u);
  EXPECT_EQ(s.true_pairs, 4u);     // a1a2 a1a3 a2a3 b1b2
  EXPECT_EQ(s.merged_pairs, 2u);   // a1a2, a3b1
  EXPECT_EQ(s.correct_pairs, 1u);  // a1a2
  EXPECT_DOUBLE_EQ(s.precision, 0.5);
  EXPECT_DOUBLE_EQ(s.recall, 0.25);
  EXPECT_EQ(s.linkable_pairs, 2u);          // a1a2, b1b2
  EXPECT_EQ(s.correct_linkable_pairs, 1u);  // a1a2
  EXPECT_DOUBLE_EQ(s.recall_linkable, 0.5);
  EXPECT_EQ(s.customers_on_one_profile, 0u);
  EXPECT_EQ(s.profiles_mixing_customers, 1u);
}

TEST(ScoreIdentity, PerfectResolution) {
  Identifiers truth = {{{"t", "a1"}, {"t", "a2"}}, {{"t", "b1"}}};
  IdentityScore s = ScoreIdentity(truth, {}, [](const std::string&, const std::string& v) -> std::optional<std::string> {
    return std::string(1, v[0]);
  });
  EXPECT_DOUBLE_EQ(s.precision, 1);
  EXPECT_DOUBLE_EQ(s.recall, 1);
  EXPECT_EQ(s.customers_on_one_profile, 2u);
}

}  // namespace
}  // namespace rapport::simulate

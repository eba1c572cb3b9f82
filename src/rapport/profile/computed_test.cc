#include "rapport/profile/computed.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <random>

#include "rapport/base/error.h"
#include "rapport/profile/derived.h"

namespace rapport::profile {
namespace {

constexpr base::Micros kDay = base::kMicrosPerDay;
constexpr base::Micros kNow = 1'800'000'000LL * base::kMicrosPerSecond;  // 2027-01-15, a Friday

ComputedTraitDef Def(wire::ComputedTraitSpec spec) {
  if (spec.name.empty()) spec.name = "t";
  auto def = CompileComputedTrait(spec, 1);
  EXPECT_TRUE(def.ok()) << def.status();
  return *def;
}

wire::EventFacts Order(double total, std::string category) {
  wire::EventFacts f;
  f.type = wire::EventType::kTrack;
  f.event = "Order Completed";
  f.properties = {{"total", fmt::format("{}", total)}, {"category", "\"" + category + "\""}};
  return f;
}

std::string ValueAfter(const ComputedTraitDef& def, const std::vector<std::pair<wire::EventFacts, base::Micros>>& events,
                       base::Micros now = kNow) {
  TraitState state;
  state.version = def.version;
  int n = 0;
  for (const auto& [f, ts] : events) {
    if (auto o = Observe(def, f, {ts, fmt::format("m{}", n++)})) state.Add(def, *o, now);
  }
  return ComputedJson(def, state.At(def, now), now);
}

TEST(ComputedTraits, EachKindSummarisesTheMatchingEvents) {
  const std::vector<std::pair<wire::EventFacts, base::Micros>> events = {
      {Order(40, "shoes"), kNow - 3 * kDay},
      {Order(60, "hats"), kNow - 2 * kDay},
      {Order(20, "shoes"), kNow - 1 * kDay},
  };
  EXPECT_EQ(ValueAfter(Def({.kind = "count", .event = "Order Completed"}), events), "3");
  EXPECT_EQ(ValueAfter(Def({.kind = "count", .event = "Signed Up"}), events), "0");
  EXPECT_EQ(ValueAfter(Def({.kind = "sum", .property = "total"}), events), "120");
  EXPECT_EQ(ValueAfter(Def({.kind = "average", .property = "total"}), events), "40");
  EXPECT_EQ(ValueAfter(Def({.kind = "min", .property = "total"}), events), "20");
  EXPECT_EQ(ValueAfter(Def({.kind = "max", .property = "total"}), events), "60");
  EXPECT_EQ(ValueAfter(Def({.kind = "first", .property = "category"}), events), "\"shoes\"");
  EXPECT_EQ(ValueAfter(Def({.kind = "last", .property = "total"}), events), "20");
  EXPECT_EQ(ValueAfter(Def({.kind = "last", .property = "timestamp"}), events),
            "\"" + base::FormatIso8601(kNow - kDay) + "\"");
  EXPECT_EQ(ValueAfter(Def({.kind = "distinct", .property = "category"}), events), "2");
  EXPECT_EQ(ValueAfter(Def({.kind = "most_frequent", .property = "category"}), events), "\"shoes\"");
  EXPECT_EQ(ValueAfter(Def({.kind = "rfm", .property = "total"}), events),
            R"({"recency_days":1,"frequency":3,"monetary":120})");
  EXPECT_EQ(ValueAfter(Def({.kind = "sum", .property = "total", .where = "properties.category == \"shoes\""}), events),
            "60");
  EXPECT_EQ(ValueAfter(Def({.kind = "average", .property = "missing"}), events), "null");
  const std::string activity = ValueAfter(Def({.kind = "activity"}), events);
  EXPECT_NE(activity.find("\"best_weekday\":\"tue\""), std::string::npos) << activity;  // kNow−3d
  EXPECT_NE(activity.find("\"best_hour\":8"), std::string::npos) << activity;
  const std::string amsterdam = ValueAfter(Def({.kind = "activity", .timezone = "Europe/Amsterdam"}), events);
  EXPECT_NE(amsterdam.find("\"best_hour\":9"), std::string::npos) << amsterdam;
}

TEST(ComputedTraits, AWindowExpiresWithTimeAlone) {
  const ComputedTraitDef def = Def({.kind = "count", .event = "Order Completed", .window = "30d"});
  TraitState state;
  state.version = 1;
  state.Add(def, *Observe(def, Order(1, "a"), {kNow - 10 * kDay, "old"}), kNow);
  state.Add(def, *Observe(def, Order(1, "a"), {kNow - 2 * kDay, "new"}), kNow);
  state.Add(def, *Observe(def, Order(1, "a"), {kNow - 31 * kDay, "outside"}), kNow);
  EXPECT_EQ(ComputedJson(def, state.At(def, kNow), kNow), "2");
  // The 10-day-old order leaves the window 20 days from now.
  const base::Micros leaves = kNow + 20 * kDay;
  EXPECT_EQ(state.NextExpiry(def, kNow), leaves);
  EXPECT_EQ(ComputedJson(def, state.At(def, leaves - 1), leaves - 1), "2");
  EXPECT_EQ(ComputedJson(def, state.At(def, leaves), leaves), "1");
  EXPECT_EQ(state.NextExpiry(def, leaves), kNow + 28 * kDay);
  state.Expire(def, leaves);
  EXPECT_EQ(state.entries.size(), 1u);
}

TEST(ComputedTraits, StatesCommuteAndMergeWhateverTheOrder) {
  std::mt19937 rng(7);
  const std::vector<wire::ComputedTraitSpec> specs = {
      {.kind = "count"}, {.kind = "sum", .property = "total"}, {.kind = "average", .property = "total"},
      {.kind = "min", .property = "total"}, {.kind = "max", .property = "total"},
      {.kind = "first", .property = "category"}, {.kind = "last", .property = "timestamp"},
      {.kind = "distinct", .property = "category"}, {.kind = "most_frequent", .property = "category"},
      {.kind = "rfm", .property = "total"}, {.kind = "activity"},
      {.kind = "count", .window = "7d"}, {.kind = "max", .property = "total", .window = "3d"}};
  for (int round = 0; round < 50; ++round) {
    std::vector<Observation> all;
    for (int i = 0; i < 30; ++i) {
      wire::EventFacts f = Order(static_cast<double>(rng() % 100), std::string(1, static_cast<char>('a' + rng() % 4)));
      // Equal timestamps are common: the messageId breaks ties.
      all.push_back({{kNow - static_cast<base::Micros>(rng() % 10) * kDay, fmt::format("m{}", i)}, ""});
      for (const auto& [name, json] : f.properties) all.back().json += name + "=" + json + ";";
    }
    for (const wire::ComputedTraitSpec& spec : specs) {
      const ComputedTraitDef def = Def(spec);
      auto observe = [&](const Observation& raw) {
        wire::EventFacts f;
        f.event = "Order Completed";
        const std::string total = raw.json.substr(6, raw.json.find(';') - 6);
        const std::string category = raw.json.substr(raw.json.find("category=") + 9);
        f.properties = {{"total", total}, {"category", category.substr(0, category.size() - 1)}};
        return Observe(def, f, raw.key);
      };
      TraitState one, a, b;
      one.version = a.version = b.version = 1;
      std::vector<Observation> shuffled = all;
      std::shuffle(shuffled.begin(), shuffled.end(), rng);
      for (const Observation& raw : all) one.Add(def, *observe(raw), kNow);
      for (const Observation& raw : shuffled) ((rng() % 2) ? a : b).Add(def, *observe(raw), kNow);
      a.Merge(def, std::move(b), kNow);
      EXPECT_EQ(ComputedJson(def, one.At(def, kNow), kNow), ComputedJson(def, a.At(def, kNow), kNow))
          << spec.kind << " window " << spec.window << " round " << round;
      // And the stored form gives back the same value.
      base::Writer w;
      EncodeTraitState(w, a);
      const std::string bytes = std::move(w).Finish();
      base::Reader r(bytes);
      TraitState decoded;
      ASSERT_TRUE(DecodeTraitState(r, &decoded));
      EXPECT_TRUE(r.done());
      EXPECT_EQ(ComputedJson(def, decoded.At(def, kNow), kNow), ComputedJson(def, a.At(def, kNow), kNow));
    }
  }
}

// What a segment can read of a trait: its value and every part, as text.
std::string Readable(const ComputedTraitDef& def, const TraitState& state) {
  std::string out;
  const Aggregate a = state.At(def, kNow);
  for (std::string_view part : {"", "frequency", "monetary", "recency_days", "best_hour", "best_weekday"}) {
    const Value v = ComputedValue(def, a, part, kNow);
    out += fmt::format("{}:{}/{}/{}/{}/{}/{};", part, static_cast<int>(v.kind), v.boolean, v.number, v.micros,
                       v.now_factor, v.text);
  }
  return out;
}

// Property: Add says "unchanged" only when nothing a segment can read changed (segments that
// read only unchanged traits are not evaluated again), and it does say so for some events of
// the kinds that often leave the value as it is.
TEST(ComputedTraits, AddTellsWhenWhatSegmentsReadMayHaveChanged) {
  std::mt19937 rng(11);
  const std::vector<wire::ComputedTraitSpec> specs = {
      {.kind = "count"}, {.kind = "sum", .property = "total"}, {.kind = "average", .property = "total"},
      {.kind = "min", .property = "total"}, {.kind = "max", .property = "total"},
      {.kind = "first", .property = "category"}, {.kind = "first", .property = "timestamp"},
      {.kind = "last", .property = "category"}, {.kind = "last", .property = "timestamp"},
      {.kind = "distinct", .property = "category"}, {.kind = "most_frequent", .property = "category"},
      {.kind = "rfm", .property = "total"}, {.kind = "activity"},
      {.kind = "count", .window = "7d"}, {.kind = "max", .property = "total", .window = "3d"}};
  for (const wire::ComputedTraitSpec& spec : specs) {
    const ComputedTraitDef def = Def(spec);
    size_t unchanged = 0;
    for (int round = 0; round < 20; ++round) {
      TraitState state;
      state.version = 1;
      for (int i = 0; i < 40; ++i) {
        const double total = static_cast<double>(rng() % 20);
        const wire::EventFacts f = Order(total, std::string(1, static_cast<char>('a' + rng() % 3)));
        // Few distinct times (ties broken by messageId), some outside the windows.
        const OrderKey key{kNow - static_cast<base::Micros>(rng() % 10) * kDay / 2, fmt::format("m{}", rng() % 1000)};
        std::optional<Observation> o = Observe(def, f, key);
        ASSERT_TRUE(o) << spec.kind;
        const std::string before = Readable(def, state);
        TraitState untracked = state;
        const bool untracked_changed = untracked.Add(def, *o, kNow, /*track=*/false);
        const bool changed = state.Add(def, *o, kNow);
        ASSERT_EQ(Readable(def, untracked), Readable(def, state)) << spec.kind;  // the same sum
        ASSERT_TRUE(untracked_changed || !changed) << spec.kind;  // untracked never says less
        if (!changed) {
          ++unchanged;
          ASSERT_EQ(Readable(def, state), before) << spec.kind << " " << spec.property << " " << spec.window;
        }
      }
    }
    const bool often_unchanged = spec.kind == "min" || spec.kind == "max" || spec.kind == "first" ||
                                 spec.kind == "last" || spec.kind == "distinct" ||
                                 spec.kind == "most_frequent" || spec.kind == "activity";
    if (often_unchanged) {
      EXPECT_GT(unchanged, 0u) << spec.kind << " " << spec.property;
    }
  }
}

TEST(ComputedTraits, StoredStatesKeepOnlyTheirPartsAndFormat1StillReads) {
  const std::vector<std::pair<wire::EventFacts, base::Micros>> events = {
      {Order(40, "shoes"), kNow - 3 * kDay}, {Order(60, "hats"), kNow - 2 * kDay}};
  auto state_of = [&](const ComputedTraitDef& def) {
    TraitState state;
    state.version = def.version;
    int n = 0;
    for (const auto& [f, ts] : events) state.Add(def, *Observe(def, f, {ts, fmt::format("m{}", n++)}), kNow);
    return state;
  };
  auto encode = [](const TraitState& state) {
    base::Writer w;
    EncodeTraitState(w, state);
    return std::move(w).Finish();
  };
  // Format 2: version, the parts present, then only those parts.
  EXPECT_EQ(encode(state_of(Def({.kind = "count"}))), std::string("\x01\x01\x02", 3));
  EXPECT_EQ(encode(state_of(Def({.kind = "sum", .property = "total"}))).size(), 3u + 1 + 3 * 8);
  const std::string last_time = encode(state_of(Def({.kind = "last", .property = "timestamp"})));
  EXPECT_EQ(last_time.find(base::FormatIso8601(kNow - 2 * kDay).substr(0, 10)), std::string::npos)
      << "a timestamp trait stores the time once, in its key";

  // Format 1 (before session 5) wrote every part of every state, and the time's text.
  auto format1 = [](const TraitState& s, std::string_view time_json) {
    const Aggregate& a = s.all_time;
    base::Writer w;
    w.Varint(s.version);
    w.Varint(a.count);
    w.Varint(a.numbers);
    for (double d : {a.sum, a.min, a.max}) w.Varint(std::bit_cast<uint64_t>(d));
    for (const std::optional<Observation>* o : {&a.first, &a.last}) {
      w.U8(o->has_value() ? 1 : 0);
      if (*o) {
        w.Signed((*o)->key.timestamp);
        w.Bytes((*o)->key.message_id);
        w.Bytes(time_json.empty() ? (*o)->json : time_json);
      }
    }
    w.Varint(a.values.size());
    for (const auto& [v, n] : a.values) {
      w.Bytes(v);
      w.Varint(n);
    }
    w.U8(a.values_overflow);
    size_t used = 0;
    for (uint32_t h : a.hours) used += h ? 1 : 0;
    w.Varint(used);
    for (size_t i = 0; i < a.hours.size(); ++i) {
      if (!a.hours[i]) continue;
      w.Varint(i);
      w.Varint(a.hours[i]);
    }
    w.Varint(s.entries.size());
    for (const Observation& o : s.entries) {
      w.Signed(o.key.timestamp);
      w.Bytes(o.key.message_id);
      w.Bytes(o.json);
    }
    w.Varint(s.dropped);
    return std::move(w).Finish();
  };
  const std::vector<wire::ComputedTraitSpec> specs = {
      {.kind = "sum", .property = "total"}, {.kind = "last", .property = "timestamp"},
      {.kind = "most_frequent", .property = "category"}, {.kind = "activity"},
      {.kind = "count", .window = "7d"}, {.kind = "rfm", .property = "total"}};
  for (const wire::ComputedTraitSpec& spec : specs) {
    const ComputedTraitDef def = Def(spec);
    const TraitState state = state_of(def);
    const std::string expected = ComputedJson(def, state.At(def, kNow), kNow);
    const std::string time_json =
        def.property_is_timestamp ? "\"" + base::FormatIso8601(kNow - 2 * kDay) + "\"" : "";
    const std::string bytes = format1(state, time_json);
    base::Reader r(bytes);
    TraitState decoded;
    ASSERT_TRUE(DecodeTraitState(r, &decoded, 1)) << spec.kind;
    EXPECT_TRUE(r.done()) << spec.kind;
    EXPECT_EQ(ComputedJson(def, decoded.At(def, kNow), kNow), expected) << spec.kind;
    // And inside a whole version-1 derived record (version, traits, segments, due).
    base::Writer record;
    record.U8(1);
    record.Varint(1);
    record.Bytes("t");
    const std::string with_record = [&] {
      std::string out = std::move(record).Finish() + bytes;
      base::Writer rest;
      rest.Varint(1);
      rest.Bytes("buyers");
      rest.Signed(kNow - kDay);
      rest.Signed(kNow + kDay);
      return out + std::move(rest).Finish();
    }();
    std::optional<DerivedState> d = DecodeDerived(with_record);
    ASSERT_TRUE(d) << spec.kind;
    ASSERT_TRUE(d->traits.contains("t"));
    EXPECT_EQ(ComputedJson(def, d->traits.at("t").At(def, kNow), kNow), expected) << spec.kind;
    EXPECT_TRUE(d->InSegment("buyers"));
    EXPECT_EQ(d->due, kNow + kDay);
    // A record naming one trait twice is damaged, not merged.
    base::Writer twice;
    twice.U8(kTraitStateFormat);
    twice.Varint(2);
    for (int i = 0; i < 2; ++i) {
      twice.Bytes("t");
      EncodeTraitState(twice, state);
    }
    twice.Varint(0);
    twice.Signed(0);
    EXPECT_FALSE(DecodeDerived(std::move(twice).Finish())) << spec.kind;
    // Read as format 2, the same bytes are not taken for a state.
    base::Reader wrong(bytes);
    TraitState misread;
    EXPECT_FALSE(DecodeTraitState(wrong, &misread, 2) && wrong.done() &&
                 ComputedJson(def, misread.At(def, kNow), kNow) == expected)
        << spec.kind;
  }
}

TEST(ComputedTraits, BadDefinitionsSayWhatIsWrong) {
  struct Case {
    wire::ComputedTraitSpec spec;
    std::string code;
    std::string field;
  };
  const Case cases[] = {
      {{.name = "Orders", .kind = "count"}, "invalid_name", "name"},
      {{.name = "t", .kind = "median"}, "invalid_kind", "kind"},
      {{.name = "t", .kind = "sum"}, "missing_field", "property"},
      {{.name = "t", .kind = "count", .property = "total"}, "invalid_field", "property"},
      {{.name = "t", .kind = "sum", .property = "timestamp"}, "invalid_field", "property"},
      {{.name = "t", .kind = "count", .window = "30"}, "invalid_duration", "window"},
      {{.name = "t", .kind = "count", .where = "properties.total >"}, "invalid_expression", "where"},
      {{.name = "t", .kind = "count", .where = "traits.plan == 1"}, "invalid_expression", "where"},
      {{.name = "t", .kind = "activity", .timezone = "Mars/Olympus"}, "invalid_timezone", "timezone"},
      {{.name = "t", .kind = "sum", .property = std::string(201, 'p')}, "invalid_field", "property"},
      {{.name = "t", .kind = "sum", .property = "a.b.c.d.e.f.g.h.i"}, "invalid_field", "property"},
  };
  for (const Case& c : cases) {
    auto def = CompileComputedTrait(c.spec, 1);
    ASSERT_FALSE(def.ok()) << c.code;
    const base::ErrorDetails d = base::GetErrorDetails(def.status());
    EXPECT_EQ(d.code, c.code) << def.status();
    EXPECT_EQ(d.field, c.field) << def.status();
  }
}

}  // namespace
}  // namespace rapport::profile

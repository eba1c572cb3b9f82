#include "rapport/profile/computed.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>

#include "absl/strings/str_split.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"
#include "rapport/wire/json_text.h"

namespace rapport::profile {
namespace {

constexpr std::pair<std::string_view, ComputedKind> kKinds[] = {
    {"count", ComputedKind::kCount},       {"sum", ComputedKind::kSum},
    {"average", ComputedKind::kAverage},   {"min", ComputedKind::kMin},
    {"max", ComputedKind::kMax},           {"first", ComputedKind::kFirst},
    {"last", ComputedKind::kLast},         {"distinct", ComputedKind::kDistinct},
    {"most_frequent", ComputedKind::kMostFrequent}, {"rfm", ComputedKind::kRfm},
    {"activity", ComputedKind::kActivity}};

constexpr std::string_view kWeekdays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
constexpr size_t kHourSlots = 7 * 24;
constexpr base::Micros kMaxWindow = 3660 * base::kMicrosPerDay;

bool NeedsProperty(ComputedKind k) {
  return k != ComputedKind::kCount && k != ComputedKind::kRfm && k != ComputedKind::kActivity;
}
// Only these kinds read the first or last observation (rfm: only the last one's time).
bool KeepsEnds(ComputedKind k) {
  return k == ComputedKind::kFirst || k == ComputedKind::kLast || k == ComputedKind::kRfm;
}
bool KeepsValues(ComputedKind k) {
  return k == ComputedKind::kDistinct || k == ComputedKind::kMostFrequent;
}

std::optional<double> NumberOf(std::string_view json) {
  if (json.empty() || json.front() == '"') return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(json.data(), json.data() + json.size(), v);
  if (ec != std::errc() || end != json.data() + json.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string JsonOf(const wire::JsonScalar& s) {
  switch (s.kind) {
    case wire::JsonScalar::Kind::kBool: return s.boolean ? "true" : "false";
    case wire::JsonScalar::Kind::kNumber: return fmt::format("{}", s.number);
    case wire::JsonScalar::Kind::kString: return wire::Quote(s.text);
    case wire::JsonScalar::Kind::kComposite: return s.text;
    default: return "null";
  }
}

std::string Number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

// What a `where` predicate reads: the event.
class EventEnv final : public Env {
 public:
  EventEnv(const wire::EventFacts& f, base::Micros at) : f_(f), at_(at) {}
  Value Field(Root root, const std::vector<std::string>& path, int) const override {
    switch (root) {
      case Root::kEvent: return f_.event.empty() ? Value::Missing() : Value::String(f_.event);
      case Root::kType: return Value::String(std::string(wire::EventTypeName(f_.type)));
      case Root::kProperties:
        for (const auto& [name, json] : f_.properties) {
          if (name == path[0]) return ValueFromJson(json, std::span(path).subspan(1));
        }
        return Value::Missing();
      default: return Value::Missing();
    }
  }
  bool InSegment(std::string_view) const override { return false; }
  base::Micros Now() const override { return at_; }

 private:
  const wire::EventFacts& f_;
  base::Micros at_;
};

class EventSchema final : public Schema {
 public:
  bool Allows(Root root) const override {
    return root == Root::kProperties || root == Root::kEvent || root == Root::kType;
  }
  std::optional<Type> ComputedType(std::string_view, std::string_view, std::string* why) const override {
    *why = "a computed trait's 'where' reads the event: properties.NAME, event, type";
    return std::nullopt;
  }
  bool HasSegment(std::string_view, std::string* why) const override {
    *why = "a computed trait's 'where' reads the event, not segments";
    return false;
  }
};

void PutObservation(base::Writer& w, const Observation& o) {
  w.Signed(o.key.timestamp);
  w.Bytes(o.key.message_id);
  w.Bytes(o.json);
}
bool GetObservation(base::Reader& r, Observation* o) {
  return r.Signed(&o->key.timestamp) && r.Bytes(&o->key.message_id) && r.Bytes(&o->json);
}
bool GetOptional(base::Reader& r, std::optional<Observation>* o) {
  uint8_t has;
  if (!r.U8(&has) || has > 1) return false;
  if (!has) return true;
  o->emplace();
  return GetObservation(r, &**o);
}

}  // namespace

Value ValueFromJson(std::string_view json, std::span<const std::string> path) {
  const wire::JsonScalar s = wire::ReadJsonPath(json, path);
  switch (s.kind) {
    case wire::JsonScalar::Kind::kMissing: return Value::Missing();
    case wire::JsonScalar::Kind::kNull: return Value::Null();
    case wire::JsonScalar::Kind::kBool: return Value::Bool(s.boolean);
    case wire::JsonScalar::Kind::kNumber: return Value::Number(s.number);
    case wire::JsonScalar::Kind::kString: return Value::String(s.text);
    case wire::JsonScalar::Kind::kComposite: {
      Value v;
      v.kind = Value::Kind::kComposite;
      v.text = s.text;
      return v;
    }
  }
  return Value::Missing();
}

std::optional<Type> ComputedTraitDef::TypeOf(std::string_view part, std::string* why) const {
  auto no_part = [&](Type t) -> std::optional<Type> {
    if (part.empty()) return t;
    *why = fmt::format("computed.{} ({}) has no part '{}'", name(), spec.kind, part);
    return std::nullopt;
  };
  switch (kind) {
    case ComputedKind::kFirst:
    case ComputedKind::kLast: return no_part(property_is_timestamp ? Type::kTime : Type::kAny);
    case ComputedKind::kMostFrequent: return no_part(Type::kAny);
    case ComputedKind::kRfm:
      if (part == "recency_days" || part == "frequency" || part == "monetary") return Type::kNumber;
      *why = fmt::format("computed.{} is an RFM trait: use computed.{}.recency_days, .frequency or .monetary",
                         name(), name());
      return std::nullopt;
    case ComputedKind::kActivity:
      if (part == "best_hour") return Type::kNumber;
      if (part == "best_weekday") return Type::kString;
      *why = fmt::format("computed.{} is an activity trait: use computed.{}.best_hour or .best_weekday",
                         name(), name());
      return std::nullopt;
    default: return no_part(Type::kNumber);
  }
}

absl::Status CheckDefinitionName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] >= 'a' && name[0] <= 'z';
  for (char c : name) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  if (ok) return absl::OkStatus();
  return base::InvalidField("invalid_name", "name",
                            fmt::format("'{}' is not a name: a lower-case letter, then up to 63 "
                                        "lower-case letters, digits or '_'",
                                        name));
}

absl::StatusOr<ComputedTraitDef> CompileComputedTrait(const wire::ComputedTraitSpec& spec,
                                                      uint64_t version) {
  ComputedTraitDef def;
  def.spec = spec;
  def.version = version;
  RAPPORT_RETURN_IF_ERROR(CheckDefinitionName(spec.name));
  bool kind_ok = false;
  std::string kinds;
  for (const auto& [text, kind] : kKinds) {
    kinds += (kinds.empty() ? "" : ", ") + std::string(text);
    if (text == spec.kind) {
      def.kind = kind;
      kind_ok = true;
    }
  }
  if (!kind_ok) {
    return base::InvalidField("invalid_kind", "kind",
                              fmt::format("'{}' is not a kind of computed trait ({})", spec.kind, kinds));
  }
  if (spec.property.empty() && NeedsProperty(def.kind)) {
    return base::InvalidField("missing_field", "property",
                              fmt::format("a '{}' trait reads a property: name it, e.g. \"total\"", spec.kind));
  }
  if (!spec.property.empty() && (def.kind == ComputedKind::kCount || def.kind == ComputedKind::kActivity)) {
    return base::InvalidField("invalid_field", "property",
                              fmt::format("a '{}' trait reads no property (filter events with 'where', "
                                          "e.g. exists(properties.{}))",
                                          spec.kind, spec.property));
  }
  if (!spec.property.empty()) {
    if (spec.property == "timestamp") {
      if (def.kind != ComputedKind::kFirst && def.kind != ComputedKind::kLast) {
        return base::InvalidField("invalid_field", "property",
                                  "'timestamp' (the event's time) is a property of first and last traits only");
      }
      def.property_is_timestamp = true;
    } else {
      if (spec.property.size() > kMaxPropertyPathBytes) {
        return base::InvalidField("invalid_field", "property",
                                  fmt::format("a property path has at most {} bytes", kMaxPropertyPathBytes));
      }
      for (absl::string_view part : absl::StrSplit(base::AsAbsl(spec.property), '.')) {
        if (part.empty()) {
          return base::InvalidField("invalid_field", "property",
                                    fmt::format("'{}' is not a property path (e.g. total or item.price)",
                                                spec.property));
        }
        def.property.emplace_back(part);
      }
      if (def.property.size() > kMaxPropertyPathParts) {
        return base::InvalidField("invalid_field", "property",
                                  fmt::format("a property path has at most {} parts", kMaxPropertyPathParts));
      }
    }
  }
  if (!spec.window.empty()) {
    RAPPORT_ASSIGN_OR_RETURN(def.window, ParseDuration(spec.window));
    if (def.window > kMaxWindow) {
      return base::InvalidField("invalid_duration", "window", "a window is at most 3660d (ten years)");
    }
  }
  if (!spec.where.empty()) {
    auto where = Expression::Parse(spec.where, EventSchema());
    if (!where.ok()) return base::WithField(where.status(), "where");
    def.where = *std::move(where);
  }
  if (spec.event.size() > 200) {
    return base::InvalidField("invalid_field", "event", "an event name has at most 200 bytes");
  }
  def.zone = absl::UTCTimeZone();
  if (!spec.timezone.empty()) {
    if (def.kind != ComputedKind::kActivity) {
      return base::InvalidField("invalid_field", "timezone", "only an activity trait has a time zone");
    }
    if (!absl::LoadTimeZone(base::AsAbsl(spec.timezone), &def.zone)) {
      return base::InvalidField("invalid_timezone", "timezone",
                                fmt::format("'{}' is not a time zone (use an IANA name such as "
                                            "Europe/Amsterdam)",
                                            spec.timezone));
    }
  }
  return def;
}

std::optional<Observation> Observe(const ComputedTraitDef& def, const wire::EventFacts& f,
                                   const OrderKey& key) {
  if (!def.spec.event.empty() && f.event != def.spec.event) return std::nullopt;
  if (def.where && !def.where->Evaluate(EventEnv(f, key.timestamp)).matched) return std::nullopt;
  Observation o{key, ""};
  // first/last of "timestamp" keep only the key: the value is its time.
  if (!def.property_is_timestamp && !def.property.empty()) {
    for (const auto& [name, json] : f.properties) {
      if (name != def.property[0]) continue;
      const wire::JsonScalar s = wire::ReadJsonPath(json, std::span(def.property).subspan(1));
      if (s.kind != wire::JsonScalar::Kind::kMissing && s.kind != wire::JsonScalar::Kind::kNull) {
        o.json = def.property.size() == 1 ? json : JsonOf(s);
      }
      break;
    }
    if (o.json.empty() && NeedsProperty(def.kind)) return std::nullopt;
  }
  return o;
}

namespace {

const std::string* MostFrequent(const Aggregate& a);
std::optional<int> BestSlot(const Aggregate& a);

// Adds `o` to `a`, telling nothing of what changed (for summaries built from window entries).
void Accumulate(Aggregate& a, const ComputedTraitDef& def, const Observation& o) {
  ++a.count;
  if (auto n = NumberOf(o.json)) {
    a.min = a.numbers ? std::min(a.min, *n) : *n;
    a.max = a.numbers ? std::max(a.max, *n) : *n;
    a.sum += *n;
    ++a.numbers;
  }
  // A state is written with every event that changes it: keep only what the kind reads.
  if (KeepsEnds(def.kind)) {
    if (def.kind != ComputedKind::kLast && (!a.first || o.key < a.first->key)) a.first = o;
    if (def.kind != ComputedKind::kFirst && (!a.last || a.last->key < o.key)) a.last = o;
    if (def.kind == ComputedKind::kRfm) {
      if (a.first) a.first.reset();
      a.last->json.clear();
    }
  }
  if (KeepsValues(def.kind)) {
    auto it = a.values.find(o.json);
    if (it != a.values.end()) {
      ++it->second;
    } else if (a.values.size() < kMaxDistinctValues) {
      a.values.emplace(o.json, 1);
    } else {
      a.values_overflow = true;
    }
  }
  if (def.kind == ComputedKind::kActivity) {
    const absl::CivilHour hour = absl::ToCivilHour(absl::FromUnixMicros(o.key.timestamp), def.zone);
    const int weekday = (static_cast<int>(absl::GetWeekday(absl::CivilDay(hour))) + 7) % 7;  // Monday 0
    if (a.hours.empty()) a.hours.resize(kHourSlots);
    ++a.hours[weekday * 24 + hour.hour()];
  }
}

}  // namespace

bool Aggregate::Add(const ComputedTraitDef& def, const Observation& o, bool track) {
  if (!track) {
    Accumulate(*this, def, o);
    return true;
  }
  // What segments read before, for the kinds an event often leaves as they are.
  const uint64_t numbers_before = numbers;
  const double min_before = min, max_before = max;
  const size_t values_before = values.size();
  const std::string* frequent_before = def.kind == ComputedKind::kMostFrequent ? MostFrequent(*this) : nullptr;
  const std::optional<int> best_before = def.kind == ComputedKind::kActivity ? BestSlot(*this) : std::nullopt;
  const std::optional<Observation>& end = def.kind == ComputedKind::kFirst ? first : last;
  const bool had_end = end.has_value();
  const base::Micros end_time = had_end ? end->key.timestamp : 0;
  const std::string end_json = had_end && !def.property_is_timestamp ? end->json : std::string();

  Accumulate(*this, def, o);
  switch (def.kind) {
    case ComputedKind::kMin: return numbers_before == 0 ? numbers > 0 : min != min_before;
    case ComputedKind::kMax: return numbers_before == 0 ? numbers > 0 : max != max_before;
    case ComputedKind::kFirst:
    case ComputedKind::kLast:
      // The value is the time for "timestamp", else the JSON text (another text of an equal
      // value counts as a change: segments are evaluated once more than needed, never less).
      return !had_end || (def.property_is_timestamp ? end->key.timestamp != end_time : end->json != end_json);
    case ComputedKind::kDistinct: return values.size() != values_before;
    case ComputedKind::kMostFrequent: return MostFrequent(*this) != frequent_before;  // map nodes stay put
    case ComputedKind::kActivity: return BestSlot(*this) != best_before;
    default: return true;  // count, sum, average, rfm: the count or the sum moved
  }
}

void Aggregate::Merge(const Aggregate& o) {
  if (o.numbers) {
    min = numbers ? std::min(min, o.min) : o.min;
    max = numbers ? std::max(max, o.max) : o.max;
  }
  count += o.count;
  numbers += o.numbers;
  sum += o.sum;
  if (o.first && (!first || o.first->key < first->key)) first = o.first;
  if (o.last && (!last || last->key < o.last->key)) last = o.last;
  for (const auto& [v, n] : o.values) {
    auto it = values.find(v);
    if (it != values.end()) {
      it->second += n;
    } else if (values.size() < kMaxDistinctValues) {
      values.emplace(v, n);
    } else {
      values_overflow = true;
    }
  }
  values_overflow = values_overflow || o.values_overflow;
  if (!o.hours.empty() && hours.empty()) hours.resize(kHourSlots);
  for (size_t i = 0; i < o.hours.size(); ++i) hours[i] += o.hours[i];
}

namespace {
void Prune(const ComputedTraitDef& def, TraitState& s, base::Micros now) {
  const base::Micros horizon = now - def.window;
  auto keep = std::find_if(s.entries.begin(), s.entries.end(),
                           [&](const Observation& o) { return o.key.timestamp > horizon; });
  s.entries.erase(s.entries.begin(), keep);
  if (s.entries.size() > kMaxWindowEntries) {
    const size_t excess = s.entries.size() - kMaxWindowEntries;
    s.entries.erase(s.entries.begin(), s.entries.begin() + static_cast<std::ptrdiff_t>(excess));
    s.dropped += excess;
  }
}
}  // namespace

bool TraitState::Add(const ComputedTraitDef& def, Observation o, base::Micros now, bool track) {
  if (def.window == 0) return all_time.Add(def, o, track);
  if (o.key.timestamp <= now - def.window) return false;
  // Only first and last tell equal times apart by messageId; the others need not keep it.
  if (def.kind != ComputedKind::kFirst && def.kind != ComputedKind::kLast) o.key.message_id.clear();
  entries.insert(std::upper_bound(entries.begin(), entries.end(), o), std::move(o));
  Prune(def, *this, now);
  return true;
}

void TraitState::Merge(const ComputedTraitDef& def, TraitState other, base::Micros now) {
  if (def.window == 0) return all_time.Merge(other.all_time);
  const size_t mid = entries.size();
  entries.insert(entries.end(), std::make_move_iterator(other.entries.begin()),
                 std::make_move_iterator(other.entries.end()));
  std::inplace_merge(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(mid), entries.end());
  dropped += other.dropped;
  Prune(def, *this, now);
}

void TraitState::Expire(const ComputedTraitDef& def, base::Micros now) {
  if (def.window > 0) Prune(def, *this, now);
}

Aggregate TraitState::At(const ComputedTraitDef& def, base::Micros now) const {
  if (def.window == 0) return all_time;
  Aggregate a;
  for (const Observation& o : entries) {
    if (o.key.timestamp > now - def.window) Accumulate(a, def, o);
  }
  return a;
}

base::Micros TraitState::NextExpiry(const ComputedTraitDef& def, base::Micros now) const {
  if (def.window == 0) return Evaluation::kNever;
  for (const Observation& o : entries) {
    if (o.key.timestamp > now - def.window) return o.key.timestamp + def.window;
  }
  return Evaluation::kNever;
}

namespace {
const std::string* MostFrequent(const Aggregate& a) {
  const std::string* best = nullptr;
  uint64_t best_count = 0;
  for (const auto& [v, n] : a.values) {  // ordered: ties go to the smallest value
    if (n > best_count) {
      best = &v;
      best_count = n;
    }
  }
  return best;
}

std::optional<int> BestSlot(const Aggregate& a) {
  std::optional<int> best;
  for (int i = 0; i < static_cast<int>(a.hours.size()); ++i) {
    if (a.hours[i] && (!best || a.hours[i] > a.hours[*best])) best = i;
  }
  return best;
}

std::optional<int64_t> RecencyDays(const Aggregate& a, base::Micros now) {
  if (!a.last) return std::nullopt;
  return std::max<int64_t>(0, (now - a.last->key.timestamp) / base::kMicrosPerDay);
}
}  // namespace

std::string ComputedJson(const ComputedTraitDef& def, const Aggregate& a, base::Micros now) {
  switch (def.kind) {
    case ComputedKind::kCount: return fmt::format("{}", a.count);
    case ComputedKind::kSum: return Number(a.sum);
    case ComputedKind::kAverage: return a.numbers ? Number(a.sum / static_cast<double>(a.numbers)) : "null";
    case ComputedKind::kMin: return a.numbers ? Number(a.min) : "null";
    case ComputedKind::kMax: return a.numbers ? Number(a.max) : "null";
    case ComputedKind::kFirst:
    case ComputedKind::kLast: {
      const auto& o = def.kind == ComputedKind::kFirst ? a.first : a.last;
      if (!o) return "null";
      // States written before format 2 also hold the time's text; it is the same.
      return def.property_is_timestamp ? wire::Quote(base::FormatIso8601(o->key.timestamp)) : o->json;
    }
    case ComputedKind::kDistinct: return fmt::format("{}", a.values.size());
    case ComputedKind::kMostFrequent: {
      const std::string* v = MostFrequent(a);
      return v ? *v : "null";
    }
    case ComputedKind::kRfm: {
      auto days = RecencyDays(a, now);
      return fmt::format("{{\"recency_days\":{},\"frequency\":{},\"monetary\":{}}}",
                         days ? fmt::format("{}", *days) : "null", a.count, Number(a.sum));
    }
    case ComputedKind::kActivity: {
      std::string out = "{\"counts\":[";
      for (int d = 0; d < 7; ++d) {
        out += d ? ",[" : "[";
        for (int h = 0; h < 24; ++h) {
          out += fmt::format("{}{}", h ? "," : "", a.hours.empty() ? 0 : a.hours[d * 24 + h]);
        }
        out += ']';
      }
      auto best = BestSlot(a);
      out += best ? fmt::format("],\"best_weekday\":\"{}\",\"best_hour\":{}}}", kWeekdays[*best / 24], *best % 24)
                  : "],\"best_weekday\":null,\"best_hour\":null}";
      return out;
    }
  }
  return "null";
}

Value ComputedValue(const ComputedTraitDef& def, const Aggregate& a, std::string_view part,
                    base::Micros now) {
  switch (def.kind) {
    case ComputedKind::kCount: return Value::Number(static_cast<double>(a.count));
    case ComputedKind::kSum: return Value::Number(a.sum);
    case ComputedKind::kAverage:
      return a.numbers ? Value::Number(a.sum / static_cast<double>(a.numbers)) : Value::Null();
    case ComputedKind::kMin: return a.numbers ? Value::Number(a.min) : Value::Null();
    case ComputedKind::kMax: return a.numbers ? Value::Number(a.max) : Value::Null();
    case ComputedKind::kFirst:
    case ComputedKind::kLast: {
      const auto& o = def.kind == ComputedKind::kFirst ? a.first : a.last;
      if (!o) return Value::Null();
      if (def.property_is_timestamp) return Value::Time(o->key.timestamp);
      return ValueFromJson(o->json, {});
    }
    case ComputedKind::kDistinct: return Value::Number(static_cast<double>(a.values.size()));
    case ComputedKind::kMostFrequent: {
      const std::string* v = MostFrequent(a);
      return v ? ValueFromJson(*v, {}) : Value::Null();
    }
    case ComputedKind::kRfm:
      if (part == "frequency") return Value::Number(static_cast<double>(a.count));
      if (part == "monetary") return Value::Number(a.sum);
      if (auto days = RecencyDays(a, now)) return Value::Number(static_cast<double>(*days));
      return Value::Null();
    case ComputedKind::kActivity: {
      auto best = BestSlot(a);
      if (!best) return Value::Null();
      if (part == "best_hour") return Value::Number(*best % 24);
      return Value::String(std::string(kWeekdays[*best / 24]));
    }
  }
  return Value::Missing();
}

namespace {
// Format 2: the parts a state holds, after its version. Each part is written only when set.
enum Part : uint8_t {
  kCount = 1,      // varint count
  kNumbers = 2,    // varint numbers · sum, min, max (each Fixed64 of the double's bits)
  kFirst = 4,      // observation
  kLast = 8,       // observation
  kValues = 16,    // varint n × [bytes value JSON · varint count]
  kOverflow = 32,  // (no bytes) more distinct values were seen than kept
  kHours = 64,     // varint n × [varint slot · varint count], non-zero slots only
  kWindow = 128,   // varint n × observation · varint dropped
};

bool DecodeFormat1(base::Reader& r, TraitState* s) {
  Aggregate& a = s->all_time;
  uint64_t n = 0;
  auto double_bits = [&r](double* v) {
    uint64_t bits;
    if (!r.Varint(&bits)) return false;
    *v = std::bit_cast<double>(bits);
    return true;
  };
  if (!r.Varint(&s->version) || !r.Varint(&a.count) || !r.Varint(&a.numbers) || !double_bits(&a.sum) ||
      !double_bits(&a.min) || !double_bits(&a.max) || !GetOptional(r, &a.first) ||
      !GetOptional(r, &a.last) || !r.Varint(&n) || n > kMaxDistinctValues) {
    return false;
  }
  for (uint64_t i = 0; i < n; ++i) {
    std::string v;
    uint64_t count;
    if (!r.Bytes(&v) || !r.Varint(&count)) return false;
    a.values.emplace(std::move(v), count);
  }
  uint8_t overflow;
  if (!r.U8(&overflow) || !r.Varint(&n) || n > kHourSlots) return false;
  a.values_overflow = overflow != 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t slot, count;
    if (!r.Varint(&slot) || !r.Varint(&count) || slot >= kHourSlots) return false;
    if (a.hours.empty()) a.hours.resize(kHourSlots);
    a.hours[slot] = static_cast<uint32_t>(count);
  }
  if (!r.Varint(&n) || n > kMaxWindowEntries) return false;
  s->entries.resize(n);
  for (Observation& o : s->entries) {
    if (!GetObservation(r, &o)) return false;
  }
  return r.Varint(&s->dropped);
}

void PutDouble(base::Writer& w, double v) { w.Fixed64(std::bit_cast<uint64_t>(v)); }
bool GetDouble(base::Reader& r, double* v) {
  uint64_t bits;
  if (!r.Fixed64(&bits)) return false;
  *v = std::bit_cast<double>(bits);
  return true;
}
}  // namespace

void EncodeTraitState(base::Writer& w, const TraitState& s) {
  const Aggregate& a = s.all_time;
  size_t used = 0;
  for (uint32_t h : a.hours) used += h ? 1 : 0;
  const uint8_t parts = (a.count ? kCount : 0) | (a.numbers ? kNumbers : 0) | (a.first ? kFirst : 0) |
                        (a.last ? kLast : 0) | (a.values.empty() ? 0 : kValues) |
                        (a.values_overflow ? kOverflow : 0) | (used ? kHours : 0) |
                        (s.entries.empty() && !s.dropped ? 0 : kWindow);
  w.Varint(s.version);
  w.U8(parts);
  if (parts & kCount) w.Varint(a.count);
  if (parts & kNumbers) {
    w.Varint(a.numbers);
    PutDouble(w, a.sum);
    PutDouble(w, a.min);
    PutDouble(w, a.max);
  }
  if (parts & kFirst) PutObservation(w, *a.first);
  if (parts & kLast) PutObservation(w, *a.last);
  if (parts & kValues) {
    w.Varint(a.values.size());
    for (const auto& [v, n] : a.values) {
      w.Bytes(v);
      w.Varint(n);
    }
  }
  if (parts & kHours) {
    w.Varint(used);
    for (size_t i = 0; i < a.hours.size(); ++i) {
      if (!a.hours[i]) continue;
      w.Varint(i);
      w.Varint(a.hours[i]);
    }
  }
  if (parts & kWindow) {
    w.Varint(s.entries.size());
    for (const Observation& o : s.entries) PutObservation(w, o);
    w.Varint(s.dropped);
  }
}

bool DecodeTraitState(base::Reader& r, TraitState* s, uint8_t format) {
  if (format == 1) return DecodeFormat1(r, s);
  if (format != 2) return false;
  Aggregate& a = s->all_time;
  uint8_t parts;
  uint64_t n = 0;
  if (!r.Varint(&s->version) || !r.U8(&parts)) return false;
  if ((parts & kCount) && !r.Varint(&a.count)) return false;
  if ((parts & kNumbers) &&
      !(r.Varint(&a.numbers) && GetDouble(r, &a.sum) && GetDouble(r, &a.min) && GetDouble(r, &a.max))) {
    return false;
  }
  if ((parts & kFirst) && !GetObservation(r, &a.first.emplace())) return false;
  if ((parts & kLast) && !GetObservation(r, &a.last.emplace())) return false;
  if (parts & kValues) {
    if (!r.Varint(&n) || n > kMaxDistinctValues) return false;
    for (uint64_t i = 0; i < n; ++i) {
      std::string v;
      uint64_t count;
      if (!r.Bytes(&v) || !r.Varint(&count)) return false;
      a.values.emplace_hint(a.values.end(), std::move(v), count);
    }
  }
  a.values_overflow = (parts & kOverflow) != 0;
  if (parts & kHours) {
    if (!r.Varint(&n) || n > kHourSlots) return false;
    a.hours.resize(kHourSlots);
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t slot, count;
      if (!r.Varint(&slot) || !r.Varint(&count) || slot >= kHourSlots) return false;
      a.hours[slot] = static_cast<uint32_t>(count);
    }
  }
  if (parts & kWindow) {
    if (!r.Varint(&n) || n > kMaxWindowEntries) return false;
    s->entries.resize(n);
    for (Observation& o : s->entries) {
      if (!GetObservation(r, &o)) return false;
    }
    if (!r.Varint(&s->dropped)) return false;
  }
  return true;
}

}  // namespace rapport::profile

#include "tools/simulate/world.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "rapport/base/check.h"

namespace rapport::simulate {

namespace json = boost::json;

uint64_t Random::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double Random::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

uint64_t Random::Below(uint64_t n) { return Next() % n; }

size_t Random::Weighted(const double* weights, size_t n) {
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += weights[i];
  double x = Uniform() * total;
  for (size_t i = 0; i < n; ++i) {
    if (x < weights[i]) return i;
    x -= weights[i];
  }
  return n - 1;
}

namespace {

constexpr std::array<const char*, 12> kFirstNl = {"Anouk", "Daan",  "Sanne", "Bram", "Lotte", "Thijs",
                                                  "Fleur", "Jesse", "Noor",  "Sem",  "Iris",  "Lucas"};
constexpr std::array<const char*, 12> kFirstEn = {"Olivia", "James", "Amelia", "Oliver", "Isla", "George",
                                                  "Ava",    "Harry", "Mia",    "Jack",   "Emily", "Noah"};
constexpr std::array<const char*, 10> kLastNl = {"de Jong", "Jansen", "de Vries", "van den Berg", "Bakker",
                                                 "Visser",  "Smit",   "Meijer",   "de Boer",      "Mulder"};
constexpr std::array<const char*, 10> kLastEn = {"Smith", "Jones",  "Taylor", "Brown", "Williams",
                                                 "Wilson", "Evans", "Thomas", "Roberts", "Walker"};

// Items in each language, by category.
constexpr std::array<const char*, kCategories> kItemEn = {"boiler", "thermostat", "radiator", "filter", "toolkit"};
constexpr std::array<const char*, kCategories> kItemNl = {"cv-ketel", "thermostaat", "radiator", "filter", "gereedschapset"};

// Message templates; {item} is replaced. Written for this simulator.
constexpr std::array<const char*, 4> kNegativeEn = {
    "My {item} arrived days late and nobody told me. Really disappointed.",
    "The payment failed again, this is so frustrating.",
    "Still no answer about my {item}. Terrible service.",
    "The {item} stopped working after a week. Not happy at all."};
constexpr std::array<const char*, 4> kNegativeNl = {
    "Mijn {item} kwam dagen te laat en niemand liet iets weten. Erg teleurgesteld.",
    "De betaling is weer mislukt, heel vervelend.",
    "Nog steeds geen antwoord over mijn {item}. Slechte service.",
    "De {item} deed het na een week al niet meer. Helemaal niet tevreden."};
constexpr std::array<const char*, 3> kPositiveEn = {
    "Thanks for sorting out my {item} so quickly, great service!",
    "The engineer was friendly and fast. Very happy with my {item}.",
    "Love the new {item}, it works perfectly."};
constexpr std::array<const char*, 3> kPositiveNl = {
    "Bedankt dat jullie mijn {item} zo snel hebben geregeld, top service!",
    "De monteur was vriendelijk en snel. Heel blij met mijn {item}.",
    "Mijn nieuwe {item} werkt perfect, echt fijn."};

// How likely a session starts in each local hour (people sleep at night).
constexpr std::array<double, 24> kHourWeight = {0.05, 0.02, 0.01, 0.01, 0.01, 0.03, 0.2, 0.6,
                                                0.8,  0.9,  1.0,  1.0,  1.2,  1.0,  0.9, 0.9,
                                                1.0,  1.2,  1.5,  1.8,  2.0,  1.8,  1.2, 0.4};
double HourWeightSum() {
  double s = 0;
  for (double w : kHourWeight) s += w;
  return s;
}

std::string Replace(std::string text, const std::string& item) {
  const size_t at = text.find("{item}");
  if (at != std::string::npos) text.replace(at, 6, item);
  return text;
}

std::string Hex(uint64_t v, int digits) { return fmt::format("{:0{}x}", v, digits); }

int LocalHour(const Customer& c, base::Micros utc) {
  const base::Micros hour = utc / (3600 * base::kMicrosPerSecond);
  return static_cast<int>(((hour + c.utc_offset_hours) % 24 + 24) % 24);
}

bool InQuietHours(const Customer& c, int local) {
  return c.quiet_from > c.quiet_until ? (local >= c.quiet_from || local < c.quiet_until)
                                      : (local >= c.quiet_from && local < c.quiet_until);
}

}  // namespace

World::World(WorldOptions options) : options_(options), random_(options.seed) {
  if (options_.start == 0) options_.start = base::ParseIso8601("2026-01-05T00:00:00Z").value();
  customers_.resize(options_.customers);
  days_.resize(options_.days);
  sent_.resize(options_.customers);
  sent_seen_.resize(options_.customers);
  parent_.resize(options_.customers);
  int64_t household_laptop = -1;  // a laptop waiting for a second person
  for (uint32_t i = 0; i < options_.customers; ++i) {
    Customer& c = customers_[i];
    c.index = i;
    const bool dutch = random_.Chance(0.6);
    c.language = dutch ? "nl" : "en";
    c.locale = dutch ? (random_.Chance(0.8) ? "nl-NL" : "nl-BE") : "en-GB";
    c.utc_offset_hours = c.locale == "en-GB" ? 0 : 1;
    c.first_name = dutch ? kFirstNl[random_.Below(kFirstNl.size())] : kFirstEn[random_.Below(kFirstEn.size())];
    c.last_name = dutch ? kLastNl[random_.Below(kLastNl.size())] : kLastEn[random_.Below(kLastEn.size())];
    c.user_id = fmt::format("cust-{}", Hex(random_.Next(), 12));
    std::string local = c.first_name + "." + c.last_name;
    std::erase(local, ' ');
    std::transform(local.begin(), local.end(), local.begin(), [](unsigned char ch) { return std::tolower(ch); });
    // Numbers unique inside a world (7919 is prime to 10^k) and different for another seed, so
    // two worlds sent to one workspace do not share addresses.
    const uint64_t unique = i * 7919ull + options_.seed * 104729ull;
    c.email = fmt::format("{}{}@example.{}", local, unique % 1000000, dutch ? "nl" : "co.uk");
    if (random_.Chance(0.7)) {
      const uint64_t n = unique % 100000000;
      c.phone = c.locale == "en-GB"   ? fmt::format("+44 7{:03} {:06}", n / 1000000 % 1000, n % 1000000)
                : c.locale == "nl-BE" ? fmt::format("+32 4{:02} {:02} {:02} {:02}", n / 1000000, n / 10000 % 100,
                                                    n / 100 % 100, n % 100)
                                      : fmt::format("+31 6 {:04} {:04}", n / 10000, n % 10000);
    }
    c.crm_id = fmt::format("crm-{}", Hex(random_.Next(), 10));
    Random consent(options_.seed * 0x9E3779B97F4A7C15ull + i);
    c.grants_personalization = consent.Chance(0.8);
    c.grants_marketing = consent.Chance(0.55);
    c.grants_proactive_service = consent.Chance(0.7);
    c.grants_location = consent.Chance(0.3);
    double total = 0;
    for (double& t : c.taste) total += (t = -std::log(1 - random_.Uniform()));  // Dirichlet(1…1)
    for (double& t : c.taste) t /= total;
    c.price_sensitivity = random_.Uniform();
    c.preferred = static_cast<Channel>(random_.Below(4));
    c.disliked = static_cast<Channel>((static_cast<int>(c.preferred) + 1 + random_.Below(3)) % 4);
    c.quiet_from = 21 + static_cast<int>(random_.Below(3));
    c.quiet_until = 7 + static_cast<int>(random_.Below(3));
    c.sessions_per_day = 0.2 + 1.0 * random_.Uniform();
    c.login_chance = 0.5 + 0.45 * random_.Uniform();
    c.registers_on_day = random_.Chance(0.7) ? 0 : static_cast<uint32_t>(random_.Below(std::max(1u, options_.days / 2)));
    c.churn_hazard = 0.001 + 0.003 * random_.Uniform();
    const uint32_t ndevices = 1 + static_cast<uint32_t>(random_.Weighted(std::array<double, 3>{0.4, 0.45, 0.15}));
    for (uint32_t d = 0; d < ndevices; ++d) {
      if (d == 1 && household_laptop >= 0 && random_.Chance(0.5)) {
        devices_[static_cast<size_t>(household_laptop)].shared = true;
        c.devices.push_back(static_cast<uint32_t>(household_laptop));
        household_laptop = -1;
        continue;
      }
      Device dev;
      static constexpr std::array<const char*, 3> kKinds = {"phone", "laptop", "tablet"};
      dev.kind = kKinds[d];
      dev.anonymous_id = fmt::format("anon-{}", Hex(random_.Next(), 16));
      dev.device_id = fmt::format("dev-{}", Hex(random_.Next(), 16));
      c.devices.push_back(static_cast<uint32_t>(devices_.size()));
      if (dev.kind == std::string("laptop") && random_.Chance(0.06)) {
        household_laptop = static_cast<int64_t>(devices_.size());
      }
      devices_.push_back(std::move(dev));
    }
    if (random_.Chance(0.25)) {
      c.boiler_id = fmt::format("boiler-{}", Hex(random_.Next(), 10));
      // Most boilers outlive the run; some fail inside it.
      c.boiler_fails_on_day = 5 + static_cast<uint32_t>(random_.Below(options_.days * 3 + 1));
    }
  }
}

DayCounts& World::DayOf(base::Micros at) {
  const base::Micros day = (at - options_.start) / base::kMicrosPerDay;
  RAPPORT_DCHECK(at >= options_.start && day < static_cast<base::Micros>(days_.size()));
  return days_[static_cast<size_t>(day)];
}

uint64_t DayCounts::events() const {
  uint64_t n = 0;
  for (const auto& [kind, count] : by_kind) n += count;
  return n;
}

void DayCounts::Add(const DayCounts& other) {
  for (const auto& [kind, count] : other.by_kind) by_kind[kind] += count;
  messages_positive += other.messages_positive;
  messages_negative += other.messages_negative;
  late_deliveries += other.late_deliveries;
  churned += other.churned;
}

DayCounts World::totals() const {
  DayCounts sum;
  for (const DayCounts& d : days_) sum.Add(d);
  return sum;
}

std::string World::NextMessageId() {
  return fmt::format("sim-{}-{}", options_.seed, next_message_++);
}

uint32_t World::Sent(const Customer& c, const std::string& type, const std::string& value) {
  auto [it, added] = sent_seen_[c.index].emplace(type + ":" + value, static_cast<uint32_t>(sent_[c.index].size()));
  if (added) {
    sent_[c.index].emplace_back(type, value);
    parent_[c.index].push_back(it->second);
  }
  return it->second;
}

uint32_t World::Root(uint32_t customer, uint32_t i) const {
  const std::vector<uint32_t>& parent = parent_[customer];
  while (parent[i] != i) i = parent[i];
  return i;
}

void World::Link(const Customer& c, uint32_t a, uint32_t b) {
  a = Root(c.index, a);
  b = Root(c.index, b);
  if (a != b) parent_[c.index][std::max(a, b)] = std::min(a, b);
}

std::vector<std::vector<uint32_t>> World::evidence() const {
  std::vector<std::vector<uint32_t>> out(sent_.size());
  for (uint32_t c = 0; c < sent_.size(); ++c) {
    for (uint32_t i = 0; i < sent_[c].size(); ++i) out[c].push_back(Root(c, i));
  }
  return out;
}

Message World::Compose(const Customer& c, int sentiment, size_t cat) {
  const bool nl = c.language == "nl";
  const std::string item = nl ? kItemNl[cat] : kItemEn[cat];
  std::string text;
  if (sentiment < 0) {
    text = nl ? kNegativeNl[random_.Below(kNegativeNl.size())] : kNegativeEn[random_.Below(kNegativeEn.size())];
  } else {
    text = nl ? kPositiveNl[random_.Below(kPositiveNl.size())] : kPositiveEn[random_.Below(kPositiveEn.size())];
  }
  return Message{c.language, Replace(text, item), sentiment};
}

namespace {

// The fields every event of a customer's session shares.
struct SessionContext {
  const Customer* customer = nullptr;  // whose consent the event carries
  const Device* device = nullptr;      // null: a server-side event (no device)
  std::optional<std::string> user_id;  // once logged in
};

json::object Context(const SessionContext& s) {
  json::object ctx;
  if (s.device) {
    ctx["device"] = json::object{{"id", s.device->device_id}, {"type", s.device->kind}};
    ctx["userAgent"] = s.device->kind == "phone" ? "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)"
                                                 : "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";
  }
  const Customer& c = *s.customer;
  ctx["locale"] = c.locale;
  ctx["library"] = json::object{{"name", "rapport-sim"}, {"version", "1"}};
  ctx["consent"] = json::object{{"categoryPreferences", json::object{{"analytics", true},
                                                                     {"personalization", c.grants_personalization},
                                                                     {"marketing", c.grants_marketing},
                                                                     {"proactive_service", c.grants_proactive_service},
                                                                     {"location", c.grants_location}}}};
  return ctx;
}

}  // namespace

void World::Emit(std::vector<Event>& out, base::Micros at, const Customer& c, const std::string& kind,
                 const json::object& event, std::optional<Message> message) {
  ++DayOf(at).by_kind[kind];
  out.push_back(Event{at, c.index, json::serialize(event), std::move(message)});
}

void World::Track(std::vector<Event>& out, const Customer& c, base::Micros at, const char* name,
                  json::object properties, const Device* device, std::optional<Message> message) {
  json::object event{{"type", "track"}, {"messageId", NextMessageId()}, {"userId", c.user_id},
                     {"event", name}, {"properties", std::move(properties)}};
  event["context"] = Context(SessionContext{&c, device, c.user_id});
  event["timestamp"] = base::FormatIso8601(at);
  const uint32_t user = Sent(c, "user_id", c.user_id);
  if (device) Link(c, user, Sent(c, "device_id", device->device_id));
  Emit(out, at, c, name, event, std::move(message));
}

void World::SendMessage(std::vector<Event>& out, const Customer& c, base::Micros at, Message m) {
  ++(m.sentiment > 0 ? DayOf(at).messages_positive : DayOf(at).messages_negative);
  json::object properties{{"text", m.text}, {"channel", kChannelNames[static_cast<int>(c.preferred)]},
                          {"language", m.language}};
  Track(out, c, at, "Message Sent", std::move(properties), nullptr, std::move(m));
}

void World::Session(Customer& c, uint32_t day, base::Micros at, std::vector<Event>& out) {
  const Device& device = devices_[c.devices[random_.Below(c.devices.size())]];
  SessionContext s{&c, &device, std::nullopt};
  auto emit = [&](json::object event, const char* kind, bool back_office = false) {
    event["context"] = Context(s);
    if (back_office) {
      event["context"].as_object()["externalIds"] =
          json::array{json::object{{"id", c.crm_id}, {"type", "crm_id"}, {"collection", "users"}, {"encoding", "none"}}};
    }
    event["timestamp"] = base::FormatIso8601(at);
    if (s.user_id) event["userId"] = *s.user_id;
    event["anonymousId"] = device.anonymous_id;
    // The identifiers sent together are the evidence that they are one person.
    std::optional<uint32_t> user;
    if (s.user_id) user = Sent(c, "user_id", *s.user_id);
    if (!device.shared) {
      const uint32_t a = Sent(c, "anonymous_id", device.anonymous_id);
      const uint32_t d = Sent(c, "device_id", device.device_id);
      Link(c, a, d);
      if (user) Link(c, a, *user);
    }
    if (user && event.contains("traits")) {
      Link(c, *user, Sent(c, "email", c.email));
      if (c.phone) Link(c, *user, Sent(c, "phone", *c.phone));
    }
    // The shop's back office names its customer on orders.
    if (user && back_office) Link(c, *user, Sent(c, "crm_id", c.crm_id));
    Emit(out, at, c, kind, event);
    at += (5 + static_cast<base::Micros>(random_.Below(90))) * base::kMicrosPerSecond;
  };
  const size_t category = random_.Weighted(c.taste);
  const char* cat = kCategoryNames[category];
  // Browsing starts anonymous.
  const int views = 1 + static_cast<int>(random_.Below(4));
  for (int v = 0; v < views; ++v) {
    const uint64_t product = random_.Below(40);
    emit(json::object{{"type", "page"}, {"messageId", NextMessageId()}, {"name", "Product"},
                      {"properties", json::object{{"path", fmt::format("/{}/p-{}", cat, product)},
                                                  {"category", cat}}}},
         "page");
  }
  if (day >= c.registers_on_day && random_.Chance(c.login_chance)) {
    s.user_id = c.user_id;
    json::object traits{{"email", c.email}, {"firstName", c.first_name}, {"lastName", c.last_name},
                        {"language", c.language}};
    if (c.phone) traits["phone"] = *c.phone;
    emit(json::object{{"type", "identify"}, {"messageId", NextMessageId()}, {"traits", std::move(traits)}},
         "identify");
  }
  // Interest follows taste; a cheaper item tempts the price-sensitive.
  const double price = std::round((20 + 480 * random_.Uniform() * (1.2 - c.price_sensitivity)) * 100) / 100;
  const uint64_t product = random_.Below(40);
  emit(json::object{{"type", "track"}, {"messageId", NextMessageId()}, {"event", "Product Viewed"},
                    {"properties", json::object{{"product_id", fmt::format("p-{}", product)},
                                                {"category", cat}, {"price", price}}}},
       "Product Viewed");
  if (!random_.Chance(0.35 + 0.4 * c.taste[category])) return;
  emit(json::object{{"type", "track"}, {"messageId", NextMessageId()}, {"event", "Product Added"},
                    {"properties", json::object{{"product_id", fmt::format("p-{}", product)},
                                                {"category", cat}, {"price", price}}}},
       "Product Added");
  // Buying needs an account.
  if (!s.user_id || !random_.Chance(0.25 + 0.5 * c.taste[category] - 0.15 * c.price_sensitivity)) return;
  const std::string order = fmt::format("o-{}-{}", options_.seed, next_order_++);
  if (random_.Chance(0.05)) {
    emit(json::object{{"type", "track"}, {"messageId", NextMessageId()}, {"event", "Payment Failed"},
                      {"properties", json::object{{"order_id", order}, {"revenue", price}}}},
         "Payment Failed");
    ++c.unresolved_negatives;
    c.last_negative_at = at;
    c.churn_hazard += 0.004;
  }
  emit(json::object{{"type", "track"}, {"messageId", NextMessageId()}, {"event", "Order Completed"},
                    {"properties", json::object{{"order_id", order}, {"category", cat},
                                                {"revenue", price}, {"currency", "EUR"}}}},
       "Order Completed", /*back_office=*/true);
  const bool late = random_.Chance(0.12);
  pending_.push_back({at + (late ? 4 : 2) * base::kMicrosPerDay + static_cast<base::Micros>(random_.Below(8)) * 3600 * base::kMicrosPerSecond,
                      c.index, order, category, late});
}

void World::Daily(Customer& c, uint32_t day, base::Micros midnight) {
  std::vector<Event>& out = scheduled_;  // sent in the hour they happen
  if (c.churned_on_day) return;
  if (random_.Chance(std::min(0.5, c.churn_hazard + 0.01 * c.unresolved_negatives))) {
    c.churned_on_day = day;
    ++days_[day].churned;
    return;
  }
  // A support ticket about an earlier bad moment gets resolved, sometimes with thanks.
  if (c.unresolved_negatives > 0 && random_.Chance(0.3)) {
    --c.unresolved_negatives;
    c.churn_hazard = std::max(0.001, c.churn_hazard - 0.003);
    const base::Micros at = midnight + (10 + static_cast<base::Micros>(random_.Below(8))) * 3600 * base::kMicrosPerSecond;
    Track(out, c, at, "Ticket Resolved", json::object{{"minutes_to_resolve", 20 + random_.Below(300)}});
    if (random_.Chance(0.4)) {
      SendMessage(out, c, at + 600 * base::kMicrosPerSecond, Compose(c, +1, random_.Weighted(c.taste)));
    }
  }
  // The boiler reports once a day from its own device id; pressure sags and errors climb in
  // the ten days before it fails.
  if (c.boiler_id && !c.boiler_failed && day >= c.registers_on_day) {
    const base::Micros at = midnight + 3 * 3600 * base::kMicrosPerSecond + static_cast<base::Micros>(random_.Below(3600)) * base::kMicrosPerSecond;
    const int to_failure = static_cast<int>(c.boiler_fails_on_day) - static_cast<int>(day);
    const double wear = to_failure <= 10 ? (10 - std::max(0, to_failure)) / 10.0 : 0.0;
    const double pressure = std::round((1.5 - 0.9 * wear + 0.1 * (random_.Uniform() - 0.5)) * 100) / 100;
    const uint64_t errors = wear > 0 ? random_.Below(1 + static_cast<uint64_t>(wear * 6)) : (random_.Chance(0.05) ? 1 : 0);
    const Device boiler{"", *c.boiler_id, "boiler", false};
    const bool fails = to_failure <= 0;
    Track(out, c, at, fails ? "Boiler Failed" : "Boiler Telemetry",
          json::object{{"pressure_bar", pressure},
                       {"flow_temperature_c", std::round((62 - 8 * wear) * 10) / 10},
                       {"error_count", errors}},
          &boiler);
    if (fails) {
      c.boiler_failed = true;
      ++c.unresolved_negatives;
      c.last_negative_at = at;
      c.churn_hazard += 0.01;
    }
  }
}

double World::OfferAcceptance(uint32_t customer, size_t category, double price) const {
  const Customer& c = customers_.at(customer);
  if (c.churned_on_day || category >= kCategories) return 0;
  // Taste over the uniform share (1/5): 0 for a disliked category, up to ~0.6 for a favourite.
  const double taste = std::min(1.0, c.taste[category] * kCategories / 4);
  const double price_factor = 1 / (1 + c.price_sensitivity * std::max(0.0, price) / 100);
  return std::clamp(0.6 * taste * price_factor, 0.0, 1.0);
}

bool World::ContactAnnoys(uint32_t customer, Channel channel, base::Micros utc, int contacts_last_week) const {
  const Customer& c = customers_.at(customer);
  return InQuietHours(c, LocalHour(c, utc)) || channel == c.disliked || contacts_last_week >= 3;
}

double World::ContactResponse(uint32_t customer, Channel channel, base::Micros utc, int contacts_last_week) const {
  const Customer& c = customers_.at(customer);
  if (c.churned_on_day) return 0;
  double p = channel == c.preferred ? 0.3 : channel == c.disliked ? 0.02 : 0.1;
  if (InQuietHours(c, LocalHour(c, utc))) p *= 0.2;
  for (int extra = contacts_last_week - 2; extra > 0; --extra) p *= 0.5;
  return std::clamp(p, 0.0, 1.0);
}

bool World::HumanGesture(uint32_t customer, base::Micros utc) {
  Customer& c = customers_.at(customer);
  if (c.churned_on_day) return false;
  if (InQuietHours(c, LocalHour(c, utc))) {
    c.churn_hazard += 0.002;
    return false;
  }
  const bool well_timed = c.unresolved_negatives > 0 && c.last_negative_at <= utc &&
                          utc - c.last_negative_at <= 3 * base::kMicrosPerDay;
  if (!well_timed) return false;
  --c.unresolved_negatives;
  c.churn_hazard = std::max(0.001, c.churn_hazard - 0.006);
  return true;
}

std::vector<Event> World::Hour(uint32_t hour) {
  std::vector<Event> out;
  const uint32_t day = hour / 24;
  const base::Micros start = HourStart(hour);
  if (hour % 24 == 0) {
    for (Customer& c : customers_) Daily(c, day, start);
  }
  const base::Micros end = HourStart(hour + 1);
  // Today's later events whose hour has come, in the order they were made.
  auto due = std::stable_partition(scheduled_.begin(), scheduled_.end(),
                                   [end](const Event& e) { return e.timestamp < end; });
  std::move(scheduled_.begin(), due, std::back_inserter(out));
  scheduled_.erase(scheduled_.begin(), due);
  static const double kWeightSum = HourWeightSum();
  for (Customer& c : customers_) {
    if (c.churned_on_day) continue;
    if (!random_.Chance(c.sessions_per_day * kHourWeight[LocalHour(c, start)] / kWeightSum)) continue;
    const base::Micros at = start + static_cast<base::Micros>(random_.Below(2400)) * base::kMicrosPerSecond;
    Session(c, day, at, out);  // at most ~15 minutes: it ends inside the hour
  }
  // Deliveries due this hour; a late one hurts, and some say so.
  auto delivered = std::stable_partition(pending_.begin(), pending_.end(),
                                         [end](const Pending& p) { return p.at < end; });
  std::vector<Pending> now_due(std::make_move_iterator(pending_.begin()), std::make_move_iterator(delivered));
  pending_.erase(pending_.begin(), delivered);
  for (const Pending& p : now_due) {
    Customer& c = customers_[p.customer];
    Track(out, c, p.at, "Order Delivered", json::object{{"order_id", p.order_id}, {"late", p.late}});
    if (p.late) {
      ++DayOf(p.at).late_deliveries;
      ++c.unresolved_negatives;
      c.last_negative_at = p.at;
      c.churn_hazard += 0.004;
      if (!c.churned_on_day && random_.Chance(0.6)) {
        Message m = Compose(c, -1, p.category);
        const base::Micros at = p.at + (1 + static_cast<base::Micros>(random_.Below(50))) * 60 * base::kMicrosPerSecond;
        SendMessage(out, c, std::min(at, end - 1), std::move(m));
      }
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Event& a, const Event& b) { return a.timestamp < b.timestamp; });
  return out;
}

}  // namespace rapport::simulate

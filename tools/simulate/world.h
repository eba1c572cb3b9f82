// The simulated world: a customer base whose hidden truth (tastes, devices, time zones, moods,
// appliances that will fail) only the simulator knows, and the Segment events those customers'
// behaviour produces, hour by simulated hour. Pure and deterministic: the same options give
// the same customers and the same events, byte for byte (its own random generator and
// distributions; no std::*_distribution, whose output the standard leaves to the library; the
// C library's log() is the one dependency on the platform).
//
// Thread safety: a World is used by one thread.
#ifndef RAPPORT_TOOLS_SIMULATE_WORLD_H_
#define RAPPORT_TOOLS_SIMULATE_WORLD_H_

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "rapport/base/time.h"

namespace rapport::simulate {

// splitmix64: small, fast and the same everywhere.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  double Uniform();                     // [0, 1)
  bool Chance(double p) { return Uniform() < p; }
  uint64_t Below(uint64_t n);           // [0, n), n > 0
  // An index drawn with probability proportional to its weight (weights not all zero).
  size_t Weighted(const double* weights, size_t n);
  template <size_t N>
  size_t Weighted(const std::array<double, N>& w) { return Weighted(w.data(), N); }

 private:
  uint64_t state_;
};

struct WorldOptions {
  uint32_t customers = 200;
  uint32_t days = 14;
  uint64_t seed = 1;
  base::Micros start = 0;  // midnight UTC of the first day; 0: 2026-01-05T00:00:00Z
};

inline constexpr size_t kCategories = 5;
inline constexpr std::array<const char*, kCategories> kCategoryNames = {
    "boilers", "thermostats", "radiators", "filters", "tools"};
enum class Channel { kEmail, kSms, kPush, kPhone };
inline constexpr std::array<const char*, 4> kChannelNames = {"email", "sms", "push", "phone"};

struct Device {
  std::string anonymous_id;
  std::string device_id;
  std::string kind;     // "phone", "laptop", "tablet"
  bool shared = false;  // a household laptop: two customers browse on it
};

// What the engine never sees directly.
struct Customer {
  uint32_t index = 0;
  std::string user_id;
  std::string email;
  std::optional<std::string> phone;  // international format with spaces, given at login
  std::string crm_id;                // the shop's back office id, on orders (context.externalIds)
  std::string first_name, last_name;
  std::string language;  // "nl" or "en"
  std::string locale;    // e.g. "nl-NL"
  int utc_offset_hours = 1;
  int quiet_from = 22, quiet_until = 8;  // local hours
  std::array<double, kCategories> taste{};  // sums to 1
  double price_sensitivity = 0.5;           // 0: price does not matter, 1: only cheap
  Channel preferred = Channel::kEmail, disliked = Channel::kSms;
  std::vector<uint32_t> devices;  // indexes into World::devices()
  double sessions_per_day = 0.5;
  double login_chance = 0.6;  // per session on a device, once registered
  uint32_t registers_on_day = 0;
  // The journey: churn hazard rises with unresolved negative moments and falls after a
  // well-timed gesture.
  double churn_hazard = 0.002;
  int unresolved_negatives = 0;
  base::Micros last_negative_at = 0;  // the latest bad moment (0: none yet)
  std::optional<uint32_t> churned_on_day;
  // What the customer answered the site's consent banner, sent with every event in
  // context.consent.categoryPreferences. Everyone accepts analytics (so the engine stores all of
  // this world's events); the other purposes vary (drawn apart from the rest of the world, so
  // adding them changed no other draw).
  bool grants_personalization = true;
  bool grants_marketing = false;
  bool grants_proactive_service = true;
  bool grants_location = false;
  // A connected boiler: sends telemetry daily and fails on a hidden day.
  std::optional<std::string> boiler_id;
  uint32_t boiler_fails_on_day = 0;
  bool boiler_failed = false;
};

// A free-text message and the sentiment the world gave it (hidden from the engine).
struct Message {
  std::string language;
  std::string text;
  int sentiment = 0;  // +1 positive, -1 negative
};

// One Segment event, as the simulator sends it.
struct Event {
  base::Micros timestamp = 0;
  uint32_t customer = 0;
  std::string json;  // the whole message, with messageId and timestamp
  std::optional<Message> message;
};

// What happened on one day of the world, or (World::totals()) over every day so far.
struct DayCounts {
  std::map<std::string, uint64_t> by_kind;  // "page", "identify", "Order Completed", …
  uint64_t messages_positive = 0, messages_negative = 0;
  uint64_t late_deliveries = 0;  // "Order Delivered" events that came late
  uint64_t churned = 0;          // customers who left (no event tells the engine)

  uint64_t Of(const std::string& kind) const {
    auto it = by_kind.find(kind);
    return it == by_kind.end() ? 0 : it->second;
  }
  uint64_t events() const;
  void Add(const DayCounts& other);
};

class World {
 public:
  explicit World(WorldOptions options);

  const WorldOptions& options() const { return options_; }
  const std::vector<Customer>& customers() const { return customers_; }
  const std::vector<Device>& devices() const { return devices_; }
  // One entry per day of the world (days not yet simulated are empty), and their sum.
  const std::vector<DayCounts>& days() const { return days_; }
  DayCounts totals() const;

  // The events of simulated hour `hour` (0 = the first hour of the first day), in timestamp
  // order. Call for hours 0, 1, 2, … in turn: customers' state moves as they act.
  std::vector<Event> Hour(uint32_t hour);
  uint32_t hours() const { return options_.days * 24; }
  base::Micros HourStart(uint32_t hour) const {
    return options_.start + static_cast<base::Micros>(hour) * 3600 * base::kMicrosPerSecond;
  }

  // How a customer answers what the engine does, from their hidden traits; later phases ask
  // these when the engine decides and contacts. Probabilities in [0, 1].
  //
  // An offer of `category` at `price` (euros): taste for the category, dampened by price for
  // the price-sensitive; nobody who churned accepts.
  double OfferAcceptance(uint32_t customer, size_t category, double price) const;
  // A contact through `channel` at `utc` (the customer's local hour matters), given how many
  // contacts they had in the seven days before: the preferred channel works best, the disliked
  // one worst; quiet hours and more than three contacts a week annoy (lower, and fall further
  // with each extra contact).
  double ContactResponse(uint32_t customer, Channel channel, base::Micros utc, int contacts_last_week) const;
  // Whether a contact annoys: it arrives in quiet hours, through the disliked channel, or beyond
  // three a week.
  bool ContactAnnoys(uint32_t customer, Channel channel, base::Micros utc, int contacts_last_week) const;
  // A human gesture (a call, a personal note) to `customer` at `utc`, between two Hour() calls.
  // Well timed — an unresolved bad moment in the three days before, outside quiet hours — it
  // resolves that moment and lowers the churn hazard (0.006, to no less than 0.001); in quiet
  // hours it annoys (hazard +0.002); otherwise it changes nothing. Returns whether it was well
  // timed. Nobody who churned is reached.
  bool HumanGesture(uint32_t customer, base::Micros utc);

  // Every identifier the world sent for each customer so far, as (type, value) — the truth
  // identity resolution is measured against. A shared device's ids are left out (they truly
  // belong to two people).
  const std::vector<std::vector<std::pair<std::string, std::string>>>& sent_identifiers() const {
    return sent_;
  }
  // Parallel to sent_identifiers(): identifiers with the same number were linked by events
  // (sent together, directly or through others). Identifiers never linked to the rest of a
  // customer's cannot be resolved to them by any engine: a device they never logged in on.
  std::vector<std::vector<uint32_t>> evidence() const;

 private:
  struct Pending {  // something that happens later to a customer (a delivery)
    base::Micros at;
    uint32_t customer;
    std::string order_id;
    size_t category;
    bool late;
  };
  void Session(Customer& c, uint32_t day, base::Micros at, std::vector<Event>& out);
  void Daily(Customer& c, uint32_t day, base::Micros midnight);
  // Counts and appends an event of `kind` (a type or a track name).
  void Emit(std::vector<Event>& out, base::Micros at, const Customer& c, const std::string& kind,
            const boost::json::object& event, std::optional<Message> message = std::nullopt);
  // A track event from the customer's account, or from their appliance `device`, outside a
  // browsing session; its identifiers join the truth.
  void Track(std::vector<Event>& out, const Customer& c, base::Micros at, const char* name,
             boost::json::object properties, const Device* device = nullptr,
             std::optional<Message> message = std::nullopt);
  void SendMessage(std::vector<Event>& out, const Customer& c, base::Micros at, Message m);
  // Records an identifier the customer sent; returns its index in sent_identifiers()[customer].
  uint32_t Sent(const Customer& c, const std::string& type, const std::string& value);
  // Records that two of the customer's identifiers were sent in one event.
  void Link(const Customer& c, uint32_t a, uint32_t b);
  uint32_t Root(uint32_t customer, uint32_t i) const;
  DayCounts& DayOf(base::Micros at);
  std::string NextMessageId();
  Message Compose(const Customer& c, int sentiment, size_t category);

  WorldOptions options_;
  Random random_;
  std::vector<Customer> customers_;
  std::vector<Device> devices_;
  std::vector<Pending> pending_;
  std::vector<Event> scheduled_;  // events of today that happen in a later hour
  std::vector<std::vector<std::pair<std::string, std::string>>> sent_;
  std::vector<std::map<std::string, uint32_t>> sent_seen_;  // "type:value" → index in sent_
  std::vector<std::vector<uint32_t>> parent_;               // union-find over sent_, per customer
  uint64_t next_message_ = 0;
  uint64_t next_order_ = 0;
  std::vector<DayCounts> days_;
};

}  // namespace rapport::simulate

#endif  // RAPPORT_TOOLS_SIMULATE_WORLD_H_

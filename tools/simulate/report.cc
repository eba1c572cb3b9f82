#include "tools/simulate/report.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "rapport/base/status.h"
#include "tools/simulate/chart.h"

namespace rapport::simulate {

namespace {
uint64_t Pairs(uint64_t n) { return n * (n - (n > 0 ? 1 : 0)) / 2; }
}  // namespace

IdentityScore ScoreIdentity(
    const Identifiers& truth, const std::vector<std::vector<uint32_t>>& evidence,
    const std::function<std::optional<std::string>(const std::string&, const std::string&)>& profile_of) {
  IdentityScore s;
  std::map<std::pair<std::string, uint32_t>, uint64_t> cell;  // (profile, customer) → identifiers
  std::map<std::tuple<std::string, uint32_t, uint32_t>, uint64_t> linked_cell;  // … and evidence group
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> group;                     // (customer, group)
  std::map<std::string, uint64_t> per_profile;
  std::map<std::string, std::set<uint32_t>> customers_of;
  uint64_t unknown = 0;
  for (uint32_t c = 0; c < truth.size(); ++c) {
    if (truth[c].empty()) continue;
    ++s.customers;
    s.true_pairs += Pairs(truth[c].size());
    std::set<std::string> profiles;
    for (size_t i = 0; i < truth[c].size(); ++i) {
      const auto& [type, value] = truth[c][i];
      ++s.identifiers;
      std::optional<std::string> p = profile_of(type, value);
      // An unknown identifier is alone: a profile no other identifier shares.
      const std::string key = p ? *p : fmt::format("unknown-{}", unknown++);
      if (!p) ++s.not_found;
      ++cell[{key, c}];
      ++per_profile[key];
      customers_of[key].insert(c);
      profiles.insert(key);
      const uint32_t g = c < evidence.size() && i < evidence[c].size() ? evidence[c][i] : 0;
      ++linked_cell[{key, c, g}];
      ++group[{c, g}];
    }
    if (profiles.size() == 1) ++s.customers_on_one_profile;
  }
  for (const auto& [key, n] : cell) s.correct_pairs += Pairs(n);
  for (const auto& [key, n] : per_profile) s.merged_pairs += Pairs(n);
  for (const auto& [key, n] : linked_cell) s.correct_linkable_pairs += Pairs(n);
  for (const auto& [key, n] : group) s.linkable_pairs += Pairs(n);
  if (s.linkable_pairs) {
    s.recall_linkable = static_cast<double>(s.correct_linkable_pairs) / static_cast<double>(s.linkable_pairs);
  }
  for (const auto& [key, cs] : customers_of) s.profiles_mixing_customers += cs.size() > 1 ? 1 : 0;
  if (s.merged_pairs) s.precision = static_cast<double>(s.correct_pairs) / static_cast<double>(s.merged_pairs);
  if (s.true_pairs) s.recall = static_cast<double>(s.correct_pairs) / static_cast<double>(s.true_pairs);
  return s;
}

std::string ReportMarkdown(const World& world, const RunFacts& run, const std::optional<IdentityScore>& identity) {
  const WorldOptions& o = world.options();
  const DayCounts n = world.totals();
  std::string md;
  md += "# rapport-sim report\n\n";
  md += fmt::format("World: {} customers over {} days from {} (seed {}), against {}. {} events sent in {:.1f} s",
                    o.customers, o.days, base::FormatIso8601(o.start), o.seed, run.target, run.events_sent,
                    run.seconds);
  md += run.events_rejected ? fmt::format("; **{} answered but not stored**.\n\n", run.events_rejected) : ".\n\n";
  md += "## What happened (the simulator's truth)\n\n";
  md += "![Events per day](events-per-day.png)\n\n![Moments that matter, per day](moments-per-day.png)\n\n";
  md += "| event | count |\n|---|---|\n";
  for (const auto& [kind, count] : n.by_kind) md += fmt::format("| {} | {} |\n", kind, count);
  uint64_t shared = 0, boilers = 0;
  for (const Device& d : world.devices()) shared += d.shared ? 1 : 0;
  for (const Customer& c : world.customers()) boilers += c.boiler_id ? 1 : 0;
  md += fmt::format(
      "\nMessages with a sentiment: {} positive, {} negative (Dutch and English). Customers who "
      "churned: {}. Connected boilers: {}, of which {} failed. Household laptops shared by two "
      "customers: {}.\n\n",
      n.messages_positive, n.messages_negative, n.churned, boilers, n.Of("Boiler Failed"), shared);
  if (run.load) {
    const LoadResult& l = *run.load;
    md += "## Load\n\n";
    md += fmt::format(
        "The stream was prepared in full, then sent as history over {} connections {}.\n\n",
        run.load_connections,
        run.load_rate > 0 ? fmt::format("at {:.0f} events/s (open loop: latency counts from each request's "
                                        "scheduled start)", run.load_rate)
                          : std::string("as fast as the engine answered (closed loop)"));
    md += "| figure | value |\n|---|---|\n";
    md += fmt::format("| events stored per second | {:.0f} |\n", l.events_per_second());
    md += fmt::format("| requests (events each: up to the batch size) | {} |\n", l.requests);
    md += fmt::format("| answered 429/503 and retried | {} |\n", l.retries);
    md += fmt::format("| latency p50 / p99 / p99.9 | {:.2f} / {:.2f} / {:.2f} ms |\n\n", l.p50_ms, l.p99_ms,
                      l.p999_ms);
    md += "![Latency](load-latency.png)\n\n";
  }
  if (!identity) return md;
  const IdentityScore& id = *identity;
  md += "## Identity resolution\n\n";
  md += "Pairs of identifiers one customer sent (user id, email, phone, back office id, each device's anonymous id and device id, "
        "a boiler's device id), against the pairs the engine put on one profile. A shared laptop's "
        "identifiers are left out: they belong to two people.\n\n";
  md += "![Identity resolution](identity.png)\n\n";
  md += "| figure | value |\n|---|---|\n";
  md += fmt::format("| precision (merged pairs that are truly one customer) | {:.4f} |\n", id.precision);
  md += fmt::format("| recall (true pairs the engine merged) | {:.4f} |\n", id.recall);
  md += fmt::format("| recall of linkable pairs (sent together, directly or through others) | {:.4f} ({} of {}) |\n",
                    id.recall_linkable, id.correct_linkable_pairs, id.linkable_pairs);
  md += fmt::format("| identifiers checked | {} ({} unknown to the engine) |\n", id.identifiers, id.not_found);
  md += fmt::format("| customers on exactly one profile | {} of {} |\n", id.customers_on_one_profile, id.customers);
  md += fmt::format("| profiles mixing two or more customers | {} |\n", id.profiles_mixing_customers);
  md += "\nA device on which a customer never logged in during the run cannot be linked to them by any "
        "engine: it lowers recall, not the recall of linkable pairs.\n";
  return md;
}

std::string FiguresJson(const World& world, const RunFacts& run, const std::optional<IdentityScore>& identity) {
  namespace json = boost::json;
  const DayCounts n = world.totals();
  json::object by_kind;
  for (const auto& [kind, count] : n.by_kind) by_kind[kind] = count;
  json::object o{
      {"customers", world.options().customers},
      {"days", world.options().days},
      {"seed", world.options().seed},
      {"events_sent", run.events_sent},
      {"events_rejected", run.events_rejected},
      {"events_by_kind", std::move(by_kind)},
      {"messages", json::object{{"positive", n.messages_positive}, {"negative", n.messages_negative}}},
      {"churned", n.churned},
      {"boiler_failures", n.Of("Boiler Failed")}};
  if (identity) {
    const IdentityScore& id = *identity;
    o["identity"] = json::object{{"precision", id.precision},
                                 {"recall", id.recall},
                                 {"recall_linkable", id.recall_linkable},
                                 {"linkable_pairs", id.linkable_pairs},
                                 {"correct_linkable_pairs", id.correct_linkable_pairs},
                                 {"identifiers", id.identifiers},
                                 {"not_found", id.not_found},
                                 {"true_pairs", id.true_pairs},
                                 {"merged_pairs", id.merged_pairs},
                                 {"correct_pairs", id.correct_pairs},
                                 {"customers", id.customers},
                                 {"customers_on_one_profile", id.customers_on_one_profile},
                                 {"profiles_mixing_customers", id.profiles_mixing_customers}};
  }
  if (run.load) {
    const LoadResult& l = *run.load;
    o["load"] = json::object{{"rate_asked", run.load_rate},
                             {"connections", run.load_connections},
                             {"events_per_second", l.events_per_second()},
                             {"events", l.events},
                             {"rejected", l.rejected},
                             {"requests", l.requests},
                             {"retries", l.retries},
                             {"seconds", l.seconds},
                             {"p50_ms", l.p50_ms},
                             {"p99_ms", l.p99_ms},
                             {"p999_ms", l.p999_ms}};
  }
  return json::serialize(o) + "\n";
}

namespace {

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) return absl::DataLossError(fmt::format("cannot write {}", path));
  return absl::OkStatus();
}

// A daily series of one kind of event.
Series Daily(const World& world, const std::string& name, const std::string& kind) {
  Series s{name, {}};
  for (const DayCounts& d : world.days()) s.values.push_back(static_cast<double>(d.Of(kind)));
  return s;
}

Series Daily(const World& world, const std::string& name, uint64_t DayCounts::*field) {
  Series s{name, {}};
  for (const DayCounts& d : world.days()) s.values.push_back(static_cast<double>(d.*field));
  return s;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> WriteReport(const std::string& dir, const World& world, const RunFacts& run,
                                                     const std::optional<IdentityScore>& identity) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InvalidArgumentError(fmt::format("cannot create the report directory {}: {}", dir, ec.message()));
  std::vector<std::string> written;
  auto path = [&](const char* name) { return written.emplace_back(dir + "/" + name); };
  RAPPORT_RETURN_IF_ERROR(WriteText(path("report.md"), ReportMarkdown(world, run, identity)));
  RAPPORT_RETURN_IF_ERROR(WriteText(path("figures.json"), FiguresJson(world, run, identity)));
  RAPPORT_RETURN_IF_ERROR(WriteLineChart(path("events-per-day.png"),
                                         {"Events per day", "day of the run", "events"},
                                         {Daily(world, "page views", "page"), Daily(world, "products viewed", "Product Viewed"),
                                          Daily(world, "logins (identify)", "identify"),
                                          Daily(world, "orders", "Order Completed"),
                                          Daily(world, "boiler telemetry", "Boiler Telemetry")}));
  RAPPORT_RETURN_IF_ERROR(WriteLineChart(
      path("moments-per-day.png"), {"Moments that matter, per day", "day of the run", "count"},
      {Daily(world, "late deliveries", &DayCounts::late_deliveries),
       Daily(world, "failed payments", "Payment Failed"),
       Daily(world, "negative messages", &DayCounts::messages_negative),
       Daily(world, "positive messages", &DayCounts::messages_positive), Daily(world, "churned", &DayCounts::churned),
       Daily(world, "boiler failures", "Boiler Failed")}));
  if (identity) {
    const double one_profile = identity->customers ? static_cast<double>(identity->customers_on_one_profile) /
                                                         static_cast<double>(identity->customers)
                                                   : 0;
    RAPPORT_RETURN_IF_ERROR(WriteBarChart(path("identity.png"), {"Identity resolution against the truth", "", ""},
                                          {{"precision", identity->precision},
                                           {"recall", identity->recall},
                                           {"recall of linkable pairs", identity->recall_linkable},
                                           {"customers on one profile", one_profile}},
                                          1.0, 4));
  }
  if (run.load) {
    const LoadResult& l = *run.load;
    RAPPORT_RETURN_IF_ERROR(WriteBarChart(path("load-latency.png"),
                                          {run.load_rate > 0
                                               ? fmt::format("Latency of /v1/batch at {:.0f} events/s (asked)", run.load_rate)
                                               : fmt::format("Latency of /v1/batch at the peak, {:.0f} events/s",
                                                             l.events_per_second()),
                                           "milliseconds", ""},
                                          {{"p50", l.p50_ms}, {"p99", l.p99_ms}, {"p99.9", l.p999_ms}},
                                          std::max(1.0, l.p999_ms * 1.15), 2));
  }
  return written;
}

}  // namespace rapport::simulate

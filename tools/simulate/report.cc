#include "tools/simulate/report.h"

#include <map>
#include <set>
#include <tuple>

#include <boost/json.hpp>
#include <fmt/format.h>

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

std::string ReportMarkdown(const World& world, const RunFacts& run, const IdentityScore& id) {
  const WorldOptions& o = world.options();
  const WorldCounts& n = world.counts();
  std::string md;
  md += "# rapport-sim report\n\n";
  md += fmt::format("World: {} customers over {} days from {} (seed {}), against {}. {} events sent in {:.1f} s",
                    o.customers, o.days, base::FormatIso8601(o.start), o.seed, run.target, run.events_sent,
                    run.seconds);
  md += run.events_rejected ? fmt::format("; **{} answered but not stored**.\n\n", run.events_rejected) : ".\n\n";
  md += "## What happened (the simulator's truth)\n\n| event | count |\n|---|---|\n";
  for (const auto& [kind, count] : n.by_kind) md += fmt::format("| {} | {} |\n", kind, count);
  uint64_t shared = 0, boilers = 0;
  for (const Device& d : world.devices()) shared += d.shared ? 1 : 0;
  for (const Customer& c : world.customers()) boilers += c.boiler_id ? 1 : 0;
  md += fmt::format(
      "\nMessages with a sentiment: {} positive, {} negative (Dutch and English). Customers who "
      "churned: {}. Connected boilers: {}, of which {} failed. Household laptops shared by two "
      "customers: {}.\n\n",
      n.messages_positive, n.messages_negative, n.churned, boilers, n.boiler_failures, shared);
  md += "## Identity resolution\n\n";
  md += "Pairs of identifiers one customer sent (user id, email, each device's anonymous id and device id, "
        "a boiler's device id), against the pairs the engine put on one profile. A shared laptop's "
        "identifiers are left out: they belong to two people.\n\n";
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

std::string FiguresJson(const World& world, const RunFacts& run, const IdentityScore& id) {
  namespace json = boost::json;
  const WorldCounts& n = world.counts();
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
      {"boiler_failures", n.boiler_failures},
      {"identity", json::object{{"precision", id.precision},
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
                                {"profiles_mixing_customers", id.profiles_mixing_customers}}}};
  return json::serialize(o) + "\n";
}

}  // namespace rapport::simulate

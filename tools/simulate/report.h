// What the simulator knows against what the engine knows: the figures of the run's report.
#ifndef RAPPORT_TOOLS_SIMULATE_REPORT_H_
#define RAPPORT_TOOLS_SIMULATE_REPORT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/simulate/load.h"
#include "tools/simulate/world.h"

namespace rapport::simulate {

// Identity resolution scored over pairs of identifiers: a pair is "true" when one customer sent
// both, "merged" when the engine puts both on one profile. Identifiers the engine does not know
// count as a profile of their own.
struct IdentityScore {
  uint64_t identifiers = 0;
  uint64_t not_found = 0;
  uint64_t true_pairs = 0, merged_pairs = 0, correct_pairs = 0;
  double precision = 1, recall = 1;  // 1 when there is nothing to get wrong
  // Recall over the pairs events linked (sent together, directly or through others): what an
  // engine can know. A device never logged in on counts in `recall`, not here.
  uint64_t linkable_pairs = 0, correct_linkable_pairs = 0;
  double recall_linkable = 1;
  uint64_t customers = 0;
  uint64_t customers_on_one_profile = 0;  // every identifier of theirs on one profile
  uint64_t profiles_mixing_customers = 0; // profiles holding identifiers of two or more customers
};

using Identifiers = std::vector<std::vector<std::pair<std::string, std::string>>>;
// `profile_of(type, value)`: the engine's profile id of an identifier, nullopt if none.
// `evidence` (may be empty): parallel to `truth`, World::evidence().
IdentityScore ScoreIdentity(
    const Identifiers& truth, const std::vector<std::vector<uint32_t>>& evidence,
    const std::function<std::optional<std::string>(const std::string&, const std::string&)>& profile_of);

struct RunFacts {
  std::string target;
  uint64_t events_sent = 0;
  uint64_t events_rejected = 0;  // answered but not stored (reasons in the log)
  double seconds = 0;
  // Load mode (--load): what was asked and what the engine sustained.
  std::optional<LoadResult> load;
  double load_rate = 0;  // events/s asked; 0: closed loop
  int load_connections = 0;
};

// The report: `dir`/report.md for people and `dir`/figures.json for tests and tools. Without
// an engine (--dry-run) there is no identity score.
std::string ReportMarkdown(const World& world, const RunFacts& run, const std::optional<IdentityScore>& identity);
std::string FiguresJson(const World& world, const RunFacts& run, const std::optional<IdentityScore>& identity);

// Creates `dir` if needed and writes report.md, figures.json and the charts report.md shows
// (events-per-day.png, moments-per-day.png, identity.png with a score, load-latency.png in load
// mode). Returns the files written.
absl::StatusOr<std::vector<std::string>> WriteReport(const std::string& dir, const World& world, const RunFacts& run,
                                                     const std::optional<IdentityScore>& identity);

}  // namespace rapport::simulate

#endif  // RAPPORT_TOOLS_SIMULATE_REPORT_H_

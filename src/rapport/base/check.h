// Broken invariants, in three severities (input from the network is never asserted: it is
// validated and answered with an error):
//   RAPPORT_DCHECK(cond)  debug builds only; aborts.
//   RAPPORT_CHECK(cond)   always; aborts with file and line. For invariants whose breach would
//                         corrupt stored data if execution went on.
//   RAPPORT_BUG(message)  release-safe: logs, counts in rapport_bugs_total, and continues. For
//                         invariants whose breach is recoverable (a request fails, not the store).
#ifndef RAPPORT_BASE_CHECK_H_
#define RAPPORT_BASE_CHECK_H_

#include <cstdint>
#include <string_view>

namespace rapport::base {
namespace internal {
[[noreturn]] void CheckFailed(const char* condition, const char* file, int line);
void ReportBug(std::string_view message, const char* file, int line);
}  // namespace internal

// How many RAPPORT_BUG reports this process has made (exported as rapport_bugs_total).
uint64_t BugCount();
}  // namespace rapport::base

#define RAPPORT_CHECK(cond) \
  ((cond) ? (void)0 : ::rapport::base::internal::CheckFailed(#cond, __FILE__, __LINE__))

#ifdef NDEBUG
#define RAPPORT_DCHECK(cond) ((void)0)
#else
#define RAPPORT_DCHECK(cond) RAPPORT_CHECK(cond)
#endif

#define RAPPORT_BUG(message) ::rapport::base::internal::ReportBug((message), __FILE__, __LINE__)

#endif  // RAPPORT_BASE_CHECK_H_

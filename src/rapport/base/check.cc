#include "rapport/base/check.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include <spdlog/spdlog.h>

namespace rapport::base {
namespace {
std::atomic<uint64_t> bug_count{0};
}

uint64_t BugCount() { return bug_count.load(std::memory_order_relaxed); }

namespace internal {
void CheckFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "rapport: CHECK failed: %s at %s:%d\n", condition, file, line);
  std::fflush(stderr);
  std::abort();
}

void ReportBug(std::string_view message, const char* file, int line) {
  bug_count.fetch_add(1, std::memory_order_relaxed);
  spdlog::error("BUG: {} at {}:{}", message, file, line);
}
}  // namespace internal
}  // namespace rapport::base

// Status propagation macros. Debian's Abseil ships Status/StatusOr but no macros to propagate
// them; these are the project's. Our code does not throw: expected failures are Status values.
#ifndef RAPPORT_BASE_STATUS_H_
#define RAPPORT_BASE_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the current function with `expr`'s Status if it is not OK.
#define RAPPORT_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::absl::Status rapport_status_ = (expr);           \
    if (!rapport_status_.ok()) return rapport_status_; \
  } while (0)

// Evaluates `expr` (a StatusOr<T>); on error returns its Status, else moves the value into `lhs`
// (which may be a declaration: `RAPPORT_ASSIGN_OR_RETURN(auto x, Make());`).
#define RAPPORT_ASSIGN_OR_RETURN(lhs, expr) \
  RAPPORT_ASSIGN_OR_RETURN_IMPL_(RAPPORT_STATUS_CONCAT_(rapport_statusor_, __LINE__), lhs, expr)

#define RAPPORT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).status();       \
  lhs = *std::move(tmp)

#define RAPPORT_STATUS_CONCAT_INNER_(a, b) a##b
#define RAPPORT_STATUS_CONCAT_(a, b) RAPPORT_STATUS_CONCAT_INNER_(a, b)

#endif  // RAPPORT_BASE_STATUS_H_

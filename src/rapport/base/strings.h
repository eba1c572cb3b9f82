// Debian 12's Abseil is built with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0),
// which std::string_view does not convert to. Our APIs take std::string_view; this is the one
// bridge used where an Abseil function wants its own type.
#ifndef RAPPORT_BASE_STRINGS_H_
#define RAPPORT_BASE_STRINGS_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace rapport::base {

inline absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view AsStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace rapport::base

#endif  // RAPPORT_BASE_STRINGS_H_

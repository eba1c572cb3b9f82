#include "rapport/base/cursor.h"

#include "absl/strings/escaping.h"
#include "rapport/base/error.h"
#include "rapport/base/strings.h"

namespace rapport::base {

std::string EncodeCursor(std::string_view key_suffix) {
  std::string out;
  absl::WebSafeBase64Escape(AsAbsl(key_suffix), &out);
  return out;
}

absl::StatusOr<std::string> DecodeCursor(std::string_view cursor, size_t suffix_bytes) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(AsAbsl(cursor), &raw) || (suffix_bytes ? raw.size() != suffix_bytes : raw.empty())) {
    return InvalidField("invalid_cursor", "cursor",
                        "cursor is not one this server issued for this listing");
  }
  return raw;
}

}  // namespace rapport::base

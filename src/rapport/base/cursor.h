// Cursors of paged listings: the key suffix of the last item returned, in URL-safe base64. A
// listing resumes after that key; a cursor that does not decode to a suffix of the listing's
// size is answered 400 invalid_cursor.
#ifndef RAPPORT_BASE_CURSOR_H_
#define RAPPORT_BASE_CURSOR_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rapport::base {

std::string EncodeCursor(std::string_view key_suffix);

// The key suffix in `cursor`; InvalidArgument (code invalid_cursor, field "cursor") unless it
// holds exactly `suffix_bytes` bytes (any number but none when `suffix_bytes` is 0).
absl::StatusOr<std::string> DecodeCursor(std::string_view cursor, size_t suffix_bytes);

}  // namespace rapport::base

#endif  // RAPPORT_BASE_CURSOR_H_

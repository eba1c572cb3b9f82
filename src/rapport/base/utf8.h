#ifndef RAPPORT_BASE_UTF8_H_
#define RAPPORT_BASE_UTF8_H_

#include <cstddef>
#include <optional>
#include <string_view>

namespace rapport::base {

// Returns the byte offset of the first byte that is not part of a well-formed UTF-8 sequence
// (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), or nullopt if `text` is
// entirely valid.
std::optional<size_t> FindInvalidUtf8(std::string_view text);

}  // namespace rapport::base

#endif  // RAPPORT_BASE_UTF8_H_

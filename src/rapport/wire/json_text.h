// Small helpers for writing JSON text by hand where building a document would be waste (hot
// response paths, error bodies). Output is always valid JSON.
#ifndef RAPPORT_WIRE_JSON_TEXT_H_
#define RAPPORT_WIRE_JSON_TEXT_H_

#include <string>
#include <string_view>

namespace rapport::wire {

// `s` as a quoted, escaped JSON string. `s` must be valid UTF-8.
std::string Quote(std::string_view s);
void AppendQuoted(std::string* out, std::string_view s);

}  // namespace rapport::wire

#endif  // RAPPORT_WIRE_JSON_TEXT_H_

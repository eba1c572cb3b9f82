// Small helpers for writing JSON text by hand where building a document would be waste (hot
// response paths, error bodies). Output is always valid JSON.
#ifndef RAPPORT_WIRE_JSON_TEXT_H_
#define RAPPORT_WIRE_JSON_TEXT_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace rapport::wire {

// `s` as a quoted, escaped JSON string. `s` must be valid UTF-8.
std::string Quote(std::string_view s);
void AppendQuoted(std::string* out, std::string_view s);

}  // namespace rapport::wire

#endif  // RAPPORT_WIRE_JSON_TEXT_H_

#include <optional>

#include "absl/status/statusor.h"

namespace rapport::wire {

// The string member `name` of the JSON object `body`: nullopt when absent or null;
// InvalidArgument (naming the member) when the body is not a JSON object or the member is not
// a string.
absl::StatusOr<std::optional<std::string>> ReadStringMember(std::string_view body,
                                                            std::string_view name);

// One line of `rapport export`: {"workspace":NAME,"seq":N,"event":EVENT} where EVENT is the
// stored event JSON, embedded as is.
std::string EncodeExportLine(std::string_view workspace, uint64_t seq, std::string_view event_json);

struct ExportLine {
  std::optional<std::string> workspace;  // absent for a bare event line
  std::string event_json;
};
// Reads an export line, or a bare event object (workspace then absent).
absl::StatusOr<ExportLine> ParseExportLine(std::string_view line);

}  // namespace rapport::wire

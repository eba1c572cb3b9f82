// JSON ⇄ the definitions of computed traits and segments (docs/api/definitions.md), and reading
// one value out of a JSON document by path. Only the shape is checked here (members, types);
// what the definitions mean is the profile stage's to validate.
//
// Thread safety: free functions on their arguments only.
#ifndef RAPPORT_WIRE_DEFINITION_JSON_H_
#define RAPPORT_WIRE_DEFINITION_JSON_H_

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rapport::wire {

// One value of a JSON document, as the segment language sees it.
struct JsonScalar {
  enum class Kind { kMissing, kNull, kBool, kNumber, kString, kComposite };
  Kind kind = Kind::kMissing;
  bool boolean = false;
  double number = 0;
  std::string text;  // kString: the string; kComposite: the array's or object's JSON text
};

// The value at `path` (object member names, outermost first) inside the JSON text `json`; an
// empty path is the document itself. kMissing when a member is absent, a step is not an object
// or `json` is not valid JSON.
JsonScalar ReadJsonPath(std::string_view json, std::span<const std::string> path);

// A definition's description: at most this many bytes (invalid_field otherwise).
inline constexpr size_t kMaxDescriptionBytes = 1000;

// POST /api/v1/computed-traits. `window` and `timezone` "" when absent.
struct ComputedTraitSpec {
  std::string name;
  std::string kind;
  std::string event;     // only events with this name (track event or page/screen name); "" any
  std::string property;  // the property the kind reads, e.g. "total"; "" when the kind reads none
  std::string where;     // a predicate over the event in the segment language; "" none
  std::string window;    // e.g. "30d"; "" all time
  std::string timezone;  // activity: IANA zone for hour and weekday; "" UTC
  std::string description;
};

// POST /api/v1/segments.
struct SegmentSpec {
  std::string name;
  std::string expression;
  std::string description;
};

// InvalidArgument (with the member at fault) when the body is not an object of the documented
// members with string values, or lacks `name`/`kind` (`expression` for segments).
absl::StatusOr<ComputedTraitSpec> ParseComputedTraitSpec(std::string_view body);
absl::StatusOr<SegmentSpec> ParseSegmentSpec(std::string_view body);

// The canonical JSON of a spec (members that are "" left out): what is stored and shown.
std::string ComputedTraitSpecJson(const ComputedTraitSpec& spec);
std::string SegmentSpecJson(const SegmentSpec& spec);

// The definitions file of `rapport serve --definitions` and `rapport backfill --definitions`:
//   {"workspaces": {"<name>": {"computed_traits": [spec…], "segments": [spec…]}}}
struct WorkspaceDefinitions {
  std::string workspace;
  std::vector<ComputedTraitSpec> computed_traits;
  std::vector<SegmentSpec> segments;
};
absl::StatusOr<std::vector<WorkspaceDefinitions>> ParseDefinitionsFile(std::string_view text);

}  // namespace rapport::wire

#endif  // RAPPORT_WIRE_DEFINITION_JSON_H_

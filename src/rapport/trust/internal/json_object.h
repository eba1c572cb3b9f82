// The JSON reading shared by trust's parsers (consent_json.cc, keys_json.cc).
#ifndef RAPPORT_TRUST_INTERNAL_JSON_OBJECT_H_
#define RAPPORT_TRUST_INTERNAL_JSON_OBJECT_H_

#include <boost/json.hpp>
#include <string_view>

#include "absl/status/statusor.h"

namespace rapport::trust::internal {

// `text` parsed as a JSON object; InvalidArgument (invalid_utf8, malformed_json, invalid_type)
// naming `what` ("the body") otherwise.
absl::StatusOr<boost::json::value> ParseObject(std::string_view text, std::string_view what);

}  // namespace rapport::trust::internal

#endif  // RAPPORT_TRUST_INTERNAL_JSON_OBJECT_H_

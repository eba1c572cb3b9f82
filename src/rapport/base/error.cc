#include "rapport/base/error.h"

#include <charconv>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "rapport/base/strings.h"

namespace rapport::base {
namespace {
constexpr char kCodeUrl[] = "rapport/code";
constexpr char kFieldUrl[] = "rapport/field";
constexpr char kLimitUrl[] = "rapport/limit";
}  // namespace

absl::Status MakeError(absl::StatusCode status_code, std::string_view code,
                       std::string_view message, std::string_view field,
                       std::optional<int64_t> limit) {
  absl::Status status(status_code, AsAbsl(message));
  status.SetPayload(kCodeUrl, absl::Cord(AsAbsl(code)));
  if (!field.empty()) status.SetPayload(kFieldUrl, absl::Cord(AsAbsl(field)));
  if (limit) status.SetPayload(kLimitUrl, absl::Cord(absl::StrCat(*limit)));
  return status;
}

ErrorDetails GetErrorDetails(const absl::Status& status) {
  ErrorDetails details;
  if (auto code = status.GetPayload(kCodeUrl)) details.code = std::string(*code);
  if (auto field = status.GetPayload(kFieldUrl)) details.field = std::string(*field);
  if (auto limit = status.GetPayload(kLimitUrl)) {
    std::string text(*limit);
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc() && end == text.data() + text.size()) details.limit = value;
  }
  return details;
}

absl::Status WithFieldPrefix(const absl::Status& status, std::string_view prefix) {
  if (status.ok()) return status;
  absl::Status out = status;
  auto field = status.GetPayload(kFieldUrl);
  std::string joined = std::string(prefix);
  if (field) joined += "." + std::string(*field);
  out.SetPayload(kFieldUrl, absl::Cord(joined));
  return out;
}

}  // namespace rapport::base

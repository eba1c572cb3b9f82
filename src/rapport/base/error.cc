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
constexpr char kPositionUrl[] = "rapport/position";
constexpr char kExpectedUrl[] = "rapport/expected";
constexpr char kRetryAfterUrl[] = "rapport/retry_after";

std::optional<int64_t> IntPayload(const absl::Status& status, std::string_view url) {
  auto payload = status.GetPayload(AsAbsl(url));
  if (!payload) return std::nullopt;
  std::string text(*payload);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}
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
  details.limit = IntPayload(status, kLimitUrl);
  details.position = IntPayload(status, kPositionUrl);
  if (auto expected = status.GetPayload(kExpectedUrl)) details.expected = std::string(*expected);
  details.retry_after = IntPayload(status, kRetryAfterUrl);
  return details;
}

absl::Status WithField(const absl::Status& status, std::string_view field) {
  if (status.ok()) return status;
  absl::Status out = status;
  out.SetPayload(kFieldUrl, absl::Cord(AsAbsl(field)));
  return out;
}

absl::Status WithPosition(const absl::Status& status, int64_t position, std::string_view expected) {
  if (status.ok()) return status;
  absl::Status out = status;
  out.SetPayload(kPositionUrl, absl::Cord(absl::StrCat(position)));
  if (!expected.empty()) out.SetPayload(kExpectedUrl, absl::Cord(AsAbsl(expected)));
  return out;
}

absl::Status WithRetryAfter(const absl::Status& status, int64_t seconds) {
  if (status.ok()) return status;
  absl::Status out = status;
  out.SetPayload(kRetryAfterUrl, absl::Cord(absl::StrCat(seconds)));
  return out;
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

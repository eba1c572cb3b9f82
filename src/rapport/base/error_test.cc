#include "rapport/base/error.h"

#include <gtest/gtest.h>

#include "rapport/base/status.h"

namespace rapport::base {
namespace {

TEST(MakeError, CarriesCodeFieldAndLimit) {
  absl::Status s = InvalidField("message_id_too_long", "messageId", "too long", 100);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "too long");
  ErrorDetails d = GetErrorDetails(s);
  EXPECT_EQ(d.code, "message_id_too_long");
  EXPECT_EQ(d.field, "messageId");
  ASSERT_TRUE(d.limit.has_value());
  EXPECT_EQ(*d.limit, 100);
}

TEST(MakeError, PlainStatusHasNoDetails) {
  ErrorDetails d = GetErrorDetails(absl::InternalError("x"));
  EXPECT_TRUE(d.code.empty());
  EXPECT_TRUE(d.field.empty());
  EXPECT_FALSE(d.limit.has_value());
}

TEST(WithFieldPrefix, JoinsPaths) {
  absl::Status s = WithFieldPrefix(InvalidField("c", "timestamp", "m"), "batch[3]");
  EXPECT_EQ(GetErrorDetails(s).field, "batch[3].timestamp");
  EXPECT_EQ(GetErrorDetails(s).code, "c");
  EXPECT_EQ(GetErrorDetails(WithFieldPrefix(absl::InvalidArgumentError("m"), "batch[0]")).field,
            "batch[0]");
}

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  RAPPORT_ASSIGN_OR_RETURN(int h, Half(x));
  RAPPORT_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusMacros, Propagate) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
}

}  // namespace
}  // namespace rapport::base

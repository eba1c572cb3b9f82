// libFuzzer target: the ingest path, from the bytes of a tracking request to the event that
// would be stored (wire::ParseTrackingRequest, then collect's checks in Ingestor::Prepare).
// Input: the route on the first line ("track", "identify", …; anything else is /v1/batch), the
// body after it. Beyond crashes and sanitizer reports it checks what the API promises:
//   - every refusal carries a machine-readable code;
//   - what would be stored is valid JSON within the size limit, and reads back
//     (wire::ReadEventFacts), since the engine reads it back on every rebuild.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "rapport/base/clock.h"
#include "rapport/base/error.h"
#include "rapport/collect/ingestor.h"
#include "rapport/wire/event_facts.h"
#include "rapport/wire/segment.h"

namespace {

using namespace rapport;

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "ingest_fuzz: broken promise: %s\n", what);
    __builtin_trap();
  }
}

void RequireCode(const absl::Status& status) {
  Require(!base::GetErrorDetails(status).code.empty(), "an error without a code");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const base::SimulatedClock clock(1'800'000'000'000'000);
  static const collect::Ingestor ingestor(nullptr, &clock, nullptr);
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t newline = in.find('\n');
  const std::string_view route = newline == std::string_view::npos ? "" : in.substr(0, newline);
  const std::string_view body = newline == std::string_view::npos ? in : in.substr(newline + 1);

  auto request = wire::ParseTrackingRequest(body, wire::ParseEventType(route));
  if (!request.ok()) {
    RequireCode(request.status());
    return 0;
  }
  for (const auto& message : request->messages) {
    if (!message.ok()) {
      RequireCode(message.status());
      continue;
    }
    for (auto mode : {collect::Mode::kLive, collect::Mode::kImport}) {
      auto write = ingestor.Prepare(1, *message, clock.Now(), mode);
      if (!write.ok()) {
        RequireCode(write.status());
        continue;
      }
      Require(write->payload.size() <= collect::IngestLimits{}.max_event_bytes, "a stored event over the limit");
      boost::system::error_code ec;
      boost::json::parse(write->payload, ec);
      Require(!ec, "a stored event that is not JSON");
      Require(wire::ReadEventFacts(write->payload).ok(), "a stored event that cannot be read back");
    }
  }
  return 0;
}

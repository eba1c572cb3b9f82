#include "rapport/trust/limits.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "rapport/base/error.h"

namespace rapport::trust {

KeyRate RateLimiter::RateOf(const KeyInfo& key) const {
  KeyRate rate = key.rate.per_second > 0 ? key.rate
                 : key.kind == KeyKind::kWrite ? defaults_.write
                                               : defaults_.secret;
  if (rate.per_second > 0 && rate.burst <= 0) rate.burst = 2 * rate.per_second;
  rate.burst = std::max(rate.burst, 1.0);
  return rate;
}

absl::Status RateLimiter::Take(const KeyInfo& key) {
  const KeyRate rate = RateOf(key);
  if (rate.per_second <= 0) return absl::OkStatus();
  const base::Micros now = clock_->Now();
  double wait_s = 0;
  {
    base::MutexLock lock(&mu_);
    auto [it, fresh] = buckets_.try_emplace(key.id, Bucket{rate.burst, now});
    Bucket& b = it->second;
    if (!fresh && now > b.at) {
      b.tokens = std::min(rate.burst, b.tokens + rate.per_second * static_cast<double>(now - b.at) / 1e6);
    }
    b.at = std::max(b.at, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return absl::OkStatus();
    }
    wait_s = (1 - b.tokens) / rate.per_second;
  }
  const auto seconds = static_cast<int64_t>(std::clamp(std::ceil(wait_s), 1.0, 86400.0));
  return base::WithRetryAfter(
      base::MakeError(absl::StatusCode::kResourceExhausted, "rate_limited",
                      fmt::format("this key may make {:g} requests a second (bursts of {:g}); try again "
                                  "in {} s",
                                  rate.per_second, rate.burst, seconds),
                      "", static_cast<int64_t>(rate.per_second)),
      seconds);
}

}  // namespace rapport::trust

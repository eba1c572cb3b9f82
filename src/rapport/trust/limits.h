// Per-key request rates: a token bucket per key (docs/operations.md#abuse-limits). A key holds
// up to `burst` tokens, refilled at `per_second`; each request takes one, and a request that
// finds none is refused with how long until one is back.
//
// Thread safety: all methods may be called from any thread.
#ifndef RAPPORT_TRUST_LIMITS_H_
#define RAPPORT_TRUST_LIMITS_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "rapport/base/clock.h"
#include "rapport/base/mutex.h"
#include "rapport/trust/workspaces.h"

namespace rapport::trust {

struct RateDefaults {
  // Write keys: 5,000 requests a second (a batch of 100 events each is 500,000 events a second,
  // five times what one server ingests), burst 10,000.
  KeyRate write{5000, 10000};
  // Secret keys: 1,000 requests a second, burst 2,000.
  KeyRate secret{1000, 2000};
};

class RateLimiter {
 public:
  // `clock` (not owned) must outlive this. A default rate of 0 requests a second turns the
  // limit off for that kind of key (a key's own rate still applies).
  RateLimiter(RateDefaults defaults, const base::Clock* clock) : defaults_(defaults), clock_(clock) {}

  // OK and one token taken, or ResourceExhausted (429 rate_limited) with the whole seconds
  // until a token is back (base::ErrorDetails::retry_after).
  absl::Status Take(const KeyInfo& key);

  // The rate that applies to `key`: its own, else the default for its kind.
  KeyRate RateOf(const KeyInfo& key) const;

 private:
  struct Bucket {
    double tokens = 0;
    base::Micros at = 0;
  };
  const RateDefaults defaults_;
  const base::Clock* clock_;
  base::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);  // by key id
};

}  // namespace rapport::trust

#endif  // RAPPORT_TRUST_LIMITS_H_

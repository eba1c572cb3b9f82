// Everything in rapport that depends on "now" asks a Clock, so tests and the world simulator can
// drive time. Both implementations are thread-safe.
#ifndef RAPPORT_BASE_CLOCK_H_
#define RAPPORT_BASE_CLOCK_H_

#include <algorithm>
#include <atomic>

#include "rapport/base/time.h"

namespace rapport::base {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time now, microseconds since the epoch.
  virtual Micros Now() const = 0;
};

// The system's wall clock.
class RealClock final : public Clock {
 public:
  Micros Now() const override;
  // A process-wide instance (never destroyed).
  static RealClock* Get();
};

// A clock that moves only when told to. Starts at `start`.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(Micros start) : now_(start) {}
  Micros Now() const override { return now_.load(std::memory_order_acquire); }
  void Set(Micros t) { now_.store(t, std::memory_order_release); }
  void Advance(Micros d) { now_.fetch_add(d, std::memory_order_acq_rel); }
  // Moves the clock forward to `to`, never back: returns what it reads afterwards, which is
  // later than `to` when it already was (callers racing cannot move it back).
  Micros AdvanceTo(Micros to) {
    Micros current = now_.load(std::memory_order_acquire);
    while (current < to && !now_.compare_exchange_weak(current, to, std::memory_order_acq_rel)) {
    }
    return std::max(current, to);
  }

 private:
  std::atomic<Micros> now_;
};

}  // namespace rapport::base

#endif  // RAPPORT_BASE_CLOCK_H_

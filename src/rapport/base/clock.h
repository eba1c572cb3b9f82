// Everything in rapport that depends on "now" asks a Clock, so tests and the world simulator can
// drive time. Both implementations are thread-safe.
#ifndef RAPPORT_BASE_CLOCK_H_
#define RAPPORT_BASE_CLOCK_H_

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
  // Sets `to` if the clock still reads `expected`; otherwise loads the current time into
  // `expected` and returns false.
  bool CompareAndSet(Micros& expected, Micros to) {
    return now_.compare_exchange_strong(expected, to, std::memory_order_acq_rel);
  }

 private:
  std::atomic<Micros> now_;
};

}  // namespace rapport::base

#endif  // RAPPORT_BASE_CLOCK_H_

#include "rapport/base/clock.h"

#include <algorithm>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace rapport::base {
namespace {

TEST(SimulatedClock, AdvanceToMovesForwardNeverBack) {
  SimulatedClock clock(100);
  EXPECT_EQ(clock.AdvanceTo(150), 150);
  EXPECT_EQ(clock.Now(), 150);
  EXPECT_EQ(clock.AdvanceTo(150), 150);  // the same time is no move back
  EXPECT_EQ(clock.AdvanceTo(120), 150);  // refused: it answers the later time
  EXPECT_EQ(clock.Now(), 150);
}

// Threads racing to different times: the clock ends at the latest, and no thread ever sees it
// earlier than the time it asked for.
TEST(SimulatedClock, RacingAdvancesEndAtTheLatest) {
  SimulatedClock clock(0);
  std::vector<std::thread> threads;
  std::vector<Micros> answers(8 * 1000);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&clock, &answers, t] {
      for (int i = 0; i < 1000; ++i) {
        const Micros to = (i * 7919 + t * 104729) % 100000;
        answers[t * 1000 + i] = clock.AdvanceTo(to);
        EXPECT_GE(answers[t * 1000 + i], to);
      }
    });
  }
  for (auto& th : threads) th.join();
  Micros latest = 0;
  for (int t = 0; t < 8; ++t) {
    for (int i = 0; i < 1000; ++i) latest = std::max(latest, static_cast<Micros>((i * 7919 + t * 104729) % 100000));
  }
  EXPECT_EQ(clock.Now(), latest);
}

}  // namespace
}  // namespace rapport::base

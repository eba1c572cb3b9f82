#include "rapport/app/background.h"

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "rapport/profile/record.h"
#include "tests/lib/temp_dir.h"

namespace rapport::app {
namespace {

using profile::Engine;
using profile::Job;
using profile::JobState;

store::EventWrite Identify(uint32_t ws, std::string message_id, std::string user) {
  store::EventWrite w;
  w.workspace = ws;
  w.message_id = message_id;
  w.timestamp = w.received_at = 1'700'000'000'000'000;
  w.payload = R"({"type":"identify","messageId":")" + message_id + R"(","userId":")" + user + R"("})";
  return w;
}

// A job whose step cannot succeed (a profile record it must read is corrupt) ends as failed
// with the reason, once, and the job queued after it still runs to its end.
TEST(Background, AJobThatCannotSucceedFailsAndTheNextOneRuns) {
  testing::TempDir dir;
  Engine engine({});
  store::StoreOptions so;
  so.path = dir.path();
  so.hook = &engine;
  auto store = *store::Store::Open(so);
  ASSERT_TRUE(store->CommitEventsAndWait({Identify(1, "a", "ann"), Identify(1, "b", "bob"),
                                          Identify(2, "c", "cid")})
                  .ok());
  // Workspace 1's first profile record becomes unreadable.
  ASSERT_TRUE(store->RunExclusiveAndWait([](store::StateTxn& txn) {
    txn.Put(profile::ProfileKey(1, 1), "not a record");
    return absl::OkStatus();
  }).ok());
  std::vector<uint64_t> jobs;
  for (uint32_t ws : {1u, 2u}) {
    ASSERT_TRUE(store->RunExclusiveAndWait([&](store::StateTxn& txn) -> absl::Status {
      auto change = engine.PutComputedTrait(txn, ws, {.name = "seen", .kind = "count"}, profile::PutMode::kCreate);
      if (!change.ok()) return change.status();
      jobs.push_back(change->job->id);
      return absl::OkStatus();
    }).ok());
  }
  {
    Background background(store.get(), &engine, {.interval = std::chrono::milliseconds(20)});
    background.Wake();
    for (int i = 0; i < 500; ++i) {
      auto reader = store->NewStateReader();
      if (Engine::UnfinishedJobs(*reader)->empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  auto reader = store->NewStateReader();
  Job failed = *Engine::ReadJob(*reader, jobs[0]);
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_NE(failed.error.find("cannot be decoded"), std::string::npos) << failed.error;
  EXPECT_GT(failed.finished_at, 0);
  Job done = *Engine::ReadJob(*reader, jobs[1]);
  EXPECT_EQ(done.state, JobState::kDone);
  EXPECT_EQ(done.profiles, 1u);
}

}  // namespace
}  // namespace rapport::app

// The engine's background work in `rapport serve`: runs backfill jobs (a chunk of profiles per
// exclusive store task, so ingestion interleaves; a job whose step fails, other than because
// the store refused, ends as failed with the reason) and the time sweep (profiles whose windows
// or now()-conditions changed; also between job steps, at most once per interval). One thread;
// it idles on a timer and wakes at once when a job is queued.
//
// Thread safety: Wake may be called from any thread; the rest is the owner's.
#ifndef RAPPORT_APP_BACKGROUND_H_
#define RAPPORT_APP_BACKGROUND_H_

#include <chrono>
#include <cstddef>
#include <thread>

#include "rapport/base/mutex.h"
#include "rapport/profile/engine.h"
#include "rapport/store/store.h"

namespace rapport::app {

struct BackgroundOptions {
  // How often to look for due profiles and unfinished jobs (default 1 s).
  std::chrono::milliseconds interval{1000};
  size_t job_chunk = 256;    // profiles per job step
  size_t sweep_chunk = 512;  // profiles per sweep step
};

class Background {
 public:
  Background(store::Store* store, profile::Engine* engine, BackgroundOptions options);
  ~Background();  // stops and joins

  // A job was queued: look now rather than at the next tick.
  void Wake();
  void Stop();

 private:
  void Loop();
  void RunJobs();
  void RunSweep();
  bool stopping();

  store::Store* const store_;
  profile::Engine* const engine_;
  const BackgroundOptions options_;
  base::Mutex mu_;
  base::CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_sweep_;  // the thread's own
  std::thread thread_;
};

// Runs one job to its end on the calling thread (used by `rapport backfill`), calling
// `progress` after every step. Returns the finished job.
absl::StatusOr<profile::Job> RunJobToEnd(store::Store& store, profile::Engine& engine, uint64_t id,
                                         size_t chunk, const std::function<void(const profile::Job&)>& progress);

}  // namespace rapport::app

#endif  // RAPPORT_APP_BACKGROUND_H_

#include "rapport/app/background.h"

#include <spdlog/spdlog.h>

#include <memory>

#include "rapport/base/status.h"
#include "rapport/base/strings.h"

namespace rapport::app {

Background::Background(store::Store* store, profile::Engine* engine, BackgroundOptions options)
    : store_(store), engine_(engine), options_(options), thread_([this] { Loop(); }) {}

Background::~Background() { Stop(); }

void Background::Wake() {
  base::MutexLock lock(&mu_);
  woken_ = true;
  cv_.Signal();
}

void Background::Stop() {
  {
    base::MutexLock lock(&mu_);
    stop_ = true;
    cv_.Signal();
  }
  if (thread_.joinable()) thread_.join();
}

bool Background::stopping() {
  base::MutexLock lock(&mu_);
  return stop_;
}

void Background::Loop() {
  for (;;) {
    RunJobs();
    RunSweep();
    base::MutexLock lock(&mu_);
    if (!stop_ && !woken_) cv_.WaitWithTimeout(&mu_, options_.interval);
    woken_ = false;
    if (stop_) return;
  }
}

absl::StatusOr<profile::Job> RunJobToEnd(store::Store& store, profile::Engine& engine, uint64_t id,
                                         size_t chunk,
                                         const std::function<void(const profile::Job&)>& progress) {
  for (;;) {
    auto job = std::make_shared<profile::Job>();
    RAPPORT_RETURN_IF_ERROR(store.RunExclusiveAndWait([&engine, id, chunk, job](store::StateTxn& txn) -> absl::Status {
      RAPPORT_ASSIGN_OR_RETURN(*job, engine.RunJobStep(txn, id, chunk));
      return absl::OkStatus();
    }));
    if (progress) progress(*job);
    if (job->finished()) return *job;
  }
}

void Background::RunJobs() {
  auto reader = store_->NewStateReader();
  auto jobs = profile::Engine::UnfinishedJobs(*reader);
  reader.reset();
  if (!jobs.ok()) {
    spdlog::error("background: cannot list jobs: {}", base::AsStd(jobs.status().message()));
    return;
  }
  for (uint64_t id : *jobs) {
    for (;;) {
      if (stopping()) return;  // resumed from its committed progress at the next start
      auto job = std::make_shared<profile::Job>();
      absl::Status st = store_->RunExclusiveAndWait([this, id, job](store::StateTxn& txn) -> absl::Status {
        RAPPORT_ASSIGN_OR_RETURN(*job, engine_->RunJobStep(txn, id, options_.job_chunk));
        return absl::OkStatus();
      });
      if (absl::IsUnavailable(st)) {
        // The store refused (read-only, closing): nothing was committed; the next tick tries
        // again.
        spdlog::error("background: job {} waits: {}", id, base::AsStd(st.message()));
        return;
      }
      if (!st.ok()) {
        // The step itself failed (a record it needs cannot be read): it would fail again at
        // every tick and hold up the jobs behind it. The job ends as failed, with the reason.
        spdlog::error("background: job {} failed: {}", id, base::AsStd(st.message()));
        absl::Status failed = store_->RunExclusiveAndWait([this, id, &st](store::StateTxn& txn) {
          return engine_->FailJob(txn, id, std::string(base::AsStd(st.message()))).status();
        });
        if (!failed.ok()) {
          spdlog::error("background: job {} cannot be marked failed: {}", id, base::AsStd(failed.message()));
          return;
        }
        break;
      }
      // Time-driven changes do not wait for a long backfill to end.
      if (std::chrono::steady_clock::now() - last_sweep_ >= options_.interval) RunSweep();
      if (job->finished()) break;
    }
  }
}

void Background::RunSweep() {
  last_sweep_ = std::chrono::steady_clock::now();
  for (;;) {
    if (stopping()) return;
    auto reader = store_->NewStateReader();
    auto due = profile::Engine::AnythingDue(*reader, engine_->Now());
    reader.reset();
    if (!due.ok() || !*due) return;
    auto swept = std::make_shared<size_t>(0);
    absl::Status st = store_->RunExclusiveAndWait([this, swept](store::StateTxn& txn) -> absl::Status {
      RAPPORT_ASSIGN_OR_RETURN(*swept, engine_->Sweep(txn, options_.sweep_chunk));
      return absl::OkStatus();
    });
    if (!st.ok()) {
      spdlog::error("background: sweep failed: {}", base::AsStd(st.message()));
      return;
    }
    if (*swept < options_.sweep_chunk) return;
  }
}

}  // namespace rapport::app

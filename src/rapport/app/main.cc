// `rapport`: the engine's one binary. Subcommands:
//   serve             run the HTTP server on the embedded store
//   workspace create  create a workspace and print its keys (store not in use by a server)
//   export            write stored events as JSON lines, in arrival order (server may run)
//   import            store JSON lines from export, idempotently (store not in use by a server)
//   compact           compact the store (store not in use by a server)
//   backfill          apply a definitions file and run backfill jobs with a progress bar
//                     (store not in use by a server)
#include <cstdlib>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <charconv>
#include <map>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <future>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "rapport/app/api.h"
#include "rapport/app/background.h"
#include "rapport/base/check.h"
#include "rapport/base/clock.h"
#include "rapport/base/crypto.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"
#include "rapport/profile/engine.h"
#include "rapport/wire/json_text.h"

namespace rapport::app {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "rapport: %s\n", std::string(status.message()).c_str());
  return 1;
}

// The master key's file: `flag` if given, else $RAPPORT_MASTER_KEY_FILE, else "" (the store's
// default, <data>/master.key; docs/operations.md#master-key).
std::string MasterKeyFile(const std::string& flag = {}) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("RAPPORT_MASTER_KEY_FILE");
  return env ? env : "";
}

absl::StatusOr<std::unique_ptr<store::Store>> OpenStore(const std::string& data, bool read_only,
                                                        store::CommitHook* hook = nullptr) {
  store::StoreOptions options;
  options.master_key_file = MasterKeyFile();
  options.hook = hook;
  options.path = data;
  options.read_only = read_only;
  return store::Store::Open(options);
}

// Applies a definitions file (wire::ParseDefinitionsFile): each definition is created, or
// changed if it differs (queuing its backfill), or left alone if identical. Returns the jobs
// queued.
absl::StatusOr<std::vector<uint64_t>> ApplyDefinitions(store::Store& store, trust::Workspaces& workspaces,
                                                       profile::Engine& engine, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(fmt::format("cannot read the definitions file {}", path));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto parsed = wire::ParseDefinitionsFile(text);
  if (!parsed.ok()) {
    const base::ErrorDetails d = base::GetErrorDetails(parsed.status());
    return absl::InvalidArgumentError(fmt::format("{}: {}{}", path, base::AsStd(parsed.status().message()),
                                                  d.field.empty() ? "" : " (at " + d.field + ")"));
  }
  std::vector<uint64_t> jobs;
  for (const wire::WorkspaceDefinitions& defs : *parsed) {
    auto ws = workspaces.FindByName(defs.workspace);
    if (!ws) return absl::NotFoundError(fmt::format("{}: no workspace named '{}'", path, defs.workspace));
    auto apply = [&](const std::string& what, const std::string& name,
                     std::function<absl::StatusOr<profile::DefinitionChange>(store::StateTxn&)> put) -> absl::Status {
      auto change = std::make_shared<profile::DefinitionChange>();
      absl::Status st = store.RunExclusiveAndWait([&](store::StateTxn& txn) -> absl::Status {
        RAPPORT_ASSIGN_OR_RETURN(*change, put(txn));
        return absl::OkStatus();
      });
      if (!st.ok()) {
        const base::ErrorDetails d = base::GetErrorDetails(st);
        return absl::InvalidArgumentError(fmt::format("{}: {} '{}' in workspace '{}': {}{}", path, what, name,
                                                      defs.workspace, base::AsStd(st.message()),
                                                      d.position ? fmt::format(" (expected {})", d.expected) : ""));
      }
      if (change->job) jobs.push_back(change->job->id);
      return absl::OkStatus();
    };
    for (const wire::ComputedTraitSpec& spec : defs.computed_traits) {
      RAPPORT_RETURN_IF_ERROR(apply("computed trait", spec.name, [&](store::StateTxn& txn) {
        return engine.PutComputedTrait(txn, ws->id, spec, profile::PutMode::kUpsert);
      }));
    }
    for (const wire::SegmentSpec& spec : defs.segments) {
      RAPPORT_RETURN_IF_ERROR(apply("segment", spec.name, [&](store::StateTxn& txn) {
        return engine.PutSegment(txn, ws->id, spec, profile::PutMode::kUpsert);
      }));
    }
  }
  return jobs;
}

struct ServeFlags {
  std::string definitions;
  std::string console = RAPPORT_CONSOLE_DIR;
  int sweep_ms = 1000;
  std::string listen = "127.0.0.1:8080";
  std::string data = "./var";
  std::string sync = "always";
  int threads = 0;
  size_t max_connections = 4096;
  int dedupe_days = 7;
  size_t state_cache_mb = 256;
  size_t block_cache_mb = 128;
  std::string clock = "real";
  std::string clock_start = "2026-01-01T00:00:00Z";
  trust::RateDefaults rates;
  int header_timeout_ms = 15000;
  int body_timeout_ms = 30000;
  size_t max_body_kb = 500;
  std::string master_key_file;
};

// Saves the demo keys for ./scripts/run, readable by the owner only from the first byte.
absl::Status WriteDemoCredentials(const std::string& data, const trust::CreatedWorkspace& created) {
  const std::string path = data + "/demo-credentials.json";
  const std::string text =
      fmt::format("{{\"workspace\":{},\"write_key\":{},\"secret_key\":{}}}\n",
                  wire::Quote(created.workspace.name), wire::Quote(created.write_key),
                  wire::Quote(created.secret_key));
  const int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  const bool ok = fd >= 0 && fchmod(fd, 0600) == 0 &&
                  write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  fsync(fd) == 0;
  if (fd >= 0) close(fd);
  if (!ok) return absl::UnavailableError(fmt::format("cannot write {}", path));
  return absl::OkStatus();
}

int Serve(const ServeFlags& flags) {
  // SIGINT/SIGTERM are taken by sigwait below; block them before any thread starts so every
  // thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const size_t colon = flags.listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    auto [end, ec] = std::from_chars(flags.listen.data() + colon + 1,
                                     flags.listen.data() + flags.listen.size(), port);
    if (ec != std::errc() || end != flags.listen.data() + flags.listen.size()) port = -1;
  }
  if (port < 0 || port > 65535) {
    return Fail(absl::InvalidArgumentError(
        fmt::format("--listen must be HOST:PORT (port 0-65535), not '{}'", flags.listen)));
  }
  auto sync = store::ParseSyncPolicy(flags.sync);
  if (!sync.ok()) return Fail(sync.status());
  // --clock=simulated: time moves only by POST /api/v1/admin/clock (the world simulator's).
  std::unique_ptr<base::SimulatedClock> simulated;
  if (flags.clock == "simulated") {
    auto start = base::ParseIso8601(flags.clock_start);
    if (!start.ok()) {
      return Fail(absl::InvalidArgumentError(
          fmt::format("--clock-start must be an ISO-8601 time, not '{}'", flags.clock_start)));
    }
    simulated = std::make_unique<base::SimulatedClock>(*start);
  } else if (flags.clock != "real") {
    return Fail(absl::InvalidArgumentError(
        fmt::format("--clock must be 'real' or 'simulated', not '{}'", flags.clock)));
  }
  const base::Clock* clock = simulated ? static_cast<const base::Clock*>(simulated.get())
                                       : base::RealClock::Get();

  base::Registry metrics;
  profile::Engine profiles({.metrics = &metrics, .clock = clock});
  store::StoreOptions store_options;
  store_options.path = flags.data;
  store_options.master_key_file = MasterKeyFile(flags.master_key_file);
  store_options.sync = *sync;
  store_options.metrics = &metrics;
  store_options.dedupe_window = flags.dedupe_days * base::kMicrosPerDay;
  store_options.hook = &profiles;
  store_options.state_cache_bytes = flags.state_cache_mb << 20;
  store_options.block_cache_bytes = flags.block_cache_mb << 20;
  store_options.clock = clock;
  auto store = store::Store::Open(store_options);
  if (!store.ok()) return Fail(store.status());
  if (store_options.master_key_file.empty()) {
    std::fprintf(stderr,
                 "rapport: warning: the master key is in the data directory (%s/master.key): a copy of the "
                 "directory can read everything in it, erased people included; keep it elsewhere "
                 "(--master-key-file, docs/operations.md#master-key)\n",
                 flags.data.c_str());
  }
  auto workspaces = trust::Workspaces::Load(store->get(), clock);
  if (!workspaces.ok()) return Fail(workspaces.status());
  if ((*workspaces)->List().empty()) {
    // The first workspace of a new store carries the operator's key (scope operator).
    auto created = (*workspaces)->Create("demo", /*operator_key=*/true);
    if (!created.ok()) return Fail(created.status());
    // Printed before anything else can fail: the store keeps only their hashes.
    std::printf("created workspace 'demo'\n"
                "  write key:  %s\n  secret key: %s  (shown once; stored hashed)\n",
                created->write_key.c_str(), created->secret_key.c_str());
    if (auto st = WriteDemoCredentials(flags.data, *created); st.ok()) {
      std::printf("  (keys saved in %s/demo-credentials.json, mode 0600)\n", flags.data.c_str());
    } else {
      std::fprintf(stderr, "rapport: warning: %s; note the keys above\n",
                   std::string(st.message()).c_str());
    }
  }
  if (!flags.definitions.empty()) {
    auto jobs = ApplyDefinitions(**store, **workspaces, profiles, flags.definitions);
    if (!jobs.ok()) return Fail(jobs.status());
    std::printf("applied %s (%zu backfill jobs queued)\n", flags.definitions.c_str(), jobs->size());
  }
  Background background(store->get(), &profiles,
                        {.interval = std::chrono::milliseconds(flags.sweep_ms)});
  collect::Ingestor ingestor(store->get(), clock, &metrics);
  trust::RateLimiter limiter(flags.rates, base::RealClock::Get());
  trust::AuditLog audit(store->get(), clock);
  std::atomic<bool> draining{false};
  metrics.AddCollector([](std::string* out) {
    *out += fmt::format("# HELP rapport_bugs_total Broken invariants reported (RAPPORT_BUG).\n"
                        "# TYPE rapport_bugs_total counter\nrapport_bugs_total {}\n",
                        base::BugCount());
  });

  http::ServerOptions options;
  options.host = flags.listen.substr(0, colon);
  options.port = static_cast<uint16_t>(port);
  options.threads = flags.threads;
  options.max_connections = flags.max_connections;
  options.header_timeout = std::chrono::milliseconds(flags.header_timeout_ms);
  options.body_timeout = std::chrono::milliseconds(flags.body_timeout_ms);
  options.max_body_bytes = flags.max_body_kb * 1024;
  options.metrics = &metrics;
  options.error_shape = ErrorShapeFor;
  auto server = http::Server::Start(
      options, Routes({store->get(), workspaces->get(), &limiter, &audit, &ingestor, &profiles, &metrics, &draining,
                       [&background] { background.Wake(); }, flags.console, simulated.get()}));
  if (!server.ok()) return Fail(server.status());
  // Audit entries reach the disk within a second (trust/audit.h).
  std::atomic<bool> stop_audit_sync{false};
  std::thread audit_syncer([&] {
    while (!stop_audit_sync.load()) {
      for (int i = 0; i < 10 && !stop_audit_sync.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (auto st = audit.Sync(); !st.ok()) spdlog::error("syncing the audit log: {}", base::AsStd(st.message()));
    }
  });
  std::printf("rapport listening on http://%s (data %s, --sync=%s%s)\n",
              (*server)->address().c_str(), flags.data.c_str(), flags.sync.c_str(),
              simulated ? fmt::format(", --clock=simulated at {}",
                                      base::FormatIso8601(simulated->Now())).c_str()
                        : "");
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  std::printf("rapport: %s received, finishing requests in flight\n",
              received == SIGTERM ? "SIGTERM" : "SIGINT");
  std::fflush(stdout);
  draining.store(true);
  // Order matters: requests in flight wait for the store, so the server drains first, then
  // the store finishes its queue and closes, and only then may the server's threads go.
  (*server)->Shutdown(std::chrono::seconds(10));
  background.Stop();  // a job stops between chunks; its committed progress resumes next start
  stop_audit_sync.store(true);
  audit_syncer.join();
  (void)audit.Sync();
  (*store)->Close();
  server->reset();
  std::printf("rapport: stopped cleanly\n");
  return 0;
}

int CreateWorkspace(const std::string& data, const std::string& name, bool as_json,
                    bool operator_key) {
  auto store = OpenStore(data, /*read_only=*/false);
  if (!store.ok()) return Fail(store.status());
  auto workspaces = trust::Workspaces::Load(store->get(), base::RealClock::Get());
  if (!workspaces.ok()) return Fail(workspaces.status());
  auto created = (*workspaces)->Create(name, operator_key);
  if (!created.ok()) return Fail(created.status());
  if (as_json) {
    std::printf("{\"workspace\":%s,\"write_key\":%s,\"secret_key\":%s}\n",
                wire::Quote(created->workspace.name).c_str(), wire::Quote(created->write_key).c_str(),
                wire::Quote(created->secret_key).c_str());
  } else {
    std::printf("workspace:  %s\nwrite key:  %s\nsecret key: %s  (shown once; stored hashed)\n",
                created->workspace.name.c_str(), created->write_key.c_str(),
                created->secret_key.c_str());
  }
  return 0;
}

// Compacts every column family: what was deleted (erased people's index entries, expired
// deduplication records) leaves the table files.
int Compact(const std::string& data) {
  auto store = OpenStore(data, /*read_only=*/false);
  if (!store.ok()) return Fail(store.status());
  std::fprintf(stderr, "compacting %s ...\n", data.c_str());
  if (absl::Status st = (*store)->CompactAll(); !st.ok()) return Fail(st);
  (*store)->Close();
  std::fprintf(stderr, "done\n");
  return 0;
}

int Export(const std::string& data, const std::string& since, const std::string& workspace) {
  base::Micros since_us = std::numeric_limits<base::Micros>::min();
  if (!since.empty()) {
    auto t = base::ParseIso8601(since);
    if (!t.ok()) return Fail(t.status());
    since_us = *t;
  }
  auto store = OpenStore(data, /*read_only=*/true);
  if (!store.ok()) return Fail(store.status());
  auto workspaces = trust::Workspaces::Load(store->get(), base::RealClock::Get());
  if (!workspaces.ok()) return Fail(workspaces.status());
  std::optional<uint32_t> only;
  if (!workspace.empty()) {
    auto ws = (*workspaces)->FindByName(workspace);
    if (!ws) return Fail(absl::NotFoundError(fmt::format("no workspace named '{}'", workspace)));
    only = ws->id;
  }
  uint64_t exported = 0;
  std::string line;
  absl::Status scan = (*store)->ScanEvents(0, [&](const store::StoredEvent& e) {
    if (e.received_at < since_us || (only && e.workspace != *only)) return true;
    auto ws = (*workspaces)->Find(e.workspace);
    line = wire::EncodeExportLine(ws ? ws->name : fmt::format("#{}", e.workspace), e.seq, e.payload);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    if (++exported % 100000 == 0) std::fprintf(stderr, "exported %lu events…\n", exported);
    return true;
  });
  std::fflush(stdout);
  if (!scan.ok()) return Fail(scan);
  std::fprintf(stderr, "exported %lu events\n", exported);
  return 0;
}

int Import(const std::string& data, const std::string& file, const std::string& workspace) {
  std::ifstream in(file);
  if (!in) return Fail(absl::NotFoundError(fmt::format("cannot read {}", file)));
  profile::Engine profiles({});
  auto store = OpenStore(data, /*read_only=*/false, &profiles);
  if (!store.ok()) return Fail(store.status());
  auto workspaces = trust::Workspaces::Load(store->get(), base::RealClock::Get());
  if (!workspaces.ok()) return Fail(workspaces.status());
  collect::Ingestor ingestor(store->get(), base::RealClock::Get(), nullptr);

  uint64_t counts[4] = {0, 0, 0, 0};
  uint64_t line_number = 0;
  // Messages are committed in chunks per workspace; each chunk is one atomic batch.
  std::map<uint32_t, wire::TrackingRequest> pending;
  std::map<uint32_t, std::vector<uint64_t>> pending_lines;
  auto flush = [&](uint32_t ws) -> absl::Status {
    auto& request = pending[ws];
    if (request.messages.empty()) return absl::OkStatus();
    std::promise<absl::StatusOr<std::vector<collect::MessageResult>>> done;
    request.is_batch = true;
    ingestor.Ingest(ws, std::move(request), collect::Mode::kImport,
                    [&done](auto r) { done.set_value(std::move(r)); });
    auto results = done.get_future().get();
    if (!results.ok()) return results.status();
    for (size_t i = 0; i < results->size(); ++i) {
      const auto& r = (*results)[i];
      ++counts[static_cast<int>(r.outcome)];
      if (r.outcome == collect::Outcome::kRejected || r.outcome == collect::Outcome::kRefused) {
        std::fprintf(stderr, "line %lu: %s%s\n", pending_lines[ws][i],
                     r.outcome == collect::Outcome::kRefused ? "refused: " : "",
                     std::string(r.error.message()).c_str());
      }
    }
    request = wire::TrackingRequest{};
    pending_lines[ws].clear();
    return absl::OkStatus();
  };
  std::string line;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    auto parsed = wire::ParseExportLine(line);
    std::optional<std::string> ws_name = workspace.empty() ? std::nullopt : std::optional(workspace);
    if (parsed.ok() && parsed->workspace && workspace.empty()) ws_name = parsed->workspace;
    std::optional<trust::Workspace> ws;
    if (ws_name) ws = (*workspaces)->FindByName(*ws_name);
    if (!parsed.ok() || !ws) {
      ++counts[static_cast<int>(collect::Outcome::kRejected)];
      std::fprintf(stderr, "line %lu: %s\n", line_number,
                   !parsed.ok() ? std::string(parsed.status().message()).c_str()
                   : ws_name   ? fmt::format("no workspace named '{}'", *ws_name).c_str()
                               : "no workspace: pass --workspace for bare event lines");
      continue;
    }
    pending[ws->id].messages.push_back(wire::ParseMessage(parsed->event_json));
    pending_lines[ws->id].push_back(line_number);
    if (pending[ws->id].messages.size() >= 500) {
      if (auto st = flush(ws->id); !st.ok()) return Fail(st);
    }
    if (line_number % 100000 == 0) std::fprintf(stderr, "read %lu lines…\n", line_number);
  }
  for (auto& [ws, request] : pending) {
    if (auto st = flush(ws); !st.ok()) return Fail(st);
  }
  std::fprintf(stderr, "imported %lu lines: %lu stored, %lu duplicate, %lu rejected, %lu refused\n",
               line_number, counts[0], counts[1], counts[2], counts[3]);
  return counts[2] || counts[3] ? 2 : 0;
}

// `rapport backfill`: applies a definitions file (if given), queues backfills of the named
// definitions, and runs every unfinished job to its end with a progress bar on stderr.
int Backfill(const std::string& data, const std::string& definitions, const std::string& workspace,
             const std::vector<std::string>& computed, const std::vector<std::string>& segments) {
  base::Registry metrics;
  profile::Engine profiles({.metrics = &metrics});
  auto store = OpenStore(data, /*read_only=*/false, &profiles);
  if (!store.ok()) return Fail(store.status());
  auto workspaces = trust::Workspaces::Load(store->get(), base::RealClock::Get());
  if (!workspaces.ok()) return Fail(workspaces.status());
  if (!definitions.empty()) {
    auto jobs = ApplyDefinitions(**store, **workspaces, profiles, definitions);
    if (!jobs.ok()) return Fail(jobs.status());
    std::fprintf(stderr, "applied %s: %zu definitions changed\n", definitions.c_str(), jobs->size());
  }
  if (!computed.empty() || !segments.empty()) {
    auto ws = (*workspaces)->FindByName(workspace);
    if (!ws) return Fail(absl::NotFoundError(fmt::format("no workspace named '{}' (pass --workspace)", workspace)));
    auto queue = [&](profile::DefinitionKind kind, const std::string& name) -> absl::Status {
      return (*store)->RunExclusiveAndWait([&](store::StateTxn& txn) {
        return profiles.Backfill(txn, ws->id, kind, name).status();
      });
    };
    for (const std::string& name : computed) {
      if (auto st = queue(profile::DefinitionKind::kComputed, name); !st.ok()) return Fail(st);
    }
    for (const std::string& name : segments) {
      if (auto st = queue(profile::DefinitionKind::kSegment, name); !st.ok()) return Fail(st);
    }
  }
  auto reader = (*store)->NewStateReader();
  auto jobs = profile::Engine::UnfinishedJobs(*reader);
  reader.reset();
  if (!jobs.ok()) return Fail(jobs.status());
  if (jobs->empty()) std::fprintf(stderr, "no backfill to run\n");
  const bool tty = isatty(STDERR_FILENO);
  for (uint64_t id : *jobs) {
    const auto start = std::chrono::steady_clock::now();
    auto job = RunJobToEnd(**store, profiles, id, 256, [&](const profile::Job& j) {
      const double fraction = j.total ? static_cast<double>(j.done()) / static_cast<double>(j.total) : 1.0;
      const int filled = static_cast<int>(fraction * 30);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "%sjob %lu %s %-24s [%s%s] %5.1f%%  %lu/%lu profile ids  %.1fs%s",
                   tty ? "\r" : "", j.id, j.kind == profile::DefinitionKind::kComputed ? "computed" : "segment",
                   j.target.c_str(), std::string(filled, '#').c_str(), std::string(30 - filled, '.').c_str(),
                   fraction * 100, j.done(), j.total, seconds, tty ? "" : "\n");
    });
    if (tty) std::fprintf(stderr, "\n");
    if (!job.ok()) return Fail(job.status());
    std::fprintf(stderr, "job %lu %s: %lu profiles recomputed\n", job->id,
                 std::string(profile::JobStateName(job->state)).c_str(), job->profiles);
  }
  (*store)->Close();
  return 0;
}

}  // namespace
}  // namespace rapport::app

int main(int argc, char** argv) {
  using namespace rapport::app;
  rapport::base::InitCrypto();
  spdlog::set_level(spdlog::level::warn);
  CLI::App cli{"rapport: a self-hosted, real-time customer engagement engine"};
  cli.require_subcommand(1);

  ServeFlags serve;
  auto* serve_cmd = cli.add_subcommand("serve", "Run the HTTP server on the embedded store");
  serve_cmd->add_option("--listen", serve.listen, "HOST:PORT to listen on; port 0 picks one")
      ->capture_default_str();
  serve_cmd->add_option("--data", serve.data, "Store directory")->capture_default_str();
  serve_cmd->add_option("--master-key-file", serve.master_key_file,
                        "File of the master key that wraps the data keys (default: $RAPPORT_MASTER_KEY_FILE, "
                        "else <data>/master.key, created with a new store)");
  serve_cmd->add_option("--sync", serve.sync,
                        "always: fsync before every 200 (group commit); interval:<ms>: fsync every "
                        "<ms>, a power loss may lose that window")
      ->capture_default_str();
  serve_cmd->add_option("--threads", serve.threads, "HTTP worker threads (0 = one per core)")
      ->capture_default_str();
  serve_cmd->add_option("--max-connections", serve.max_connections, "Open connections at most")
      ->capture_default_str();
  serve_cmd->add_option("--write-key-rate", serve.rates.write.per_second,
                        "Requests a second per write key (token bucket; 0 = no limit); a key's own rate wins")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  serve_cmd->add_option("--write-key-burst", serve.rates.write.burst, "Burst per write key (0 = twice the rate)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  serve_cmd->add_option("--secret-key-rate", serve.rates.secret.per_second,
                        "Requests a second per secret key (token bucket; 0 = no limit); a key's own rate wins")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  serve_cmd->add_option("--secret-key-burst", serve.rates.secret.burst, "Burst per secret key (0 = twice the rate)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  serve_cmd->add_option("--header-timeout-ms", serve.header_timeout_ms,
                        "A request's line and headers must arrive within this time (slowloris; idle keep-alive)")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  serve_cmd->add_option("--body-timeout-ms", serve.body_timeout_ms, "A request's body must arrive within this time")
      ->capture_default_str()
      ->check(CLI::Range(100, 600000));
  serve_cmd->add_option("--max-body-kb", serve.max_body_kb,
                        "Largest request body in KiB, before and after gzip (a batch is one body)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64 * 1024));
  serve_cmd->add_option("--dedupe-days", serve.dedupe_days,
                        "Days a messageId is remembered for deduplication")
      ->capture_default_str()
      ->check(CLI::Range(1, 3650));
  serve_cmd->add_option("--state-cache-mb", serve.state_cache_mb,
                        "MiB of identity index, profiles and computed state kept in memory for ingest (0 = none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  serve_cmd->add_option("--block-cache-mb", serve.block_cache_mb,
                        "MiB of RocksDB's block cache (data, index and filter blocks)")
      ->capture_default_str()
      ->check(CLI::Range(8, 1 << 20));

  std::string data = "./var", name, since, workspace, file;
  bool as_json = false, operator_key = false;
  auto* ws_cmd = cli.add_subcommand("workspace", "Manage workspaces");
  ws_cmd->require_subcommand(1);
  auto* create_cmd = ws_cmd->add_subcommand("create", "Create a workspace and print its keys");
  create_cmd->add_option("name", name, "Workspace name (a-z, 0-9, - and _)")->required();
  create_cmd->add_option("--data", data, "Store directory")->capture_default_str();
  create_cmd->add_flag("--json", as_json, "Print {\"workspace\",\"write_key\",\"secret_key\"}");
  create_cmd->add_flag("--admin", operator_key,
                       "Also give the secret key the `operator` scope (manage the server's workspaces)");

  auto* export_cmd = cli.add_subcommand("export", "Write stored events as JSON lines to stdout");
  export_cmd->add_option("--data", data, "Store directory")->capture_default_str();
  export_cmd->add_option("--since", since, "Only events received at or after this ISO-8601 time");
  export_cmd->add_option("--workspace", workspace, "Only this workspace");

  auto* import_cmd = cli.add_subcommand("import", "Store events from a JSON-lines export");
  import_cmd->add_option("file", file, "File written by `rapport export`")->required();
  import_cmd->add_option("--data", data, "Store directory")->capture_default_str();
  import_cmd->add_option("--workspace", workspace,
                         "Workspace for every line (required for bare event lines)");

  auto* compact_cmd = cli.add_subcommand("compact", "Compact the store: deleted data leaves its files (server stopped)");
  compact_cmd->add_option("--data", data, "Store directory")->capture_default_str();

  std::string definitions;
  std::vector<std::string> computed, segments;
  auto* backfill_cmd = cli.add_subcommand(
      "backfill", "Apply a definitions file and run backfill jobs, with progress (server stopped)");
  backfill_cmd->add_option("--data", data, "Store directory")->capture_default_str();
  backfill_cmd->add_option("--definitions", definitions, "Definitions file to apply first");
  backfill_cmd->add_option("--workspace", workspace, "Workspace of --computed-trait / --segment");
  backfill_cmd->add_option("--computed-trait", computed, "Recompute this computed trait (repeatable)");
  backfill_cmd->add_option("--segment", segments, "Re-evaluate this segment (repeatable)");

  serve_cmd->add_option("--clock", serve.clock,
                        "'real', or 'simulated': time moves only by POST /api/v1/admin/clock "
                        "(admin scope), for the world simulator and tests")
      ->capture_default_str();
  serve_cmd->add_option("--clock-start", serve.clock_start,
                        "Where a simulated clock starts (ISO-8601; it is not kept across restarts)")
      ->capture_default_str();
  serve_cmd->add_option("--definitions", serve.definitions,
                        "Definitions file (computed traits, segments) applied at start");
  serve_cmd->add_option("--console", serve.console, "Directory of the web console's assets")
      ->capture_default_str();
  serve_cmd->add_option("--sweep-ms", serve.sweep_ms,
                        "How often windows and now()-conditions are swept, in milliseconds")
      ->capture_default_str()
      ->check(CLI::Range(10, 3'600'000));

  CLI11_PARSE(cli, argc, argv);
  if (serve_cmd->parsed()) return Serve(serve);
  if (create_cmd->parsed()) return CreateWorkspace(data, name, as_json, operator_key);
  if (export_cmd->parsed()) return Export(data, since, workspace);
  if (compact_cmd->parsed()) return Compact(data);
  if (import_cmd->parsed()) return Import(data, file, workspace);
  if (backfill_cmd->parsed()) return Backfill(data, definitions, workspace, computed, segments);
  return 1;
}

// rapport-sim: a simulated customer base that drives a rapport engine through its public HTTP
// API only, as a company's systems would, and reports what the engine got right. See
// tools/simulate/README.md.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <span>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "rapport/base/clock.h"
#include "rapport/base/status.h"
#include "tools/simulate/engine_client.h"
#include "tools/simulate/load.h"
#include "tools/simulate/report.h"
#include "tools/simulate/world.h"

namespace rapport::simulate {
namespace {

namespace json = boost::json;

constexpr const char* kDefaultStart = "2026-01-05T00:00:00Z";

struct Flags {
  std::string target, write_key, secret_key;
  uint32_t customers = 200, days = 14;
  uint64_t seed = 1;
  double speed = 0;
  std::string start;  // empty: see --start
  std::string report, emit;
  bool dry_run = false;
  size_t batch = 100;
  // After the history, going on in real time.
  bool live = false;
  uint32_t live_days = 365;
  // Load mode.
  bool load = false;
  double rate = 0, seconds = 0;
  int connections = 16;
};

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "rapport-sim: %s\n", std::string(status.message()).c_str());
  return 1;
}

// The engine's simulated clock; nullopt when it runs on the real clock.
absl::StatusOr<std::optional<base::Micros>> EngineClock(EngineClient& engine, const std::string& auth) {
  RAPPORT_ASSIGN_OR_RETURN(Reply r, engine.Send("GET", "/api/v1/admin/clock", "", auth));
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  // rapport answers a route it does not have with 404 no_such_route: the real clock.
  if (r.status == 404 && !ec && v.is_object() && v.as_object().contains("error") &&
      v.at("error").is_object() && v.at("error").as_object().contains("code") &&
      v.at("error").at("code") == "no_such_route") {
    return std::nullopt;
  }
  if (r.status != 200) return absl::FailedPreconditionError("cannot read the engine's clock: " + Describe(r));
  if (ec || !v.is_object() || !v.as_object().contains("now") || !v.at("now").is_string()) {
    return absl::InternalError("the engine's clock answer has no 'now': " + r.body);
  }
  RAPPORT_ASSIGN_OR_RETURN(base::Micros now, base::ParseIso8601(std::string(v.at("now").as_string())));
  return now;
}

absl::Status SetEngineClock(EngineClient& engine, const std::string& auth, base::Micros now) {
  const std::string body = fmt::format("{{\"now\":\"{}\"}}", base::FormatIso8601(now));
  RAPPORT_ASSIGN_OR_RETURN(Reply r, SendPatiently(engine, "POST", "/api/v1/admin/clock", body, auth));
  if (r.status != 200) return absl::FailedPreconditionError("cannot move the engine's clock: " + Describe(r));
  return absl::OkStatus();
}

// Posts `events` as /v1/batch requests; returns how many the engine refused to store.
absl::StatusOr<uint64_t> SendEvents(EngineClient& engine, const std::string& auth, std::span<const Event> events,
                                    size_t batch) {
  uint64_t rejected = 0;
  for (size_t i = 0; i < events.size(); i += batch) {
    const std::string body = BatchBody(events.subspan(i, std::min(batch, events.size() - i)));
    RAPPORT_ASSIGN_OR_RETURN(Reply r, SendPatiently(engine, "POST", "/v1/batch", body, auth));
    if (r.status == 200) continue;
    if (r.status != 400) return absl::UnavailableError("the engine did not take a batch: " + Describe(r));
    // Some messages were refused: count them, and say why once per batch.
    RAPPORT_ASSIGN_OR_RETURN(uint64_t refused, RejectedInBatch(r));
    rejected += refused;
    std::fprintf(stderr, "rapport-sim: warning: %s\n", Describe(r).c_str());
  }
  return rejected;
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// The engine, and where the world starts in time.
struct Setup {
  std::unique_ptr<EngineClient> engine;  // null with --dry-run
  bool simulated = true;                 // the engine's clock is ours to move (or there is none)
  base::Micros start = 0;
};

absl::StatusOr<Setup> Prepare(const Flags& f) {
  Setup setup;
  std::optional<base::Micros> start;
  if (!f.start.empty()) {
    auto parsed = base::ParseIso8601(f.start);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(fmt::format("--start must be an ISO-8601 time, not '{}'", f.start));
    }
    start = *parsed;
  }
  if (f.customers == 0 || f.days == 0) return absl::InvalidArgumentError("--customers and --days must be at least 1");
  if (f.batch == 0 || f.batch > 500) return absl::InvalidArgumentError("--batch must be 1-500 events");
  if (f.load && f.dry_run) return absl::InvalidArgumentError("--load needs an engine: drop --dry-run");
  if (f.load && (f.connections < 1 || f.connections > 1024)) {
    return absl::InvalidArgumentError("--connections must be 1-1024");
  }
  if (f.rate < 0 || f.seconds < 0) return absl::InvalidArgumentError("--rate and --seconds must be 0 or more");
  if (f.live && (f.dry_run || f.load)) return absl::InvalidArgumentError("--live needs an engine and no --load");
  if (f.load && f.seconds > 0 && !f.report.empty()) {
    return absl::InvalidArgumentError(
        "--report scores the whole world, but --seconds may stop the load before all of it is sent: drop one");
  }
  if (f.live && f.live_days == 0) return absl::InvalidArgumentError("--live-days must be at least 1");
  if (!f.dry_run && (f.target.empty() || f.write_key.empty() || f.secret_key.empty())) {
    return absl::InvalidArgumentError("give --target, --write-key and --secret-key (or --dry-run)");
  }
  const base::Micros span = static_cast<base::Micros>(f.days) * base::kMicrosPerDay;
  if (!f.dry_run) {
    RAPPORT_ASSIGN_OR_RETURN(setup.engine, EngineClient::Create(f.target));
    RAPPORT_ASSIGN_OR_RETURN(std::optional<base::Micros> engine_now, EngineClock(*setup.engine, BearerAuth(f.secret_key)));
    setup.simulated = engine_now.has_value() && !f.load;
    if (f.live && setup.simulated) {
      return absl::FailedPreconditionError(
          "--live goes on at the real clock, but the engine runs on a simulated one: pace it with --speed instead");
    }
    if (setup.simulated) {
      if (!start) start = base::ParseIso8601(kDefaultStart).value();
      if (*engine_now > *start) {
        return absl::FailedPreconditionError(fmt::format(
            "the engine's clock is at {}, after the world's start {}; give a later --start or a fresh engine",
            base::FormatIso8601(*engine_now), base::FormatIso8601(*start)));
      }
    } else {
      // The real clock, or load mode: the world is the recent past, sent as history (events
      // keep their timestamps), ending before the engine's now.
      const base::Micros now = engine_now ? *engine_now : base::RealClock::Get()->Now();
      if (!start) start = now / base::kMicrosPerDay * base::kMicrosPerDay - span;
      if (*start + span > now) {
        return absl::FailedPreconditionError(fmt::format(
            "the engine's time is {}: the world must be over by now, but it would end at {}; give an earlier --start{}",
            base::FormatIso8601(now), base::FormatIso8601(*start + span),
            f.load ? "" : ", or start the engine with `rapport serve --clock=simulated`"));
      }
    }
  }
  setup.start = start ? *start : base::ParseIso8601(kDefaultStart).value();
  return setup;
}

// The engine's profile of each identifier the world sent, scored against the truth.
absl::StatusOr<IdentityScore> Score(const World& world, EngineClient& engine, const std::string& admin) {
  absl::Status lookup_error;
  IdentityScore identity = ScoreIdentity(
      world.sent_identifiers(), world.evidence(),
      [&](const std::string& type, const std::string& value) -> std::optional<std::string> {
        if (!lookup_error.ok()) return std::nullopt;
        // Identifier types of rapport's own have a parameter each; custom types (externalIds)
        // are asked for as type=…&value=….
        static const std::set<std::string> kOwn = {"user_id", "anonymous_id", "email", "phone", "device_id"};
        const std::string query = kOwn.contains(type) ? fmt::format("{}={}", type, UrlEncode(value))
                                                      : fmt::format("type={}&value={}", UrlEncode(type), UrlEncode(value));
        auto r = SendPatiently(engine, "GET", "/api/v1/profiles/lookup?" + query, "", admin);
        if (!r.ok()) {
          lookup_error = r.status();
          return std::nullopt;
        }
        if (r->status == 404) return std::nullopt;
        boost::system::error_code ec;
        json::value v = json::parse(r->body, ec);
        if (r->status != 200 || ec || !v.is_object() || !v.as_object().contains("id")) {
          lookup_error = absl::InternalError(fmt::format("looking up {} {}: {}", type, value, Describe(*r)));
          return std::nullopt;
        }
        return json::serialize(v.at("id"));
      });
  if (!lookup_error.ok()) return lookup_error;
  return identity;
}

// What a live hour sent: events sent (a prefix of the hour's), and how many were refused.
struct LiveSent {
  size_t sent = 0;
  uint64_t rejected = 0;
};

// Sends events as their time comes on the real clock: waits for each event's timestamp, then
// sends it with whatever else is due by then (up to a batch). Stops before an event due after
// `deadline` (a real time; 0: none).
absl::StatusOr<LiveSent> SendLive(EngineClient& engine, const std::string& auth, const std::vector<Event>& events,
                                  size_t batch, base::Micros deadline) {
  LiveSent out;
  while (out.sent < events.size()) {
    const base::Micros due = events[out.sent].timestamp;
    if (deadline && due > deadline) break;
    const base::Micros wait = due - base::RealClock::Get()->Now();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::microseconds(wait));
    const base::Micros now = base::RealClock::Get()->Now();
    size_t end = out.sent + 1;
    while (end < events.size() && end - out.sent < batch && events[end].timestamp <= now) ++end;
    RAPPORT_ASSIGN_OR_RETURN(uint64_t n, SendEvents(engine, auth, std::span(events).subspan(out.sent, end - out.sent), batch));
    out.rejected += n;
    out.sent = end;
  }
  return out;
}

// Hours [from, to) of the world. With a simulated clock the engine's clock moves to the end of
// each hour, then the hour's events are sent. On the real clock, hours already past are sent as
// history, and (--live) later ones as their events' time comes, until `deadline` (a real time;
// 0: none). Returns false when the deadline stopped it.
absl::StatusOr<bool> SendHours(const Flags& f, Setup& setup, World& world, uint32_t from, uint32_t to, RunFacts& run,
                               std::ofstream& emit, base::Micros deadline = 0) {
  const std::string admin = BearerAuth(f.secret_key), writer = BasicAuth(f.write_key);
  const auto began = std::chrono::steady_clock::now();
  bool finished = true;
  for (uint32_t hour = from; hour < to && finished; ++hour) {
    std::vector<Event> events = world.Hour(hour);
    size_t sent = events.size();
    if (setup.engine) {
      // The hour has passed when its events arrive: their timestamps are in the engine's past.
      if (setup.simulated) RAPPORT_RETURN_IF_ERROR(SetEngineClock(*setup.engine, admin, world.HourStart(hour + 1)));
      if (setup.simulated || world.HourStart(hour + 1) <= base::RealClock::Get()->Now()) {
        RAPPORT_ASSIGN_OR_RETURN(uint64_t rejected, SendEvents(*setup.engine, writer, events, f.batch));
        run.events_rejected += rejected;
      } else {
        RAPPORT_ASSIGN_OR_RETURN(LiveSent live, SendLive(*setup.engine, writer, events, f.batch, deadline));
        run.events_rejected += live.rejected;
        sent = live.sent;
        finished = sent == events.size();
      }
    }
    for (size_t i = 0; i < sent; ++i) emit << events[i].json << '\n';
    run.events_sent += sent;
    if (hour % 24 == 23) {
      std::fprintf(stderr, "day %u/%u%s: %llu events\n", hour / 24 + 1, world.options().days,
                   hour / 24 + 1 > f.days ? " (live)" : "", static_cast<unsigned long long>(run.events_sent));
    }
    if (f.speed > 0 && setup.simulated) {  // pace: `speed` simulated seconds per real second
      const auto due = began + std::chrono::duration<double>((hour + 1 - from) * 3600.0 / f.speed);
      std::this_thread::sleep_until(due);
    }
  }
  run.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  return finished;
}

// Load mode: the whole stream prepared first (so making it costs nothing while it is
// measured), then sent at --rate over --connections.
absl::Status SendLoadMode(const Flags& f, Setup& setup, World& world, RunFacts& run, std::ofstream& emit) {
  const auto preparing = std::chrono::steady_clock::now();
  std::vector<Batch> batches;
  std::vector<Event> pending;
  auto close = [&] {
    if (pending.empty()) return;
    batches.push_back({BatchBody(pending), static_cast<uint32_t>(pending.size())});
    pending.clear();
  };
  for (uint32_t hour = 0; hour < world.hours(); ++hour) {
    for (Event& e : world.Hour(hour)) {
      emit << e.json << '\n';
      pending.push_back(std::move(e));
      if (pending.size() == f.batch) close();
    }
  }
  close();
  uint64_t total = 0;
  for (const Batch& b : batches) total += b.events;
  std::fprintf(stderr, "prepared %llu events in %zu batches (%.1f s); sending over %d connections at %s\n",
               static_cast<unsigned long long>(total), batches.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - preparing).count(), f.connections,
               f.rate > 0 ? fmt::format("{:.0f} events/s", f.rate).c_str() : "the engine's pace (closed loop)");
  setup.engine.reset();  // load mode opens its own connections
  RAPPORT_ASSIGN_OR_RETURN(LoadResult load, SendLoad({.target = f.target,
                                                      .authorization = BasicAuth(f.write_key),
                                                      .rate = f.rate,
                                                      .seconds = f.seconds,
                                                      .connections = f.connections},
                                                     batches));
  run.events_sent = load.events + load.rejected;
  run.events_rejected = load.rejected;
  run.seconds = load.seconds;
  run.load = load;
  run.load_rate = f.rate;
  run.load_connections = f.connections;
  // One line for scripts (bench/world reads it).
  std::printf("load: events_per_s=%.0f events=%llu rejected=%llu requests=%llu retries=%llu p50_ms=%.2f "
              "p99_ms=%.2f p999_ms=%.2f\n",
              load.events_per_second(), static_cast<unsigned long long>(load.events),
              static_cast<unsigned long long>(load.rejected), static_cast<unsigned long long>(load.requests),
              static_cast<unsigned long long>(load.retries), load.p50_ms, load.p99_ms, load.p999_ms);
  if (load.events + load.rejected < total) {
    std::fprintf(stderr, "rapport-sim: --seconds ended the load after %llu of %llu events\n",
                 static_cast<unsigned long long>(load.events + load.rejected), static_cast<unsigned long long>(total));
  }
  return absl::OkStatus();
}

// Scores identity resolution against the engine (not in --dry-run; in load mode only for a
// report: looking every identifier up takes a while) and writes the report if asked.
absl::Status Conclude(const Flags& f, Setup& setup, const World& world, const RunFacts& run) {
  std::optional<IdentityScore> identity;
  if (!f.dry_run && (!f.load || !f.report.empty())) {
    if (!setup.engine) {
      RAPPORT_ASSIGN_OR_RETURN(setup.engine, EngineClient::Create(f.target));
    }
    RAPPORT_ASSIGN_OR_RETURN(identity, Score(world, *setup.engine, BearerAuth(f.secret_key)));
    std::printf("%llu events in %.1f s; identity resolution precision %.4f recall %.4f (of linkable pairs %.4f)\n",
                static_cast<unsigned long long>(run.events_sent), run.seconds, identity->precision, identity->recall,
                identity->recall_linkable);
  }
  if (!f.report.empty()) {
    RAPPORT_RETURN_IF_ERROR(WriteReport(f.report, world, run, identity).status());
    std::printf("report: %s/report.md\n", f.report.c_str());
  }
  std::fflush(stdout);
  return absl::OkStatus();
}

int Run(const Flags& f) {
  auto setup = Prepare(f);
  if (!setup.ok()) return Fail(setup.status());
  World world({.customers = f.customers, .days = f.days + (f.live ? f.live_days : 0), .seed = f.seed,
               .start = setup->start});
  RunFacts run;
  run.target = f.dry_run ? "no engine (--dry-run)"
               : f.target + (setup->simulated ? " (simulated clock)" : " (the world sent as history)");
  std::ofstream emit;
  if (!f.emit.empty()) {
    emit.open(f.emit, std::ios::binary | std::ios::trunc);
    if (!emit) return Fail(absl::InvalidArgumentError(fmt::format("cannot write --emit file {}", f.emit)));
  }
  if (f.load) {
    if (auto st = SendLoadMode(f, *setup, world, run, emit); !st.ok()) return Fail(st);
  } else {
    if (auto st = SendHours(f, *setup, world, 0, f.days * 24, run, emit); !st.ok()) return Fail(st.status());
  }
  if (f.dry_run) {
    std::printf("%llu events generated in %.1f s\n", static_cast<unsigned long long>(run.events_sent), run.seconds);
  }
  if (emit.is_open() && !emit.flush()) return Fail(absl::DataLossError("writing the --emit file failed"));
  if (auto st = Conclude(f, *setup, world, run); !st.ok()) return Fail(st);
  if (f.live) {
    std::fprintf(stderr, "the history is in; going on live for %u days, at the real clock's pace\n", f.live_days);
    run.target = f.target + " (history, then live)";
    const base::Micros deadline =
        f.seconds > 0 ? base::RealClock::Get()->Now() + static_cast<base::Micros>(f.seconds * base::kMicrosPerSecond) : 0;
    auto finished = SendHours(f, *setup, world, f.days * 24, world.hours(), run, emit, deadline);
    if (!finished.ok()) return Fail(finished.status());
    if (!*finished) std::fprintf(stderr, "--seconds ended the live world\n");
    if (auto st = Conclude(f, *setup, world, run); !st.ok()) return Fail(st);
  }
  if (emit.is_open() && !emit.flush()) return Fail(absl::DataLossError("writing the --emit file failed"));
  return 0;
}

}  // namespace
}  // namespace rapport::simulate

int main(int argc, char** argv) {
  rapport::simulate::Flags f;
  CLI::App app{"rapport-sim: a simulated customer base driving a rapport engine over HTTP"};
  app.add_option("--target", f.target, "The engine, http://HOST:PORT (started with --clock=simulated)");
  app.add_option("--write-key", f.write_key, "A write key of the workspace to fill");
  app.add_option("--secret-key", f.secret_key, "A secret key with the admin and profiles:read scopes");
  app.add_option("--customers", f.customers, "Customers in the world")->capture_default_str();
  app.add_option("--days", f.days, "Simulated days")->capture_default_str();
  app.add_option("--seed", f.seed, "Seed: the same seed gives the same event stream")->capture_default_str();
  app.add_option("--speed", f.speed,
                 "Simulated seconds per real second, with a simulated clock (0: as fast as the engine takes them)")
      ->capture_default_str();
  app.add_option("--start", f.start,
                 "Midnight UTC of the first day (default: 2026-01-05 with a simulated clock or --dry-run; "
                 "with the real clock, --days before today, so the world ends before now)");
  app.add_option("--batch", f.batch, "Events per /v1/batch request")->capture_default_str();
  app.add_option("--report", f.report, "Write report.md, figures.json and the report's PNG charts into this directory");
  app.add_option("--emit", f.emit, "Write every event sent as a JSON line into this file");
  app.add_flag("--dry-run", f.dry_run, "Generate the events (for --emit) without an engine");
  app.add_flag("--live", f.live,
               "With a real-clock engine: after the history, go on in real time, each event sent when its "
               "time comes (stop with Ctrl-C; the report is written when the history is in)");
  app.add_option("--live-days", f.live_days, "With --live: days to go on for")->capture_default_str();
  app.add_flag("--load", f.load,
               "Load mode: prepare the world's whole stream as history, then send it at --rate over "
               "--connections and print throughput and latency");
  app.add_option("--rate", f.rate, "Load mode: events/s over all connections (0: as fast as answered)")
      ->capture_default_str();
  app.add_option("--seconds", f.seconds,
                 "Load mode: stop after this long (0: when the stream is sent); --live: stop going on after this long")
      ->capture_default_str();
  app.add_option("--connections", f.connections, "Load mode: keep-alive connections")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return rapport::simulate::Run(f);
}

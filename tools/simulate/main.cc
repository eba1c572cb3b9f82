// rapport-sim: a simulated customer base that drives a rapport engine through its public HTTP
// API only, as a company's systems would, and reports what the engine got right. See
// tools/simulate/README.md.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "rapport/base/clock.h"
#include "rapport/base/status.h"
#include "tools/simulate/engine_client.h"
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
};

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "rapport-sim: %s\n", std::string(status.message()).c_str());
  return 1;
}

std::string ErrorOf(const Reply& r) {
  return fmt::format("HTTP {}: {}", r.status, r.body.substr(0, 300));
}

// Sends until answered with something other than 429/503: up to 60 more attempts, each after the
// Retry-After the engine gave, else 250 ms.
absl::StatusOr<Reply> SendPatiently(EngineClient& engine, const std::string& method, const std::string& target,
                                    const std::string& body, const std::string& auth) {
  for (int attempt = 0;; ++attempt) {
    RAPPORT_ASSIGN_OR_RETURN(Reply r, engine.Send(method, target, body, auth));
    if ((r.status != 429 && r.status != 503) || attempt >= 60) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(r.retry_after_seconds ? *r.retry_after_seconds * 1000 : 250));
  }
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
  if (r.status != 200) return absl::FailedPreconditionError("cannot read the engine's clock: " + ErrorOf(r));
  if (ec || !v.is_object() || !v.as_object().contains("now") || !v.at("now").is_string()) {
    return absl::InternalError("the engine's clock answer has no 'now': " + r.body);
  }
  RAPPORT_ASSIGN_OR_RETURN(base::Micros now, base::ParseIso8601(std::string(v.at("now").as_string())));
  return now;
}

absl::Status SetEngineClock(EngineClient& engine, const std::string& auth, base::Micros now) {
  const std::string body = fmt::format("{{\"now\":\"{}\"}}", base::FormatIso8601(now));
  RAPPORT_ASSIGN_OR_RETURN(Reply r, SendPatiently(engine, "POST", "/api/v1/admin/clock", body, auth));
  if (r.status != 200) return absl::FailedPreconditionError("cannot move the engine's clock: " + ErrorOf(r));
  return absl::OkStatus();
}

// Posts `events` as /v1/batch requests; returns how many the engine refused to store.
absl::StatusOr<uint64_t> SendEvents(EngineClient& engine, const std::string& auth, const std::vector<Event>& events,
                                    size_t batch) {
  uint64_t rejected = 0;
  for (size_t i = 0; i < events.size(); i += batch) {
    std::string body = "{\"batch\":[";
    for (size_t j = i; j < std::min(events.size(), i + batch); ++j) {
      if (j > i) body += ',';
      body += events[j].json;
    }
    body += "]}";
    RAPPORT_ASSIGN_OR_RETURN(Reply r, SendPatiently(engine, "POST", "/v1/batch", body, auth));
    if (r.status == 200) continue;
    if (r.status != 400) return absl::UnavailableError("the engine did not take a batch: " + ErrorOf(r));
    // Some messages were refused: count them, and say why once per batch.
    boost::system::error_code ec;
    json::value v = json::parse(r.body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("results") || !v.at("results").is_array()) {
      return absl::InvalidArgumentError("the engine refused a batch: " + ErrorOf(r));
    }
    for (const json::value& item : v.at("results").as_array()) {
      if (item.is_object() && item.as_object().contains("status") && item.at("status") == "rejected") ++rejected;
    }
    std::fprintf(stderr, "rapport-sim: warning: %s\n", ErrorOf(r).c_str());
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

int Run(const Flags& f) {
  std::optional<base::Micros> start;
  if (!f.start.empty()) {
    auto parsed = base::ParseIso8601(f.start);
    if (!parsed.ok()) {
      return Fail(absl::InvalidArgumentError(fmt::format("--start must be an ISO-8601 time, not '{}'", f.start)));
    }
    start = *parsed;
  }
  if (f.customers == 0 || f.days == 0) return Fail(absl::InvalidArgumentError("--customers and --days must be at least 1"));
  if (f.batch == 0 || f.batch > 500) return Fail(absl::InvalidArgumentError("--batch must be 1-500 events"));
  if (!f.dry_run && (f.target.empty() || f.write_key.empty() || f.secret_key.empty())) {
    return Fail(absl::InvalidArgumentError("give --target, --write-key and --secret-key (or --dry-run)"));
  }
  std::unique_ptr<EngineClient> engine;
  const std::string admin = BearerAuth(f.secret_key), writer = BasicAuth(f.write_key);
  bool simulated = true;  // the engine's clock is ours to move (or there is no engine)
  const base::Micros span = static_cast<base::Micros>(f.days) * base::kMicrosPerDay;
  if (!f.dry_run) {
    auto created = EngineClient::Create(f.target);
    if (!created.ok()) return Fail(created.status());
    engine = *std::move(created);
    auto now = EngineClock(*engine, admin);
    if (!now.ok()) return Fail(now.status());
    if (*now) {
      if (!start) start = base::ParseIso8601(kDefaultStart).value();
      if (**now > *start) {
        return Fail(absl::FailedPreconditionError(fmt::format(
            "the engine's clock is at {}, after the world's start {}; give a later --start or a fresh engine",
            base::FormatIso8601(**now), base::FormatIso8601(*start))));
      }
    } else {
      // The real clock: the world is the recent past, sent as history (events keep their
      // timestamps), ending before now.
      simulated = false;
      const base::Micros real = base::RealClock::Get()->Now();
      if (!start) start = real / base::kMicrosPerDay * base::kMicrosPerDay - span;
      if (*start + span > real) {
        return Fail(absl::FailedPreconditionError(fmt::format(
            "the engine runs on the real clock, so the world must be over by now, but it would end at {}; "
            "give an earlier --start, or start the engine with `rapport serve --clock=simulated`",
            base::FormatIso8601(*start + span))));
      }
    }
  }
  if (!start) start = base::ParseIso8601(kDefaultStart).value();
  World world({.customers = f.customers, .days = f.days, .seed = f.seed, .start = *start});
  std::ofstream emit;
  if (!f.emit.empty()) {
    emit.open(f.emit, std::ios::binary | std::ios::trunc);
    if (!emit) return Fail(absl::InvalidArgumentError(fmt::format("cannot write --emit file {}", f.emit)));
  }
  RunFacts run{f.dry_run ? "no engine (--dry-run)"
                         : f.target + (simulated ? " (simulated clock)" : " (real clock: the world sent as history)"),
               0, 0, 0};
  const auto began = std::chrono::steady_clock::now();
  for (uint32_t hour = 0; hour < world.hours(); ++hour) {
    std::vector<Event> events = world.Hour(hour);
    for (const Event& e : events) emit << e.json << '\n';
    if (engine) {
      // The hour has passed when its events arrive: their timestamps are in the engine's past.
      if (simulated) {
        if (auto st = SetEngineClock(*engine, admin, world.HourStart(hour + 1)); !st.ok()) return Fail(st);
      }
      auto rejected = SendEvents(*engine, writer, events, f.batch);
      if (!rejected.ok()) return Fail(rejected.status());
      run.events_rejected += *rejected;
    }
    run.events_sent += events.size();
    if (hour % 24 == 23) {
      std::fprintf(stderr, "day %u/%u: %llu events\n", hour / 24 + 1, f.days,
                   static_cast<unsigned long long>(run.events_sent));
    }
    if (f.speed > 0 && simulated) {  // pace: `speed` simulated seconds per real second
      const auto due = began + std::chrono::duration<double>((hour + 1) * 3600.0 / f.speed);
      std::this_thread::sleep_until(due);
    }
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  if (emit.is_open() && !emit.flush()) return Fail(absl::DataLossError("writing the --emit file failed"));

  IdentityScore identity;
  if (engine) {
    absl::Status lookup_error;
    identity = ScoreIdentity(world.sent_identifiers(), world.evidence(), [&](const std::string& type, const std::string& value)
                                                           -> std::optional<std::string> {
      if (!lookup_error.ok()) return std::nullopt;
      auto r = SendPatiently(*engine, "GET", fmt::format("/api/v1/profiles/lookup?{}={}", type, UrlEncode(value)), "", admin);
      if (!r.ok()) {
        lookup_error = r.status();
        return std::nullopt;
      }
      if (r->status == 404) return std::nullopt;
      boost::system::error_code ec;
      json::value v = json::parse(r->body, ec);
      if (r->status != 200 || ec || !v.is_object() || !v.as_object().contains("id")) {
        lookup_error = absl::InternalError(fmt::format("looking up {} {}: {}", type, value, ErrorOf(*r)));
        return std::nullopt;
      }
      return json::serialize(v.at("id"));
    });
    if (!lookup_error.ok()) return Fail(lookup_error);
  }
  std::printf("%llu events in %.1f s; identity resolution precision %.4f recall %.4f (of linkable pairs %.4f)\n",
              static_cast<unsigned long long>(run.events_sent), run.seconds, identity.precision, identity.recall,
              identity.recall_linkable);
  if (!f.report.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(f.report, ec);
    std::ofstream md(f.report + "/report.md", std::ios::binary | std::ios::trunc);
    std::ofstream figures(f.report + "/figures.json", std::ios::binary | std::ios::trunc);
    md << ReportMarkdown(world, run, identity);
    figures << FiguresJson(world, run, identity);
    if (!md.flush() || !figures.flush()) {
      return Fail(absl::DataLossError(fmt::format("cannot write the report in {}", f.report)));
    }
    std::printf("report: %s/report.md\n", f.report.c_str());
  }
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
  app.add_option("--report", f.report, "Write report.md and figures.json into this directory");
  app.add_option("--emit", f.emit, "Write every event sent as a JSON line into this file");
  app.add_flag("--dry-run", f.dry_run, "Generate the events (for --emit) without an engine");
  CLI11_PARSE(app, argc, argv);
  return rapport::simulate::Run(f);
}

// The ceiling for durable ingest: RocksDB alone, no HTTP, no parsing. `--threads` writers each
// commit WriteBatches of `--batch` events with sync=true (RocksDB groups concurrent synced
// writes into one fsync). Each event writes the same bytes rapport writes for it: the event
// value (~650 bytes: the stored JSON and its header), a person-index entry and a dedupe record,
// into three column families. With `--state`, each event also writes what rapport's profile stage
// writes for it with bench/definitions.json active, in a fourth column family: the sizes and
// rates per event are those measured from rapport's own WriteBatches in that benchmark (see
// bench/RESULTS.md, session 7: "the storage ceiling of the writes themselves is below 60k"), keyed like rapport's
// over the same 50,000 people. No identity resolution, no computed traits and no segment
// evaluation are done: it measures what storing their results costs. With `--from FILE` (JSON
// lines, e.g. `rapport-sim --dry-run --emit FILE`), event n's value is line n of the file (in a
// cycle) instead of bench/events.h's: the ceiling for that stream's bytes (bench/world).
// `--events N` stops after N events instead of after `--seconds`, so the store grows as much as
// the run it is compared with.
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/events.h"

namespace {

// What rapport's profile stage wrote per event in `bench/segments` with bench/definitions.json
// (counted from its WriteBatches, 2026-11-24): a profile record (~252 bytes) and a derived-state
// record (~391 bytes) per event; 1.78 timeline entries (the event, and 0.78 segment entries or
// exits); 0.77 member-index entries; 0.17 identifier entries; 0.14 due-index entries.
void PutState(rocksdb::WriteBatch& wb, rocksdb::ColumnFamilyHandle* cf, uint64_t n,
              const char (&seq)[8]) {
  const uint64_t person = (n * 2654435761u) % 50000;
  char id[8];
  for (int b = 0; b < 8; ++b) id[b] = static_cast<char>(person >> (56 - 8 * b));
  const std::string ws("\0\0\0\1", 4);
  const std::string profile = ws + std::string(id, 8);
  const std::string message = "ceiling-" + std::to_string(n);
  wb.Put(cf, "p" + profile, std::string(252 - 13, 'p'));
  wb.Put(cf, "c" + profile, std::string(391 - 13, 'c'));
  const std::string timeline = "t" + profile + std::string(8, '\x80') + std::string(seq, 8);
  wb.Put(cf, timeline, message);
  const uint64_t r = (n * 40503u) % 100;  // fractions of events, spread over the users
  if (r < 78) wb.Put(cf, timeline + "m" + "segment-" + std::to_string(r % 50), "entered");
  if (r < 77) wb.Put(cf, "g" + ws + "\x0a" + "segment-" + std::to_string(r % 50) + std::string(id, 8),
                     std::string(8, 'e'));
  if (r >= 83) wb.Put(cf, "i" + ws + "\x07user_id" + "user-" + std::to_string(person), std::string(id, 8));
  if (r >= 86) wb.Put(cf, "w" + std::string(seq, 8) + profile, "");
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, from;
  int threads = 16, batch = 100;
  uint64_t max_events = 0;
  double seconds = 10;
  bool sync = true;
  bool state = false;
  bool usage = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--state") {
      state = true;
      continue;
    }
    if (i + 1 >= argc) {
      usage = true;
      break;
    }
    const std::string v = argv[++i];
    if (a == "--dir") dir = v;
    else if (a == "--threads") threads = std::atoi(v.c_str());
    else if (a == "--batch") batch = std::atoi(v.c_str());
    else if (a == "--seconds") seconds = std::atof(v.c_str());
    else if (a == "--sync") sync = v == "always";
    else if (a == "--from") from = v;
    else if (a == "--events") max_events = std::strtoull(v.c_str(), nullptr, 10);
    else usage = true;
  }
  std::vector<std::string> lines;
  if (!from.empty()) {
    std::ifstream in(from);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) lines.push_back(std::move(line));
    }
    if (lines.empty()) {
      std::fprintf(stderr, "no events in %s\n", from.c_str());
      return 2;
    }
  }
  if (usage || dir.empty()) {
    std::fprintf(stderr, "usage: rapport-bench-store-ceiling --dir DIR [--threads N] [--batch N] [--seconds S] [--state] "
                         "[--from EVENTS.jsonl] [--events N]\n");
    return 2;
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.compression = rocksdb::kLZ4Compression;
  options.write_buffer_size = 64 << 20;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, options}, {"events", options}, {"person", options}, {"dedupe", options},
      {"state", options}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, cfs, &handles, &db);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::atomic<uint64_t> seq{0}, events{0};
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(seconds));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      std::string event;
      while (max_events > 0 || std::chrono::steady_clock::now() < end) {
        rocksdb::WriteBatch wb;
        const uint64_t first = seq.fetch_add(batch);
        if (max_events > 0 && first >= max_events) break;
        const int count = max_events > 0 ? static_cast<int>(std::min<uint64_t>(batch, max_events - first)) : batch;
        for (int i = 0; i < count; ++i) {
          const uint64_t n = first + i;
          event.assign(21, 'h');  // the stored value's header (version, workspace, times, envelope)
          if (lines.empty()) {
            rapport::bench::AppendEvent(&event, "ceiling", n);
          } else {
            event += lines[n % lines.size()];
          }
          event += R"(,"receivedAt":"2026-11-23T12:00:02.123Z","originalTimestamp":"2026-11-23T12:00:02.000Z")";
          char key[8];
          for (int b = 0; b < 8; ++b) key[b] = static_cast<char>(n >> (56 - 8 * b));
          wb.Put(handles[1], rocksdb::Slice(key, 8), event);
          // Same layout as rapport's keys: workspace(4) kind(1) id_len(2) id time(8) seq(8), and
          // workspace(4) messageId (std::string(p, n) keeps the NUL bytes).
          const std::string person = std::string("\0\0\0\1u\0\x0a", 7) + "user-" +
                                     std::to_string(10000 + n % 50000) + std::string(key, 8) +
                                     std::string(key, 8);
          wb.Put(handles[2], person, "\1");
          wb.Put(handles[3], std::string("\0\0\0\1", 4) + "ceiling-" + std::to_string(n),
                 std::string(17, 'd'));
          if (state) PutState(wb, handles[4], n, key);
        }
        rocksdb::WriteOptions wo;
        wo.sync = sync;
        if (!db->Write(wo, &wb).ok()) std::abort();
        events += count;
      }
    });
  }
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("events_per_s=%.0f\n", events / elapsed);
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  delete db;
  return 0;
}

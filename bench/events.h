// Realistic Segment events (~700 bytes each) for the ingest benchmarks: a mix of product views,
// cart adds, orders, page views and identifies with browser context and consent, unique
// messageIds.
#ifndef RAPPORT_BENCH_EVENTS_H_
#define RAPPORT_BENCH_EVENTS_H_

#include <cstdint>
#include <string>

namespace rapport::bench {

// What a consent manager sends with each event (rapport stores nothing without consent).
#define RAPPORT_BENCH_CONSENT R"("consent":{"categoryPreferences":{"analytics":true,"personalization":true,"marketing":false}})"

// Event `n` of a run is about user (n × 2654435761) mod `users`: a permutation of the users for
// every `users` consecutive events, so each person comes back at the same pace.
inline void AppendEvent(std::string* out, const std::string& run, uint64_t n, uint64_t users = 50000) {
  static const char* kCategories[] = {"boilers", "thermostats", "radiators", "filters", "tools"};
  static const char* kLocales[] = {"nl-NL", "en-GB", "nl-BE", "de-DE"};
  const uint64_t user = (n * 2654435761u) % users;
  const char* category = kCategories[n % 5];
  const char* locale = kLocales[(n / 5) % 4];
  char buf[1400];
  int len;
  switch (n % 10) {
    case 0:
      len = snprintf(buf, sizeof buf,
          R"({"type":"identify","messageId":"%s-%llu","userId":"user-%llu","anonymousId":"anon-%llu",)"
          R"("traits":{"email":"user%llu@example.com","name":"Customer %llu","plan":"%s","city":"Utrecht","newsletter":true},)"
          R"("context":{"ip":"203.0.113.%llu","locale":"%s","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",)"
          R"("library":{"name":"analytics.js","version":"4.1.0"},)" RAPPORT_BENCH_CONSENT R"(},"timestamp":"2026-11-23T12:00:00.000Z"})",
          run.c_str(), (unsigned long long)n, (unsigned long long)user, (unsigned long long)user,
          (unsigned long long)user, (unsigned long long)user, n % 3 ? "basic" : "pro",
          (unsigned long long)(n % 250), locale);
      break;
    case 1: case 2: case 3:
      len = snprintf(buf, sizeof buf,
          R"({"type":"page","messageId":"%s-%llu","anonymousId":"anon-%llu","name":"Product","properties":{"path":"/products/p-%llu",)"
          R"("url":"https://shop.example/products/p-%llu","referrer":"https://search.example/?q=%s","title":"%s p-%llu"},)"
          R"("context":{"ip":"203.0.113.%llu","locale":"%s","userAgent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",)"
          R"("library":{"name":"analytics.js","version":"4.1.0"},)" RAPPORT_BENCH_CONSENT R"(},"timestamp":"2026-11-23T12:00:01.000Z"})",
          run.c_str(), (unsigned long long)n, (unsigned long long)user, (unsigned long long)(n % 500),
          (unsigned long long)(n % 500), category, category, (unsigned long long)(n % 500),
          (unsigned long long)(n % 250), locale);
      break;
    default:
      len = snprintf(buf, sizeof buf,
          R"({"type":"track","messageId":"%s-%llu","userId":"user-%llu","event":"%s",)"
          R"("properties":{"product_id":"p-%llu","category":"%s","price":%llu.95,"currency":"EUR","quantity":%llu,"order_id":"o-%llu"},)"
          R"("context":{"ip":"203.0.113.%llu","locale":"%s","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",)"
          R"("library":{"name":"analytics.js","version":"4.1.0"},"page":{"path":"/cart"},)" RAPPORT_BENCH_CONSENT R"(},"timestamp":"2026-11-23T12:00:02.000Z"})",
          run.c_str(), (unsigned long long)n, (unsigned long long)user,
          n % 10 == 9 ? "Order Completed" : (n % 2 ? "Product Added" : "Product Viewed"),
          (unsigned long long)(n % 500), category, (unsigned long long)(10 + n % 90),
          (unsigned long long)(1 + n % 3), (unsigned long long)n, (unsigned long long)(n % 250),
          locale);
      break;
  }
  out->append(buf, len > 0 ? static_cast<size_t>(len) : 0);
}

// {"batch":[…]} of `count` events numbered from `first`.
inline std::string Batch(const std::string& run, uint64_t first, int count, uint64_t users = 50000) {
  std::string body = "{\"batch\":[";
  body.reserve(count * 700);
  for (int i = 0; i < count; ++i) {
    if (i) body += ',';
    AppendEvent(&body, run, first + i, users);
  }
  body += "]}";
  return body;
}

}  // namespace rapport::bench

#undef RAPPORT_BENCH_CONSENT

#endif  // RAPPORT_BENCH_EVENTS_H_

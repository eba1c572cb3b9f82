#include "rapport/base/metrics.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "absl/strings/str_cat.h"
#include "rapport/base/check.h"

namespace rapport::base {
namespace {

std::string FormatDouble(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return absl::StrCat(v);
}

// Inserts an extra label (`le` for buckets) into a rendered label set.
std::string WithLabel(const std::string& rendered, std::string_view key, std::string_view value) {
  std::string extra = fmt::format("{}=\"{}\"", key, value);
  if (rendered.empty()) return absl::StrCat("{", extra, "}");
  return absl::StrCat(rendered.substr(0, rendered.size() - 1), ",", extra, "}");
}

}  // namespace

std::string RenderLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    absl::StrAppend(&out, labels[i].first, "=\"");
    for (char c : labels[i].second) {
      if (c == '\\') out += "\\\\";
      else if (c == '"') out += "\\\"";
      else if (c == '\n') out += "\\n";
      else out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  RAPPORT_CHECK(std::is_sorted(bounds_.begin(), bounds_.end()));
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,    5,     10};
}

std::vector<double> CountBuckets() {
  std::vector<double> out;
  for (double b = 1; b <= 4096; b *= 2) out.push_back(b);
  return out;
}

Registry::Family& Registry::FamilyFor(std::string_view name, std::string_view help, Type type) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{type, std::string(help), {}, {}, {}, {}})
             .first;
  }
  RAPPORT_CHECK(it->second.type == type);
  return it->second;
}

Counter& Registry::GetCounter(std::string_view name, std::string_view help, const Labels& labels) {
  MutexLock lock(&mu_);
  auto& slot = FamilyFor(name, help, Type::kCounter).counters[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::GetGauge(std::string_view name, std::string_view help, const Labels& labels) {
  MutexLock lock(&mu_);
  auto& slot = FamilyFor(name, help, Type::kGauge).gauges[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& Registry::GetHistogram(std::string_view name, std::string_view help,
                                  const std::vector<double>& bounds, const Labels& labels) {
  MutexLock lock(&mu_);
  Family& family = FamilyFor(name, help, Type::kHistogram);
  if (family.histograms.empty()) family.bounds = bounds;
  auto& slot = family.histograms[RenderLabels(labels)];
  if (!slot) slot = std::make_unique<Histogram>(family.bounds);
  return *slot;
}

void Registry::AddCollector(std::function<void(std::string*)> collector) {
  MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::Render() const {
  std::string out;
  std::vector<std::function<void(std::string*)>> collectors;
  {
    MutexLock lock(&mu_);
    for (const auto& [name, family] : families_) {
      static constexpr const char* kTypeNames[] = {"counter", "gauge", "histogram"};
      absl::StrAppend(&out, "# HELP ", name, " ", family.help, "\n# TYPE ", name, " ",
                      kTypeNames[static_cast<int>(family.type)], "\n");
      for (const auto& [labels, c] : family.counters) {
        absl::StrAppend(&out, name, labels, " ", c->Value(), "\n");
      }
      for (const auto& [labels, g] : family.gauges) {
        absl::StrAppend(&out, name, labels, " ", FormatDouble(g->Value()), "\n");
      }
      for (const auto& [labels, h] : family.histograms) {
        const std::vector<uint64_t> counts = h->BucketCounts();
        uint64_t cumulative = 0;
        for (size_t i = 0; i < counts.size(); ++i) {
          cumulative += counts[i];
          const std::string le = i < h->bounds().size() ? FormatDouble(h->bounds()[i]) : "+Inf";
          absl::StrAppend(&out, name, "_bucket", WithLabel(labels, "le", le), " ", cumulative,
                          "\n");
        }
        absl::StrAppend(&out, name, "_sum", labels, " ", FormatDouble(h->Sum()), "\n");
        absl::StrAppend(&out, name, "_count", labels, " ", cumulative, "\n");
      }
    }
    collectors = collectors_;
  }
  for (const auto& collect : collectors) collect(&out);
  return out;
}

}  // namespace rapport::base

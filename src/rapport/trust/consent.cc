#include "rapport/trust/consent.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

#include "rapport/base/error.h"

namespace rapport::trust {

bool IsPurposeName(std::string_view name) {
  if (name.empty() || name.size() > kMaxPurposeChars || name[0] < 'a' || name[0] > 'z') return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

std::string_view ConsentStateName(ConsentState state) {
  switch (state) {
    case ConsentState::kGranted: return "granted";
    case ConsentState::kDenied: return "denied";
    case ConsentState::kUnknown: return "unknown";
  }
  return "unknown";
}

bool Supersedes(const Choice& a, const Choice& b) {
  // (at, message_id, state) with denied > granted: a total order, so folding choices in any
  // order ends with the same one.
  return std::tie(a.at, a.message_id, a.state) > std::tie(b.at, b.message_id, b.state);
}

bool ConsentSet::Record(std::string_view purpose, const Choice& choice) {
  auto it = choices_.find(purpose);
  if (it == choices_.end()) {
    if (choices_.size() >= kMaxRecordedPurposes) return false;
    choices_.emplace(std::string(purpose), choice);
    return true;
  }
  if (!Supersedes(choice, it->second)) return false;
  it->second = choice;
  return true;
}

void ConsentSet::Merge(const ConsentSet& other) {
  for (const auto& [purpose, choice] : other.choices_) Record(purpose, choice);
}

const Choice* ConsentSet::Find(std::string_view purpose) const {
  auto it = choices_.find(purpose);
  return it == choices_.end() ? nullptr : &it->second;
}

PurposePolicy PurposePolicy::Defaults() {
  PurposePolicy p;
  p.purposes = {
      {"necessary", "What we need to deliver what you asked for: your account, orders and help."},
      {"analytics", "We see which pages and services work for you and fix what does not."},
      {"personalization", "Offers, content and help that fit you instead of everyone."},
      {"marketing", "News and offers from us by the channels you allow."},
      {"proactive_service", "We contact you before something goes wrong, such as a device that needs service."},
      {"location", "Help and offers for the place you are in; visits are only counted otherwise."},
  };
  p.types = {{"identify", "necessary"}, {"group", "necessary"}, {"alias", "necessary"},
             {"track", "analytics"},    {"page", "analytics"},  {"screen", "analytics"}};
  p.events = {
      {"Presence Detected", "location"},     {"Location Updated", "location"},
      {"Geofence Entered", "location"},      {"Geofence Exited", "location"},
      {"Email Delivered", "marketing"},      {"Email Opened", "marketing"},
      {"Email Link Clicked", "marketing"},   {"Push Notification Tapped", "marketing"},
  };
  return p;
}

std::string_view PurposePolicy::PurposeOf(wire::EventType type, std::string_view name) const {
  if (!name.empty() && type != wire::EventType::kIdentify) {
    if (auto it = events.find(name); it != events.end()) return it->second;
  }
  if (auto it = types.find(wire::EventTypeName(type)); it != types.end()) return it->second;
  return "analytics";
}

std::optional<std::string> PurposePolicy::PurposeOfCategory(std::string_view category) const {
  if (auto it = categories.find(category); it != categories.end()) return it->second;
  std::string name;
  name.reserve(category.size());
  for (char c : category) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == ' ' || c == '-') c = '_';
    name.push_back(c);
  }
  if (purposes.contains(name)) return name;
  return std::nullopt;
}

std::vector<std::pair<std::string, Choice>> ChoicesOf(const wire::EventFacts& facts, base::Micros at,
                                                      const PurposePolicy& policy) {
  std::vector<std::pair<std::string, Choice>> out;
  if (facts.consent.empty()) return out;
  const std::string source = facts.consent.source.empty() ? std::string(kSourceEvent) : facts.consent.source;
  if (facts.consent.received_at > 0) at = std::min(at, facts.consent.received_at);
  auto add = [&](std::string purpose, bool granted) {
    if (purpose == kNecessary || !policy.purposes.contains(purpose)) return;
    const ConsentState state = granted ? ConsentState::kGranted : ConsentState::kDenied;
    for (auto& [p, c] : out) {
      if (p == purpose) {
        if (state == ConsentState::kDenied) c.state = state;  // two answers for one purpose: no wins
        return;
      }
    }
    out.emplace_back(std::move(purpose), Choice{state, at, facts.message_id, source, facts.consent.text_version});
  };
  for (const auto& [category, granted] : facts.consent.categories) {
    if (auto purpose = policy.PurposeOfCategory(category)) add(*std::move(purpose), granted);
  }
  for (const auto& [purpose, granted] : facts.consent.purposes) add(purpose, granted);
  return out;
}

std::string_view PurposeOf(const wire::EventFacts& facts, const PurposePolicy& policy) {
  if (facts.type == wire::EventType::kTrack && facts.event == wire::kConsentRecordEvent &&
      !facts.consent.source.empty()) {
    return kNecessary;
  }
  return policy.PurposeOf(facts.type, facts.event);
}

ConsentState StateOf(const ConsentSet& consents, std::string_view purpose, const PurposePolicy& policy,
                     base::Micros now) {
  if (purpose == kNecessary) return ConsentState::kGranted;
  const Choice* c = consents.Find(purpose);
  if (!c) return ConsentState::kUnknown;
  if (c->state == ConsentState::kGranted && policy.grant_expires_after_days > 0 &&
      now - c->at > policy.grant_expires_after_days * base::kMicrosPerDay) {
    return ConsentState::kUnknown;
  }
  return c->state;
}

absl::Status Permits(const ConsentSet& consents, std::string_view purpose, const PurposePolicy& policy,
                     base::Micros now) {
  switch (StateOf(consents, purpose, policy, now)) {
    case ConsentState::kGranted:
      return absl::OkStatus();
    case ConsentState::kDenied:
      return base::MakeError(absl::StatusCode::kPermissionDenied, "consent_denied",
                             fmt::format("the person refused '{}', the purpose of this event; it was "
                                         "not stored",
                                         purpose),
                             purpose);
    case ConsentState::kUnknown:
      break;
  }
  return base::MakeError(absl::StatusCode::kPermissionDenied, "consent_missing",
                         fmt::format("the person has not granted '{}', the purpose of this event "
                                     "(send context.consent.categoryPreferences, or set it with "
                                     "PUT /api/v1/profiles/{{id}}/consent); it was not stored",
                                     purpose),
                         purpose);
}

std::vector<std::string> VisiblePurposes(const std::vector<std::string>& key_purposes, const ConsentSet& consents,
                                         const PurposePolicy& policy, base::Micros now) {
  std::vector<std::string> out{std::string(kNecessary)};
  for (const std::string& p : key_purposes) {
    if (StateOf(consents, p, policy, now) == ConsentState::kGranted) out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace rapport::trust

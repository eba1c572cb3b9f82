// Purposes and consent: what each event is for, what a person allowed, and whether an event may
// be processed. Pure logic; the profile engine keeps each profile's choices and asks Permits()
// before it stores an event (docs/consent.md).
//
// Fail closed: a purpose a person never answered for counts as denied, except `necessary`. A
// workspace's policy can only make this stricter (consent that expires); nothing in it turns an
// unknown into a grant.
//
// Order independence: a profile's consent is the latest explicit choice per purpose by event
// time (then messageId), at equal keys the stricter. Combining two profiles (a merge) is the
// same fold over both, so it is commutative, associative and idempotent: the outcome does not
// depend on the order events arrived in.
//
// Thread safety: values only.
#ifndef RAPPORT_TRUST_CONSENT_H_
#define RAPPORT_TRUST_CONSENT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "rapport/base/time.h"
#include "rapport/wire/event_facts.h"
#include "rapport/wire/segment.h"

namespace rapport::trust {

// The purposes every workspace has. A workspace may add its own (policy.purposes).
inline constexpr std::string_view kNecessary = "necessary";
// Computed traits and segments are derived for analytics: a key restricted to purposes sees them
// only with this one.
inline constexpr std::string_view kAnalytics = "analytics";
inline constexpr std::string_view kDefaultPurposes[] = {"necessary",         "analytics",  "personalization",
                                                        "marketing",         "proactive_service", "location"};
inline constexpr size_t kMaxPurposes = 32;
inline constexpr size_t kMaxPurposeChars = 32;
// The most purposes one person's choices are kept for (purposes removed from a workspace keep
// their recorded choices): beyond, choices for further purposes are not recorded.
inline constexpr size_t kMaxRecordedPurposes = 256;

// Whether `name` can name a purpose: 1-32 of a-z, 0-9 and '_', starting with a letter.
bool IsPurposeName(std::string_view name);

enum class ConsentState : uint8_t { kUnknown = 0, kGranted = 1, kDenied = 2 };
std::string_view ConsentStateName(ConsentState state);  // "unknown", "granted", "denied"

// Where a choice came from.
inline constexpr std::string_view kSourceEvent = "event";          // context.consent of a tracked event
inline constexpr std::string_view kSourceApi = "api";              // PUT /api/v1/profiles/{id}/consent
inline constexpr std::string_view kSourcePage = "preferences_page";  // the person, on /me

// One explicit choice for one purpose.
struct Choice {
  ConsentState state = ConsentState::kUnknown;  // granted or denied (never unknown when stored)
  base::Micros at = 0;                          // the event time of the choice
  std::string message_id;                       // the event that carried it (ties on `at`)
  std::string source;                           // kSource*
  std::string text_version;                     // the version of the text the person was shown; may be ""
  bool operator==(const Choice&) const = default;
};

// Whether choice `a` replaces `b` for the same purpose: the later one by (at, message_id); at
// equal keys denied replaces granted (the stricter), so the fold is a total order.
bool Supersedes(const Choice& a, const Choice& b);

// A person's choices, by purpose (sorted by purpose name).
class ConsentSet {
 public:
  // Records `choice` for `purpose` unless a choice that supersedes it is there. Returns whether
  // the set changed.
  bool Record(std::string_view purpose, const Choice& choice);
  // Folds `other` in (a merge of two profiles).
  void Merge(const ConsentSet& other);

  const Choice* Find(std::string_view purpose) const;
  const std::map<std::string, Choice, std::less<>>& choices() const { return choices_; }
  bool empty() const { return choices_.empty(); }
  bool operator==(const ConsentSet&) const = default;

 private:
  std::map<std::string, Choice, std::less<>> choices_;
};

// A workspace's purposes and how events map to them (docs/consent.md has the defaults).
struct PurposePolicy {
  // Every purpose of the workspace (the defaults and its own) → the sentence the preferences
  // page shows for what the person gets in return. Sorted.
  std::map<std::string, std::string, std::less<>> purposes;
  // Purpose of an event by type, then by track/page/screen name (names win over types).
  std::map<std::string, std::string, std::less<>> types;   // "identify" → "necessary"
  std::map<std::string, std::string, std::less<>> events;  // "Presence Detected" → "location"
  // Segment consent categories (context.consent.categoryPreferences) → purpose. A category not
  // named here maps to the purpose of the same name, compared in lower case with ' ' and '-'
  // as '_' ("Proactive Service" → proactive_service); one that matches none is ignored.
  std::map<std::string, std::string, std::less<>> categories;
  // Stricter than the default: a grant older than this many days counts as unknown (the
  // person is asked again). 0: grants do not expire. Denials never expire.
  int grant_expires_after_days = 0;

  // The defaults: the six purposes, identify/group/alias → necessary, track/page/screen →
  // analytics, the location, presence and e-mail engagement events of docs/consent.md.
  static PurposePolicy Defaults();

  // The purpose of an event by its type and name (trust::PurposeOf adds rapport's own records).
  std::string_view PurposeOf(wire::EventType type, std::string_view name) const;
  // The purpose a Segment category maps to, or nullopt if none.
  std::optional<std::string> PurposeOfCategory(std::string_view category) const;
};

// The purpose of an event: `necessary` for rapport's own record of a change of consent (track
// kConsentRecordEvent with context.consent.source, which clients cannot set); else the policy's.
// A client's own event of that name is judged like any other track event.
std::string_view PurposeOf(const wire::EventFacts& facts, const PurposePolicy& policy);

// The choices an event carries, by purpose: context.consent.purposes as they are, and
// categoryPreferences through the policy's category map (a category that maps to no purpose is
// skipped; when two name the same purpose, denied wins). Each is stamped with the event's time
// `at` — but never later than when the server received it, so a device clock set ahead (or a
// forged timestamp) cannot make a choice outrank the person's later ones — and its messageId;
// the source is the event's context.consent.source if it carries one (events made by rapport
// itself and imports of them), else kSourceEvent.
std::vector<std::pair<std::string, Choice>> ChoicesOf(const wire::EventFacts& facts, base::Micros at,
                                                      const PurposePolicy& policy);

// The state of `purpose` for a person with `consents`, at `now`: necessary is always granted;
// else the recorded choice (a grant past the policy's expiry counts as unknown).
ConsentState StateOf(const ConsentSet& consents, std::string_view purpose, const PurposePolicy& policy,
                     base::Micros now);

// OK if `purpose` may be processed (granted); else PermissionDenied with code consent_denied
// (the person said no) or consent_missing (never asked, or the grant expired), naming the
// purpose in its field and message.
absl::Status Permits(const ConsentSet& consents, std::string_view purpose, const PurposePolicy& policy,
                     base::Micros now);

// What a reader restricted to `key_purposes` may see of a person with `consents` at `now`:
// `necessary` (who the person is and their choices) and each of the key's purposes the person
// granted. Sorted, without duplicates.
std::vector<std::string> VisiblePurposes(const std::vector<std::string>& key_purposes, const ConsentSet& consents,
                                         const PurposePolicy& policy, base::Micros now);

}  // namespace rapport::trust

#endif  // RAPPORT_TRUST_CONSENT_H_

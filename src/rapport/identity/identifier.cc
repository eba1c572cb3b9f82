#include "rapport/identity/identifier.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "rapport/base/error.h"
#include "rapport/base/strings.h"

namespace rapport::identity {
namespace {

constexpr size_t kMaxValueBytes = 1024;
constexpr size_t kMaxTypeBytes = 64;

absl::Status Invalid(std::string_view code, std::string message) {
  return base::MakeError(absl::StatusCode::kInvalidArgument, code, message);
}

std::string NormalizePhone(std::string_view value, const MergeRules& rules) {
  std::string digits;
  bool plus = false;
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c >= '0' && c <= '9') {
      digits.push_back(c);
    } else if (c == '+' && digits.empty() && !plus) {
      plus = true;
    } else if (c == ' ' || c == '.' || c == '-' || c == '(' || c == ')' || c == '/') {
      continue;
    } else {
      return std::string(value);  // not a phone number we can read: kept as sent
    }
  }
  if (!plus && digits.starts_with("00")) {
    plus = true;
    digits.erase(0, 2);
  } else if (!plus && digits.starts_with("0") && !rules.default_country_code.empty()) {
    plus = true;
    digits = rules.default_country_code + digits.substr(1);
  }
  if (plus && digits.size() >= 8 && digits.size() <= 15 && digits[0] != '0') return "+" + digits;
  return digits;
}

}  // namespace

bool IsIdentifierType(std::string_view type) {
  if (type.empty() || type.size() > kMaxTypeBytes) return false;
  return std::all_of(type.begin(), type.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

int MergeRules::MaxFor(std::string_view type) const {
  auto it = max_per_type.find(std::string(type));
  return it == max_per_type.end() ? default_max : it->second;
}

int MergeRules::RankOf(std::string_view type) const {
  int wildcard = static_cast<int>(priority.size());
  for (size_t i = 0; i < priority.size(); ++i) {
    if (priority[i] == type) return static_cast<int>(i);
    if (priority[i] == "*") wildcard = static_cast<int>(i);
  }
  return wildcard;
}

absl::StatusOr<Identifier> Normalize(const wire::RawIdentifier& raw, const MergeRules& rules) {
  Identifier id;
  id.type = absl::AsciiStrToLower(base::AsAbsl(raw.type));
  if (!IsIdentifierType(id.type)) {
    return Invalid("invalid_identifier",
                   fmt::format("'{}' is not an identifier type (lower-case letters, digits, "
                               "'_', '.', '-'; at most {} bytes)",
                               raw.type, kMaxTypeBytes));
  }
  const std::string_view trimmed = base::AsStd(absl::StripAsciiWhitespace(base::AsAbsl(raw.value)));
  if (id.type == "email") {
    id.value = absl::AsciiStrToLower(base::AsAbsl(trimmed));
    const size_t at = id.value.find('@');
    if (at == std::string::npos || at == 0 || at + 1 == id.value.size() ||
        id.value.find('@', at + 1) != std::string::npos ||
        id.value.find_first_of(" \t\r\n") != std::string::npos) {
      return Invalid("invalid_identifier", fmt::format("'{}' is not an email address", trimmed));
    }
  } else if (id.type == "phone") {
    id.value = NormalizePhone(trimmed, rules);
  } else {
    id.value = std::string(raw.value);  // ids are exact: "Ab" and "ab" are two people
  }
  if (id.value.size() > kMaxValueBytes) {
    return Invalid("invalid_identifier",
                   fmt::format("a {} longer than {} bytes is not linked", id.type, kMaxValueBytes));
  }
  // Checked on the value as sent and as normalised: "(000) 000-0000" is all zeros once read.
  auto blocked = [&rules](std::string_view value) {
    const std::string folded = absl::AsciiStrToLower(base::AsAbsl(value));
    if (!folded.empty() && folded.find_first_not_of("0-") == std::string::npos) return true;
    return std::find(rules.blocked_values.begin(), rules.blocked_values.end(), folded) !=
           rules.blocked_values.end();
  };
  if (blocked(trimmed) || blocked(id.value)) {
    return Invalid("blocked_value",
                   fmt::format("{} '{}' is a placeholder that identifies nobody (blocked value)",
                               id.type, trimmed));
  }
  return id;
}

LinkPlan PlanLink(std::vector<Identifier> identifiers, const MergeRules& rules,
                  const Separations& separations,
                  const std::function<const LinkedProfile*(const Identifier&)>& profile_of) {
  std::sort(identifiers.begin(), identifiers.end(), [&rules](const Identifier& a, const Identifier& b) {
    const int ra = rules.RankOf(a.type), rb = rules.RankOf(b.type);
    if (ra != rb) return ra < rb;
    return a < b;
  });
  identifiers.erase(std::unique(identifiers.begin(), identifiers.end()), identifiers.end());

  LinkPlan plan;
  // The union of what is accepted so far: identifiers (accepted and of joined profiles).
  absl::flat_hash_set<Identifier> members;
  std::map<std::string, int> per_type;
  std::vector<uint64_t> profiles;

  for (const Identifier& id : identifiers) {
    const LinkedProfile* profile = profile_of(id);
    const bool joined = profile && std::find(profiles.begin(), profiles.end(), profile->id) !=
                                       profiles.end();
    // What accepting `id` adds to the union.
    std::vector<const Identifier*> added;
    if (profile && !joined) {
      for (const Identifier& member : profile->identifiers) {
        if (!members.contains(member)) added.push_back(&member);
      }
    }
    if (!members.contains(id) &&
        std::none_of(added.begin(), added.end(), [&](const Identifier* a) { return *a == id; })) {
      added.push_back(&id);
    }
    std::string reason;
    if (!plan.accepted.empty()) {
      std::map<std::string, int> counts;
      for (const Identifier* a : added) ++counts[a->type];
      for (const auto& [type, n] : counts) {
        const int total = per_type[type] + n;
        if (total > rules.MaxFor(type)) {
          reason = fmt::format("linking it would put {} {} identifiers on one profile (at most {})",
                               total, type, rules.MaxFor(type));
          break;
        }
      }
      for (size_t i = 0; reason.empty() && i < added.size(); ++i) {
        auto sep = separations.find(*added[i]);
        if (sep == separations.end()) continue;
        for (const Identifier& apart : sep->second) {
          const bool present =
              members.contains(apart) ||
              std::any_of(added.begin(), added.end(), [&](const Identifier* a) { return *a == apart; });
          if (present) {
            reason = fmt::format("{} and {} were split apart by an operator", added[i]->ToString(),
                                 apart.ToString());
            break;
          }
        }
      }
    }
    if (!reason.empty()) {
      plan.dropped.push_back({id, std::move(reason), profile && !joined ? profile->id : 0});
      continue;
    }
    for (const Identifier* a : added) {
      members.insert(*a);
      ++per_type[a->type];
    }
    if (profile && !joined) profiles.push_back(profile->id);
    plan.accepted.push_back(id);
  }
  std::sort(profiles.begin(), profiles.end());
  plan.profiles = std::move(profiles);
  return plan;
}

}  // namespace rapport::identity

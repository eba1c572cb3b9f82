#include "rapport/wire/definition_json.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/utf8.h"
#include "rapport/wire/json_text.h"

namespace rapport::wire {
namespace json = boost::json;
namespace {

absl::StatusOr<json::value> Parse(std::string_view text, std::string_view what) {
  if (auto bad = base::FindInvalidUtf8(text)) {
    return base::InvalidField("invalid_utf8", "",
                              fmt::format("the {} is not valid UTF-8 (first bad byte at offset {})",
                                          what, *bad));
  }
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) {
    return base::InvalidField("malformed_json", "",
                              fmt::format("the {} is not valid JSON: {}", what, ec.message()));
  }
  return v;
}

std::string_view View(const json::string& s) { return {s.data(), s.size()}; }

// Copies the string members of `obj` named in `members` into the fields they point at; any
// other member, or a value that is not a string, is an error naming it.
absl::Status ReadMembers(const json::value& v, std::string_view what,
                         std::initializer_list<std::pair<std::string_view, std::string*>> members) {
  if (!v.is_object()) {
    return base::InvalidField("invalid_type", "", fmt::format("a {} must be a JSON object", what));
  }
  for (const auto& [key, value] : v.get_object()) {
    const std::string_view name(key.data(), key.size());
    std::string* target = nullptr;
    for (const auto& [known, field] : members) {
      if (known == name) target = field;
    }
    if (!target) {
      std::string list;
      for (const auto& [known, field] : members) list += (list.empty() ? "" : ", ") + std::string(known);
      return base::InvalidField("unknown_field", name,
                                fmt::format("'{}' is not a member of a {} (known: {})", name, what, list));
    }
    if (value.is_null()) continue;
    if (!value.is_string()) {
      return base::InvalidField("invalid_type", name, fmt::format("'{}' must be a string", name));
    }
    *target = std::string(View(value.get_string()));
  }
  return absl::OkStatus();
}

absl::Status Require(std::string_view value, std::string_view name, std::string_view what) {
  if (!value.empty()) return absl::OkStatus();
  return base::InvalidField("missing_field", name, fmt::format("a {} needs a '{}'", what, name));
}

absl::Status CheckDescription(std::string_view description) {
  if (description.size() <= kMaxDescriptionBytes) return absl::OkStatus();
  return base::InvalidField("invalid_field", "description",
                            fmt::format("a description has at most {} bytes", kMaxDescriptionBytes));
}

absl::StatusOr<ComputedTraitSpec> ComputedFrom(const json::value& v) {
  ComputedTraitSpec s;
  RAPPORT_RETURN_IF_ERROR(ReadMembers(v, "computed trait",
                                      {{"name", &s.name},
                                       {"kind", &s.kind},
                                       {"event", &s.event},
                                       {"property", &s.property},
                                       {"where", &s.where},
                                       {"window", &s.window},
                                       {"timezone", &s.timezone},
                                       {"description", &s.description}}));
  RAPPORT_RETURN_IF_ERROR(Require(s.name, "name", "computed trait"));
  RAPPORT_RETURN_IF_ERROR(Require(s.kind, "kind", "computed trait"));
  RAPPORT_RETURN_IF_ERROR(CheckDescription(s.description));
  return s;
}

absl::StatusOr<SegmentSpec> SegmentFrom(const json::value& v) {
  SegmentSpec s;
  RAPPORT_RETURN_IF_ERROR(ReadMembers(
      v, "segment",
      {{"name", &s.name}, {"expression", &s.expression}, {"description", &s.description}}));
  RAPPORT_RETURN_IF_ERROR(Require(s.name, "name", "segment"));
  RAPPORT_RETURN_IF_ERROR(Require(s.expression, "expression", "segment"));
  RAPPORT_RETURN_IF_ERROR(CheckDescription(s.description));
  return s;
}

void Member(std::string* out, std::string_view name, std::string_view value) {
  if (value.empty()) return;
  if (out->size() > 1) *out += ',';
  AppendQuoted(out, name);
  *out += ':';
  AppendQuoted(out, value);
}

}  // namespace

JsonScalar ReadJsonPath(std::string_view text, std::span<const std::string> path) {
  JsonScalar out;
  boost::system::error_code ec;
  json::value doc = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) return out;
  const json::value* v = &doc;
  for (const std::string& step : path) {
    if (!v->is_object()) return out;
    v = v->get_object().if_contains(json::string_view(step.data(), step.size()));
    if (!v) return out;
  }
  switch (v->kind()) {
    case json::kind::null: out.kind = JsonScalar::Kind::kNull; break;
    case json::kind::bool_:
      out.kind = JsonScalar::Kind::kBool;
      out.boolean = v->get_bool();
      break;
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      out.kind = JsonScalar::Kind::kNumber;
      out.number = v->to_number<double>();
      break;
    case json::kind::string:
      out.kind = JsonScalar::Kind::kString;
      out.text = std::string(View(v->get_string()));
      break;
    default:
      out.kind = JsonScalar::Kind::kComposite;
      out.text = json::serialize(*v);
  }
  return out;
}

absl::StatusOr<ComputedTraitSpec> ParseComputedTraitSpec(std::string_view body) {
  RAPPORT_ASSIGN_OR_RETURN(json::value v, Parse(body, "body"));
  return ComputedFrom(v);
}

absl::StatusOr<SegmentSpec> ParseSegmentSpec(std::string_view body) {
  RAPPORT_ASSIGN_OR_RETURN(json::value v, Parse(body, "body"));
  return SegmentFrom(v);
}

std::string ComputedTraitSpecJson(const ComputedTraitSpec& s) {
  std::string out = "{";
  Member(&out, "name", s.name);
  Member(&out, "kind", s.kind);
  Member(&out, "event", s.event);
  Member(&out, "property", s.property);
  Member(&out, "where", s.where);
  Member(&out, "window", s.window);
  Member(&out, "timezone", s.timezone);
  Member(&out, "description", s.description);
  return out + '}';
}

std::string SegmentSpecJson(const SegmentSpec& s) {
  std::string out = "{";
  Member(&out, "name", s.name);
  Member(&out, "expression", s.expression);
  Member(&out, "description", s.description);
  return out + '}';
}

absl::StatusOr<std::vector<WorkspaceDefinitions>> ParseDefinitionsFile(std::string_view text) {
  RAPPORT_ASSIGN_OR_RETURN(json::value v, Parse(text, "definitions file"));
  const json::object* top = v.if_object();
  const json::value* workspaces = top ? top->if_contains("workspaces") : nullptr;
  if (!workspaces || !workspaces->is_object() || top->size() != 1) {
    return base::InvalidField("invalid_type", "workspaces",
                              "the definitions file must be {\"workspaces\": {\"<name>\": "
                              "{\"computed_traits\": [...], \"segments\": [...]}}}");
  }
  std::vector<WorkspaceDefinitions> out;
  for (const auto& [name, defs] : workspaces->get_object()) {
    WorkspaceDefinitions ws;
    ws.workspace = std::string(name.data(), name.size());
    const std::string prefix = "workspaces." + ws.workspace;
    if (!defs.is_object()) {
      return base::InvalidField("invalid_type", prefix, "each workspace's definitions must be an object");
    }
    for (const auto& [key, list] : defs.get_object()) {
      const std::string_view member(key.data(), key.size());
      if (member != "computed_traits" && member != "segments") {
        return base::InvalidField("unknown_field", prefix + "." + std::string(member),
                                  "a workspace's definitions hold 'computed_traits' and 'segments'");
      }
      if (!list.is_array()) {
        return base::InvalidField("invalid_type", prefix + "." + std::string(member), "must be an array");
      }
      size_t i = 0;
      for (const json::value& item : list.get_array()) {
        const std::string at = fmt::format("{}.{}[{}]", prefix, member, i++);
        if (member == "segments") {
          auto spec = SegmentFrom(item);
          if (!spec.ok()) return base::WithFieldPrefix(spec.status(), at);
          ws.segments.push_back(*std::move(spec));
        } else {
          auto spec = ComputedFrom(item);
          if (!spec.ok()) return base::WithFieldPrefix(spec.status(), at);
          ws.computed_traits.push_back(*std::move(spec));
        }
      }
    }
    out.push_back(std::move(ws));
  }
  return out;
}

}  // namespace rapport::wire

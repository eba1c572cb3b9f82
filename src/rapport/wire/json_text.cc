#include "rapport/wire/json_text.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "rapport/base/error.h"
#include "rapport/base/utf8.h"

namespace rapport::wire {
namespace json = boost::json;
namespace {

absl::StatusOr<json::value> ParseObject(std::string_view text) {
  if (auto bad = base::FindInvalidUtf8(text)) {
    return base::InvalidField("invalid_utf8", "",
                              fmt::format("the body is not valid UTF-8 (first bad byte at offset "
                                          "{})",
                                          *bad));
  }
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec) {
    return base::InvalidField("malformed_json", "",
                              fmt::format("the body is not valid JSON: {}", ec.message()));
  }
  if (!v.is_object()) {
    return base::InvalidField("invalid_type", "", "the body must be a JSON object");
  }
  return v;
}

}  // namespace

void AppendQuoted(std::string* out, std::string_view s) {
  *out += json::serialize(json::string_view(s.data(), s.size()));
}

std::string Quote(std::string_view s) {
  std::string out;
  AppendQuoted(&out, s);
  return out;
}

absl::StatusOr<std::optional<std::string>> ReadStringMember(std::string_view body,
                                                            std::string_view name) {
  auto v = ParseObject(body);
  if (!v.ok()) return v.status();
  const json::object& obj = v->get_object();
  auto it = obj.find(json::string_view(name.data(), name.size()));
  if (it == obj.end() || it->value().is_null()) return std::nullopt;
  if (!it->value().is_string()) {
    return base::InvalidField("invalid_type", name, fmt::format("'{}' must be a string", name));
  }
  const json::string& s = it->value().get_string();
  return std::string(s.data(), s.size());
}

std::string EncodeExportLine(std::string_view workspace, uint64_t seq,
                             std::string_view event_json) {
  std::string out = "{\"workspace\":";
  AppendQuoted(&out, workspace);
  out += fmt::format(",\"seq\":{},\"event\":", seq);
  out += event_json;
  out += '}';
  return out;
}

absl::StatusOr<ExportLine> ParseExportLine(std::string_view line) {
  auto v = ParseObject(line);
  if (!v.ok()) return v.status();
  const json::object& obj = v->get_object();
  ExportLine out;
  auto event = obj.find("event");
  if (event == obj.end() || !event->value().is_object()) {
    out.event_json = std::string(line);  // a bare event
    return out;
  }
  auto ws = obj.find("workspace");
  if (ws == obj.end() || !ws->value().is_string()) {
    return base::InvalidField("missing_field", "workspace",
                              "an export line needs 'workspace' (a string) next to 'event'");
  }
  out.workspace = std::string(ws->value().get_string());
  out.event_json = json::serialize(event->value());
  return out;
}

}  // namespace rapport::wire

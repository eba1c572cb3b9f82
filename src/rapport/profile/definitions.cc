#include "rapport/profile/definitions.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "rapport/base/codec.h"
#include "rapport/base/error.h"
#include "rapport/base/status.h"
#include "rapport/base/strings.h"

namespace rapport::profile {
namespace {

constexpr uint8_t kDefinitionVersion = 1;

class SegmentSchema final : public Schema {
 public:
  SegmentSchema(const Definitions& defs, const std::set<std::string>& segments)
      : defs_(defs), segments_(segments) {}
  bool Allows(Root root) const override {
    return root == Root::kTraits || root == Root::kComputed || root == Root::kProfile;
  }
  std::optional<Type> ComputedType(std::string_view name, std::string_view part,
                                   std::string* why) const override {
    const ComputedTraitDef* def = defs_.FindComputed(name);
    if (!def) {
      *why = fmt::format("there is no computed trait '{}' (define it first)", name);
      return std::nullopt;
    }
    return def->TypeOf(part, why);
  }
  bool HasSegment(std::string_view name, std::string* why) const override {
    if (segments_.contains(std::string(name))) return true;
    *why = fmt::format("there is no segment '{}' (define it first)", name);
    return false;
  }

 private:
  const Definitions& defs_;
  const std::set<std::string>& segments_;
};

}  // namespace

std::string EncodeStoredDefinition(const StoredDefinition& d) {
  base::Writer w;
  w.U8(kDefinitionVersion);
  w.Varint(d.version);
  w.Signed(d.created_at);
  w.Signed(d.updated_at);
  w.Varint(d.job);
  w.Bytes(d.spec_json);
  return std::move(w).Finish();
}

std::optional<StoredDefinition> DecodeStoredDefinition(std::string_view bytes) {
  base::Reader r(bytes);
  StoredDefinition d;
  uint8_t version;
  if (!r.U8(&version) || version != kDefinitionVersion || !r.Varint(&d.version) ||
      !r.Signed(&d.created_at) || !r.Signed(&d.updated_at) || !r.Varint(&d.job) ||
      !r.Bytes(&d.spec_json) || !r.done()) {
    return std::nullopt;
  }
  return d;
}

std::optional<size_t> Definitions::ComputedIndex(std::string_view name) const {
  auto it = computed_index_.find(base::AsAbsl(name));
  return it == computed_index_.end() ? std::nullopt : std::optional<size_t>(it->second);
}

std::optional<size_t> Definitions::SegmentIndex(std::string_view name) const {
  auto it = segment_index_.find(base::AsAbsl(name));
  return it == segment_index_.end() ? std::nullopt : std::optional<size_t>(it->second);
}

const ComputedTraitDef* Definitions::FindComputed(std::string_view name) const {
  auto it = computed_index_.find(base::AsAbsl(name));
  return it == computed_index_.end() ? nullptr : &computed_[it->second];
}

const SegmentDef* Definitions::FindSegment(std::string_view name) const {
  auto it = segment_index_.find(base::AsAbsl(name));
  return it == segment_index_.end() ? nullptr : &segments_[it->second];
}

void Definitions::Index() {
  computed_index_.clear();
  segment_index_.clear();
  for (size_t i = 0; i < computed_.size(); ++i) computed_index_.emplace(computed_[i].name(), i);
  for (size_t i = 0; i < segments_.size(); ++i) segment_index_.emplace(segments_[i].name(), i);
}

absl::Status Definitions::SetSegments(std::vector<std::pair<wire::SegmentSpec, uint64_t>> specs) {
  std::set<std::string> names;
  for (const auto& [spec, version] : specs) names.insert(spec.name);
  const SegmentSchema schema(*this, names);
  std::map<std::string, SegmentDef> compiled;
  for (auto& [spec, version] : specs) {
    SegmentDef def;
    auto expression = Expression::Parse(spec.expression, schema);
    if (!expression.ok()) return expression.status();
    def.expression = *std::move(expression);
    def.spec = std::move(spec);
    def.version = version;
    compiled.emplace(def.name(), std::move(def));
  }
  // Order: a segment after those it names (depth-first; a segment met again on the current path
  // is a cycle).
  std::vector<SegmentDef> ordered;
  std::map<std::string, int> state;  // 1 visiting, 2 done
  std::vector<std::string> path;
  std::function<absl::Status(const std::string&)> visit = [&](const std::string& name) -> absl::Status {
    if (state[name] == 2) return absl::OkStatus();
    path.push_back(name);
    if (state[name] == 1) {
      std::string cycle;
      for (auto it = std::find(path.begin(), path.end(), name); it != path.end(); ++it) {
        cycle += (cycle.empty() ? "" : " → ") + *it;
      }
      return base::MakeError(absl::StatusCode::kFailedPrecondition, "segment_cycle",
                             fmt::format("segments may not depend on themselves: {}", cycle), "expression");
    }
    state[name] = 1;
    SegmentDef& def = compiled.at(name);
    for (const std::string& dep : def.expression->segments()) RAPPORT_RETURN_IF_ERROR(visit(dep));
    state[name] = 2;
    path.pop_back();
    ordered.push_back(std::move(def));
    return absl::OkStatus();
  };
  std::vector<std::string> all(names.begin(), names.end());
  for (const std::string& name : all) RAPPORT_RETURN_IF_ERROR(visit(name));
  segments_ = std::move(ordered);
  Index();
  // Resolve names to indexes, and number the fields read (the same field in two segments gets
  // the same number, so one evaluation of all segments reads it once).
  absl::flat_hash_map<std::string, int> slots;
  for (SegmentDef& def : segments_) {
    def.field_slots.clear();
    def.computed_reads.clear();
    def.segment_reads.clear();
    def.profile_reads = 0;
    for (const std::string& field : def.expression->fields()) {
      def.field_slots.push_back(slots.try_emplace(field, static_cast<int>(slots.size())).first->second);
    }
    if (def.expression->Reads(Root::kProfile)) {
      const std::vector<std::string>& fields = def.expression->fields();
      const std::string root = Expression::FieldKey(Root::kProfile, {});
      size_t known = 0;
      for (const auto& [bit, name] : kProfileFields) {
        const std::string key = Expression::FieldKey(Root::kProfile, std::vector<std::string>{name});
        if (std::find(fields.begin(), fields.end(), key) == fields.end()) continue;
        def.profile_reads |= bit;
        ++known;
      }
      // A profile field without a bit here: the segment is stale with every event.
      const auto read = std::count_if(fields.begin(), fields.end(),
                                      [&](const std::string& f) { return f.starts_with(root); });
      if (static_cast<size_t>(read) > known) def.profile_reads = kFirstSeen | kLastSeen | kEventCount;
    }
    for (const std::string& name : def.expression->computed()) def.computed_reads.push_back(*ComputedIndex(name));
    for (const std::string& name : def.expression->segments()) def.segment_reads.push_back(*SegmentIndex(name));
  }
  field_slots_ = slots.size();
  read_by_segments_.assign(computed_.size(), false);
  for (const SegmentDef& def : segments_) {
    for (size_t c : def.computed_reads) read_by_segments_[c] = true;
  }
  segments_by_name_.resize(segments_.size());
  for (size_t i = 0; i < segments_.size(); ++i) segments_by_name_[i] = i;
  std::sort(segments_by_name_.begin(), segments_by_name_.end(),
            [&](size_t a, size_t b) { return segments_[a].name() < segments_[b].name(); });
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Definitions>> Definitions::FromStored(
    const std::vector<StoredDefinition>& computed, const std::vector<StoredDefinition>& segments) {
  auto defs = std::make_shared<Definitions>();
  auto corrupt = [](const absl::Status& why) {
    return absl::DataLossError(fmt::format("a stored definition no longer compiles: {}",
                                           base::AsStd(why.message())));
  };
  for (const StoredDefinition& d : computed) {
    auto spec = wire::ParseComputedTraitSpec(d.spec_json);
    if (!spec.ok()) return corrupt(spec.status());
    auto def = CompileComputedTrait(*spec, d.version);
    if (!def.ok()) return corrupt(def.status());
    defs->computed_.push_back(*std::move(def));
  }
  std::sort(defs->computed_.begin(), defs->computed_.end(),
            [](const ComputedTraitDef& a, const ComputedTraitDef& b) { return a.name() < b.name(); });
  defs->Index();
  std::vector<std::pair<wire::SegmentSpec, uint64_t>> specs;
  for (const StoredDefinition& d : segments) {
    auto spec = wire::ParseSegmentSpec(d.spec_json);
    if (!spec.ok()) return corrupt(spec.status());
    specs.emplace_back(*std::move(spec), d.version);
  }
  if (auto st = defs->SetSegments(std::move(specs)); !st.ok()) return corrupt(st);
  return std::shared_ptr<const Definitions>(std::move(defs));
}

absl::StatusOr<std::shared_ptr<const Definitions>> Definitions::WithComputed(
    const wire::ComputedTraitSpec& spec, uint64_t version) const {
  RAPPORT_ASSIGN_OR_RETURN(ComputedTraitDef def, CompileComputedTrait(spec, version));
  auto out = std::make_shared<Definitions>();
  out->computed_ = computed_;
  auto it = std::find_if(out->computed_.begin(), out->computed_.end(),
                         [&](const ComputedTraitDef& d) { return d.name() == spec.name; });
  if (it != out->computed_.end()) {
    *it = std::move(def);
  } else {
    if (computed_.size() >= kMaxComputedTraits) {
      return base::MakeError(absl::StatusCode::kFailedPrecondition, "too_many_definitions",
                             fmt::format("a workspace has at most {} computed traits", kMaxComputedTraits),
                             "name", kMaxComputedTraits);
    }
    out->computed_.push_back(std::move(def));
    std::sort(out->computed_.begin(), out->computed_.end(),
              [](const ComputedTraitDef& a, const ComputedTraitDef& b) { return a.name() < b.name(); });
  }
  out->Index();
  std::vector<std::pair<wire::SegmentSpec, uint64_t>> specs;
  for (const SegmentDef& s : segments_) specs.emplace_back(s.spec, s.version);
  if (auto st = out->SetSegments(std::move(specs)); !st.ok()) {
    return base::MakeError(absl::StatusCode::kFailedPrecondition, "definition_in_use",
                           fmt::format("a segment uses computed.{} in a way this change breaks: {}",
                                       spec.name, base::AsStd(st.message())),
                           "kind");
  }
  return std::shared_ptr<const Definitions>(std::move(out));
}

absl::StatusOr<std::shared_ptr<const Definitions>> Definitions::WithSegment(const wire::SegmentSpec& spec,
                                                                           uint64_t version) const {
  RAPPORT_RETURN_IF_ERROR(CheckDefinitionName(spec.name));
  auto out = std::make_shared<Definitions>();
  out->computed_ = computed_;
  out->Index();
  std::vector<std::pair<wire::SegmentSpec, uint64_t>> specs;
  bool replaced = false;
  for (const SegmentDef& s : segments_) {
    if (s.name() == spec.name) {
      specs.emplace_back(spec, version);
      replaced = true;
    } else {
      specs.emplace_back(s.spec, s.version);
    }
  }
  if (!replaced) {
    if (segments_.size() >= kMaxSegments) {
      return base::MakeError(absl::StatusCode::kFailedPrecondition, "too_many_definitions",
                             fmt::format("a workspace has at most {} segments", kMaxSegments), "name",
                             kMaxSegments);
    }
    specs.emplace_back(spec, version);
  }
  // Check the new expression alone first, so its errors carry its own positions.
  {
    std::set<std::string> names;
    for (const auto& [s, v] : specs) names.insert(s.name);
    RAPPORT_RETURN_IF_ERROR(Expression::Parse(spec.expression, SegmentSchema(*out, names)).status());
  }
  RAPPORT_RETURN_IF_ERROR(out->SetSegments(std::move(specs)));
  return std::shared_ptr<const Definitions>(std::move(out));
}

}  // namespace rapport::profile

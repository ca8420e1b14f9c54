#include "collectors/policy_set.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <string_view>
#include <utility>

#include "collectors/policy.h"
#include "common/files.h"
#include "proto/json.h"
#include "proto/signing.h"

namespace vigil::collectors {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr size_t kMaxVersionSize = 128;  // ValidatePolicy's limit on `version`

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool IsValidOverrideName(const std::string& s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), IsNameChar);
}

// The same syntax as the server's device tags (server/store_sql.h IsValidTag).
bool IsValidTag(const std::string& s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return IsNameChar(c) || c == ':' || c == '=';
  });
}

bool IsValidPlatform(const std::string& s) {
  return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// The protobuf JSON parser accepts a field under its JSON name or its proto name.
const FieldDescriptor* FieldByJsonKey(const Descriptor* d, const std::string& key) {
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->json_name() == key || f->name() == key) return f;
  }
  return nullptr;
}

// A field an override replaces whole: scalars, lists, maps, and well-known types (JSON spells
// those as values, not objects). Other message fields are sections, merged key by key.
bool IsWholeValue(const FieldDescriptor* f) {
  return f->is_repeated() || f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
         f->message_type()->well_known_type() != Descriptor::WELLKNOWNTYPE_UNSPECIFIED;
}

std::string JoinPath(const std::string& prefix, const std::string& key) {
  return prefix.empty() ? key : prefix + "." + key;
}

std::string ValueJson(const Value& v) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(v, &out);
  return out;
}

std::string Quoted(const std::string& s) {
  Value v;
  v.set_string_value(s);
  return ValueJson(v);
}

// "(screen_lock.max_idle_seconds): invalid value ..." -> "invalid value ...": our callers name
// the field in its JSON spelling themselves.
std::string WithoutProtobufPath(std::string_view m) {
  if (!m.empty() && m.front() == '(') {
    auto end = m.find("): ");
    if (end != std::string_view::npos) m.remove_prefix(end + 3);
  }
  return std::string(m);
}

std::unique_ptr<Message> NewMessage(const Descriptor* d) {
  const Message* prototype = google::protobuf::MessageFactory::generated_factory()->GetPrototype(d);
  return std::unique_ptr<Message>(prototype->New());
}

// Parses `v` as the value of `f` exactly as the protobuf JSON mapping would; returns a message of
// f's containing type with only that field set.
Result<std::unique_ptr<Message>> ParseOneField(const FieldDescriptor* f, const Value& v) {
  std::unique_ptr<Message> m = NewMessage(f->containing_type());
  const std::string doc = "{" + Quoted(f->json_name()) + ":" + ValueJson(v) + "}";
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(doc, m.get(), opts);
  if (!st.ok()) return Status::InvalidArgument(WithoutProtobufPath(std::string(st.message())));
  return m;
}

// The canonical JSON value of `f` in `m` (enums as names, zeros included).
Result<Value> CanonicalValue(const Message& m, const FieldDescriptor* f) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  opts.always_print_enums_as_ints = false;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(m, &json, opts).ok()) {
    return Status::Internal("cannot print " + f->full_name());
  }
  Struct s;
  if (!google::protobuf::util::JsonStringToMessage(json, &s).ok()) {
    return Status::Internal("cannot reparse " + f->full_name());
  }
  auto it = s.fields().find(f->json_name());
  if (it == s.fields().end()) return Status::Internal("lost " + f->full_name());
  return it->second;
}

// Checks an override's patch against message type `d` and writes its canonical form: keys in
// JSON spelling, values as the protobuf JSON printer writes them. Errors name the JSON path.
Status Canonicalize(const Struct& in, const Descriptor* d, const std::string& path, Struct* out) {
  std::vector<const std::string*> keys;
  for (const auto& [key, value] : in.fields()) keys.push_back(&key);
  std::sort(keys.begin(), keys.end(), [](auto* x, auto* y) { return *x < *y; });
  for (const std::string* key : keys) {
    const Value& value = in.fields().at(*key);
    const FieldDescriptor* f = FieldByJsonKey(d, *key);
    if (f == nullptr) return Status::InvalidArgument(JoinPath(path, *key) + ": unknown field");
    const std::string p = JoinPath(path, f->json_name());
    if (f == v1::Policy::descriptor()->FindFieldByNumber(v1::Policy::kVersionFieldNumber)) {
      return Status::InvalidArgument(p + ": cannot be set by an override (the effective " +
                                     "policy's version is computed)");
    }
    if (f ==
        v1::Policy::descriptor()->FindFieldByNumber(v1::Policy::kCheckinWindowSecondsFieldNumber)) {
      // The server decides STALE for the whole fleet with one threshold (kept in per-status
      // counters); a scope's own window would be silently ignored, so it is refused.
      return Status::InvalidArgument(p + ": cannot be set by an override (the check-in window " +
                                     "is fleet-wide: set it in defaultPolicy)");
    }
    if (out->fields().contains(f->json_name())) {
      return Status::InvalidArgument(p + ": given twice (as " + f->name() + " and " +
                                     f->json_name() + ")");
    }
    Value& canon = (*out->mutable_fields())[f->json_name()];
    if (value.kind_case() == Value::kNullValue) {
      canon.set_null_value(google::protobuf::NULL_VALUE);
    } else if (!IsWholeValue(f)) {
      if (value.kind_case() != Value::kStructValue) {
        return Status::InvalidArgument(p + ": must be an object (or null to clear the section)");
      }
      Status s =
          Canonicalize(value.struct_value(), f->message_type(), p, canon.mutable_struct_value());
      if (!s.ok()) return s;
    } else {
      auto parsed = ParseOneField(f, value);
      if (!parsed.ok()) return parsed.status().Prefixed(p + ": ");
      auto v = CanonicalValue(**parsed, f);
      if (!v.ok()) return v.status().Prefixed(p + ": ");
      canon = std::move(*v);
    }
  }
  return Status::Ok();
}

// Proto3 enums are open: the JSON parser takes any number (`"mode": 99`). A policy must only
// use values the code knows how to judge.
Status KnownEnums(const Message& m, const std::string& path) {
  const Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    const std::string p = JoinPath(path, f->json_name());
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
      const int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
      for (int i = 0; i < n; ++i) {
        const int v = f->is_repeated() ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
        if (f->enum_type()->FindValueByNumber(v) == nullptr) {
          return Status::InvalidArgument(p + ": unknown value " + std::to_string(v));
        }
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_map()) {
      const int n = f->is_repeated() ? r->FieldSize(m, f) : 1;
      for (int i = 0; i < n; ++i) {
        Status s =
            KnownEnums(f->is_repeated() ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f), p);
        if (!s.ok()) return s;
      }
    }
  }
  return Status::Ok();
}

// ---- Applying a canonical patch: the per-device path, so no JSON text for the usual types ----

bool AsInteger(const Value& v, double lo, double hi, double* out) {
  if (v.kind_case() != Value::kNumberValue) return false;
  double d = v.number_value();
  if (!(d >= lo && d <= hi) || std::floor(d) != d) return false;
  *out = d;
  return true;
}

// Sets (or, for a list, adds) one scalar from its canonical JSON value. False when the value has
// an unusual spelling (int64 as a string, bytes, NaN, ...): the caller then parses it as JSON.
bool PutScalar(Message* m, const FieldDescriptor* f, const Value& v) {
  const Reflection* r = m->GetReflection();
  const bool add = f->is_repeated();
  constexpr double kSafe = 9007199254740992.0;  // 2^53: every integer below is exact
  double d = 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      if (!AsInteger(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(),
                     &d))
        return false;
      add ? r->AddInt32(m, f, static_cast<int32_t>(d)) : r->SetInt32(m, f, static_cast<int32_t>(d));
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      if (!AsInteger(v, 0, std::numeric_limits<uint32_t>::max(), &d)) return false;
      add ? r->AddUInt32(m, f, static_cast<uint32_t>(d))
          : r->SetUInt32(m, f, static_cast<uint32_t>(d));
      return true;
    case FieldDescriptor::CPPTYPE_INT64:
      if (!AsInteger(v, -kSafe, kSafe, &d)) return false;
      add ? r->AddInt64(m, f, static_cast<int64_t>(d)) : r->SetInt64(m, f, static_cast<int64_t>(d));
      return true;
    case FieldDescriptor::CPPTYPE_UINT64:
      if (!AsInteger(v, 0, kSafe, &d)) return false;
      add ? r->AddUInt64(m, f, static_cast<uint64_t>(d))
          : r->SetUInt64(m, f, static_cast<uint64_t>(d));
      return true;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      if (v.kind_case() != Value::kNumberValue) return false;
      add ? r->AddDouble(m, f, v.number_value()) : r->SetDouble(m, f, v.number_value());
      return true;
    case FieldDescriptor::CPPTYPE_FLOAT:
      if (v.kind_case() != Value::kNumberValue) return false;
      add ? r->AddFloat(m, f, static_cast<float>(v.number_value()))
          : r->SetFloat(m, f, static_cast<float>(v.number_value()));
      return true;
    case FieldDescriptor::CPPTYPE_BOOL:
      if (v.kind_case() != Value::kBoolValue) return false;
      add ? r->AddBool(m, f, v.bool_value()) : r->SetBool(m, f, v.bool_value());
      return true;
    case FieldDescriptor::CPPTYPE_STRING:
      if (v.kind_case() != Value::kStringValue || f->type() == FieldDescriptor::TYPE_BYTES)
        return false;
      add ? r->AddString(m, f, v.string_value()) : r->SetString(m, f, v.string_value());
      return true;
    case FieldDescriptor::CPPTYPE_ENUM: {
      if (v.kind_case() != Value::kStringValue) return false;
      const auto* e = f->enum_type()->FindValueByName(v.string_value());
      if (e == nullptr) return false;
      add ? r->AddEnumValue(m, f, e->number()) : r->SetEnumValue(m, f, e->number());
      return true;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return false;
  }
  return false;
}

// Replaces field `f` of `m` with `v`. False only for a value protobuf's JSON parser refuses too
// (impossible after NormalizePolicySet).
bool PutWhole(Message* m, const FieldDescriptor* f, const Value& v) {
  const Reflection* r = m->GetReflection();
  if (!f->is_repeated()) {
    if (PutScalar(m, f, v)) return true;
  } else if (!f->is_map() && f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE &&
             v.kind_case() == Value::kListValue) {
    r->ClearField(m, f);
    bool all = true;
    for (const Value& item : v.list_value().values()) {
      if (!(all = PutScalar(m, f, item))) break;
    }
    if (all) return true;
  }
  auto parsed = ParseOneField(f, v);
  if (!parsed.ok()) return false;
  r->ClearField(m, f);
  r->SwapFields(m, parsed->get(), {f});
  return true;
}

// Records that `path` was last set by `name`; whatever earlier overrides set below it is gone.
void SetOrigin(const std::string& path, const std::string& name,
               std::map<std::string, std::string>* origins) {
  const std::string below = path + ".";
  for (auto it = origins->lower_bound(below);
       it != origins->end() && it->first.compare(0, below.size(), below) == 0;) {
    it = origins->erase(it);
  }
  (*origins)[path] = name;
}

// Applies a canonical patch to `target` (JSON merge patch: objects merge, values replace, null
// clears).
void ApplyPatch(const Struct& patch, Message* target, const std::string& path,
                const std::string& name, std::map<std::string, std::string>* origins) {
  const Reflection* r = target->GetReflection();
  for (const auto& [key, value] : patch.fields()) {
    const FieldDescriptor* f = FieldByJsonKey(target->GetDescriptor(), key);
    if (f == nullptr) continue;  // refused by NormalizePolicySet
    const std::string p = JoinPath(path, f->json_name());
    if (value.kind_case() == Value::kNullValue) {
      r->ClearField(target, f);
      SetOrigin(p, name, origins);
    } else if (!IsWholeValue(f) && value.kind_case() == Value::kStructValue) {
      if (!r->HasField(*target, f)) SetOrigin(p, name, origins);
      ApplyPatch(value.struct_value(), r->MutableMessage(target, f), p, name, origins);
    } else if (PutWhole(target, f, value)) {
      SetOrigin(p, name, origins);
    }
  }
}

// The application order: platform only, then tag only, then both (more specific later wins).
int Group(const v1::PolicyOverride& o) {
  if (o.tag().empty()) return 0;
  return o.platform().empty() ? 1 : 2;
}

bool Matches(const v1::PolicyOverride& o, const std::string& os,
             const std::vector<std::string>& tags) {
  if (o.platform().empty() && o.tag().empty()) return false;  // refused by NormalizePolicySet
  if (!o.platform().empty() && o.platform() != os) return false;
  return o.tag().empty() || std::find(tags.begin(), tags.end(), o.tag()) != tags.end();
}

std::string Digest12(const std::string& bytes) {
  return signing::Hex(signing::Sha256(bytes)).substr(0, 12);
}

// ---- Diff ----

std::string Scope(const v1::PolicyOverride& o) {
  if (o.tag().empty()) return "platform " + o.platform();
  if (o.platform().empty()) return "tag " + o.tag();
  return "platform " + o.platform() + ", tag " + o.tag();
}

// Keys of `a` and `b` together: fields of `d` in declaration order, then unknown keys by name.
std::vector<std::string> OrderedKeys(const Struct& a, const Struct& b, const Descriptor* d) {
  std::vector<std::string> keys;
  for (int i = 0; d != nullptr && i < d->field_count(); ++i) {
    const std::string& k = d->field(i)->json_name();
    if (a.fields().contains(k) || b.fields().contains(k)) keys.push_back(k);
  }
  std::set<std::string> rest;
  for (const Struct* s : {&a, &b}) {
    for (const auto& [k, v] : s->fields()) {
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) rest.insert(k);
    }
  }
  keys.insert(keys.end(), rest.begin(), rest.end());
  return keys;
}

// Compact JSON with object keys in declaration order (when `d` knows them), so lines are stable.
std::string Show(const Value& v, const Descriptor* d) {
  switch (v.kind_case()) {
    case Value::kStructValue: {
      std::string out = "{";
      for (const std::string& k : OrderedKeys(v.struct_value(), Struct(), d)) {
        const FieldDescriptor* f = d ? FieldByJsonKey(d, k) : nullptr;
        const Descriptor* sub =
            f && f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE ? f->message_type() : nullptr;
        if (out.size() > 1) out += ",";
        out += Quoted(k) + ":" + Show(v.struct_value().fields().at(k), sub);
      }
      return out + "}";
    }
    case Value::kListValue: {
      std::string out = "[";
      for (const Value& item : v.list_value().values()) {
        if (out.size() > 1) out += ",";
        out += Show(item, d);
      }
      return out + "]";
    }
    default:
      return ValueJson(v);
  }
}

std::string ShowField(const Value* v, const FieldDescriptor* f) {
  if (v == nullptr) return "(not set)";
  if (f != nullptr && !f->is_repeated() && f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM &&
      v->kind_case() == Value::kStringValue) {
    return v->string_value();  // BLOCKED, not "BLOCKED"
  }
  const Descriptor* sub =
      f && f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE ? f->message_type() : nullptr;
  return Show(*v, sub);
}

void DiffStructs(const std::string& prefix, const Struct& a, const Struct& b, const Descriptor* d,
                 std::vector<std::string>* lines) {
  for (const std::string& key : OrderedKeys(a, b, d)) {
    auto ia = a.fields().find(key);
    auto ib = b.fields().find(key);
    const Value* va = ia == a.fields().end() ? nullptr : &ia->second;
    const Value* vb = ib == b.fields().end() ? nullptr : &ib->second;
    if (va && vb && google::protobuf::util::MessageDifferencer::Equals(*va, *vb)) continue;
    const FieldDescriptor* f = FieldByJsonKey(d, key);
    const std::string path = prefix + "." + key;
    if (f && !IsWholeValue(f) && va && vb && va->kind_case() == Value::kStructValue &&
        vb->kind_case() == Value::kStructValue) {
      DiffStructs(path, va->struct_value(), vb->struct_value(), f->message_type(), lines);
    } else {
      lines->push_back(path + ": " + ShowField(va, f) + " -> " + ShowField(vb, f));
    }
  }
}

// The policy as JSON with zeros included, so "365 -> 0" shows rather than "365 -> (not set)";
// an absent section stays absent.
Struct PolicyStruct(const v1::Policy& p) {
  Struct s;
  (void)google::protobuf::util::JsonStringToMessage(ToJson(p, false, true), &s);
  return s;
}

}  // namespace

Result<v1::PolicySet> NormalizePolicySet(const v1::PolicySet& set) {
  v1::PolicySet out;
  out.set_description(set.description());
  *out.mutable_default_policy() = set.default_policy();
  if (out.default_policy().checkin_window_seconds() == 0) {
    out.mutable_default_policy()->set_checkin_window_seconds(3600);
  }
  Status s = ValidatePolicy(out.default_policy());
  if (s.ok()) s = KnownEnums(out.default_policy(), "");
  if (!s.ok()) return s.Prefixed("defaultPolicy: ");
  if (set.overrides_size() > kMaxPolicyOverrides) {
    return Status::InvalidArgument("overrides: at most " + std::to_string(kMaxPolicyOverrides) +
                                   ", got " + std::to_string(set.overrides_size()));
  }
  std::set<std::string> names;
  for (int i = 0; i < set.overrides_size(); ++i) {
    const v1::PolicyOverride& o = set.overrides(i);
    const std::string label = "overrides[" + std::to_string(i) + "]" +
                              (o.name().empty() ? "" : " (" + o.name() + ")") + ": ";
    if (!IsValidOverrideName(o.name())) {
      return Status::InvalidArgument(label + "name: '" + o.name() +
                                     "' must be 1 to 64 of A-Z a-z 0-9 . _ -");
    }
    if (!names.insert(o.name()).second) {
      return Status::InvalidArgument(label + "name: '" + o.name() + "' is used twice");
    }
    if (o.platform().empty() && o.tag().empty()) {
      return Status::InvalidArgument(label + "needs a platform, a tag or both");
    }
    if (!o.platform().empty() && !IsValidPlatform(o.platform())) {
      return Status::InvalidArgument(label + "platform: '" + o.platform() +
                                     "' must be 1 to 32 of a-z 0-9 _ (like linux)");
    }
    if (!o.tag().empty() && !IsValidTag(o.tag())) {
      return Status::InvalidArgument(label + "tag: '" + o.tag() +
                                     "' is not a tag (1 to 64 of A-Z a-z 0-9 . _ : = -)");
    }
    v1::PolicyOverride* canon = out.add_overrides();
    canon->set_name(o.name());
    canon->set_platform(o.platform());
    canon->set_tag(o.tag());
    s = Canonicalize(o.policy(), v1::Policy::descriptor(), "", canon->mutable_policy());
    if (!s.ok()) return s.Prefixed(label);
    v1::Policy merged = out.default_policy();
    std::map<std::string, std::string> unused;
    ApplyPatch(canon->policy(), &merged, "", o.name(), &unused);
    s = ValidatePolicy(merged);
    if (s.ok()) s = KnownEnums(merged, "");
    if (!s.ok()) return s.Prefixed(label);
  }
  std::sort(out.mutable_overrides()->begin(), out.mutable_overrides()->end(),
            [](const auto& x, const auto& y) { return x.name() < y.name(); });
  return out;
}

Result<v1::PolicySet> ParsePolicySet(const std::string& json, const std::string& what) {
  // Which kind of document: a set names at least one of its own fields at the top.
  Value doc;
  auto st = google::protobuf::util::JsonStringToMessage(json, &doc);
  if (!st.ok()) return Status::InvalidArgument(what + ": " + std::string(st.message()));
  if (doc.kind_case() != Value::kStructValue) {
    return Status::InvalidArgument(what + ": a policy must be a JSON object");
  }
  bool is_set = false;
  for (const auto& [key, value] : doc.struct_value().fields()) {
    is_set = is_set || FieldByJsonKey(v1::PolicySet::descriptor(), key) != nullptr;
  }
  v1::PolicySet set;
  if (is_set) {
    Status s = ParseJsonStrict(json, &set, what);
    if (!s.ok()) return s;
  } else {
    auto policy = ParsePolicy(json, what);
    if (!policy.ok()) return policy.status();
    *set.mutable_default_policy() = std::move(*policy);
  }
  auto normal = NormalizePolicySet(set);
  if (!normal.ok()) return normal.status().Prefixed(what + ": ");
  return normal;
}

Result<v1::PolicySet> LoadPolicySetFile(const std::string& path) {
  auto text = ReadWholeFile(path, 1u << 20);
  if (!text.ok()) return text.status();
  return ParsePolicySet(*text, path);
}

std::string PolicySetVersion(const v1::PolicySet& set) {
  std::string bytes;
  google::protobuf::io::StringOutputStream sos(&bytes);
  {
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    set.SerializeToCodedStream(&cos);
  }
  return "sha256:" + Digest12(bytes);
}

ResolvedPolicy ResolvePolicy(const v1::PolicySet& set, const std::string& os,
                             const std::vector<std::string>& tags) {
  std::vector<const v1::PolicyOverride*> matching;
  for (const auto& o : set.overrides()) {
    if (Matches(o, os, tags)) matching.push_back(&o);
  }
  std::sort(matching.begin(), matching.end(), [](auto* x, auto* y) {
    return std::make_pair(Group(*x), std::string_view(x->name())) <
           std::make_pair(Group(*y), std::string_view(y->name()));
  });
  ResolvedPolicy out;
  out.policy = set.default_policy();
  std::string names;
  for (const v1::PolicyOverride* o : matching) {
    ApplyPatch(o->policy(), &out.policy, "", o->name(), &out.origins);
    out.applied.push_back(o->name());
    names += "+" + o->name();
  }
  if (out.policy.checkin_window_seconds() == 0) out.policy.set_checkin_window_seconds(3600);
  std::string version = PolicySetVersion(set);
  if (version.size() + names.size() > kMaxVersionSize) {
    version += "+~" + Digest12(names);
  } else {
    version += names;
  }
  out.policy.set_version(version);
  out.status = ValidatePolicy(out.policy);
  if (!out.status.ok()) {
    std::string list;
    for (const auto& n : out.applied) list += (list.empty() ? "" : ", ") + n;
    out.status = out.status.Prefixed("overrides " + list + " together: ");
  }
  return out;
}

v1::Policy EffectivePolicy(const v1::PolicySet& set, const std::string& os,
                           const std::vector<std::string>& tags) {
  return ResolvePolicy(set, os, tags).policy;
}

std::vector<std::string> DiffPolicySets(const v1::PolicySet& a, const v1::PolicySet& b) {
  std::vector<std::string> lines;
  if (a.description() != b.description()) {
    lines.push_back("description: " + Quoted(a.description()) + " -> " + Quoted(b.description()));
  }
  DiffStructs("default", PolicyStruct(a.default_policy()), PolicyStruct(b.default_policy()),
              v1::Policy::descriptor(), &lines);
  std::map<std::string, std::pair<const v1::PolicyOverride*, const v1::PolicyOverride*>> by_name;
  for (const auto& o : a.overrides()) by_name.try_emplace(o.name()).first->second.first = &o;
  for (const auto& o : b.overrides()) by_name.try_emplace(o.name()).first->second.second = &o;
  const Struct empty;
  for (const auto& [name, pair] : by_name) {
    const auto [oa, ob] = pair;
    const std::string prefix = "overrides[" + name + "]";
    if (oa == nullptr) {
      lines.push_back(prefix + ": added (" + Scope(*ob) + ")");
    } else if (ob == nullptr) {
      lines.push_back(prefix + ": removed (" + Scope(*oa) + ")");
    } else {
      if (oa->platform() != ob->platform()) {
        lines.push_back(prefix + ".platform: " + Quoted(oa->platform()) + " -> " +
                        Quoted(ob->platform()));
      }
      if (oa->tag() != ob->tag()) {
        lines.push_back(prefix + ".tag: " + Quoted(oa->tag()) + " -> " + Quoted(ob->tag()));
      }
    }
    DiffStructs(prefix, oa ? oa->policy() : empty, ob ? ob->policy() : empty,
                v1::Policy::descriptor(), &lines);
  }
  return lines;
}

}  // namespace vigil::collectors

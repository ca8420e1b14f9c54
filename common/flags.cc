#include "common/flags.h"

#include <charconv>

namespace vigil {

Result<Flags> Flags::Parse(int argc, char** argv, int first, const FlagSpec& spec) {
  Flags f;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) f.positional_.push_back(argv[i]);
      break;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      f.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    if (spec.boolean.count(name)) {
      if (inline_value) return Status::InvalidArgument("--" + name + " takes no value");
      f.values_[name] = "true";
    } else if (spec.with_value.count(name)) {
      if (!inline_value) {
        if (i + 1 >= argc) return Status::InvalidArgument("--" + name + " needs a value");
        value = argv[++i];
      }
      f.values_[name] = value;
    } else {
      return Status::InvalidArgument("unknown flag --" + name);
    }
  }
  return f;
}

std::optional<std::string> Flags::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Flags::GetOr(const std::string& name, const std::string& fallback) const {
  auto v = Get(name);
  return v ? *v : fallback;
}

Result<uint64_t> Flags::GetUint(const std::string& name, uint64_t fallback) const {
  auto v = Get(name);
  if (!v) return fallback;
  uint64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size() || v->empty()) {
    return Status::InvalidArgument("--" + name + ": not a non-negative integer: '" + *v + "'");
  }
  return out;
}

}  // namespace vigil

// A small, strict command-line parser shared by vigil-agent, vigil-server and vigilctl:
// "--name value" or "--name=value"; boolean flags take no value; unknown flags are errors that
// name the flag. Positional arguments are kept in order.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace vigil {

struct FlagSpec {
  std::set<std::string> with_value;  // e.g. {"server", "root"}
  std::set<std::string> boolean;     // e.g. {"insecure"}
};

class Flags {
 public:
  static Result<Flags> Parse(int argc, char** argv, int first, const FlagSpec& spec);

  std::optional<std::string> Get(const std::string& name) const;
  std::string GetOr(const std::string& name, const std::string& fallback) const;
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // Parses an unsigned integer flag; errors name the flag.
  Result<uint64_t> GetUint(const std::string& name, uint64_t fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace vigil

#include "common/flags.h"

#include <doctest/doctest.h>

namespace vigil {
namespace {

Result<Flags> ParseArgs(std::vector<std::string> args, const FlagSpec& spec) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return Flags::Parse(static_cast<int>(argv.size()), argv.data(), 0, spec);
}

TEST_CASE("flags: values, inline values, booleans and positionals") {
  FlagSpec spec{{"server", "root"}, {"insecure"}};
  auto f = ParseArgs({"devices", "--server", "a:1", "--root=/x", "--insecure", "extra"}, spec);
  REQUIRE(f.ok());
  CHECK(f->GetOr("server", "") == "a:1");
  CHECK(f->GetOr("root", "") == "/x");
  CHECK(f->Has("insecure"));
  CHECK(f->positional() == std::vector<std::string>{"devices", "extra"});
}

TEST_CASE("flags: errors name the flag") {
  FlagSpec spec{{"server", "interval"}, {"insecure"}};
  auto unknown = ParseArgs({"--bogus"}, spec);
  REQUIRE(!unknown.ok());
  CHECK(unknown.status().message().find("--bogus") != std::string::npos);
  auto missing = ParseArgs({"--server"}, spec);
  CHECK(!missing.ok());
  auto boolval = ParseArgs({"--insecure=yes"}, spec);
  CHECK(!boolval.ok());
  auto f = ParseArgs({"--interval", "12x"}, spec);
  REQUIRE(f.ok());
  auto n = f->GetUint("interval", 5);
  REQUIRE(!n.ok());
  CHECK(n.status().message().find("--interval") != std::string::npos);
}

}  // namespace
}  // namespace vigil

#include <doctest/doctest.h>

#include <string>

#include "collectors/linux/sway.h"

namespace vigil::collectors::linux_os {
namespace {

TEST_CASE("sway: doubling variables cannot blow up memory") {
  std::string config = "set $a xx\n";
  for (int i = 0; i < 64; ++i) config += "set $a $a$a\n";
  config += "exec swayidle timeout 300 'swaylock -f' $a\n";
  std::map<std::string, std::string> vars;
  std::vector<std::string> includes;
  SwayIdle idle;
  ParseSwayConfig(config, "/etc/sway/config", &vars, &includes, &idle);
  CHECK(vars["$a"].size() <= 8 * 1024);
}

}  // namespace
}  // namespace vigil::collectors::linux_os

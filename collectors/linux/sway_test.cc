// ParseSwayConfig / ParseSwayidleConfig, table-driven.
#include "collectors/linux/sway.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

namespace vigil::collectors::linux_os {
namespace {

struct Row {
  std::string name;
  std::string config;
  bool found;
  std::optional<int64_t> lock;  // lock timeout seconds
  int lock_line;
  std::optional<int64_t> suspend;
  bool before_sleep;
  std::optional<int64_t> grace;
  bool reads_config_file;
};

TEST_CASE("ParseSwayConfig") {
  const std::vector<Row> rows = {
      {"no swayidle",
       "set $mod Mod4\nbindsym $mod+Return exec foot\n",
       false,
       {},
       0,
       {},
       false,
       {},
       false},
      {"commented out",
       "# exec swayidle -w timeout 300 'swaylock -f'\n",
       false,
       {},
       0,
       {},
       false,
       {},
       false},
      {"sway's default config",
       "exec swayidle -w \\\n"
       "         timeout 300 'swaylock -f -c 000000' \\\n"
       "         timeout 600 'swaymsg \"output * power off\"' resume 'swaymsg \"output * power "
       "on\"' \\\n"
       "         before-sleep 'swaylock -f -c 000000'\n",
       true,
       300,
       1,
       {},
       true,
       {},
       false},
      {"display off is not a lock",
       "exec swayidle -w timeout 600 'swaymsg \"output * power off\"'\n",
       true,
       {},
       0,
       {},
       false,
       {},
       false},
      {"variables",
       "set $lock swaylock -f\nset $idle 240\nexec swayidle timeout $idle '$lock'\n",
       true,
       240,
       3,
       {},
       false,
       {},
       false},
      {"smallest lock timeout wins",
       "exec_always swayidle timeout 900 'swaylock' timeout 120 \"swaylock -f\"\n",
       true,
       120,
       1,
       {},
       false,
       {},
       false},
      {"suspend timeout",
       "exec swayidle -w timeout 1200 'systemctl suspend' before-sleep swaylock",
       true,
       {},
       0,
       1200,
       true,
       {},
       false},
      {"lock-session through the lock handler",
       "exec swayidle -w timeout 300 'loginctl lock-session' lock 'swaylock -f'\n",
       true,
       300,
       1,
       {},
       false,
       {},
       false},
      {"lock-session without a handler does nothing",
       "exec swayidle -w timeout 300 'loginctl lock-session'\n",
       true,
       {},
       0,
       {},
       false,
       {},
       false},
      {"grace (swaylock-effects)",
       "exec swayidle timeout 300 'swaylock --grace 30'\n",
       true,
       300,
       1,
       {},
       false,
       30,
       false},
      {"no commands: swayidle reads its config file",
       "exec swayidle -w\n",
       true,
       {},
       0,
       {},
       false,
       {},
       true},
      {"absolute path and --no-startup-id",
       "exec --no-startup-id /usr/bin/swayidle timeout 60 swaylock\n",
       true,
       60,
       1,
       {},
       false,
       {},
       false},
      {"zero timeout is ignored",
       "exec swayidle timeout 0 swaylock\n",
       true,
       {},
       0,
       {},
       false,
       {},
       false},
  };
  for (const Row& r : rows) {
    INFO("case: " << r.name);
    std::map<std::string, std::string> vars;
    std::vector<std::string> includes;
    SwayIdle s;
    ParseSwayConfig(r.config, "/etc/sway/config", &vars, &includes, &s);
    CHECK(s.swayidle_found == r.found);
    CHECK(s.lock_timeout.has_value() == r.lock.has_value());
    if (r.lock && s.lock_timeout) {
      CHECK(s.lock_timeout->seconds == *r.lock);
      CHECK(s.lock_timeout->line == r.lock_line);
    }
    CHECK(s.suspend_timeout.has_value() == r.suspend.has_value());
    if (r.suspend && s.suspend_timeout) CHECK(s.suspend_timeout->seconds == *r.suspend);
    CHECK(s.before_sleep_lock.has_value() == r.before_sleep);
    CHECK(s.grace.has_value() == r.grace.has_value());
    if (r.grace && s.grace) CHECK(s.grace->seconds == *r.grace);
    CHECK(s.no_commands == r.reads_config_file);
    if (s.lock_timeout) CHECK(s.lock_timeout->source == "/etc/sway/config");
  }
  SUBCASE("include lines are returned in order") {
    std::map<std::string, std::string> vars;
    std::vector<std::string> includes;
    SwayIdle s;
    ParseSwayConfig("include /etc/sway/config.d/*\ninclude ~/.config/sway/local\n", "c", &vars,
                    &includes, &s);
    CHECK(includes == std::vector<std::string>{"/etc/sway/config.d/*", "~/.config/sway/local"});
  }
}

TEST_CASE("ParseSwayidleConfig") {
  SwayIdle s;
  ParseSwayidleConfig(
      "# ~/.config/swayidle/config\n"
      "timeout 600 'swaylock -f'\n"
      "  timeout 300 'swaylock -f'   \n"
      "timeout 1800 'systemctl suspend'\n"
      "before-sleep 'swaylock -f'\n",
      "/home/a/.config/swayidle/config", &s);
  REQUIRE(s.lock_timeout.has_value());
  CHECK(s.lock_timeout->seconds == 300);
  CHECK(s.lock_timeout->line == 3);
  REQUIRE(s.suspend_timeout.has_value());
  CHECK(s.suspend_timeout->seconds == 1800);
  CHECK(s.before_sleep_lock.has_value());
  CHECK(s.lock_timeout->source == "/home/a/.config/swayidle/config");
  CHECK(s.config_error.empty());

  SUBCASE("an unknown keyword makes swayidle exit") {
    SwayIdle bad;
    ParseSwayidleConfig("timeout 300 swaylock\nwait 5\n", "c", &bad);
    CHECK(bad.config_error == "line 2: unexpected keyword 'wait' (swayidle exits)");
  }
}

}  // namespace
}  // namespace vigil::collectors::linux_os

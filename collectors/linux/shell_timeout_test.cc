// ParseShellTimeout + ApplyShellTimeout: TMOUT statements in startup files, table-driven.
#include "collectors/linux/shell_timeout.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

namespace vigil::collectors::linux_os {
namespace {

struct File {
  std::string path;
  std::string text;
};

struct Row {
  std::string name;
  std::vector<File> files;  // in reading order
  bool set;
  int64_t seconds;
  std::string source;  // "path:line" of the value in effect, "" when none
  bool readonly;
  std::string readonly_at;  // "path:line"
  std::vector<std::string> warnings_contain;
};

TEST_CASE("ShellTimeout: statements and reading order") {
  const std::string P = "/etc/profile";
  const std::string D = "/etc/profile.d/tmout.sh";
  const std::string B = "/etc/bash.bashrc";
  const std::vector<Row> rows = {
      {"nothing set", {{P, "export PATH=/usr/bin\n"}}, false, 0, "", false, "", {}},
      {"plain assignment", {{P, "TMOUT=600\n"}}, true, 600, P + ":1", false, "", {}},
      {"readonly with value",
       {{P, "\n# idle shells\nreadonly TMOUT=900\n"}},
       true,
       900,
       P + ":3",
       true,
       P + ":3",
       {}},
      {"assignment then readonly then export",
       {{D, "TMOUT=300\nreadonly TMOUT\nexport TMOUT\n"}},
       true,
       300,
       D + ":1",
       true,
       D + ":2",
       {}},
      {"one line with semicolons",
       {{D, "TMOUT=300; readonly TMOUT; export TMOUT"}},
       true,
       300,
       D + ":1",
       true,
       D + ":1",
       {}},
      {"declare -r", {{D, "declare -r TMOUT=120"}}, true, 120, D + ":1", true, D + ":1", {}},
      {"typeset -rx", {{D, "typeset -rx TMOUT=60"}}, true, 60, D + ":1", true, D + ":1", {}},
      {"declare -x is not readonly",
       {{D, "declare -x TMOUT=60"}},
       true,
       60,
       D + ":1",
       false,
       "",
       {}},
      {"export with value", {{D, "export TMOUT=450"}}, true, 450, D + ":1", false, "", {}},
      {"quoted values",
       {{D, "TMOUT=\"600\"\nreadonly TMOUT='700'\n"}},
       true,
       700,
       D + ":2",
       true,
       D + ":2",
       {}},
      {"whitespace variants",
       {{D, "   \tTMOUT=600   \n\t readonly   TMOUT  \n"}},
       true,
       600,
       D + ":1",
       true,
       D + ":2",
       {}},
      {"commented lines ignored",
       {{D, "#TMOUT=60\n  # readonly TMOUT\nTMOUT=600 # was 60\n"}},
       true,
       600,
       D + ":3",
       false,
       "",
       {}},
      {"last assignment wins (repeated key)",
       {{D, "TMOUT=60\nTMOUT=6000\n"}},
       true,
       6000,
       D + ":2",
       false,
       "",
       {}},
      {"conflicting files: later file wins",
       {{P, "TMOUT=300\n"}, {B, "TMOUT=1800\n"}},
       true,
       1800,
       B + ":1",
       false,
       "",
       {}},
      {"readonly freezes the value against later files",
       {{P, "readonly TMOUT=300\n"}, {B, "TMOUT=1800\nunset TMOUT\n"}},
       true,
       300,
       P + ":1",
       true,
       P + ":1",
       {B + ":1: 'TMOUT=1800' has no effect: TMOUT is readonly since " + P + ":1", B + ":2"}},
      {"unset removes an unlocked value",
       {{P, "TMOUT=300\n"}, {B, "unset TMOUT\n"}},
       false,
       0,
       B + ":1",
       false,
       "",
       {}},
      {"readonly before any value keeps it unset",
       {{P, "readonly TMOUT\nTMOUT=300\n"}},
       false,
       0,
       "",
       true,
       P + ":1",
       {"has no effect"}},
      {"zero is no timeout", {{P, "readonly TMOUT=0\n"}}, false, 0, P + ":1", true, P + ":1", {}},
      {"not a number",
       {{P, "TMOUT=$((10*60))\n"}},
       false,
       0,
       P + ":1",
       false,
       "",
       {"not a number of seconds"}},
      {"conditional assignment is counted and warned",
       {{P, "if [ \"$USER\" != root ]; then\n  TMOUT=600\nfi\n"}},
       true,
       600,
       P + ":2",
       false,
       "",
       {P + ":2: 'TMOUT=600' is conditional"}},
      {"&& makes it conditional",
       {{P, "[ -t 0 ] && TMOUT=600"}},
       true,
       600,
       P + ":1",
       false,
       "",
       {"is conditional"}},
      {"a prefix assignment only affects one command",
       {{P, "TMOUT=5 sleep 1\n"}},
       false,
       0,
       "",
       false,
       "",
       {}},
      {"other variables do not match",
       {{P, "TMOUTX=5\nMY_TMOUT=5\nexport TMOUTS\n"}},
       false,
       0,
       "",
       false,
       "",
       {}},
      {"unset -f is about functions",
       {{P, "TMOUT=60\nunset -f TMOUT\n"}},
       true,
       60,
       P + ":1",
       false,
       "",
       {}},
  };
  for (const Row& r : rows) {
    INFO("case: " << r.name);
    ShellTimeoutState state;
    for (const File& f : r.files) ApplyShellTimeout(f.path, ParseShellTimeout(f.text), &state);
    CHECK(state.set == r.set);
    CHECK(state.seconds == r.seconds);
    if (r.source.empty()) {
      CHECK(state.line == 0);
    } else {
      CHECK(state.source + ":" + std::to_string(state.line) == r.source);
    }
    CHECK(state.readonly == r.readonly);
    if (!r.readonly_at.empty()) {
      CHECK(state.readonly_source + ":" + std::to_string(state.readonly_line) == r.readonly_at);
    }
    for (const auto& w : r.warnings_contain) {
      bool found = false;
      for (const auto& got : state.warnings) found = found || got.find(w) != std::string::npos;
      CHECK_MESSAGE(found, "no warning contains: " << w);
    }
    if (r.warnings_contain.empty()) CHECK(state.warnings.empty());
  }
}

}  // namespace
}  // namespace vigil::collectors::linux_os

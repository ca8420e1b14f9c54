// Tests for the USBGuard daemon configuration and rule parsers.
#include "collectors/linux/usbguard.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

TEST_CASE("ParseUsbGuardDaemonConf keeps every Key=Value with its line") {
  auto s = ParseUsbGuardDaemonConf(
      "# RuleFile=/nope\n"
      "RuleFile=/etc/usbguard/rules.conf\n"
      "\n"
      "  ImplicitPolicyTarget = block  \n"
      "no equals sign\n"
      "ImplicitPolicyTarget=reject\n");
  REQUIRE(s.size() == 3);
  CHECK(s[0].key == "RuleFile");
  CHECK(s[0].value == "/etc/usbguard/rules.conf");
  CHECK(s[0].line == 2);
  CHECK(s[1].key == "ImplicitPolicyTarget");
  CHECK(s[1].value == "block");
  CHECK(s[2].value == "reject");
  CHECK(s[2].line == 6);
}

std::string Render(const UsbGuardRuleText& r) {
  return r.target + "|" + r.id_operator + ":" + Join(r.ids, ",") + "|" + r.interface_operator +
         ":" + Join(r.interfaces, ",") + "|" + Join(r.other_attributes, ";");
}

TEST_CASE("ParseUsbGuardRules reads the subset that decides mass storage") {
  struct Case {
    const char* name;
    const char* text;
    std::vector<std::string> want;
    size_t errors;
  } cases[] = {
      {"id, serial and interface",
       "allow id 0781:5581 serial \"4C53 0001\" with-interface 08:06:50\n",
       {"allow|equals:0781:5581|equals:08:06:50|serial 4C53 0001"},
       0},
      {"equals set", "block with-interface equals { 08:*:* }\n", {"block|:|equals:08:*:*|"}, 0},
      {"one-of set without spaces inside braces",
       "allow with-interface one-of {03:*:* 09:00:*}\n",
       {"allow|:|one-of:03:*:*,09:00:*|"},
       0},
      {"bare target matches everything", "reject\n", {"reject|:|:|"}, 0},
      {"comments, blanks and CRLF",
       "# comment\n\n   # indented comment\n\tallow with-interface 03:*:*\r\n",
       {"allow|:|equals:03:*:*|"},
       0},
      {"id without the keyword, upper-case hex",
       "allow 1050:0011 name \"Yubico Yubikey II\"\n",
       {"allow|equals:1050:0011|:|name Yubico Yubikey II"},
       0},
      {"id set and vendor wildcard",
       "allow id one-of { 0781:* 090c:1000 }\n",
       {"allow|one-of:0781:*,090c:1000|:|"},
       0},
      {"conditions with parentheses and braces",
       "allow with-interface one-of { 03:00:01 03:01:01 } if "
       "!allowed-matches(with-interface one-of { 03:00:01 03:01:01 })\n",
       {"allow|:|one-of:03:00:01,03:01:01|if !allowed-matches(with-interface one-of { 03:00:01 "
        "03:01:01 })"},
       0},
      {"label is not a narrowing attribute",
       "block label \"storage\" with-interface one-of { 08:*:* }\n",
       {"block|:|one-of:08:*:*|"},
       0},
      {"escaped quote", "allow serial \"a\\\"b\"\n", {"allow|:|:|serial a\"b"}, 0},
      {"unknown target", "permit with-interface 08:*:*\n", {}, 1},
      {"unknown attribute", "allow colour blue\n", {}, 1},
      {"unterminated set", "allow with-interface { 08:*:*\n", {}, 1},
      {"unterminated quote", "allow serial \"abc\n", {}, 1},
      {"bad interface", "allow with-interface 8:6:50\n", {}, 1},
      {"subclass wildcard needs protocol wildcard", "allow with-interface 08:*:50\n", {}, 1},
      {"bad id", "allow id 781:5581\n", {}, 1},
      {"duplicate attribute", "allow id 0781:5581 id 0781:5582\n", {}, 1},
      {"operator without a set", "allow with-interface one-of 08:*:*\n", {}, 1},
      {"good lines survive a bad one",
       "allow with-interface 03:*:*\nallow bogus\nblock\n",
       {"allow|:|equals:03:*:*|", "block|:|:|"},
       1},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.name));
    auto r = ParseUsbGuardRules(c.text);
    std::vector<std::string> got;
    for (const auto& rule : r.rules) got.push_back(Render(rule));
    CHECK(got == c.want);
    CHECK(r.errors.size() == c.errors);
  }
  auto r = ParseUsbGuardRules("\n# x\nallow with-interface 03:*:*\n");
  REQUIRE(r.rules.size() == 1);
  CHECK(r.rules[0].line == 3);
  CHECK(r.rules[0].text == "allow with-interface 03:*:*");
  auto bad = ParseUsbGuardRules("allow\nallow nope\n");
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0] == "line 2: unknown attribute 'nope': 'allow nope'");
}

}  // namespace
}  // namespace vigil::collectors::linux_os

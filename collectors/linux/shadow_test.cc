// Tests for the /etc/shadow parser.
#include "collectors/linux/shadow.h"

#include <doctest/doctest.h>

namespace vigil::collectors::linux_os {
namespace {

TEST_CASE("ParseShadow extracts state without hashes") {
  const char* text =
      "root:*:19500:0:99999:7:::\n"
      "# comment\n"
      "alice:$y$j9T$salt$hash:19600:0:90:7:::\n"
      "bob::19600:0::7:::\n"
      "carol:!$6$salt$hash:19600:0:30:7:::\n"
      "dave:!!:19600::::::\n"
      "alice:::::::: \n"  // duplicate: first wins
      "short:x:1\n"       // too few fields
      "erin:$6$x:19600:0:abc:7:::\r\n";
  auto e = ParseShadow(text);
  REQUIRE(e.size() == 6);
  struct Want {
    const char* name;
    bool empty, locked;
    int64_t max;
  } want[] = {{"root", false, true, 99999}, {"alice", false, false, 90}, {"bob", true, false, -1},
              {"carol", false, true, 30},   {"dave", false, true, -1},   {"erin", false, false, 0}};
  for (size_t i = 0; i < e.size(); ++i) {
    INFO(std::string(want[i].name));
    CHECK(e[i].name == want[i].name);
    CHECK(e[i].empty_password == want[i].empty);
    CHECK(e[i].locked == want[i].locked);
    if (std::string(want[i].name) == "erin") {
      CHECK(!e[i].max_days.has_value());
      CHECK(e[i].max_days_raw == "abc");
    } else {
      CHECK(e[i].max_days == want[i].max);
    }
  }
  CHECK(e[1].line_no == 3);
}

TEST_CASE("ParseLoginDefsLines follows shadow's def_load") {
  auto d = ParseLoginDefsLines(
      "# PASS_MAX_DAYS 1\n"
      "PASS_MAX_DAYS\t99999\n"
      "  PASS_MAX_DAYS   90  \n"     // later line wins; blanks trimmed
      "PASS_MIN_DAYS 1 # one day\n"  // '#' inside the value is kept
      "ENCRYPT_METHOD \"SHA512\"\n"  // quotes removed
      "PASS_WARN_AGE\n"              // no value: ignored
      "UMASK\t\t022\r\n");
  CHECK(d.at("PASS_MAX_DAYS").value == "90");
  CHECK(d.at("PASS_MAX_DAYS").line == 3);
  CHECK(d.at("PASS_MAX_DAYS").raw == "PASS_MAX_DAYS   90");
  CHECK(d.at("PASS_MIN_DAYS").value == "1 # one day");
  CHECK(d.at("ENCRYPT_METHOD").value == "SHA512");
  CHECK(d.count("PASS_WARN_AGE") == 0);
  CHECK(d.at("UMASK").value == "022");
}

TEST_CASE("LoginDefsNumber is strtol with base 0 over the whole value") {
  CHECK(LoginDefsNumber("90") == 90);
  CHECK(LoginDefsNumber("-1") == -1);
  CHECK(LoginDefsNumber("0x10") == 16);
  CHECK(LoginDefsNumber("010") == 8);
  CHECK(!LoginDefsNumber("90 # site").has_value());
  CHECK(!LoginDefsNumber("").has_value());
  CHECK(!LoginDefsNumber("ninety").has_value());
  CHECK(!LoginDefsNumber("99999999999999999999999").has_value());
}

}  // namespace
}  // namespace vigil::collectors::linux_os

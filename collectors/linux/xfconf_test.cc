// ParseXfconfChannel, XfconfLockApplies and LookupXfconf, table-driven.
#include "collectors/linux/xfconf.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace vigil::collectors::linux_os {
namespace {

constexpr const char* kScreensaver = R"(<?xml version="1.0" encoding="UTF-8"?>

<channel name="xfce4-screensaver" version="1.0">
  <!-- written by xfce4-screensaver-preferences -->
  <property name="saver" type="empty">
    <property name="enabled" type="bool" value="true"/>
    <property name="idle-activation" type="empty">
      <property name="delay" type="int" value="10"/>
    </property>
  </property>
  <property name="lock" type="empty">
    <property name="enabled" type="bool" value="false"/>
    <property name="themes" type="array">
      <value type="string" value="screensavers-xfce-floaters"/>
    </property>
  </property>
</channel>
)";

TEST_CASE("ParseXfconfChannel") {
  auto ch = ParseXfconfChannel(kScreensaver);
  REQUIRE(ch.ok());
  CHECK(ch->name == "xfce4-screensaver");
  const auto& props = ch->properties;
  REQUIRE(props.count("/saver/idle-activation/delay") == 1);
  const auto& delay = props.at("/saver/idle-activation/delay");
  CHECK(delay.path == "/saver/idle-activation/delay");
  CHECK(delay.type == "int");
  CHECK(delay.value == "10");
  CHECK(delay.line == 8);
  CHECK(props.at("/lock/enabled").value == "false");
  CHECK_FALSE(props.at("/saver").value.has_value());
  CHECK_FALSE(props.at("/lock/themes").value.has_value());  // arrays are not scalar values

  struct Bad {
    std::string name;
    std::string xml;
    std::string error_contains;
  };
  const std::vector<Bad> bad = {
      {"empty", "", "not a valid xfconf channel file"},
      {"wrong root", "<settings/>", "not <channel>"},
      {"unclosed", "<channel name=\"x\"><property name=\"a\" type=\"int\" value=\"1\">", ""},
      {"nameless property", "<channel><property type=\"int\" value=\"1\"/></channel>",
       "without a valid name"},
      {"slash in name", "<channel><property name=\"a/b\" type=\"int\" value=\"1\"/></channel>",
       "without a valid name"},
      {"two roots", "<channel/><channel/>", ""},
      {"not XML", "TMOUT=600", ""},
      {"bad entity", "<channel name=\"&bogus;\"/>", ""},
  };
  for (const Bad& b : bad) {
    INFO("case: " << b.name);
    auto r = ParseXfconfChannel(b.xml);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find(b.error_contains) != std::string::npos);
  }

  SUBCASE("repeated property: the later one wins; names are case-insensitive") {
    auto r = ParseXfconfChannel(
        "<channel name=\"c\">\n<property name=\"Saver\" type=\"empty\">\n"
        "<property name=\"Enabled\" type=\"bool\" value=\"true\"/>\n"
        "<property name=\"enabled\" type=\"bool\" value=\"false\"/>\n</property>\n</channel>");
    REQUIRE(r.ok());
    CHECK(r->properties.at("/saver/enabled").value == "false");
    CHECK(r->properties.at("/saver/enabled").line == 4);
  }
  SUBCASE("escaped attribute values") {
    auto r = ParseXfconfChannel(
        "<channel name=\"c\"><property name=\"s\" type=\"string\" value=\"a&amp;b &lt;\"/>"
        "</channel>");
    REQUIRE(r.ok());
    CHECK(r->properties.at("/s").value == "a&b <");
  }
}

TEST_CASE("XfconfLockApplies") {
  struct Row {
    std::string locked, unlocked, user;
    std::vector<std::string> groups;
    bool applies;
  };
  const std::vector<Row> rows = {
      {"", "", "alice", {}, false},
      {"*", "", "alice", {}, true},
      {"alice", "", "alice", {}, true},
      {"bob;carol", "", "alice", {}, false},
      {"bob; alice ", "", "alice", {}, true},
      {"@staff", "", "alice", {"users", "staff"}, true},
      {"@staff", "", "alice", {"users"}, false},
      {"", "@adm", "alice", {"users"}, true},  // only adm members may change it
      {"", "@adm", "alice", {"adm"}, false},
      {"", "root", "root", {}, false},
  };
  for (const Row& r : rows) {
    INFO("locked=" << r.locked << " unlocked=" << r.unlocked << " user=" << r.user);
    CHECK(XfconfLockApplies(r.locked, r.unlocked, r.user, r.groups) == r.applies);
  }
}

XfconfLayer Layer(const std::string& source, bool system, const std::string& xml) {
  auto ch = ParseXfconfChannel(xml);
  REQUIRE_MESSAGE(ch.ok(), ch.status().message());
  return {source, system, *ch};
}

TEST_CASE("LookupXfconf: user overrides system unless locked") {
  const std::string sys = "/etc/xdg/xfce4/xfconf/xfce-perchannel-xml/xfce4-screensaver.xml";
  const std::string usr = "/home/alice/.config/xfce4/xfconf/xfce-perchannel-xml/x.xml";
  auto doc = [](const std::string& attrs, const std::string& delay_attrs) {
    return "<channel name=\"xfce4-screensaver\"" + attrs +
           "><property name=\"saver\" type=\"empty\"><property name=\"idle-activation\" "
           "type=\"empty\"><property name=\"delay\" type=\"int\"" +
           delay_attrs + "/></property></property></channel>";
  };
  struct Row {
    std::string name;
    std::vector<XfconfLayer> layers;
    bool found;
    std::string value, source;
    bool locked;
  };
  const std::vector<Row> rows = {
      {"no files", {}, false, "", "", false},
      {"system only", {Layer(sys, true, doc("", " value=\"5\""))}, true, "5", sys, false},
      {"user overrides",
       {Layer(sys, true, doc("", " value=\"5\"")), Layer(usr, false, doc("", " value=\"60\""))},
       true,
       "60",
       usr,
       false},
      {"property locked for everyone",
       {Layer(sys, true, doc("", " value=\"5\" locked=\"*\"")),
        Layer(usr, false, doc("", " value=\"60\""))},
       true,
       "5",
       sys,
       true},
      {"channel locked",
       {Layer(sys, true, doc(" locked=\"*\"", " value=\"5\"")),
        Layer(usr, false, doc("", " value=\"60\""))},
       true,
       "5",
       sys,
       true},
      {"locked for someone else",
       {Layer(sys, true, doc("", " value=\"5\" locked=\"bob\"")),
        Layer(usr, false, doc("", " value=\"60\""))},
       true,
       "60",
       usr,
       false},
      {"locked without a value: application default",
       {Layer(sys, true, doc(" locked=\"*\"", "")), Layer(usr, false, doc("", " value=\"60\""))},
       false,
       "",
       "",
       true},
      {"a lock in a user file means nothing",
       {Layer(usr, false, doc(" locked=\"*\"", " value=\"60\""))},
       true,
       "60",
       usr,
       false},
  };
  for (const Row& r : rows) {
    INFO("case: " << r.name);
    auto l = LookupXfconf(r.layers, "/saver/idle-activation/DELAY", "alice", {"alice"});
    CHECK(l.found == r.found);
    if (r.found) {
      CHECK(l.property.value == r.value);
      CHECK(l.source == r.source);
    }
    CHECK(l.locked == r.locked);
    if (r.locked) CHECK(l.locked_by == sys);
  }
  SUBCASE("a locked ancestor covers a property the system file does not list") {
    std::vector<XfconfLayer> layers = {
        Layer(sys, true,
              "<channel name=\"c\"><property name=\"saver\" type=\"empty\" locked=\"*\"/>"
              "</channel>"),
        Layer(usr, false, doc("", " value=\"60\""))};
    auto l = LookupXfconf(layers, "/saver/idle-activation/delay", "alice", {});
    CHECK_FALSE(l.found);
    CHECK(l.locked);
  }
}

}  // namespace
}  // namespace vigil::collectors::linux_os

// Tests for the PAM configuration parser and stack resolver.
#include "collectors/linux/pam.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace vigil::collectors::linux_os {
namespace {

struct LineCase {
  const char* name;
  const char* text;
  std::vector<std::string> want;  // "type|control|module|arg,arg" per logical line
};

std::string Render(const PamLine& l) {
  std::string args;
  for (const auto& a : l.args) args += (args.empty() ? "" : ",") + a;
  return (l.silent_if_missing ? "-" : "") + l.type + "|" + l.control + "|" + l.module + "|" + args;
}

TEST_CASE("ParsePamConfig follows libpam's line rules") {
  const LineCase cases[] = {
      {"debian common-password",
       "# comment\n\npassword\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\n"
       "password\trequisite\t\t\tpam_deny.so\n",
       {"password|[success=1 default=ignore]|pam_unix.so|obscure,yescrypt",
        "password|requisite|pam_deny.so|"}},
      {"type and control are case-insensitive",
       "PASSWORD Required pam_unix.so\n",
       {"password|required|pam_unix.so|"}},
      {"dash prefix",
       "-password optional pam_gnome_keyring.so use_authtok\n",
       {"-password|optional|pam_gnome_keyring.so|use_authtok"}},
      {"hash anywhere ends the line",
       "auth required pam_faillock.so deny=5 # was 3\n",
       {"auth|required|pam_faillock.so|deny=5"}},
      {"continuation",
       "auth [default=die] pam_faillock.so authfail \\\n   deny=5 \\\n unlock_time=900\n",
       {"auth|[default=die]|pam_faillock.so|authfail,deny=5,unlock_time=900"}},
      {"continuation skips comment lines",
       "password required \\\n# note\n pam_unix.so sha512\n",
       {"password|required|pam_unix.so|sha512"}},
      {"bracketed argument keeps spaces",
       "auth required pam_mysql.so [query=select x from y where a=\\]b]\n",
       {"auth|required|pam_mysql.so|query=select x from y where a=]b"}},
      {"@include", "@include common-auth\n", {"@include||common-auth|"}},
      {"too few fields are skipped", "password required\nauth\n", {}},
      {"CRLF and trailing blanks",
       "password requisite pam_pwquality.so retry=3 \r\n",
       {"password|requisite|pam_pwquality.so|retry=3"}},
      {"continuation at end of file",
       "password required pam_unix.so \\",
       {"password|required|pam_unix.so|"}},
      {"unterminated bracket", "auth [success=1 pam_unix.so", {}},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.name));
    auto lines = ParsePamConfig(c.text);
    std::vector<std::string> got;
    std::string joined;
    for (const auto& l : lines) {
      got.push_back(Render(l));
      joined += got.back() + "\n";
    }
    INFO(joined);
    CHECK(got == c.want);
  }
}

TEST_CASE("ParsePamConfig keeps line numbers and text for provenance") {
  auto lines =
      ParsePamConfig("# x\n\nauth required pam_env.so\nauth  sufficient pam_unix.so \\\n nullok\n");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].line_no == 3);
  CHECK(lines[1].line_no == 4);
  CHECK(lines[1].text == "auth  sufficient pam_unix.so  nullok");
  CHECK(lines[1].module == "pam_unix.so");
}

TEST_CASE("PAM argument helpers: last value wins, flags exact") {
  auto lines = ParsePamConfig(
      "password requisite /lib/security/pam_pwquality.so minlen=10 minlen=14 "
      "retry=3 enforce_for_root\n");
  REQUIRE(lines.size() == 1);
  CHECK(PamModuleName(lines[0].module) == "pam_pwquality.so");
  CHECK(PamArgValue(lines[0], "minlen") == "14");
  CHECK(!PamArgValue(lines[0], "min").has_value());
  CHECK(PamHasFlag(lines[0], "enforce_for_root"));
  CHECK(!PamHasFlag(lines[0], "retry"));
}

TEST_CASE("ResolvePamStack follows @include, include and substack") {
  auto view =
      NewRootedSystemView(std::string(VIGIL_FIXTURES_DIR) + "/password_policy/pam_includes");
  auto stack = ResolvePamStack(*view, "/etc/pam.d/common-password", "password");
  REQUIRE(stack.ok());
  std::vector<std::string> modules;
  for (const auto& e : stack->entries) modules.push_back(std::string(PamModuleName(e.line.module)));
  CHECK(modules == std::vector<std::string>{"pam_gnome_keyring.so", "pam_pwquality.so",
                                            "pam_unix.so", "pam_deny.so"});
  CHECK(stack->entries[0].file == "/etc/pam.d/common-extra");
  CHECK(stack->entries[2].file == "/etc/pam.d/local-sub");
  // A missing include and the self-include are reported, not fatal.
  REQUIRE(stack->warnings.size() == 2);
  CHECK(stack->warnings[0].find("missing-file") != std::string::npos);
  CHECK(stack->warnings[1].find("loops") != std::string::npos);

  auto auth = ResolvePamStack(*view, "/etc/pam.d/common-password", "auth");
  REQUIRE(auth.ok());
  REQUIRE(auth->entries.size() == 2);
  CHECK(PamModuleName(auth->entries[0].line.module) == "pam_faillock.so");

  auto missing = ResolvePamStack(*view, "/etc/pam.d/nope", "auth");
  CHECK(missing.status().code() == Status::Code::kNotFound);
}

}  // namespace
}  // namespace vigil::collectors::linux_os

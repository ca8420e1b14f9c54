// Tests for pwquality.conf/faillock.conf parsing and libpwquality's length/credit arithmetic.
#include "collectors/linux/pwquality.h"

#include <doctest/doctest.h>

namespace vigil::collectors::linux_os {
namespace {

TEST_CASE("ParseSecurityConf reads key = value lines like libpwquality") {
  struct Case {
    const char* text;
    const char* key;
    const char* value;
  } cases[] = {
      {"minlen = 14\n", "minlen", "14"},
      {"minlen=14", "minlen", "14"},
      {"  MinLen   14   # comment\n", "minlen", "14"},
      {"minlen =14\r\n", "minlen", "14"},
      {"enforce_for_root\n", "enforce_for_root", ""},
      {"badwords = foo bar\n", "badwords", "foo bar"},
      {"dcredit = -1", "dcredit", "-1"},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.text));
    auto s = ParseSecurityConf(c.text);
    REQUIRE(s.size() == 1);
    CHECK(s[0].key == c.key);
    CHECK(s[0].value == c.value);
  }
  CHECK(ParseSecurityConf("# only a comment\n\n   \n# minlen = 9\n").empty());
  auto two = ParseSecurityConf("minlen = 10\nminlen = 14\n");
  REQUIRE(two.size() == 2);
  CHECK(two[1].line_no == 2);
  CHECK(two[1].text == "minlen = 14");
}

TEST_CASE("ApplyQualitySetting applies libpwquality's bounds and validation") {
  QualitySettings s = PwqualityDefaults();
  CHECK(s.minlen.value == 8);
  CHECK(s.minlen.source == "default:libpwquality");
  CHECK(ApplyQualitySetting(&s, "minlen", "4", "f", "minlen=4") == ApplyResult::kApplied);
  CHECK(s.minlen.value == 6);  // never below 6
  CHECK(ApplyQualitySetting(&s, "MINCLASS", "7", "f", "") == ApplyResult::kApplied);
  CHECK(s.minclass.value == 4);  // capped at 4 classes
  CHECK(ApplyQualitySetting(&s, "minlen", "12x", "f", "") == ApplyResult::kBadValue);
  CHECK(ApplyQualitySetting(&s, "minlen", "", "f", "") == ApplyResult::kBadValue);
  CHECK(ApplyQualitySetting(&s, "minlen", "--3", "f", "") == ApplyResult::kBadValue);
  CHECK(ApplyQualitySetting(&s, "minlen", "99999999999", "f", "") == ApplyResult::kBadValue);
  CHECK(ApplyQualitySetting(&s, "difok", "3", "f", "") == ApplyResult::kIgnored);
  CHECK(ApplyQualitySetting(&s, "retry", "x", "f", "") == ApplyResult::kBadValue);
  CHECK(ApplyQualitySetting(&s, "enforce_for_root", "", "f", "") == ApplyResult::kIgnored);
  CHECK(ApplyQualitySetting(&s, "minlenn", "3", "f", "") == ApplyResult::kUnknownKey);
  QualitySettings c = CracklibDefaults();
  CHECK(ApplyQualitySetting(&c, "minlen", "3", "f", "", /*cracklib=*/true) ==
        ApplyResult::kApplied);
  CHECK(c.minlen.value == 5);
}

TEST_CASE("ShortestAcceptedLength and RequiredClasses") {
  struct Case {
    int64_t minlen, minclass, d, u, l, o;
    int64_t shortest, classes;
  } cases[] = {
      {8, 0, 0, 0, 0, 0, 8, 0},       // libpwquality defaults
      {14, 3, 0, 0, 0, 0, 14, 3},     // plain
      {12, 0, -1, -1, -1, 0, 12, 3},  // negative credits demand classes, give no bonus
      {12, 0, 2, 0, 0, 0, 10, 0},     // two credited digits: 10 + 2 = 12
      {9, 0, 1, 1, 1, 1, 5, 0},       // pam_cracklib defaults: "aB3$x" scores 5 + 4 = 9
      {8, 0, 1, 1, 1, 1, 4, 0},       // "aB3$" scores 8
      {6, 0, 5, 0, 0, 0, 3, 0},       // "123": 3 + 3 = 6
      {6, 4, 5, 0, 0, 0, 4, 4},       // four classes need four characters
      {10, 0, 3, -2, 0, 0, 7, 1},     // 2 forced uppercase earn nothing: 7 + 3 credited = 10
  };
  for (const auto& c : cases) {
    CAPTURE(c.minlen);
    CAPTURE(c.d);
    QualitySettings s = PwqualityDefaults();
    s.minlen.value = c.minlen;
    s.minclass.value = c.minclass;
    s.dcredit.value = c.d;
    s.ucredit.value = c.u;
    s.lcredit.value = c.l;
    s.ocredit.value = c.o;
    CHECK(RequiredClasses(s) == c.classes);
    CHECK(ShortestAcceptedLength(s) == c.shortest);
  }
}

}  // namespace
}  // namespace vigil::collectors::linux_os

#include "collectors/linux/pwquality.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>

#include "collectors/text.h"

namespace vigil::collectors::linux_os {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// strtol(value, &end, 10) with libpwquality's checks: whole string, no overflow, inside int.
// strtol accepts leading blanks and a sign; from_chars does not, so those are handled here.
bool ParseInt(std::string_view s, int64_t* out) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  bool neg = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    neg = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.front() < '0' || s.front() > '9') return false;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return false;
  if (neg) v = -v;
  if (v >= INT_MAX || v <= INT_MIN) return false;
  *out = v;
  return true;
}

QualityValue Default(int64_t v, const char* who, const char* key) {
  return {v, std::string("default:") + who, std::string(key) + "=" + std::to_string(v), 0};
}

}  // namespace

std::vector<ConfSetting> ParseSecurityConf(std::string_view text) {
  std::vector<ConfSetting> out;
  int line_no = 0;
  for (std::string_view line : SplitLines(text)) {
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    while (!line.empty() && IsSpace(line.back())) line.remove_suffix(1);
    while (!line.empty() && IsSpace(line.front())) line.remove_prefix(1);
    if (line.empty()) continue;
    // The name ends at the first blank or '='; then blanks and at most one '=' are skipped.
    size_t i = 0;
    while (i < line.size() && !IsSpace(line[i]) && line[i] != '=') ++i;
    std::string_view key = line.substr(0, i);
    bool eq = false;
    if (i < line.size()) {
      eq = line[i] == '=';
      ++i;
    }
    while (i < line.size()) {
      if (line[i] == '=' && !eq) {
        eq = true;
      } else if (!IsSpace(line[i])) {
        break;
      }
      ++i;
    }
    out.push_back({Lower(key), std::string(line.substr(i)), line_no, std::string(line)});
  }
  return out;
}

QualitySettings PwqualityDefaults() {
  const char* who = "libpwquality";
  return {Default(8, who, "minlen"),   Default(0, who, "minclass"), Default(0, who, "dcredit"),
          Default(0, who, "ucredit"),  Default(0, who, "lcredit"),  Default(0, who, "ocredit"),
          Default(1, who, "enforcing")};
}

QualitySettings CracklibDefaults() {
  const char* who = "pam_cracklib";
  return {Default(9, who, "minlen"),   Default(0, who, "minclass"), Default(1, who, "dcredit"),
          Default(1, who, "ucredit"),  Default(1, who, "lcredit"),  Default(1, who, "ocredit"),
          Default(1, who, "enforcing")};
}

ApplyResult ApplyQualitySetting(QualitySettings* s, std::string_view key, std::string_view value,
                                const std::string& source, const std::string& raw, bool cracklib,
                                int line) {
  static constexpr std::string_view kOtherInts[] = {"difok",       "maxrepeat",  "maxclassrepeat",
                                                    "maxsequence", "gecoscheck", "dictcheck",
                                                    "usercheck",   "usersubstr", "retry"};
  static constexpr std::string_view kStrings[] = {"badwords", "dictpath"};
  static constexpr std::string_view kFlags[] = {"enforce_for_root", "local_users_only"};
  std::string k = Lower(key);
  QualityValue* target = nullptr;
  if (k == "minlen") target = &s->minlen;
  if (k == "minclass") target = &s->minclass;
  if (k == "dcredit") target = &s->dcredit;
  if (k == "ucredit") target = &s->ucredit;
  if (k == "lcredit") target = &s->lcredit;
  if (k == "ocredit") target = &s->ocredit;
  if (k == "enforcing") target = &s->enforcing;
  int64_t v = 0;
  if (target != nullptr) {
    if (!ParseInt(value, &v)) return ApplyResult::kBadValue;
    if (target == &s->minlen) v = std::max<int64_t>(v, cracklib ? 5 : 6);
    if (target == &s->minclass) v = std::min<int64_t>(v, 4);
    *target = {v, source, raw, line};
    return ApplyResult::kApplied;
  }
  if (std::find(std::begin(kOtherInts), std::end(kOtherInts), k) != std::end(kOtherInts)) {
    return ParseInt(value, &v) ? ApplyResult::kIgnored : ApplyResult::kBadValue;
  }
  if (std::find(std::begin(kStrings), std::end(kStrings), k) != std::end(kStrings) ||
      std::find(std::begin(kFlags), std::end(kFlags), k) != std::end(kFlags)) {
    return ApplyResult::kIgnored;
  }
  return ApplyResult::kUnknownKey;
}

int64_t PositiveCreditSum(const QualitySettings& s) {
  int64_t sum = 0;
  for (const QualityValue* c : {&s.dcredit, &s.ucredit, &s.lcredit, &s.ocredit}) {
    if (c->value > 0) sum += c->value;
  }
  return sum;
}

int64_t RequiredClasses(const QualitySettings& s) {
  int64_t negatives = 0;
  for (const QualityValue* c : {&s.dcredit, &s.ucredit, &s.lcredit, &s.ocredit}) {
    if (c->value < 0) ++negatives;
  }
  return std::max(s.minclass.value, negatives);
}

int64_t ShortestAcceptedLength(const QualitySettings& s) {
  // check.c simple(): a password of length L passes when L >= minlen - (credited characters),
  // credited characters being at most `credit` per class with a positive credit. Characters
  // forced by negative credits (R of them) earn nothing. With S = sum of positive credits, the
  // best case credits min(L - R, S) characters, so L passes iff L + min(L - R, S) >= minlen.
  const int64_t minlen = s.minlen.value;
  const int64_t sum = PositiveCreditSum(s);
  int64_t forced = 0;
  for (const QualityValue* c : {&s.dcredit, &s.ucredit, &s.lcredit, &s.ocredit}) {
    if (c->value < 0) forced += -c->value;
  }
  // Case L - R >= S: L >= minlen - S.
  int64_t best = std::max(minlen - sum, forced + sum);
  // Case L - R <= S: 2L - R >= minlen.
  int64_t half = std::max((minlen + forced + 1) / 2, forced);
  if (half <= forced + sum) best = std::min(best, half);
  return std::max({best, RequiredClasses(s), int64_t{1}});
}

}  // namespace vigil::collectors::linux_os

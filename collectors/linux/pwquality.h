// Password-quality settings as libpwquality (pam_pwquality) and pam_cracklib resolve them, plus
// the "key = value" file syntax shared by pwquality.conf and faillock.conf. Pure functions.
//
// libpwquality semantics (settings.c, check.c): keys are case-insensitive; minlen is raised to
// 6 when set lower; minclass is capped at 4; a credit N > 0 lets up to N characters of that class
// count twice towards minlen; a credit N < 0 demands at least -N characters of that class. An
// unknown key or a bad integer stops the reading of that file (and, in pwquality.conf.d, of every
// later file including pwquality.conf).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vigil::collectors::linux_os {

// One "key = value", "key value" or bare "key" line. The key is lower-cased; '#' starts a comment.
struct ConfSetting {
  std::string key;
  std::string value;
  int line_no = 0;
  std::string text;  // the line without comment and surrounding blanks
};

std::vector<ConfSetting> ParseSecurityConf(std::string_view text);

// One setting's value and where it came from.
struct QualityValue {
  int64_t value = 0;
  std::string source;  // file path, "default:libpwquality", ...
  std::string raw;     // "minlen = 14", "minlen=8"
  int line = 0;        // 1-based line in `source` (a PAM file for module arguments); 0: default
};

struct QualitySettings {
  QualityValue minlen;
  QualityValue minclass;
  QualityValue dcredit;
  QualityValue ucredit;
  QualityValue lcredit;
  QualityValue ocredit;
  QualityValue enforcing;  // 0: failed checks only warn (libpwquality "enforcing = 0")
};

// libpwquality >= 1.4 built-in defaults: minlen 8, credits 0, minclass 0, enforcing 1.
QualitySettings PwqualityDefaults();
// pam_cracklib defaults: minlen 9, every credit 1, minclass 0 (it has no configuration file).
QualitySettings CracklibDefaults();

enum class ApplyResult { kApplied, kIgnored, kUnknownKey, kBadValue };

// Applies one setting as libpwquality's set_name_value does. kIgnored: a known key that does not
// affect these facts (difok, dictpath, ...). `cracklib` selects pam_cracklib's floor for minlen
// (5).
ApplyResult ApplyQualitySetting(QualitySettings* s, std::string_view key, std::string_view value,
                                const std::string& source, const std::string& raw,
                                bool cracklib = false, int line = 0);

// The shortest password the length/credit rules accept, given the best use of positive credits
// (each credited character counts twice, up to the credit) and the characters negative credits
// and minclass force in.
int64_t ShortestAcceptedLength(const QualitySettings& s);
// Character classes a password must contain: max(minclass, number of negative credits).
int64_t RequiredClasses(const QualitySettings& s);
// Sum of the positive credits: how many characters a password may be shorter than minlen.
int64_t PositiveCreditSum(const QualitySettings& s);

}  // namespace vigil::collectors::linux_os

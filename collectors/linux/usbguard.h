// USBGuard configuration, parsed as pure functions: usbguard-daemon.conf ("Key=Value" lines) and
// the subset of the rule language (usbguard-rules.conf(5)) that decides whether a USB mass-storage
// device can be authorized: the target, `id` and `with-interface` with their set operators. Every
// other attribute (serial, name, hash, parent-hash, via-port, with-connect-type, label, if) is kept
// as text: it only narrows which devices a rule matches.
//
// Rule-language facts relied on (usbguard-rules.conf(5)): one rule per line; the daemon scans the
// rules in order and the first match decides; a multi-valued attribute without an operator uses
// "equals"; a single value is a one-element set. A rule the daemon cannot parse makes it refuse
// the whole rule file, so such lines are reported as errors, never skipped silently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vigil::collectors::linux_os {

struct UsbGuardSetting {
  std::string key;  // as written ("ImplicitPolicyTarget")
  std::string value;
  int line = 0;
  std::string raw;
};

// "Key=Value" lines; '#' starts a comment line; blanks around key and value are dropped. For a
// repeated key every occurrence is returned, in order (the daemon keeps the last).
std::vector<UsbGuardSetting> ParseUsbGuardDaemonConf(std::string_view text);

struct UsbGuardRuleText {
  std::string target;  // "allow", "block", "reject"
  std::string id_operator;
  std::vector<std::string> ids;  // lower-case "vvvv:pppp", "vvvv:*", "*:*"
  std::string interface_operator;
  std::vector<std::string> interfaces;  // lower-case "cc:ss:pp", "cc:*:*"
  std::vector<std::string> other_attributes;
  int line = 0;
  std::string text;  // the rule as written, trimmed
};

struct UsbGuardRules {
  std::vector<UsbGuardRuleText> rules;  // in file order
  std::vector<std::string> errors;      // "line N: ..." for rules the daemon would reject
};

UsbGuardRules ParseUsbGuardRules(std::string_view text);

}  // namespace vigil::collectors::linux_os

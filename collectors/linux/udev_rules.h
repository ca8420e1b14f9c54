// udev rules files (udev(7)), parsed as pure functions, and the one question the usb_storage
// check asks of them: does this rule make USB block devices read-only?
//
// Syntax followed (udev(7), udev-rules.c): one rule per line, a trailing '\' joins the next line,
// lines starting with '#' are comments; a rule is a comma- and/or blank-separated list of
// KEY[{attr}] OP "value" with OP one of == != = += -= :=. Files are layered by name across
// /etc/udev/rules.d, /run/udev/rules.d, /usr/local/lib/udev/rules.d, /usr/lib/udev/rules.d and
// /lib/udev/rules.d (the first directory holding a name wins; a link to /dev/null masks it); that
// layering is done by the collector through the SystemView.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vigil::collectors::linux_os {

struct UdevKey {
  std::string key;   // "SUBSYSTEMS", "ATTR", "RUN", ...
  std::string attr;  // the {...} part, e.g. "ro" for ATTR{ro}; empty when absent
  std::string op;    // "==", "!=", "=", "+=", "-=", ":="
  std::string value;
};

struct UdevRule {
  std::vector<UdevKey> keys;
  int line = 0;      // first physical line
  std::string text;  // the logical line, continuations joined
};

struct UdevRules {
  std::vector<UdevRule> rules;
  std::vector<std::string> warnings;  // "line N: ..." for lines udev would reject
};

UdevRules ParseUdevRules(std::string_view text);

// "blockdev --setro" or "ATTR{ro}=1" when the rule forces read-only on USB block devices as they
// are added: a RUN{,program} of blockdev --setro / -r (or an ATTR{ro}="1" assignment), matching
// "add" events (or any action), not restricted to a subsystem other than block, and restricted to
// USB (SUBSYSTEMS=="usb", ENV{ID_BUS}=="usb", DRIVERS=="usb-storage"/"uas") or to every block
// device. Empty otherwise.
std::string UdevReadOnlyMechanism(const UdevRule& rule);

}  // namespace vigil::collectors::linux_os

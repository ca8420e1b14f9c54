// usb_storage rule: can the kernel use USB mass storage, judged against the policy's mode.
//
// Module-loading semantics used here (kmod + udev):
// - kmod runs the FIRST "install" line matching a module instead of loading it; the collector
//   lists rules in kmod's processing order. A command that runs neither modprobe nor insmod
//   (/bin/false, /bin/true, echo) therefore blocks every load, explicit or automatic, including
//   usb_storage pulled in as a dependency of uas.
// - "blacklist" only stops loading by alias, i.e. on plug-in; "modprobe usb_storage" still works,
//   and udev does not apply the blacklist to dependencies: a UAS device loads uas, which loads
//   usb_storage. A blacklist is therefore insufficient on its own: it is reported, never credited.
// - The kernel's module_blacklist= refuses the module outright; modprobe.blacklist= is a blacklist.
// - USBGuard blocks at the USB authorization level, before any driver binds, so it blocks even a
//   built-in usb_storage. It counts when the daemon is enabled or running, its implicit target is
//   block/reject, it loaded its rules without error, and no allow rule (before a block/reject rule
//   that catches every mass-storage device) can admit a device with an interface of class 08.
//   Rule semantics (usbguard-rules.conf(5)): first match wins; "one-of"/"all-of" match composite
//   devices that carry extra interfaces, so they can admit a storage interface they do not name;
//   "equals" (the default), "equals-ordered" and "match-all" admit only interfaces they list.
// - READ_ONLY: udev rules that set USB block devices read-only as they appear, and every mounted
//   USB/removable filesystem mounted ro. Blocking satisfies READ_ONLY.
// - ALLOWED with allowed_devices: USBGuard must enforce with every storage-admitting allow rule
//   confined to listed ids, and every authorized connected storage device must be listed.
// - Evidence without load state comes from a tree that is not a running system (see the
//   collector): then only the configuration is judged, and the reason says so.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "collectors/evaluate.h"
#include "collectors/text.h"

namespace vigil::collectors {
namespace {

constexpr const char* kUsbStorageModule = "usb_storage";
constexpr const char* kUasModule = "uas";

// "file:line" when the line is known, else the source and key.
std::string Where(const v1::Provenance& p) {
  if (p.line() > 0) return p.source() + ":" + std::to_string(p.line());
  return p.key().empty() ? p.source() : p.source() + " " + p.key();
}

// An install command that runs modprobe or insmod may still load the module; anything else
// replaces loading. Conservative on purpose: "modprobe --ignore-install usb_storage" loads.
// The shell kmod runs it with treats a word starting with '#' as a comment.
bool InstallMayLoad(std::string command) {
  for (size_t i = 0; i < command.size(); ++i) {
    if (command[i] == '#' && (i == 0 || command[i - 1] == ' ' || command[i - 1] == '\t')) {
      command.resize(i);
      break;
    }
  }
  return command.find("modprobe") != std::string::npos ||
         command.find("insmod") != std::string::npos;
}

struct ModuleConfig {
  const v1::UsbBlockRule* first_install = nullptr;
  const v1::UsbBlockRule* hard_block = nullptr;  // install without loading, or module_blacklist
  const v1::UsbBlockRule* blacklist = nullptr;   // blacklist or modprobe.blacklist
};

ModuleConfig ConfigFor(const v1::UsbStorageEvidence& e, const std::string& module) {
  ModuleConfig c;
  for (const auto& r : e.rules()) {
    if (r.module() != module) continue;
    if (r.kind() == "install" && c.first_install == nullptr) {
      c.first_install = &r;
      if (!InstallMayLoad(r.command()) && c.hard_block == nullptr) c.hard_block = &r;
    } else if (r.kind() == "kernel-cmdline" && r.command() == "module_blacklist") {
      if (c.hard_block == nullptr || c.hard_block->kind() == "install") c.hard_block = &r;
    } else if ((r.kind() == "blacklist" ||
                (r.kind() == "kernel-cmdline" && r.command() == "modprobe.blacklist")) &&
               c.blacklist == nullptr) {
      c.blacklist = &r;
    }
  }
  return c;
}

std::string Describe(const v1::UsbBlockRule& r) {
  return "'" + r.from().raw() + "' (" + Where(r.from()) + ")";
}

// ---- USBGuard rule semantics ----

std::vector<std::string> Fields(const std::string& pattern) {
  std::vector<std::string> f;
  size_t start = 0;
  for (;;) {
    size_t colon = pattern.find(':', start);
    f.push_back(pattern.substr(start, colon == std::string::npos ? colon : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  while (f.size() < 3) f.push_back("");
  return f;
}

// Whether an interface pattern can match some mass-storage interface (class 08).
bool CanMatchStorage(const std::string& pattern) {
  const auto f = Fields(pattern);
  return f[0] == "08" || f[0] == "*";
}

// Whether an interface pattern matches every mass-storage interface.
bool MatchesAllStorage(const std::string& pattern) {
  const auto f = Fields(pattern);
  return (f[0] == "08" || f[0] == "*") && f[1] == "*";
}

// Whether some device with a class-08 interface satisfies the rule's with-interface condition
// (other attributes only narrow the match and are ignored: some such device may exist).
bool MayAdmitStorage(const v1::UsbGuardRule& r) {
  if (r.interfaces().empty()) return true;
  const std::string& op = r.interface_operator();
  const auto& in = r.interfaces();
  if (op == "one-of" || op == "all-of") return true;  // a composite device adds an 08 interface
  if (op == "none-of") return std::none_of(in.begin(), in.end(), MatchesAllStorage);
  return std::any_of(in.begin(), in.end(), CanMatchStorage);  // equals, equals-ordered, match-all
}

// Whether the rule matches every device that has a class-08 interface.
bool CatchesAllStorage(const v1::UsbGuardRule& r) {
  if (!r.other_attributes().empty()) return false;
  for (const auto& id : r.ids()) {
    if (id != "*:*") return false;
  }
  if (!r.ids().empty() && r.id_operator() == "none-of") return false;
  if (r.interfaces().empty()) return true;
  const std::string& op = r.interface_operator();
  const auto& in = r.interfaces();
  if (op == "one-of") return std::any_of(in.begin(), in.end(), MatchesAllStorage);
  if (op == "all-of") return std::all_of(in.begin(), in.end(), MatchesAllStorage);
  if (op == "match-all") {
    return std::any_of(in.begin(), in.end(), [](const std::string& i) { return i == "*:*:*"; });
  }
  return false;  // equals / none-of: a composite device escapes
}

// Whether the rule can only match devices whose id is in `allowed`.
bool ConfinedTo(const v1::UsbGuardRule& r, const std::set<std::string>& allowed) {
  if (r.ids().empty() || r.id_operator() == "none-of") return false;
  return std::all_of(r.ids().begin(), r.ids().end(),
                     [&](const std::string& id) { return allowed.count(id) != 0; });
}

struct Guard {
  bool enforcing = false;
  bool unreadable = false;  // part of its configuration could not be read
  std::string why;          // why it does (or does not) keep USB mass storage out
};

Guard AssessUsbGuard(const v1::UsbStorageEvidence& e, const std::set<std::string>& allowed) {
  if (!e.has_usbguard()) {
    return {false, false, "USBGuard is not configured (no /etc/usbguard/usbguard-daemon.conf)"};
  }
  const v1::UsbGuardEvidence& g = e.usbguard();
  if (!g.errors().empty()) {
    const bool unreadable = std::any_of(g.errors().begin(), g.errors().end(), [](const auto& m) {
      return StartsWith(m, "cannot read ");
    });
    return {false, unreadable,
            "USBGuard cannot be credited: " + Join({g.errors().begin(), g.errors().end()}, "; ")};
  }
  const bool enabled = g.service_enabled().value();
  const bool running = g.has_daemon_running() && g.daemon_running().value();
  if (!enabled && !running) {
    return {false, false,
            "USBGuard is configured but neither enabled (" + Where(g.service_enabled().from()) +
                ": " + g.service_enabled().from().raw() + ") nor running"};
  }
  const std::string target = g.implicit_policy_target().value();
  if (target != "block" && target != "reject") {
    return {false, false,
            "USBGuard ImplicitPolicyTarget=" + target + " (" +
                Where(g.implicit_policy_target().from()) +
                ") lets every device no rule matches through"};
  }
  for (const auto& r : g.rules()) {
    if (r.target() != "allow") {
      if (CatchesAllStorage(r)) break;  // no later rule is reached by a storage device
      continue;
    }
    if (!MayAdmitStorage(r)) continue;
    if (!allowed.empty() && ConfinedTo(r, allowed)) continue;
    return {
        false, false,
        "USBGuard rule '" + r.from().raw() + "' (" + Where(r.from()) +
            ") can authorize a USB mass-storage device (interface class 08)" +
            (allowed.empty() ? std::string() : " whose id is not in the policy's allowed_devices")};
  }
  return {true, false,
          std::string("USBGuard enforces (") +
              (enabled ? "enabled: " + Where(g.service_enabled().from()) : "") +
              (enabled && running ? ", " : "") +
              (running ? "running: " + Where(g.daemon_running().from()) : "") +
              ") with ImplicitPolicyTarget=" + target + " (" +
              Where(g.implicit_policy_target().from()) + ") and no allow rule admitting " +
              (allowed.empty() ? "interface class 08" : "unlisted mass-storage devices")};
}

std::vector<std::string> MountFailures(const v1::UsbStorageEvidence& e, bool allow_read_only) {
  std::vector<std::string> out;
  for (const auto& m : e.mounts()) {
    if (!m.usb() && !m.removable()) continue;
    if (allow_read_only && m.read_only()) continue;
    out.push_back(std::string(m.usb() ? "USB" : "removable") + " storage " + m.device() +
                  " is mounted on " + m.mount_point() +
                  (m.read_only() ? " (read-only)" : " read-write"));
  }
  return out;
}

// The BLOCKED judgement: FAIL reasons in `fails`, the blocking mechanism in the result.
std::string Blocked(const v1::UsbStorageEvidence& e, const Guard& guard,
                    std::vector<std::string>* fails) {
  const bool running = e.has_module_loaded();
  const ModuleConfig usb = ConfigFor(e, kUsbStorageModule);
  const bool no_modules = e.has_loadable_modules() && !e.loadable_modules().value();
  const bool not_in_kernel = e.has_kernel_config_usb_storage() &&
                             e.kernel_config_usb_storage().value() == "n" &&
                             !(e.has_module_builtin() && e.module_builtin().value());
  if (guard.enforcing) {
    // USBGuard deauthorizes the device itself, so a built-in or loaded driver has nothing to use.
    return guard.why;
  }
  if (e.has_module_builtin() && e.module_builtin().value()) {
    fails->push_back("usb_storage is built into the kernel (" + Where(e.module_builtin().from()) +
                     "); modprobe rules cannot block it, and " + guard.why);
  }
  if (running && e.module_loaded().value()) {
    fails->push_back(std::string("usb_storage is loaded now (/proc/modules") +
                     (e.uas_loaded().value() ? ", with uas)" : ")"));
  }
  if (not_in_kernel) {
    return "the kernel has no usb_storage driver ('" + e.kernel_config_usb_storage().from().raw() +
           "' in " + Where(e.kernel_config_usb_storage().from()) + ")";
  }
  if (no_modules) {
    // modprobe.d is irrelevant: the kernel cannot load anything. Only a built-in driver (judged
    // above) or an unknown built-in state can let USB storage in.
    return "the running kernel cannot load modules (" + Where(e.loadable_modules().from()) +
           ") and usb_storage is not built in";
  }
  if (usb.hard_block != nullptr) {
    return usb.hard_block->kind() == "install"
               ? "loading usb_storage is replaced by " + Describe(*usb.hard_block)
               : "the kernel refuses usb_storage: " + Describe(*usb.hard_block);
  }
  if (usb.blacklist != nullptr) {
    const ModuleConfig uas = ConfigFor(e, kUasModule);
    fails->push_back(
        "usb_storage is only blacklisted by " + Describe(*usb.blacklist) +
        ": blacklist alone is insufficient (a manual modprobe still loads it)" +
        (uas.hard_block == nullptr && uas.blacklist == nullptr
             ? "; uas is not blacklisted either: a UAS device loads uas on plug-in, which pulls "
               "in usb_storage as a dependency"
             : "") +
        "; block loading with 'install usb-storage /bin/false' or use USBGuard (" + guard.why +
        ")");
    return "";
  }
  std::string why =
      "nothing prevents loading usb_storage (no blocking install rule in modprobe.d, no "
      "module_blacklist= on the kernel command line, and " +
      guard.why + ")";
  if (usb.first_install != nullptr) {
    why += "; the install rule " + Describe(*usb.first_install) + " still runs modprobe/insmod";
  }
  fails->push_back(why);
  return "";
}

// ERROR/PASS wording shared by the modes once no failure was found.
Verdict Finish(const v1::UsbStorageEvidence& e, const std::string& ok, bool needs_builtin) {
  const bool running = e.has_module_loaded();
  if (running && needs_builtin && !e.has_module_builtin()) {
    return {v1::ERROR, "could not tell whether usb_storage is built into the kernel (" +
                           (e.kernel_release().empty() ? std::string("kernel release unknown")
                                                       : "kernel " + e.kernel_release()) +
                           "); " + ok};
  }
  if (!running) {
    return {v1::PASS, ok + "; configuration only: not a running system (no /proc/modules), load "
                           "state and mounts unknown"};
  }
  return {v1::PASS, ok};
}

}  // namespace

Verdict EvaluateUsbStorage(const v1::UsbStorageEvidence& e, const v1::UsbStoragePolicy& p) {
  if (p.mode() == v1::USB_STORAGE_MODE_UNSPECIFIED) {
    return {v1::ERROR, "policy usb_storage.mode is not set"};
  }
  if (p.mode() == v1::ALLOWED && p.allowed_devices().empty()) {
    return {v1::PASS, "USB storage allowed by policy"};
  }
  const std::set<std::string> allowed(p.allowed_devices().begin(), p.allowed_devices().end());
  const Guard guard =
      AssessUsbGuard(e, p.mode() == v1::ALLOWED ? allowed : std::set<std::string>());

  if (p.mode() == v1::ALLOWED) {
    std::vector<std::string> fails;
    if (!guard.enforcing) {
      fails.push_back("only the listed USB storage devices (" +
                      Join({allowed.begin(), allowed.end()}, ", ") +
                      ") may be used, which needs USBGuard: " + guard.why);
    }
    if (e.has_devices_listed() && !e.devices_listed().value()) {
      return {v1::ERROR, "cannot list connected USB devices (" + Where(e.devices_listed().from()) +
                             ": " + e.devices_listed().from().raw() + ")"};
    }
    for (const auto& d : e.connected_storage()) {
      if (!d.authorized() || allowed.count(d.id()) != 0) continue;
      fails.push_back("USB storage device " + d.id() + " (" + d.sysfs_path() +
                      ") is connected and authorized but not in allowed_devices");
    }
    if (!fails.empty()) {
      // USBGuard could decide this, but part of it could not be read: never a verdict.
      if (guard.unreadable) return {v1::ERROR, Join(fails, "; ")};
      return {v1::FAIL, Join(fails, "; ")};
    }
    return Finish(e, guard.why, false);
  }

  std::vector<std::string> block_fails;
  const std::string blocked = Blocked(e, guard, &block_fails);
  std::vector<std::string> mounts = MountFailures(e, p.mode() == v1::READ_ONLY);

  if (p.mode() == v1::BLOCKED) {
    std::vector<std::string> fails = std::move(block_fails);
    fails.insert(fails.end(), mounts.begin(), mounts.end());
    // Unreadable USBGuard configuration could be what blocks: ERROR unless something is
    // already wrong whatever USBGuard says (a mounted stick).
    if (!fails.empty() && guard.unreadable && mounts.empty()) {
      return {v1::ERROR, Join(fails, "; ")};
    }
    if (!fails.empty()) return {v1::FAIL, Join(fails, "; ")};
    return Finish(e, blocked, !guard.enforcing);
  }
  if (p.mode() != v1::READ_ONLY) return {v1::ERROR, "unknown usb_storage.mode"};

  // READ_ONLY: blocked is stricter and satisfies it; otherwise a udev rule must force read-only.
  std::vector<std::string> fails = mounts;
  std::string ok;
  if (block_fails.empty()) {
    ok = "USB storage is blocked, which satisfies READ_ONLY: " + blocked;
  } else if (e.udev_read_only_rules().empty()) {
    fails.push_back(
        "no udev rule makes USB block devices read-only (e.g. ACTION==\"add\", "
        "SUBSYSTEMS==\"usb\", SUBSYSTEM==\"block\", RUN+=\"/sbin/blockdev --setro %N\" in "
        "/etc/udev/rules.d) and USB storage is not blocked: " +
        Join(block_fails, "; "));
  } else {
    std::vector<std::string> rules;
    for (const auto& r : e.udev_read_only_rules()) {
      rules.push_back(r.mechanism() + " by '" + r.from().raw() + "' (" + Where(r.from()) + ")");
    }
    ok = "USB block devices are made read-only: " + Join(rules, "; ");
  }
  if (!fails.empty()) return {v1::FAIL, Join(fails, "; ")};
  return Finish(e, ok, false);
}

}  // namespace vigil::collectors

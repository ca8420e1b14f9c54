// Tests for the usb_storage rule over hand-built evidence.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "collectors/evaluate.h"

namespace vigil::collectors {
namespace {

void AddRule(v1::UsbStorageEvidence* e, const char* kind, const char* module, const char* command,
             const char* source, const char* raw) {
  auto* r = e->add_rules();
  r->set_kind(kind);
  r->set_module(module);
  r->set_command(command);
  r->mutable_from()->set_source(source);
  r->mutable_from()->set_raw(raw);
}

void SetBool(v1::BoolFact* f, bool v, const char* source) {
  f->set_value(v);
  f->mutable_from()->set_source(source);
}

// A running system with nothing loaded and usb_storage a module.
v1::UsbStorageEvidence Running() {
  v1::UsbStorageEvidence e;
  SetBool(e.mutable_module_loaded(), false, "/proc/modules");
  SetBool(e.mutable_uas_loaded(), false, "/proc/modules");
  SetBool(e.mutable_module_builtin(), false, "/lib/modules/6.1.0/modules.builtin");
  e.set_kernel_release("6.1.0");
  return e;
}

void AddGuardRule(v1::UsbGuardEvidence* g, const char* target, const char* id_op,
                  std::vector<std::string> ids, const char* if_op,
                  std::vector<std::string> interfaces, const char* raw, int line) {
  auto* r = g->add_rules();
  r->set_target(target);
  r->set_id_operator(id_op);
  for (const auto& id : ids) r->add_ids(id);
  r->set_interface_operator(if_op);
  for (const auto& i : interfaces) r->add_interfaces(i);
  r->mutable_from()->set_source("/etc/usbguard/rules.conf");
  r->mutable_from()->set_raw(raw);
  r->mutable_from()->set_line(static_cast<uint32_t>(line));
}

// USBGuard enabled with the implicit target `target` and no rules.
v1::UsbGuardEvidence* Guard(v1::UsbStorageEvidence* e, const char* target = "block") {
  auto* g = e->mutable_usbguard();
  SetBool(g->mutable_configured(), true, "/etc/usbguard/usbguard-daemon.conf");
  SetBool(g->mutable_service_enabled(), true,
          "/etc/systemd/system/multi-user.target.wants/usbguard.service");
  g->mutable_implicit_policy_target()->set_value(target);
  g->mutable_implicit_policy_target()->mutable_from()->set_source(
      "/etc/usbguard/usbguard-daemon.conf");
  g->mutable_implicit_policy_target()->mutable_from()->set_line(12);
  return g;
}

void AddMount(v1::UsbStorageEvidence* e, bool read_only) {
  auto* m = e->add_mounts();
  m->set_device("/dev/sdb1");
  m->set_mount_point("/media/alice/STICK");
  m->set_usb(true);
  m->set_removable(true);
  m->set_read_only(read_only);
}

void AddUdevReadOnly(v1::UsbStorageEvidence* e) {
  auto* r = e->add_udev_read_only_rules();
  r->set_mechanism("blockdev --setro");
  r->mutable_from()->set_source("/etc/udev/rules.d/80-usb-ro.rules");
  r->mutable_from()->set_line(3);
  r->mutable_from()->set_raw(
      "ACTION==\"add\", SUBSYSTEMS==\"usb\", RUN+=\"/sbin/blockdev --setro %N\"");
}

void AddDevice(v1::UsbStorageEvidence* e, const char* id, bool authorized) {
  auto* d = e->add_connected_storage();
  d->set_id(id);
  d->set_sysfs_path("/sys/bus/usb/devices/2-1");
  d->add_interfaces("08:06:50");
  d->set_authorized(authorized);
}

struct Case {
  const char* name;
  void (*build)(v1::UsbStorageEvidence*);
  v1::CheckStatus status;
  std::vector<std::string> parts;
};

void Run(const Case* begin, const Case* end, const v1::UsbStoragePolicy& policy) {
  for (const Case* c = begin; c != end; ++c) {
    INFO(std::string(c->name));
    v1::UsbStorageEvidence e = Running();
    c->build(&e);
    Verdict v = EvaluateUsbStorage(e, policy);
    INFO(v.reason);
    CHECK(v.status == c->status);
    for (const auto& part : c->parts) CHECK(v.reason.find(part) != std::string::npos);
  }
}

TEST_CASE("EvaluateUsbStorage: BLOCKED through modprobe and the kernel") {
  const Case cases[] = {
      {"install /bin/false",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/bin/false", "/etc/modprobe.d/usb.conf",
                 "install usb-storage /bin/false");
       },
       v1::PASS,
       {"replaced by 'install usb-storage /bin/false' (/etc/modprobe.d/usb.conf)"}},
      {"first install wins over a later block",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/sbin/modprobe --ignore-install usb_storage",
                 "/etc/modprobe.d/10.conf", "install usb_storage /sbin/modprobe ...");
         AddRule(e, "install", "usb_storage", "/bin/true", "/lib/modprobe.d/50.conf",
                 "install usb_storage /bin/true");
       },
       v1::FAIL,
       {"nothing prevents loading usb_storage", "/etc/modprobe.d/10.conf"}},
      {"blacklist both is insufficient",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "blacklist", "usb_storage", "", "/etc/modprobe.d/bl.conf",
                 "blacklist usb-storage");
         AddRule(e, "blacklist", "uas", "", "/etc/modprobe.d/bl.conf", "blacklist uas");
       },
       v1::FAIL,
       {"usb_storage is only blacklisted by 'blacklist usb-storage' (/etc/modprobe.d/bl.conf)",
        "blacklist alone is insufficient (a manual modprobe still loads it)",
        "USBGuard is not configured"}},
      {"blacklist usb_storage, uas install-blocked",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "blacklist", "usb_storage", "", "/etc/modprobe.d/bl.conf",
                 "blacklist usb-storage");
         AddRule(e, "install", "uas", "/bin/false", "/etc/modprobe.d/bl.conf",
                 "install uas /bin/false");
       },
       v1::FAIL,
       {"blacklist alone is insufficient"}},
      {"blacklist without uas",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "blacklist", "usb_storage", "", "/etc/modprobe.d/bl.conf",
                 "blacklist usb-storage");
       },
       v1::FAIL,
       {"blacklist alone is insufficient", "uas is not blacklisted either"}},
      {"kernel module_blacklist",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "kernel-cmdline", "usb_storage", "module_blacklist", "/proc/cmdline",
                 "module_blacklist=usb_storage");
       },
       v1::PASS,
       {"the kernel refuses usb_storage", "/proc/cmdline"}},
      {"modprobe.blacklist on the command line is a blacklist",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "kernel-cmdline", "usb_storage", "modprobe.blacklist", "/proc/cmdline",
                 "modprobe.blacklist=usb_storage,uas");
         AddRule(e, "kernel-cmdline", "uas", "modprobe.blacklist", "/proc/cmdline",
                 "modprobe.blacklist=usb_storage,uas");
       },
       v1::FAIL,
       {"only blacklisted by 'modprobe.blacklist=usb_storage,uas' (/proc/cmdline)"}},
      {"install variants that run no modprobe",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/usr/bin/true # CIS: modprobe disabled",
                 "/etc/modprobe.d/usb.conf", "install usb-storage /usr/bin/true # CIS");
       },
       v1::PASS,
       {"replaced by 'install usb-storage /usr/bin/true # CIS'"}},
      {"line numbers in reasons",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/bin/false", "/etc/modprobe.d/usb.conf",
                 "install usb-storage /bin/false");
         e->mutable_rules(0)->mutable_from()->set_line(7);
       },
       v1::PASS,
       {"(/etc/modprobe.d/usb.conf:7)"}},
      {"kernel built without usb_storage",
       [](v1::UsbStorageEvidence* e) {
         e->mutable_kernel_config_usb_storage()->set_value("n");
         e->mutable_kernel_config_usb_storage()->mutable_from()->set_source("/boot/config-6.1.0");
         e->mutable_kernel_config_usb_storage()->mutable_from()->set_line(4120);
         e->mutable_kernel_config_usb_storage()->mutable_from()->set_raw(
             "# CONFIG_USB_STORAGE is not set");
       },
       v1::PASS,
       {"the kernel has no usb_storage driver ('# CONFIG_USB_STORAGE is not set' in "
        "/boot/config-6.1.0:4120)"}},
      {"alias alone blocks nothing",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "alias", "usb_storage", "off", "/etc/modprobe.d/a.conf",
                 "alias usb-storage off");
       },
       v1::FAIL,
       {"nothing prevents loading usb_storage"}},
      {"nothing",
       [](v1::UsbStorageEvidence*) {},
       v1::FAIL,
       {"nothing prevents loading usb_storage"}},
      {"loaded despite rules",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/bin/false", "/etc/modprobe.d/usb.conf", "x");
         SetBool(e->mutable_module_loaded(), true, "/proc/modules");
       },
       v1::FAIL,
       {"usb_storage is loaded now (/proc/modules)"}},
      {"built in",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/bin/false", "/etc/modprobe.d/usb.conf", "x");
         SetBool(e->mutable_module_builtin(), true, "/lib/modules/6.1.0/modules.builtin");
       },
       v1::FAIL,
       {"built into the kernel (/lib/modules/6.1.0/modules.builtin)"}},
      {"mounted stick",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/bin/false", "/etc/modprobe.d/usb.conf", "x");
         auto* m = e->add_mounts();
         m->set_device("/dev/sdb1");
         m->set_mount_point("/media/alice/STICK");
         m->set_usb(true);
         m->set_removable(true);
         m->set_read_only(true);
       },
       v1::FAIL,
       {"USB storage /dev/sdb1 is mounted on /media/alice/STICK (read-only)"}},
      {"running system, built-in state unknown",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/bin/false", "/etc/modprobe.d/usb.conf", "x");
         e->clear_module_builtin();
       },
       v1::ERROR,
       {"could not tell whether usb_storage is built into the kernel (kernel 6.1.0)"}},
      {"not a running system: configuration only",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/bin/false", "/etc/modprobe.d/usb.conf", "x");
         e->clear_module_loaded();
         e->clear_uas_loaded();
         e->clear_module_builtin();
       },
       v1::PASS,
       {"configuration only"}},
  };
  v1::UsbStoragePolicy blocked;
  blocked.set_mode(v1::BLOCKED);
  Run(std::begin(cases), std::end(cases), blocked);
  v1::UsbStoragePolicy allowed;
  allowed.set_mode(v1::ALLOWED);
  CHECK(EvaluateUsbStorage(Running(), allowed).status == v1::PASS);
  CHECK(EvaluateUsbStorage(Running(), v1::UsbStoragePolicy()).status == v1::ERROR);
}

TEST_CASE("EvaluateUsbStorage: BLOCKED through USBGuard") {
  const Case cases[] = {
      {"implicit block, no rules",
       [](v1::UsbStorageEvidence* e) { Guard(e); },
       v1::PASS,
       {"USBGuard enforces (enabled: /etc/systemd/system/multi-user.target.wants/usbguard.service)",
        "ImplicitPolicyTarget=block (/etc/usbguard/usbguard-daemon.conf:12)"}},
      {"USBGuard blocks even a built-in driver",
       [](v1::UsbStorageEvidence* e) {
         Guard(e, "reject");
         SetBool(e->mutable_module_builtin(), true, "/boot/config-6.1.0");
       },
       v1::PASS,
       {"ImplicitPolicyTarget=reject"}},
      {"implicit allow",
       [](v1::UsbStorageEvidence* e) { Guard(e, "allow"); },
       v1::FAIL,
       {"ImplicitPolicyTarget=allow (/etc/usbguard/usbguard-daemon.conf:12) lets every device"}},
      {"neither enabled nor running",
       [](v1::UsbStorageEvidence* e) {
         SetBool(Guard(e)->mutable_service_enabled(), false, "/etc/systemd/system/x");
         SetBool(e->mutable_usbguard()->mutable_daemon_running(), false, "/proc");
       },
       v1::FAIL,
       {"USBGuard is configured but neither enabled"}},
      {"running but not enabled counts",
       [](v1::UsbStorageEvidence* e) {
         SetBool(Guard(e)->mutable_service_enabled(), false, "/etc/systemd/system/x");
         SetBool(e->mutable_usbguard()->mutable_daemon_running(), true, "/proc/812/comm");
       },
       v1::PASS,
       {"running: /proc/812/comm"}},
      {"allow with-interface 08:*:*",
       [](v1::UsbStorageEvidence* e) {
         AddGuardRule(Guard(e), "allow", "", {}, "equals", {"08:*:*"},
                      "allow with-interface 08:*:*", 4);
       },
       v1::FAIL,
       {"USBGuard rule 'allow with-interface 08:*:*' (/etc/usbguard/rules.conf:4) can authorize "
        "a USB mass-storage device"}},
      {"allow with-interface equals HID only",
       [](v1::UsbStorageEvidence* e) {
         AddGuardRule(Guard(e), "allow", "", {}, "equals", {"03:*:*"},
                      "allow with-interface 03:*:*", 4);
       },
       v1::PASS,
       {"ImplicitPolicyTarget=block"}},
      {"allow one-of HID admits a composite with storage",
       [](v1::UsbStorageEvidence* e) {
         AddGuardRule(Guard(e), "allow", "", {}, "one-of", {"03:*:*"},
                      "allow with-interface one-of { 03:*:* }", 5);
       },
       v1::FAIL,
       {"/etc/usbguard/rules.conf:5"}},
      {"allow none-of storage",
       [](v1::UsbStorageEvidence* e) {
         AddGuardRule(Guard(e), "allow", "", {}, "none-of", {"08:*:*"},
                      "allow with-interface none-of { 08:*:* }", 5);
       },
       v1::PASS,
       {}},
      {"allow by id may be a stick",
       [](v1::UsbStorageEvidence* e) {
         AddGuardRule(Guard(e), "allow", "equals", {"0781:5581"}, "", {}, "allow id 0781:5581", 2);
       },
       v1::FAIL,
       {"allow id 0781:5581"}},
      {"catch-all storage block before a broad allow",
       [](v1::UsbStorageEvidence* e) {
         auto* g = Guard(e);
         AddGuardRule(g, "block", "", {}, "one-of", {"08:*:*"},
                      "block with-interface one-of { 08:*:* }", 1);
         AddGuardRule(g, "allow", "", {}, "", {}, "allow", 2);
       },
       v1::PASS,
       {}},
      {"equals block does not catch composites",
       [](v1::UsbStorageEvidence* e) {
         auto* g = Guard(e);
         AddGuardRule(g, "block", "", {}, "equals", {"08:*:*"},
                      "block with-interface equals { 08:*:* }", 1);
         AddGuardRule(g, "allow", "", {}, "all-of", {"03:*:*"},
                      "allow with-interface all-of { 03:*:* }", 2);
       },
       v1::FAIL,
       {"/etc/usbguard/rules.conf:2"}},
      {"rule errors are never credited",
       [](v1::UsbStorageEvidence* e) {
         Guard(e)->add_errors("/etc/usbguard/rules.conf: line 3: unknown attribute 'foo'");
       },
       v1::FAIL,
       {"USBGuard cannot be credited: /etc/usbguard/rules.conf: line 3"}},
  };
  v1::UsbStoragePolicy blocked;
  blocked.set_mode(v1::BLOCKED);
  Run(std::begin(cases), std::end(cases), blocked);
}

TEST_CASE("EvaluateUsbStorage: READ_ONLY") {
  const Case cases[] = {
      {"udev rule, nothing mounted",
       [](v1::UsbStorageEvidence* e) { AddUdevReadOnly(e); },
       v1::PASS,
       {"USB block devices are made read-only: blockdev --setro by",
        "(/etc/udev/rules.d/80-usb-ro.rules:3)"}},
      {"udev rule, stick mounted read-only",
       [](v1::UsbStorageEvidence* e) {
         AddUdevReadOnly(e);
         AddMount(e, true);
       },
       v1::PASS,
       {}},
      {"udev rule, stick mounted read-write",
       [](v1::UsbStorageEvidence* e) {
         AddUdevReadOnly(e);
         AddMount(e, false);
       },
       v1::FAIL,
       {"USB storage /dev/sdb1 is mounted on /media/alice/STICK read-write"}},
      {"no udev rule, not blocked",
       [](v1::UsbStorageEvidence*) {},
       v1::FAIL,
       {"no udev rule makes USB block devices read-only", "nothing prevents loading"}},
      {"blocked satisfies READ_ONLY",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/bin/false", "/etc/modprobe.d/usb.conf", "x");
       },
       v1::PASS,
       {"USB storage is blocked, which satisfies READ_ONLY"}},
  };
  v1::UsbStoragePolicy read_only;
  read_only.set_mode(v1::READ_ONLY);
  Run(std::begin(cases), std::end(cases), read_only);
}

TEST_CASE("EvaluateUsbStorage: ALLOWED with an allowed_devices list") {
  const Case cases[] = {
      {"listed id only",
       [](v1::UsbStorageEvidence* e) {
         AddGuardRule(Guard(e), "allow", "equals", {"0781:5581"}, "equals", {"08:06:50"},
                      "allow id 0781:5581 serial \"4C53\" with-interface 08:06:50", 3);
         AddDevice(e, "0781:5581", true);
       },
       v1::PASS,
       {"no allow rule admitting unlisted mass-storage devices"}},
      {"rule for an unlisted id",
       [](v1::UsbStorageEvidence* e) {
         AddGuardRule(Guard(e), "allow", "one-of", {"0781:5581", "090c:1000"}, "", {},
                      "allow id one-of { 0781:5581 090c:1000 }", 3);
       },
       v1::FAIL,
       {"(/etc/usbguard/rules.conf:3)", "whose id is not in the policy's allowed_devices"}},
      {"vendor wildcard is not a list entry",
       [](v1::UsbStorageEvidence* e) {
         AddGuardRule(Guard(e), "allow", "equals", {"0781:*"}, "", {}, "allow id 0781:*", 3);
       },
       v1::FAIL,
       {"allow id 0781:*"}},
      {"unlisted device connected and authorized",
       [](v1::UsbStorageEvidence* e) {
         Guard(e);
         AddDevice(e, "090c:1000", true);
       },
       v1::FAIL,
       {"USB storage device 090c:1000 (/sys/bus/usb/devices/2-1) is connected and authorized"}},
      {"unlisted device connected but blocked",
       [](v1::UsbStorageEvidence* e) {
         Guard(e);
         AddDevice(e, "090c:1000", false);
       },
       v1::PASS,
       {}},
      {"without USBGuard",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "install", "usb_storage", "/bin/false", "/etc/modprobe.d/usb.conf", "x");
       },
       v1::FAIL,
       {"only the listed USB storage devices (0781:5581) may be used, which needs USBGuard"}},
      {"devices cannot be listed",
       [](v1::UsbStorageEvidence* e) {
         Guard(e);
         SetBool(e->mutable_devices_listed(), false, "/sys/bus/usb/devices");
       },
       v1::ERROR,
       {"cannot list connected USB devices"}},
  };
  v1::UsbStoragePolicy allowed;
  allowed.set_mode(v1::ALLOWED);
  allowed.add_allowed_devices("0781:5581");
  Run(std::begin(cases), std::end(cases), allowed);
}

}  // namespace
}  // namespace vigil::collectors

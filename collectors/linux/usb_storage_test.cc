// Tests for the Linux usb_storage collector against fixture trees, and end to end with the
// evaluator for a BLOCKED policy.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "collectors/collectors.h"
#include "collectors/evaluate.h"

namespace vigil::collectors {
namespace {

std::unique_ptr<SystemView> Fixture(const std::string& name) {
  return NewRootedSystemView(std::string(VIGIL_FIXTURES_DIR) + "/usb_storage/" + name);
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::vector<std::string> Rules(const v1::UsbStorageEvidence& e) {
  std::vector<std::string> out;
  for (const auto& r : e.rules()) {
    out.push_back(r.kind() + " " + r.module() + " " + r.command() + " @" + r.from().source());
  }
  return out;
}

TEST_CASE("CollectUsbStorage: rules in kmod processing order, with provenance") {
  struct Case {
    const char* fixture;
    std::vector<std::string> rules;
  } cases[] = {
      {"install_false", {"install usb_storage /bin/false @/etc/modprobe.d/usb-storage.conf"}},
      {"blacklist_only",
       {"blacklist usb_storage  @/etc/modprobe.d/blacklist-usb.conf",
        "blacklist uas  @/etc/modprobe.d/blacklist-usb.conf"}},
      // /etc's file of the same name hides /lib's install rule.
      {"shadowed", {}},
      {"nothing", {}},
      // Sorted by file name across directories: 10-allow.conf (/etc) before 50-block.conf (/lib).
      {"first_install_wins",
       {"install usb_storage /sbin/modprobe --ignore-install usb-storage $CMDLINE_OPTS "
        "@/etc/modprobe.d/10-allow.conf",
        "install usb_storage /bin/false @/lib/modprobe.d/50-block.conf"}},
      {"kernel_cmdline", {"kernel-cmdline usb_storage module_blacklist @/proc/cmdline"}},
      {"continuation",
       {"install usb_storage /bin/echo usb-storage disabled by policy @/etc/modprobe.d/usb.conf",
        "blacklist uas  @/etc/modprobe.d/usb.conf"}},
  };
  for (const auto& c : cases) {
    INFO(std::string(c.fixture));
    v1::Evidence ev = CollectUsbStorage(*Fixture(c.fixture));
    REQUIRE(ev.collection_error() == "");
    CHECK(Rules(ev.usb_storage()) == c.rules);
  }
  v1::Evidence ev = CollectUsbStorage(*Fixture("install_false"));
  const auto& r = ev.usb_storage().rules(0);
  CHECK(r.from().key() == "line 2");
  CHECK(r.from().line() == 2);
  CHECK(r.from().raw() == "install usb-storage /bin/false");
}

TEST_CASE("CollectUsbStorage: running state") {
  auto e = CollectUsbStorage(*Fixture("install_false")).usb_storage();
  CHECK(e.kernel_release() == "6.1.0-18-amd64");
  REQUIRE(e.has_module_loaded());
  CHECK(!e.module_loaded().value());
  CHECK(!e.uas_loaded().value());
  REQUIRE(e.has_module_builtin());
  CHECK(!e.module_builtin().value());
  CHECK(e.mounts_size() == 0);  // the NVMe system disk is neither USB nor removable

  auto loaded = CollectUsbStorage(*Fixture("loaded")).usb_storage();
  CHECK(loaded.module_loaded().value());
  CHECK(loaded.uas_loaded().value());

  auto builtin = CollectUsbStorage(*Fixture("builtin")).usb_storage();
  CHECK(builtin.module_builtin().value());
  CHECK(builtin.module_builtin().from().source() == "/lib/modules/6.1.0-18-amd64/modules.builtin");

  auto stick = CollectUsbStorage(*Fixture("mounted_stick")).usb_storage();
  REQUIRE(stick.mounts_size() == 1);
  CHECK(stick.mounts(0).device() == "/dev/sdb1");
  CHECK(stick.mounts(0).mount_point() == "/media/alice/MY STICK");
  CHECK(stick.mounts(0).removable());
  CHECK(stick.mounts(0).usb());  // /sys/block/sdb links into .../usb2/...
  CHECK(!stick.mounts(0).read_only());

  auto offline = CollectUsbStorage(*Fixture("config_only")).usb_storage();
  CHECK(!offline.has_module_loaded());
  CHECK(!offline.has_module_builtin());
  bool warned = false;
  for (const auto& w : offline.warnings()) warned |= Contains(w, "not a running system");
  CHECK(warned);
}

TEST_CASE("CollectUsbStorage: a symlink to /dev/null masks a lower-priority file") {
  auto e = CollectUsbStorage(*Fixture("masked_dev_null")).usb_storage();
  CHECK(e.rules_size() == 0);
  bool warned = false;
  for (const auto& w : e.warnings()) warned |= Contains(w, "symlink to /dev/null");
  CHECK(warned);
}

TEST_CASE("CollectUsbStorage: unreadable /proc/modules is a collection error") {
  auto base = Fixture("install_false");
  DenyReadView view(*base, "/proc/modules");
  v1::Evidence ev = CollectUsbStorage(view);
  CHECK(ev.collection_error() == "/proc/modules: Permission denied");
  v1::Policy policy;
  policy.mutable_usb_storage()->set_mode(v1::BLOCKED);
  CHECK(Evaluate(kUsbStorage, ev, policy).status == v1::ERROR);
}

TEST_CASE("CollectUsbStorage: merged /usr reads /lib/modprobe.d once, without shadow warnings") {
  auto e = CollectUsbStorage(*Fixture("merged_usr")).usb_storage();
  for (const auto& w : e.warnings()) CHECK(!Contains(w, "hidden"));
  REQUIRE(e.rules_size() == 3);
  CHECK(e.rules(0).from().source() == "/lib/modprobe.d/usb-storage.conf");
}

TEST_CASE("CollectUsbStorage: a running kernel without module support") {
  auto e = CollectUsbStorage(*Fixture("no_module_support")).usb_storage();
  REQUIRE(e.has_loadable_modules());
  CHECK(!e.loadable_modules().value());
  CHECK(!e.module_loaded().value());
  REQUIRE(e.has_module_builtin());
  CHECK(!e.module_builtin().value());
  auto b = CollectUsbStorage(*Fixture("no_module_support_builtin")).usb_storage();
  CHECK(b.module_builtin().value());
}

TEST_CASE("usb_storage end to end against a BLOCKED policy") {
  struct Case {
    const char* fixture;
    v1::CheckStatus status;
    std::vector<std::string> reason_parts;
  } cases[] = {
      {"install_false",
       v1::PASS,
       {"loading usb_storage is replaced by 'install usb-storage /bin/false' "
        "(/etc/modprobe.d/usb-storage.conf:2)"}},
      // A blacklist only stops automatic loading: reported, never credited.
      {"blacklist_only",
       v1::FAIL,
       {"blacklist alone is insufficient (a manual modprobe still loads it)",
        "/etc/modprobe.d/blacklist-usb.conf:"}},
      {"blacklist_without_uas", v1::FAIL, {"blacklist alone is insufficient", "uas is not"}},
      // Install commands that run no modprobe/insmod, however written; commented lines count
      // for nothing.
      {"install_true",
       v1::PASS,
       {"'install usb_storage /bin/true' (/etc/modprobe.d/usb-storage.conf:2)"}},
      {"install_usr_bin_false_comment",
       v1::PASS,
       {"'install usb-storage /usr/bin/false # CIS 1.1.23' (/etc/modprobe.d/usb-storage.conf:1)"}},
      {"install_usr_bin_true_tabs", v1::PASS, {"/usr/bin/true"}},
      {"install_commented", v1::FAIL, {"nothing prevents loading usb_storage"}},
      // /boot/config-<release>: y built in, m module, "is not set"/absent not in the kernel.
      {"boot_config_builtin", v1::FAIL, {"built into the kernel (/boot/config-6.1.0-18-amd64:5)"}},
      {"boot_config_module", v1::PASS, {"/bin/false"}},
      {"boot_config_not_set",
       v1::PASS,
       {"the kernel has no usb_storage driver ('# CONFIG_USB_STORAGE is not set' in "
        "/boot/config-6.1.0-18-amd64:2)"}},
      {"boot_config_absent", v1::PASS, {"'CONFIG_USB_STORAGE absent'"}},
      {"boot_config_last_wins", v1::PASS, {"/boot/config-6.1.0-18-amd64:4"}},
      // modules.builtin does not list usb-storage.ko, but the config says =y: built in.
      {"boot_config_conflict", v1::FAIL, {"built into the kernel (/boot/config-6.1.0-18-amd64:2)"}},
      // USBGuard (usb-storage is built in in these trees: only USBGuard can block it).
      {"usbguard_blocking",
       v1::PASS,
       {"USBGuard enforces (enabled: "
        "/etc/systemd/system/multi-user.target.wants/usbguard.service, running: "
        "/proc/812/comm) with ImplicitPolicyTarget=block "
        "(/etc/usbguard/usbguard-daemon.conf:5)"}},
      {"usbguard_running_not_enabled", v1::PASS, {"running: /proc/812/comm"}},
      {"usbguard_disabled",
       v1::FAIL,
       {"built into the kernel", "USBGuard is configured but neither enabled"}},
      {"usbguard_implicit_allow", v1::FAIL, {"ImplicitPolicyTarget=allow"}},
      {"usbguard_allows_storage",
       v1::FAIL,
       {"USBGuard rule 'allow with-interface equals { 08:*:* }' (/etc/usbguard/rules.conf:6) can "
        "authorize a USB mass-storage device"}},
      {"usbguard_bad_rule",
       v1::FAIL,
       {"USBGuard cannot be credited: /etc/usbguard/rules.conf: line 6: malformed with-interface"}},
      {"shadowed", v1::FAIL, {"nothing prevents loading usb_storage"}},
      {"nothing", v1::FAIL, {"nothing prevents loading usb_storage"}},
      {"loaded", v1::FAIL, {"usb_storage is loaded now"}},
      {"builtin", v1::FAIL, {"built into the kernel", "modprobe rules cannot block it"}},
      {"mounted_stick", v1::FAIL, {"USB storage /dev/sdb1 is mounted on /media/alice/MY STICK"}},
      {"first_install_wins", v1::FAIL, {"still runs modprobe/insmod", "10-allow.conf"}},
      {"kernel_cmdline", v1::PASS, {"the kernel refuses usb_storage", "/proc/cmdline"}},
      {"config_only", v1::PASS, {"configuration only: not a running system"}},
      {"continuation", v1::PASS, {"/bin/echo usb-storage disabled by policy"}},
      {"masked_dev_null", v1::FAIL, {"nothing prevents loading usb_storage"}},
      {"no_module_support", v1::PASS, {"the running kernel cannot load modules"}},
      {"no_module_support_builtin", v1::FAIL, {"built into the kernel"}},
      {"merged_usr", v1::PASS, {"/bin/false", "/lib/modprobe.d/usb-storage.conf"}},
  };
  v1::Policy policy;
  policy.mutable_usb_storage()->set_mode(v1::BLOCKED);
  for (const auto& c : cases) {
    INFO(std::string(c.fixture));
    Verdict v = Evaluate(kUsbStorage, CollectUsbStorage(*Fixture(c.fixture)), policy);
    INFO(v.reason);
    CHECK(v.status == c.status);
    for (const auto& part : c.reason_parts) CHECK(Contains(v.reason, part));
  }
  v1::Policy allowed;
  allowed.mutable_usb_storage()->set_mode(v1::ALLOWED);
  Verdict v = Evaluate(kUsbStorage, CollectUsbStorage(*Fixture("mounted_stick")), allowed);
  CHECK(v.status == v1::PASS);
  CHECK(v.reason == "USB storage allowed by policy");
}

TEST_CASE("CollectUsbStorage: kernel configuration and USBGuard evidence") {
  auto b = CollectUsbStorage(*Fixture("boot_config_builtin")).usb_storage();
  CHECK(b.kernel_config_usb_storage().value() == "y");
  CHECK(b.kernel_config_uas().value() == "y");
  CHECK(b.module_builtin().value());
  CHECK(b.module_builtin().from().source() == "/boot/config-6.1.0-18-amd64");
  CHECK(b.module_builtin().from().line() == 5);
  auto m = CollectUsbStorage(*Fixture("boot_config_module")).usb_storage();
  CHECK(m.kernel_config_usb_storage().value() == "m");
  CHECK(!m.module_builtin().value());
  auto conflict = CollectUsbStorage(*Fixture("boot_config_conflict")).usb_storage();
  bool warned = false;
  for (const auto& w : conflict.warnings()) {
    warned |= Contains(w,
                       "does not list usb-storage.ko but /boot/config-6.1.0-18-amd64 has "
                       "'CONFIG_USB_STORAGE=y'");
  }
  CHECK(warned);
  auto n = CollectUsbStorage(*Fixture("boot_config_not_set")).usb_storage();
  CHECK(n.kernel_config_usb_storage().value() == "n");
  CHECK(n.kernel_config_uas().value() == "n");  // absent
  CHECK(n.kernel_config_uas().from().line() == 0);

  auto g = CollectUsbStorage(*Fixture("usbguard_blocking")).usb_storage().usbguard();
  CHECK(g.configured().value());
  CHECK(g.service_enabled().value());
  CHECK(g.daemon_running().value());
  CHECK(g.implicit_policy_target().value() == "block");
  CHECK(g.implicit_policy_target().from().line() == 5);  // the commented "allow" is ignored
  CHECK(g.present_device_policy().value() == "apply-policy");
  CHECK(g.errors_size() == 0);
  // rules.conf in file order, then rules.d/*.conf (README is not loaded).
  REQUIRE(g.rules_size() == 4);
  CHECK(g.rules(0).ids(0) == "1d6b:0002");
  CHECK(g.rules(0).interfaces(0) == "09:00:00");
  CHECK(g.rules(0).other_attributes_size() == 3);
  CHECK(g.rules(1).interface_operator() == "equals");
  CHECK(g.rules(2).from().line() == 5);
  CHECK(g.rules(2).from().raw() == "allow with-interface 03:*:*");
  CHECK(g.rules(3).target() == "block");
  CHECK(g.rules(3).from().source() == "/etc/usbguard/rules.d/50-storage.conf");
  CHECK(g.rules(3).from().line() == 2);

  auto d = CollectUsbStorage(*Fixture("usbguard_disabled")).usb_storage().usbguard();
  CHECK(!d.service_enabled().value());
  CHECK(!d.daemon_running().value());
  // No usbguard-daemon.conf: no USBGuard evidence at all.
  CHECK(!CollectUsbStorage(*Fixture("install_false")).usb_storage().has_usbguard());
}

TEST_CASE("usb_storage end to end against READ_ONLY and ALLOWED-with-list policies") {
  v1::Policy ro;
  ro.mutable_usb_storage()->set_mode(v1::READ_ONLY);
  struct Case {
    const char* fixture;
    v1::CheckStatus status;
    std::vector<std::string> reason_parts;
  } ro_cases[] = {
      {"udev_read_only",
       v1::PASS,
       {"blockdev --setro by 'ACTION==\"add\", SUBSYSTEMS==\"usb\", SUBSYSTEM==\"block\",   "
        "RUN+=\"/sbin/blockdev --setro %N\"' (/etc/udev/rules.d/80-usb-ro.rules:2)"}},
      {"udev_read_only_mounted_rw",
       v1::FAIL,
       {"USB storage /dev/sdb1 is mounted on /media/alice/MY STICK read-write"}},
      // /etc's file of the same name hides /lib's read-only rule.
      {"udev_hidden", v1::FAIL, {"no udev rule makes USB block devices read-only"}},
      {"install_false", v1::PASS, {"USB storage is blocked, which satisfies READ_ONLY"}},
      {"usbguard_blocking", v1::PASS, {"which satisfies READ_ONLY: USBGuard enforces"}},
  };
  for (const auto& c : ro_cases) {
    INFO(std::string(c.fixture));
    Verdict v = Evaluate(kUsbStorage, CollectUsbStorage(*Fixture(c.fixture)), ro);
    INFO(v.reason);
    CHECK(v.status == c.status);
    for (const auto& part : c.reason_parts) CHECK(Contains(v.reason, part));
  }

  auto e = CollectUsbStorage(*Fixture("allowed_list")).usb_storage();
  CHECK(e.devices_listed().value());
  REQUIRE(e.connected_storage_size() == 2);  // the keyboard has no class-08 interface
  CHECK(e.connected_storage(0).id() == "0781:5581");
  CHECK(e.connected_storage(0).authorized());
  CHECK(e.connected_storage(0).interfaces(0) == "08:06:50");
  CHECK(e.connected_storage(1).id() == "090c:1000");  // lower-cased
  CHECK(!e.connected_storage(1).authorized());

  v1::Policy listed;
  listed.mutable_usb_storage()->set_mode(v1::ALLOWED);
  listed.mutable_usb_storage()->add_allowed_devices("0781:5581");
  Verdict ok = Evaluate(kUsbStorage, CollectUsbStorage(*Fixture("allowed_list")), listed);
  INFO(ok.reason);
  CHECK(ok.status == v1::PASS);
  v1::Policy other = listed;
  other.mutable_usb_storage()->set_allowed_devices(0, "090c:1000");
  Verdict bad = Evaluate(kUsbStorage, CollectUsbStorage(*Fixture("allowed_list")), other);
  CHECK(bad.status == v1::FAIL);
  CHECK(Contains(bad.reason,
                 "'allow id 0781:5581 serial \"4C530001230412115164\" with-interface "
                 "08:06:50' (/etc/usbguard/rules.d/40-sticks.conf:1)"));
  CHECK(
      Contains(bad.reason, "USB storage device 0781:5581 (/sys/bus/usb/devices/2-1) is connected"));
  Verdict none = Evaluate(kUsbStorage, CollectUsbStorage(*Fixture("install_false")), listed);
  CHECK(none.status == v1::FAIL);
  CHECK(Contains(none.reason, "which needs USBGuard: USBGuard is not configured"));
}

TEST_CASE("usb_storage: unreadable sources make the verdict ERROR") {
  v1::Policy policy;
  policy.mutable_usb_storage()->set_mode(v1::BLOCKED);
  struct Case {
    const char* fixture;
    const char* path;
    std::string reason_part;
  } cases[] = {
      // Built-in state unknown: /boot/config unreadable and no modules.builtin.
      {"boot_config_builtin", "/boot/config-6.1.0-18-amd64",
       "could not tell whether usb_storage is built into the kernel"},
      // The USBGuard rules could be what blocks usb_storage.
      {"usbguard_blocking", "/etc/usbguard/rules.conf",
       "cannot read /etc/usbguard/rules.conf: /etc/usbguard/rules.conf: Permission denied"},
      {"usbguard_blocking", "/etc/usbguard/usbguard-daemon.conf", "cannot read"},
      {"install_false", "/etc/modprobe.d/usb-storage.conf", "Permission denied"},
  };
  for (const auto& c : cases) {
    INFO((std::string(c.fixture) + " " + c.path));
    auto base = Fixture(c.fixture);
    DenyReadView view(*base, c.path);
    Verdict v = Evaluate(kUsbStorage, CollectUsbStorage(view), policy);
    INFO(v.reason);
    CHECK(v.status == v1::ERROR);
    CHECK(Contains(v.reason, c.reason_part));
  }
}

}  // namespace
}  // namespace vigil::collectors

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

TEST_CASE("EvaluateUsbStorage") {
  struct Case {
    const char* name;
    void (*build)(v1::UsbStorageEvidence*);
    v1::CheckStatus status;
    std::vector<std::string> parts;
  } cases[] = {
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
      {"blacklist both",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "blacklist", "usb_storage", "", "/etc/modprobe.d/bl.conf",
                 "blacklist usb-storage");
         AddRule(e, "blacklist", "uas", "", "/etc/modprobe.d/bl.conf", "blacklist uas");
       },
       v1::PASS,
       {"blacklisted (blocks automatic loading on plug-in; root can still load it "
        "explicitly)",
        "/etc/modprobe.d/bl.conf"}},
      {"blacklist usb_storage, uas install-blocked",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "blacklist", "usb_storage", "", "/etc/modprobe.d/bl.conf",
                 "blacklist usb-storage");
         AddRule(e, "install", "uas", "/bin/false", "/etc/modprobe.d/bl.conf",
                 "install uas /bin/false");
       },
       v1::PASS,
       {"blacklisted"}},
      {"blacklist without uas",
       [](v1::UsbStorageEvidence* e) {
         AddRule(e, "blacklist", "usb_storage", "", "/etc/modprobe.d/bl.conf",
                 "blacklist usb-storage");
       },
       v1::FAIL,
       {"but uas is not"}},
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
       v1::PASS,
       {"blacklisted"}},
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
  for (const auto& c : cases) {
    INFO(std::string(c.name));
    v1::UsbStorageEvidence e = Running();
    c.build(&e);
    Verdict v = EvaluateUsbStorage(e, blocked);
    INFO(v.reason);
    CHECK(v.status == c.status);
    for (const auto& part : c.parts) CHECK(v.reason.find(part) != std::string::npos);
  }
  v1::UsbStoragePolicy allowed;
  allowed.set_mode(v1::ALLOWED);
  CHECK(EvaluateUsbStorage(Running(), allowed).status == v1::PASS);
  CHECK(EvaluateUsbStorage(Running(), v1::UsbStoragePolicy()).status == v1::ERROR);
}

}  // namespace
}  // namespace vigil::collectors

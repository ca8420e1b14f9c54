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

// A twin whose /proc/modules exists but cannot be read: on a running system that is an error,
// never "not loaded".
class UnreadableProcModules : public ForwardingSystemView {
 public:
  using ForwardingSystemView::ForwardingSystemView;
  Result<std::string> ReadFile(const std::string& path, size_t max_bytes) const override {
    if (path == "/proc/modules")
      return Status::PermissionDenied("/proc/modules: Permission denied");
    return ForwardingSystemView::ReadFile(path, max_bytes);
  }
};

TEST_CASE("CollectUsbStorage: unreadable /proc/modules is a collection error") {
  auto base = Fixture("install_false");
  UnreadableProcModules view(*base);
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
        "(/etc/modprobe.d/usb-storage.conf line 2)"}},
      {"blacklist_only",
       v1::PASS,
       {"blacklisted (blocks automatic loading on plug-in; root can still load it explicitly)",
        "/etc/modprobe.d/blacklist-usb.conf"}},
      {"blacklist_without_uas", v1::FAIL, {"but uas is not"}},
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

}  // namespace
}  // namespace vigil::collectors

// usb_storage rule: can the kernel use USB mass storage, judged against the policy's mode.
//
// Module-loading semantics used here (kmod + udev):
// - kmod runs the FIRST "install" line matching a module instead of loading it; the collector
//   lists rules in kmod's processing order. A command that runs neither modprobe nor insmod
//   (/bin/false, /bin/true, echo) therefore blocks every load, explicit or automatic, including
//   usb_storage pulled in as a dependency of uas.
// - "blacklist" only stops loading by alias, i.e. on plug-in; "modprobe usb_storage" still works,
//   and udev does not apply the blacklist to dependencies: a UAS device loads uas, which loads
//   usb_storage. A blacklist-only setup passes only if uas is blacklisted or blocked as well.
// - The kernel's module_blacklist= refuses the module outright; modprobe.blacklist= is a blacklist.
// - Evidence without load state comes from a tree that is not a running system (see the
//   collector): then only the configuration is judged, and the reason says so.
#include <string>
#include <vector>

#include "collectors/evaluate.h"
#include "collectors/text.h"

namespace vigil::collectors {
namespace {

constexpr const char* kUsbStorageModule = "usb_storage";
constexpr const char* kUasModule = "uas";

std::string Where(const v1::Provenance& p) {
  return p.key().empty() ? p.source() : p.source() + " " + p.key();
}

// An install command that runs modprobe or insmod may still load the module; anything else
// replaces loading. Conservative on purpose: "modprobe --ignore-install usb_storage" loads.
bool InstallMayLoad(const std::string& command) {
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

}  // namespace

Verdict EvaluateUsbStorage(const v1::UsbStorageEvidence& e, const v1::UsbStoragePolicy& p) {
  if (p.mode() == v1::ALLOWED) return {v1::PASS, "USB storage allowed by policy"};
  if (p.mode() != v1::BLOCKED) return {v1::ERROR, "policy usb_storage.mode is not set"};

  const bool running = e.has_module_loaded();
  std::vector<std::string> fails;
  if (e.has_module_builtin() && e.module_builtin().value()) {
    fails.push_back("usb_storage is built into the kernel (" + e.module_builtin().from().source() +
                    "); modprobe rules cannot block it");
  }
  if (running && e.module_loaded().value()) {
    fails.push_back(std::string("usb_storage is loaded now (/proc/modules") +
                    (e.uas_loaded().value() ? ", with uas)" : ")"));
  }
  for (const auto& m : e.mounts()) {
    if (!m.usb() && !m.removable()) continue;
    fails.push_back(std::string(m.usb() ? "USB" : "removable") + " storage " + m.device() +
                    " is mounted on " + m.mount_point() + (m.read_only() ? " (read-only)" : ""));
  }

  const ModuleConfig usb = ConfigFor(e, kUsbStorageModule);
  const ModuleConfig uas = ConfigFor(e, kUasModule);
  std::string config;  // why the configuration blocks usb_storage, when it does
  const bool no_modules = e.has_loadable_modules() && !e.loadable_modules().value();
  if (no_modules) {
    // modprobe.d is irrelevant: the kernel cannot load anything. Only a built-in driver (judged
    // above) or an unknown built-in state can let USB storage in.
    config = "the running kernel cannot load modules (" + Where(e.loadable_modules().from()) +
             ") and usb_storage is not built in";
  } else if (usb.hard_block != nullptr) {
    config = usb.hard_block->kind() == "install"
                 ? "loading usb_storage is replaced by " + Describe(*usb.hard_block)
                 : "the kernel refuses usb_storage: " + Describe(*usb.hard_block);
  } else if (usb.blacklist != nullptr) {
    if (uas.hard_block == nullptr && uas.blacklist == nullptr) {
      fails.push_back("usb_storage is blacklisted by " + Describe(*usb.blacklist) +
                      " but uas is not: a UAS device loads uas on plug-in, which pulls in "
                      "usb_storage as a dependency");
    } else {
      config =
          "usb_storage is blacklisted (blocks automatic loading on plug-in; root can still "
          "load it explicitly) by " +
          Describe(*usb.blacklist);
    }
  } else {
    std::string why =
        "nothing prevents loading usb_storage (no blocking install rule or "
        "blacklist in modprobe.d or on the kernel command line)";
    if (usb.first_install != nullptr) {
      why += "; the install rule " + Describe(*usb.first_install) + " still runs modprobe/insmod";
    }
    fails.push_back(why);
  }

  if (!fails.empty()) return {v1::FAIL, Join(fails, "; ")};
  if (running && !e.has_module_builtin()) {
    return {v1::ERROR, "could not tell whether usb_storage is built into the kernel (" +
                           (e.kernel_release().empty() ? std::string("kernel release unknown")
                                                       : "kernel " + e.kernel_release()) +
                           "); " + config};
  }
  if (!running) {
    config +=
        "; configuration only: not a running system (no /proc/modules), load state and "
        "mounts unknown";
  }
  return {v1::PASS, config};
}

}  // namespace vigil::collectors

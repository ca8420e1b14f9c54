// Linux usb_storage collector: what stops the kernel from using USB mass storage, and what is
// in use right now. Facts only; evaluate_usb_storage.cc judges them.
//
// Configuration is read the way libkmod reads it (libkmod-config.c, conf_files_list): the
// directories below in priority order; a file name seen in an earlier directory hides the same
// name in later ones (so /etc/modprobe.d/x.conf masks /lib/modprobe.d/x.conf, and a symlink to
// /dev/null masks it with nothing); the surviving files are then processed sorted by file name,
// whatever their directory. Rules are recorded in that processing order, because kmod uses the
// FIRST matching "install" line (kmod_module_get_install_commands: "find only the first command,
// as modprobe from module-init-tools does"); the evaluator relies on the order.
//
// Whether usb_storage is built in comes from /boot/config-<release> (CONFIG_USB_STORAGE=y/m/unset)
// and modules.builtin; either saying "built in" wins, since a built-in driver cannot be blocked
// by modprobe. USBGuard (daemon configuration, rule files, enabled/running state), udev rules
// that force USB block devices read-only, and connected mass-storage devices in sysfs are
// recorded for the evaluator's other mechanisms and modes. USBGuard and udev can only take
// access away, so files of theirs that cannot be read are recorded, not collection errors; the
// evaluator never credits what it could not read.
//
// Running state (/proc/modules, mounts) exists only on a running system. A fixture tree or
// offline image without /proc/modules is treated as "not a running system": the load state is
// left unset, a warning says so, and the evaluator judges the configuration alone and says so.
// On a running system, failing to read /proc/modules or the mount table is a collection error.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "collectors/collectors.h"
#include "collectors/linux/kernel_config.h"
#include "collectors/linux/modprobe.h"
#include "collectors/linux/mounts.h"
#include "collectors/linux/udev_rules.h"
#include "collectors/linux/usbguard.h"
#include "collectors/text.h"

namespace vigil::collectors {
namespace {

constexpr const char* kModprobeDirs[] = {"/etc/modprobe.d", "/run/modprobe.d",
                                         "/usr/local/lib/modprobe.d", "/lib/modprobe.d",
                                         "/usr/lib/modprobe.d"};
constexpr const char* kUsbStorageModule = "usb_storage";
constexpr const char* kUas = "uas";  // USB Attached SCSI; depends on usb_storage

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  size_t b = s.find_first_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b);
}

v1::Provenance Prov(const std::string& source, const std::string& key, const std::string& raw,
                    int line = 0) {
  v1::Provenance p;
  p.set_source(source);
  p.set_key(key);
  p.set_raw(raw);
  p.set_line(static_cast<uint32_t>(line));
  return p;
}

void AddRule(v1::UsbStorageEvidence* ev, const char* kind, const std::string& module,
             const std::string& command, v1::Provenance from) {
  v1::UsbBlockRule* r = ev->add_rules();
  r->set_kind(kind);
  r->set_module(module);
  r->set_command(command);
  *r->mutable_from() = std::move(from);
}

// The files of a layered configuration directory set (kmod's modprobe.d, udev's rules.d), in
// processing order. Returns an error only when a directory or file exists but cannot be read: an
// unseen rule could change the verdict.
struct ConfFile {
  std::string path;
  std::string text;
};

template <size_t N>
Result<std::vector<ConfFile>> ReadLayeredFiles(const SystemView& view, const char* const (&dirs)[N],
                                               bool (*wanted)(const std::string& name),
                                               v1::UsbStorageEvidence* ev) {
  std::map<std::string, std::pair<std::string, FileType>> by_name;  // name -> (dir, type)
  std::set<std::pair<uint64_t, uint64_t>> seen_dirs;                // merged /usr: /lib is /usr/lib
  for (const char* dir : dirs) {
    if (auto info = view.Stat(dir); info.ok()) {
      if (!seen_dirs.insert({info->device, info->inode}).second) continue;
    }
    auto entries = view.ListDir(dir);
    if (!entries.ok()) {
      if (entries.status().code() == Status::Code::kNotFound) continue;
      return entries.status();
    }
    for (const auto& e : *entries) {
      if (e.name.empty() || e.name[0] == '.' || !wanted(e.name)) continue;
      auto [it, inserted] = by_name.try_emplace(e.name, dir, e.type);
      if (!inserted && it->second.first != dir) {
        ev->add_warnings(std::string(dir) + "/" + e.name + " is hidden by " + it->second.first +
                         "/" + e.name);
      }
    }
  }
  std::vector<ConfFile> out;
  for (const auto& [name, where] : by_name) {  // std::map: sorted by name, as kmod sorts
    std::string path = where.first + "/" + name;
    if (where.second == FileType::kDirectory) {
      ev->add_warnings(path + " is a directory (kmod ignores it)");
      continue;
    }
    if (where.second == FileType::kSymlink) {
      auto target = view.ReadLink(path);
      if (target.ok() && *target == "/dev/null") {
        ev->add_warnings(path + " is a symlink to /dev/null: masks every " + name);
        continue;
      }
    }
    auto text = view.ReadFile(path);
    if (!text.ok()) {
      if (text.status().code() == Status::Code::kNotFound) continue;  // dangling symlink
      return text.status();
    }
    out.push_back({std::move(path), std::move(text.value())});
  }
  return out;
}

// kmod's conf_files_filter_out: no dotfiles; only *.conf (and legacy *.alias).
bool IsModprobeFile(const std::string& name) {
  return EndsWith(name, ".conf") || EndsWith(name, ".alias");
}

Status CollectRules(const SystemView& view, v1::UsbStorageEvidence* ev) {
  auto files = ReadLayeredFiles(view, kModprobeDirs, IsModprobeFile, ev);
  if (!files.ok()) return files.status();
  for (const auto& f : *files) {
    linux_os::ModprobeConfig conf = linux_os::ParseModprobeConfig(f.text);
    for (const auto& w : conf.warnings) ev->add_warnings(f.path + ": " + w);
    for (const auto& r : conf.rules) {
      const std::string key = "line " + std::to_string(r.line_no);
      const v1::Provenance from = Prov(f.path, key, r.text, r.line_no);
      for (const char* module : {kUsbStorageModule, kUas}) {
        if (r.command == "blacklist" && r.module == module) {
          AddRule(ev, "blacklist", module, "", from);
        } else if (r.command == "install" && linux_os::ModulePatternMatches(r.module, module)) {
          AddRule(ev, "install", module, r.argument, from);
        } else if (r.command == "alias" && r.module == module) {
          // Only redirects "modprobe usb_storage"; plug-in loading resolves the device's
          // modalias straight to the module, so this blocks nothing on its own.
          AddRule(ev, "alias", module, r.argument, from);
        }
      }
    }
  }

  auto cmdline = view.ReadFile("/proc/cmdline");
  if (!cmdline.ok()) {
    if (cmdline.status().code() != Status::Code::kNotFound) {
      ev->add_warnings(cmdline.status().message());
    }
    return Status::Ok();
  }
  for (const auto& p : linux_os::ParseKernelCmdline(*cmdline)) {
    // Parameter names treat '-' and '_' alike; values are module names.
    const std::string name = linux_os::NormalizeModuleName(p.name);
    if (name == "modprobe.blacklist" || name == "module_blacklist") {
      size_t start = 0;
      for (;;) {
        size_t comma = p.value.find(',', start);
        std::string item =
            p.value.substr(start, comma == std::string::npos ? comma : comma - start);
        // kmod normalizes modprobe.blacklist entries; the kernel's module_blacklist compares
        // the name exactly, so "module_blacklist=usb-storage" does not match usb_storage.
        const std::string cmp =
            name == "modprobe.blacklist" ? linux_os::NormalizeModuleName(item) : item;
        for (const char* module : {kUsbStorageModule, kUas}) {
          if (cmp == module) {
            AddRule(ev, "kernel-cmdline", module, name, Prov("/proc/cmdline", name, p.text));
          } else if (name == "module_blacklist" && linux_os::NormalizeModuleName(item) == module) {
            ev->add_warnings("/proc/cmdline: " + p.text + " does not block " + module +
                             ": the kernel compares module_blacklist names exactly");
          }
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (name.rfind("usb_storage.", 0) == 0 || name.rfind("uas.", 0) == 0) {
      ev->add_warnings("/proc/cmdline: " + p.text + " sets a module option (does not block it)");
    } else if (name == "nousb" || name == "usbcore.nousb" || name == "usbcore.authorized_default") {
      ev->add_warnings("/proc/cmdline: " + p.text +
                       " restricts all USB devices (not evaluated by this check)");
    }
  }
  return Status::Ok();
}

// Kernel release: /proc/sys/kernel/osrelease, else the only directory under /lib/modules.
std::string KernelRelease(const SystemView& view, v1::UsbStorageEvidence* ev) {
  auto rel = view.ReadFile("/proc/sys/kernel/osrelease");
  if (rel.ok() && !Trim(*rel).empty()) return Trim(*rel);
  auto dirs = view.ListDir("/lib/modules");
  if (dirs.ok()) {
    std::vector<std::string> names;
    for (const auto& d : *dirs) {
      if (d.type == FileType::kDirectory || d.type == FileType::kSymlink) names.push_back(d.name);
    }
    if (names.size() == 1) {
      ev->add_warnings("kernel release taken from the only directory under /lib/modules: " +
                       names[0]);
      return names[0];
    }
  }
  ev->add_warnings(
      "kernel release unknown (no /proc/sys/kernel/osrelease and not exactly one "
      "directory under /lib/modules); cannot tell whether usb_storage is built in");
  return "";
}

// CONFIG_USB_STORAGE and CONFIG_USB_UAS from /boot/config-<release>, the configuration the
// distribution built the running kernel with. A symbol that is absent or "is not set" is "n".
void CollectKernelConfig(const SystemView& view, const std::string& rel,
                         v1::UsbStorageEvidence* ev) {
  if (rel.empty()) return;
  const std::string path = "/boot/config-" + rel;
  auto text = view.ReadFile(path);
  if (!text.ok()) {
    if (text.status().code() != Status::Code::kNotFound) ev->add_warnings(text.status().message());
    return;
  }
  const auto conf = linux_os::ParseKernelConfig(*text);
  const std::pair<const char*, v1::StringFact*> symbols[] = {
      {"CONFIG_USB_STORAGE", ev->mutable_kernel_config_usb_storage()},
      {"CONFIG_USB_UAS", ev->mutable_kernel_config_uas()}};
  for (const auto& [symbol, fact] : symbols) {
    auto it = conf.find(symbol);
    if (it == conf.end()) {
      fact->set_value("n");
      *fact->mutable_from() = Prov(path, symbol, std::string(symbol) + " absent");
    } else {
      const std::string& v = it->second.value;
      fact->set_value(v == "y" || v == "m" || v == "n" ? v : "n");
      *fact->mutable_from() = Prov(path, symbol, it->second.raw, it->second.line);
    }
  }
}

void CollectBuiltin(const SystemView& view, v1::UsbStorageEvidence* ev) {
  const std::string rel = KernelRelease(view, ev);
  ev->set_kernel_release(rel);
  CollectKernelConfig(view, rel, ev);
  const bool have_config = ev->has_kernel_config_usb_storage();
  const bool config_builtin = have_config && ev->kernel_config_usb_storage().value() == "y";
  if (!rel.empty()) {
    const std::string path = "/lib/modules/" + rel + "/modules.builtin";
    auto text = view.ReadFile(path);
    if (text.ok()) {
      const bool builtin = linux_os::ParseModulesBuiltin(*text).count(kUsbStorageModule) != 0;
      if (have_config && builtin != config_builtin) {
        ev->add_warnings(path + (builtin ? " lists" : " does not list") + " usb-storage.ko but " +
                         ev->kernel_config_usb_storage().from().source() + " has '" +
                         ev->kernel_config_usb_storage().from().raw() +
                         "'; treated as built in if either says so");
      }
      if (config_builtin && !builtin) {
        ev->mutable_module_builtin()->set_value(true);
        *ev->mutable_module_builtin()->mutable_from() = ev->kernel_config_usb_storage().from();
        return;
      }
      ev->mutable_module_builtin()->set_value(builtin);
      *ev->mutable_module_builtin()->mutable_from() = Prov(
          path, kUsbStorageModule, builtin ? "usb-storage.ko listed" : "usb-storage.ko not listed");
      return;
    }
    if (text.status().code() != Status::Code::kNotFound || !have_config) {
      ev->add_warnings(text.status().message());
    }
    if (have_config) {
      ev->mutable_module_builtin()->set_value(config_builtin);
      *ev->mutable_module_builtin()->mutable_from() = ev->kernel_config_usb_storage().from();
      return;
    }
  }
  // On a running system a built-in usb_storage still has /sys/module/usb_storage (it has module
  // parameters) without a line in /proc/modules.
  if (ev->has_module_loaded()) {
    if (!ev->module_loaded().value() && view.Stat("/sys/module/usb_storage").ok()) {
      ev->mutable_module_builtin()->set_value(true);
      *ev->mutable_module_builtin()->mutable_from() =
          Prov("/sys/module/usb_storage", kUsbStorageModule, "present but not in /proc/modules");
      return;
    }
    if (view.Stat("/sys/module").ok()) {
      ev->mutable_module_builtin()->set_value(false);
      *ev->mutable_module_builtin()->mutable_from() =
          Prov("/sys/module", kUsbStorageModule,
               ev->module_loaded().value() ? "loaded as a module (/proc/modules)"
                                           : "no /sys/module/usb_storage");
      return;
    }
  }
  // Without a release the KernelRelease warning already says built-in state is unknown.
  if (!rel.empty()) ev->add_warnings("could not tell whether usb_storage is built into the kernel");
}

// Fills module_loaded/uas_loaded. Returns false when this is not a running system.
Result<bool> CollectLoaded(const SystemView& view, v1::UsbStorageEvidence* ev) {
  auto text = view.ReadFile("/proc/modules");
  if (!text.ok()) {
    if (text.status().code() != Status::Code::kNotFound) return text.status();
    // A mounted /proc without /proc/modules is a running kernel built without loadable-module
    // support (CONFIG_MODULES=n): nothing can be loaded, whatever modprobe.d says.
    if (view.Stat("/proc/self").ok() || view.Stat("/proc/sys/kernel/osrelease").ok()) {
      ev->mutable_loadable_modules()->set_value(false);
      *ev->mutable_loadable_modules()->mutable_from() =
          Prov("/proc/modules", "", "absent on a running system: no loadable-module support");
      ev->mutable_module_loaded()->set_value(false);
      *ev->mutable_module_loaded()->mutable_from() =
          Prov("/proc/modules", kUsbStorageModule, "kernel cannot load modules");
      ev->mutable_uas_loaded()->set_value(false);
      *ev->mutable_uas_loaded()->mutable_from() =
          Prov("/proc/modules", kUas, "kernel cannot load modules");
      return true;
    }
    ev->add_warnings("no /proc/modules under " + view.Root() +
                     ": not a running system; only the configuration is evaluated");
    return false;
  }
  ev->mutable_loadable_modules()->set_value(true);
  *ev->mutable_loadable_modules()->mutable_from() = Prov("/proc/modules", "", "present");
  auto loaded = linux_os::ParseProcModules(*text);
  const bool usb = loaded.count(kUsbStorageModule) != 0;
  const bool uas = loaded.count(kUas) != 0;
  ev->mutable_module_loaded()->set_value(usb);
  *ev->mutable_module_loaded()->mutable_from() = Prov(
      "/proc/modules", kUsbStorageModule, usb ? "usb_storage listed" : "usb_storage not listed");
  ev->mutable_uas_loaded()->set_value(uas);
  *ev->mutable_uas_loaded()->mutable_from() =
      Prov("/proc/modules", kUas, uas ? "uas listed" : "uas not listed");
  return true;
}

Status CollectMounts(const SystemView& view, bool running, v1::UsbStorageEvidence* ev) {
  auto text = view.ReadFile("/proc/self/mounts");
  if (!text.ok() && text.status().code() == Status::Code::kNotFound) {
    text = view.ReadFile("/proc/mounts");
  }
  if (!text.ok()) {
    if (running) return text.status();
    return Status::Ok();
  }
  for (const auto& m : linux_os::ParseMounts(*text)) {
    const std::string disk = linux_os::DiskForDevice(m.device);
    if (disk.empty()) continue;
    const std::string sys = "/sys/block/" + disk;
    auto removable = view.ReadFile(sys + "/removable");
    auto link = view.ReadLink(sys);
    if (!link.ok()) link = view.ReadLink("/sys/class/block/" + m.device.substr(5));
    if (!removable.ok() && !link.ok()) {
      ev->add_warnings("could not inspect " + sys + " for " + m.device + " mounted on " +
                       m.mount_point);
      continue;
    }
    const bool is_removable = removable.ok() && Trim(*removable) == "1";
    const bool is_usb = link.ok() && link->find("/usb") != std::string::npos;
    if (!is_removable && !is_usb) continue;
    v1::MountedRemovable* out = ev->add_mounts();
    out->set_device(m.device);
    out->set_mount_point(m.mount_point);
    out->set_fs_type(m.fs_type);
    out->set_usb(is_usb);
    out->set_removable(is_removable);
    out->set_read_only(linux_os::HasMountOption(m, "ro"));
  }
  return Status::Ok();
}

constexpr const char* kUsbGuardConf = "/etc/usbguard/usbguard-daemon.conf";
constexpr const char* kUsbGuardUnit =
    "/etc/systemd/system/multi-user.target.wants/usbguard.service";
constexpr const char* kUdevDirs[] = {"/etc/udev/rules.d", "/run/udev/rules.d",
                                     "/usr/local/lib/udev/rules.d", "/usr/lib/udev/rules.d",
                                     "/lib/udev/rules.d"};
constexpr const char* kUsbDevices = "/sys/bus/usb/devices";

void SetString(v1::StringFact* f, const std::string& value, v1::Provenance from) {
  f->set_value(value);
  *f->mutable_from() = std::move(from);
}

void SetBoolFact(v1::BoolFact* f, bool value, v1::Provenance from) {
  f->set_value(value);
  *f->mutable_from() = std::move(from);
}

void AddUsbGuardRules(const SystemView& view, const std::string& path, v1::UsbGuardEvidence* g) {
  auto text = view.ReadFile(path);
  if (!text.ok()) {
    g->add_errors("cannot read " + path + ": " + text.status().message());
    return;
  }
  auto parsed = linux_os::ParseUsbGuardRules(*text);
  for (const auto& e : parsed.errors) g->add_errors(path + ": " + e);
  for (const auto& r : parsed.rules) {
    v1::UsbGuardRule* out = g->add_rules();
    out->set_target(r.target);
    out->set_id_operator(r.id_operator);
    for (const auto& id : r.ids) out->add_ids(id);
    out->set_interface_operator(r.interface_operator);
    for (const auto& i : r.interfaces) out->add_interfaces(i);
    for (const auto& a : r.other_attributes) out->add_other_attributes(a);
    *out->mutable_from() = Prov(path, "line " + std::to_string(r.line), r.text, r.line);
  }
}

// USBGuard's daemon configuration, rules, and whether the daemon is enabled or running. USBGuard
// can only take devices away, so nothing here is a collection error: what cannot be read is
// recorded in usbguard.errors and USBGuard is then not credited.
void CollectUsbGuard(const SystemView& view, bool running, v1::UsbStorageEvidence* ev) {
  auto conf = view.ReadFile(kUsbGuardConf);
  if (!conf.ok() && conf.status().code() == Status::Code::kNotFound) return;
  v1::UsbGuardEvidence* g = ev->mutable_usbguard();
  if (!conf.ok()) {
    SetBoolFact(g->mutable_configured(), false, Prov(kUsbGuardConf, "", "unreadable"));
    g->add_errors("cannot read " + std::string(kUsbGuardConf) + ": " + conf.status().message());
    return;
  }
  SetBoolFact(g->mutable_configured(), true, Prov(kUsbGuardConf, "", "present"));
  SetString(g->mutable_implicit_policy_target(), "block",
            Prov("default:usbguard", "ImplicitPolicyTarget", "ImplicitPolicyTarget not set"));
  SetString(g->mutable_present_device_policy(), "apply-policy",
            Prov("default:usbguard", "PresentDevicePolicy", "PresentDevicePolicy not set"));
  std::string rule_file;
  std::string rule_folder;
  for (const auto& st : linux_os::ParseUsbGuardDaemonConf(*conf)) {
    v1::Provenance from = Prov(kUsbGuardConf, st.key, st.raw, st.line);
    if (st.key == "ImplicitPolicyTarget") {
      if (st.value != "allow" && st.value != "block" && st.value != "reject") {
        g->add_errors(std::string(kUsbGuardConf) + ":" + std::to_string(st.line) +
                      ": invalid ImplicitPolicyTarget '" + st.value +
                      "' (the daemon refuses to start)");
      }
      SetString(g->mutable_implicit_policy_target(), st.value, std::move(from));
    } else if (st.key == "PresentDevicePolicy") {
      SetString(g->mutable_present_device_policy(), st.value, std::move(from));
    } else if (st.key == "RuleFile") {
      rule_file = st.value;
    } else if (st.key == "RuleFolder") {
      rule_folder = st.value;
    }
  }
  if (!rule_file.empty()) {
    auto st = view.Stat(rule_file);
    if (!st.ok() && st.status().code() == Status::Code::kNotFound) {
      ev->add_warnings("USBGuard RuleFile " + rule_file + " does not exist (no rules from it)");
    } else {
      AddUsbGuardRules(view, rule_file, g);
    }
  }
  if (!rule_folder.empty()) {
    while (rule_folder.size() > 1 && rule_folder.back() == '/') rule_folder.pop_back();
    auto entries = view.ListDir(rule_folder);
    if (entries.ok()) {
      // The daemon loads the folder's *.conf files in name order, after RuleFile.
      for (const auto& e : *entries) {
        if (e.name.empty() || e.name[0] == '.' || !EndsWith(e.name, ".conf")) continue;
        AddUsbGuardRules(view, rule_folder + "/" + e.name, g);
      }
    } else if (entries.status().code() != Status::Code::kNotFound) {
      g->add_errors("cannot read " + rule_folder + ": " + entries.status().message());
    }
  }

  // Enabled: the unit is wanted by multi-user.target, and not masked.
  auto unit = view.Stat(kUsbGuardUnit);
  auto mask = view.ReadLink("/etc/systemd/system/usbguard.service");
  if (mask.ok() && *mask == "/dev/null") {
    SetBoolFact(g->mutable_service_enabled(), false,
                Prov("/etc/systemd/system/usbguard.service", "", "masked (-> /dev/null)"));
  } else {
    SetBoolFact(g->mutable_service_enabled(), unit.ok(),
                Prov(kUsbGuardUnit, "", unit.ok() ? "present" : "absent"));
  }
  if (!running) return;
  auto procs = view.ListDir("/proc");
  if (!procs.ok()) {
    ev->add_warnings("cannot list /proc to find usbguard-daemon: " + procs.status().message());
    return;
  }
  for (const auto& p : *procs) {
    if (p.name.empty() || p.name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto comm = view.ReadFile("/proc/" + p.name + "/comm", 256);
    if (comm.ok() && Trim(*comm) == "usbguard-daemon") {
      SetBoolFact(g->mutable_daemon_running(), true,
                  Prov("/proc/" + p.name + "/comm", "", "usbguard-daemon"));
      return;
    }
  }
  SetBoolFact(g->mutable_daemon_running(), false,
              Prov("/proc", "", "no process named usbguard-daemon"));
}

bool IsUdevRulesFile(const std::string& name) { return EndsWith(name, ".rules"); }

// udev rules that make USB block devices read-only. A file that cannot be read only loses
// read-only rules (never gains any), so it is a warning, not an error.
void CollectUdevReadOnly(const SystemView& view, v1::UsbStorageEvidence* ev) {
  v1::UsbStorageEvidence scratch;  // layering warnings about udev files are noise here
  auto files = ReadLayeredFiles(view, kUdevDirs, IsUdevRulesFile, &scratch);
  if (!files.ok()) {
    ev->add_warnings("udev rules: " + files.status().message() +
                     " (read-only rules there are not seen)");
    return;
  }
  for (const auto& f : *files) {
    for (const auto& r : linux_os::ParseUdevRules(f.text).rules) {
      std::string mechanism = linux_os::UdevReadOnlyMechanism(r);
      if (mechanism.empty()) continue;
      v1::UdevReadOnlyRule* out = ev->add_udev_read_only_rules();
      out->set_mechanism(mechanism);
      *out->mutable_from() = Prov(f.path, "line " + std::to_string(r.line), r.text, r.line);
    }
  }
}

std::string ReadTrimmed(const SystemView& view, const std::string& path) {
  auto text = view.ReadFile(path, 4096);
  return text.ok() ? Trim(*text) : "";
}

// USB devices connected now with a mass-storage (class 08) interface, from sysfs: device
// directories are named like "2-1" or "2-1.4", their interfaces "2-1:1.0".
void CollectConnectedStorage(const SystemView& view, bool running, v1::UsbStorageEvidence* ev) {
  auto entries = view.ListDir(kUsbDevices);
  if (!entries.ok()) {
    if (!running) return;
    // A running kernel without a USB bus in sysfs has no USB device connected.
    const bool absent = entries.status().code() == Status::Code::kNotFound;
    SetBoolFact(ev->mutable_devices_listed(), absent,
                Prov(kUsbDevices, "", absent ? "absent: no USB bus" : entries.status().message()));
    return;
  }
  SetBoolFact(ev->mutable_devices_listed(), true, Prov(kUsbDevices, "", "listed"));
  for (const auto& dev : *entries) {
    if (dev.name.find(':') != std::string::npos || StartsWith(dev.name, "usb")) continue;
    const std::string dir = std::string(kUsbDevices) + "/" + dev.name;
    std::vector<std::string> interfaces;
    bool storage = false;
    for (const auto& itf : *entries) {
      if (!StartsWith(itf.name, dev.name + ":")) continue;
      const std::string idir = std::string(kUsbDevices) + "/" + itf.name;
      std::string cls = ReadTrimmed(view, idir + "/bInterfaceClass");
      std::string sub = ReadTrimmed(view, idir + "/bInterfaceSubClass");
      std::string proto = ReadTrimmed(view, idir + "/bInterfaceProtocol");
      if (cls.empty()) continue;
      interfaces.push_back(cls + ":" + sub + ":" + proto);
      storage |= cls == "08";
    }
    if (!storage) continue;
    v1::UsbDevice* out = ev->add_connected_storage();
    std::string id =
        ReadTrimmed(view, dir + "/idVendor") + ":" + ReadTrimmed(view, dir + "/idProduct");
    std::transform(id.begin(), id.end(), id.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out->set_id(id);
    out->set_sysfs_path(dir);
    for (auto& i : interfaces) out->add_interfaces(i);
    const std::string authorized = ReadTrimmed(view, dir + "/authorized");
    out->set_authorized(authorized != "0");
  }
}

}  // namespace

v1::Evidence CollectUsbStorage(const SystemView& view) {
  v1::Evidence evidence;
  v1::UsbStorageEvidence* ev = evidence.mutable_usb_storage();
  if (Status st = CollectRules(view, ev); !st.ok()) {
    evidence.set_collection_error(st.message());
    return evidence;
  }
  auto running = CollectLoaded(view, ev);
  if (!running.ok()) {
    evidence.set_collection_error(running.status().message());
    return evidence;
  }
  CollectBuiltin(view, ev);
  if (Status st = CollectMounts(view, *running, ev); !st.ok()) {
    evidence.set_collection_error(st.message());
    return evidence;
  }
  CollectUsbGuard(view, *running, ev);
  CollectUdevReadOnly(view, ev);
  CollectConnectedStorage(view, *running, ev);
  return evidence;
}

}  // namespace vigil::collectors

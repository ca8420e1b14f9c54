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
// Running state (/proc/modules, mounts) exists only on a running system. A fixture tree or
// offline image without /proc/modules is treated as "not a running system": the load state is
// left unset, a warning says so, and the evaluator judges the configuration alone and says so.
// On a running system, failing to read /proc/modules or the mount table is a collection error.
#include <algorithm>
#include <map>
#include <set>

#include "collectors/collectors.h"
#include "collectors/linux/modprobe.h"
#include "collectors/linux/mounts.h"
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

v1::Provenance Prov(const std::string& source, const std::string& key, const std::string& raw) {
  v1::Provenance p;
  p.set_source(source);
  p.set_key(key);
  p.set_raw(raw);
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

// The modprobe.d files kmod would read, in processing order. Returns an error only when a
// directory or file exists but cannot be read: an unseen rule could change the verdict.
struct ConfFile {
  std::string path;
  std::string text;
};

Result<std::vector<ConfFile>> ReadModprobeFiles(const SystemView& view,
                                                v1::UsbStorageEvidence* ev) {
  std::map<std::string, std::pair<std::string, FileType>> by_name;  // name -> (dir, type)
  std::set<std::pair<uint64_t, uint64_t>> seen_dirs;                // merged /usr: /lib is /usr/lib
  for (const char* dir : kModprobeDirs) {
    if (auto info = view.Stat(dir); info.ok()) {
      if (!seen_dirs.insert({info->device, info->inode}).second) continue;
    }
    auto entries = view.ListDir(dir);
    if (!entries.ok()) {
      if (entries.status().code() == Status::Code::kNotFound) continue;
      return entries.status();
    }
    for (const auto& e : *entries) {
      // kmod's conf_files_filter_out: no dotfiles; only *.conf (and legacy *.alias).
      if (e.name.empty() || e.name[0] == '.') continue;
      if (!EndsWith(e.name, ".conf") && !EndsWith(e.name, ".alias")) continue;
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

Status CollectRules(const SystemView& view, v1::UsbStorageEvidence* ev) {
  auto files = ReadModprobeFiles(view, ev);
  if (!files.ok()) return files.status();
  for (const auto& f : *files) {
    linux_os::ModprobeConfig conf = linux_os::ParseModprobeConfig(f.text);
    for (const auto& w : conf.warnings) ev->add_warnings(f.path + ": " + w);
    for (const auto& r : conf.rules) {
      const std::string key = "line " + std::to_string(r.line_no);
      for (const char* module : {kUsbStorageModule, kUas}) {
        if (r.command == "blacklist" && r.module == module) {
          AddRule(ev, "blacklist", module, "", Prov(f.path, key, r.text));
        } else if (r.command == "install" && linux_os::ModulePatternMatches(r.module, module)) {
          AddRule(ev, "install", module, r.argument, Prov(f.path, key, r.text));
        } else if (r.command == "alias" && r.module == module) {
          // Only redirects "modprobe usb_storage"; plug-in loading resolves the device's
          // modalias straight to the module, so this blocks nothing on its own.
          AddRule(ev, "alias", module, r.argument, Prov(f.path, key, r.text));
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

void CollectBuiltin(const SystemView& view, v1::UsbStorageEvidence* ev) {
  const std::string rel = KernelRelease(view, ev);
  ev->set_kernel_release(rel);
  if (!rel.empty()) {
    const std::string path = "/lib/modules/" + rel + "/modules.builtin";
    auto text = view.ReadFile(path);
    if (text.ok()) {
      const bool builtin = linux_os::ParseModulesBuiltin(*text).count(kUsbStorageModule) != 0;
      ev->mutable_module_builtin()->set_value(builtin);
      *ev->mutable_module_builtin()->mutable_from() = Prov(
          path, kUsbStorageModule, builtin ? "usb-storage.ko listed" : "usb-storage.ko not listed");
      return;
    }
    ev->add_warnings(text.status().message());
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
  return evidence;
}

}  // namespace vigil::collectors

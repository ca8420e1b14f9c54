#include <string_view>

#include "collectors/collectors.h"
#include "collectors/linux/os_release.h"
#include "collectors/utf8.h"

namespace vigil::collectors {
namespace {

std::string FirstLine(const SystemView& view, const std::string& path) {
  auto r = view.ReadFile(path, 4096);
  if (!r.ok()) return "";
  std::string s = *r;
  if (size_t nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

const char* CompiledArch() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__i386__)
  return "i386";
#else
  return "unknown";
#endif
}

}  // namespace

v1::PlatformFacts CollectPlatform(const SystemView& view) {
  v1::PlatformFacts p;
  p.set_os("linux");
  auto text = view.ReadFile("/etc/os-release", 65536);
  if (!text.ok()) text = view.ReadFile("/usr/lib/os-release", 65536);
  if (text.ok()) {
    auto kv = linux_os::ParseOsRelease(*text);
    p.set_os_name(kv.count("PRETTY_NAME") ? kv["PRETTY_NAME"] : kv["NAME"]);
    p.set_os_version(kv["VERSION_ID"]);
  }
  p.set_kernel(FirstLine(view, "/proc/sys/kernel/osrelease"));
  std::string host = FirstLine(view, "/proc/sys/kernel/hostname");
  if (host.empty()) host = FirstLine(view, "/etc/hostname");
  p.set_hostname(host);
  p.set_machine_id(FirstLine(view, "/etc/machine-id"));
  p.set_arch(CompiledArch());
  // The hostname and os-release are bytes like any file (collectors/utf8.h).
  SanitizeStrings(&p);
  return p;
}

}  // namespace vigil::collectors

#include "agent/uevents.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstring>

namespace vigil::agent {

std::optional<Uevent> ParseUevent(std::string_view data) {
  // udev's own multicast messages start with "libudev\0"; the kernel's with "ACTION@DEVPATH".
  if (data.substr(0, 8) == std::string_view("libudev\0", 8)) return std::nullopt;
  size_t end = data.find('\0');
  std::string_view header = data.substr(0, end);
  size_t at = header.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= header.size()) return std::nullopt;
  Uevent ev;
  ev.action = std::string(header.substr(0, at));
  ev.devpath = std::string(header.substr(at + 1));
  if (ev.devpath[0] != '/') return std::nullopt;
  size_t pos = end == std::string_view::npos ? data.size() : end + 1;
  while (pos < data.size()) {
    size_t next = data.find('\0', pos);
    if (next == std::string_view::npos) next = data.size();
    std::string_view kv = data.substr(pos, next - pos);
    pos = next + 1;
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    ev.env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  // The header and ACTION must agree; a mismatch is not a kernel message.
  if (auto it = ev.env.find("ACTION"); it != ev.env.end() && it->second != ev.action) {
    return std::nullopt;
  }
  return ev;
}

bool AffectsUsbStorage(const Uevent& e) {
  auto get = [&e](const char* key) -> std::string_view {
    auto it = e.env.find(key);
    return it == e.env.end() ? std::string_view() : std::string_view(it->second);
  };
  const std::string_view subsystem = get("SUBSYSTEM");
  const bool relevant_action = e.action == "add" || e.action == "remove" || e.action == "change" ||
                               e.action == "bind" || e.action == "unbind";
  if (!relevant_action) return false;
  if (subsystem == "block") return true;
  if (subsystem == "usb") {
    std::string_view driver = get("DRIVER");
    if (driver == "usb-storage" || driver == "uas") return true;
    // INTERFACE=class/subclass/protocol in decimal; 8 is mass storage.
    return get("INTERFACE").substr(0, 2) == "8/";
  }
  if (subsystem == "module") {
    return e.devpath == "/module/usb_storage" || e.devpath == "/module/uas";
  }
  return false;
}

struct UeventWatcher::Impl {
  Impl(boost::asio::io_context& io, std::function<void(const std::string&)> cb)
      : netlink(io), mounts(io), on_change(std::move(cb)) {}

  void WaitNetlink() {
    netlink.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [this](const boost::system::error_code& ec) {
                         if (ec) return;
                         DrainNetlink();
                         WaitNetlink();
                       });
  }

  void DrainNetlink() {
    char buf[8192];
    for (;;) {
      sockaddr_nl from{};
      iovec iov{buf, sizeof buf};
      msghdr msg{};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof from;
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      ssize_t n = ::recvmsg(netlink.native_handle(), &msg, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {
          // Events were dropped: something may have changed, so collect to be safe.
          on_change("uevent queue overflow");
          continue;
        }
        return;  // EAGAIN: drained
      }
      // Only the kernel (port id 0) may speak here; anything else could be a forger.
      if (from.nl_pid != 0 || (msg.msg_flags & MSG_TRUNC)) continue;
      auto ev = ParseUevent(std::string_view(buf, static_cast<size_t>(n)));
      if (ev && AffectsUsbStorage(*ev)) on_change("uevent " + ev->action + " " + ev->devpath);
    }
  }

  void WaitMounts() {
    // /proc/self/mounts signals POLLPRI|POLLERR when the mount table changes.
    mounts.async_wait(boost::asio::posix::stream_descriptor::wait_error,
                      [this](const boost::system::error_code& ec) {
                        if (ec) return;
                        char buf[4096];
                        ::lseek(mounts.native_handle(), 0, SEEK_SET);
                        while (::read(mounts.native_handle(), buf, sizeof buf) > 0) {
                        }
                        on_change("mount table changed");
                        WaitMounts();
                      });
  }

  boost::asio::posix::stream_descriptor netlink;
  boost::asio::posix::stream_descriptor mounts;
  std::function<void(const std::string&)> on_change;
};

UeventWatcher::UeventWatcher(boost::asio::io_context& io,
                             std::function<void(const std::string&)> on_change)
    : impl_(std::make_unique<Impl>(io, std::move(on_change))) {}

UeventWatcher::~UeventWatcher() = default;

Status UeventWatcher::Start() {
  std::string problems;
  int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
  if (fd >= 0) {
    sockaddr_nl addr{};
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = 1;  // the kernel's uevent group (udev re-broadcasts on group 2)
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      impl_->netlink.assign(fd);
      impl_->WaitNetlink();
    } else {
      problems += std::string("uevent socket bind: ") + std::strerror(errno);
      ::close(fd);
    }
  } else {
    problems += std::string("uevent socket: ") + std::strerror(errno);
  }
  int mfd = ::open("/proc/self/mounts", O_RDONLY | O_CLOEXEC);
  if (mfd >= 0) {
    char buf[4096];
    while (::read(mfd, buf, sizeof buf) > 0) {
    }
    impl_->mounts.assign(mfd);
    impl_->WaitMounts();
  } else {
    problems +=
        std::string(problems.empty() ? "" : "; ") + "/proc/self/mounts: " + std::strerror(errno);
  }
  if (!problems.empty()) return Status::Unavailable(problems);
  return Status::Ok();
}

}  // namespace vigil::agent

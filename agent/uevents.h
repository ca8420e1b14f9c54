// Event-driven re-collection: kernel uevents (netlink) and mount-table changes wake the agent
// so a USB stick that is plugged in or mounted is reported within a second, without polling.
//
// ParseUevent and AffectsUsbStorage are pure (tested and fuzzed). UeventWatcher plugs the
// netlink socket and /proc/self/mounts into the daemon's Boost.Asio loop; only messages sent
// by the kernel itself (netlink port id 0) are believed. Single-threaded: the io_context's.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace vigil::agent {

struct Uevent {
  std::string action;                      // add, remove, change, bind, unbind, ...
  std::string devpath;                     // /devices/...
  std::map<std::string, std::string> env;  // SUBSYSTEM, DEVTYPE, DRIVER, INTERFACE, ...
};

// Parses one kernel uevent datagram: "ACTION@DEVPATH\0KEY=VALUE\0...". Messages in udev's
// re-broadcast format ("libudev" magic) and malformed ones yield nullopt.
std::optional<Uevent> ParseUevent(std::string_view datagram);

// True for events that can change usb_storage evidence: block devices appearing, changing or
// going away, USB mass-storage interfaces (class 08), and the usb-storage/uas drivers binding.
bool AffectsUsbStorage(const Uevent& event);

class UeventWatcher {
 public:
  // `on_change` runs on the io_context's thread for every relevant event.
  UeventWatcher(boost::asio::io_context& io, std::function<void(const std::string& why)> on_change);
  ~UeventWatcher();
  UeventWatcher(const UeventWatcher&) = delete;
  UeventWatcher& operator=(const UeventWatcher&) = delete;

  // Opens the netlink socket and the mount table. Either may fail (e.g. no permission in a
  // container); the returned status says which, and the other source keeps working.
  Status Start();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vigil::agent

#include "agent/uevents.h"

#include <doctest/doctest.h>

namespace vigil::agent {
namespace {

std::string Msg(std::initializer_list<std::string> parts) {
  std::string out;
  for (const auto& p : parts) {
    out += p;
    out.push_back('\0');
  }
  return out;
}

TEST_CASE("uevents: parsing kernel messages, refusing others") {
  auto ev = ParseUevent(Msg({"add@/devices/pci0000:00/usb1/1-2/1-2:1.0", "ACTION=add",
                             "DEVPATH=/devices/pci0000:00/usb1/1-2/1-2:1.0", "SUBSYSTEM=usb",
                             "DEVTYPE=usb_interface", "INTERFACE=8/6/80", "SEQNUM=4242"}));
  REQUIRE(ev.has_value());
  CHECK(ev->action == "add");
  CHECK(ev->env.at("SUBSYSTEM") == "usb");
  CHECK(AffectsUsbStorage(*ev));

  CHECK(!ParseUevent(Msg({"libudev", "whatever"})).has_value());
  CHECK(!ParseUevent("").has_value());
  CHECK(!ParseUevent(Msg({"no-at-sign"})).has_value());
  CHECK(!ParseUevent(Msg({"add@relative"})).has_value());
  CHECK(!ParseUevent(Msg({"add@/devices/x", "ACTION=remove"})).has_value());
}

TEST_CASE("uevents: which events can change usb_storage evidence") {
  struct Case {
    std::string msg;
    bool affects;
  } cases[] = {
      {Msg({"add@/devices/virtual/block/loop0", "ACTION=add", "SUBSYSTEM=block"}), true},
      {Msg({"remove@/devices/x/block/sdb/sdb1", "ACTION=remove", "SUBSYSTEM=block"}), true},
      {Msg({"bind@/devices/x/1-2:1.0", "ACTION=bind", "SUBSYSTEM=usb", "DRIVER=usb-storage"}),
       true},
      {Msg({"bind@/devices/x/1-2:1.0", "ACTION=bind", "SUBSYSTEM=usb", "DRIVER=uas"}), true},
      {Msg({"add@/module/usb_storage", "ACTION=add", "SUBSYSTEM=module"}), true},
      {Msg({"add@/module/snd_hda", "ACTION=add", "SUBSYSTEM=module"}), false},
      // A keyboard (HID, class 3) is not storage.
      {Msg({"add@/devices/x/1-3:1.0", "ACTION=add", "SUBSYSTEM=usb", "INTERFACE=3/1/1"}), false},
      {Msg({"change@/devices/virtual/net/lo", "ACTION=change", "SUBSYSTEM=net"}), false},
      {Msg({"online@/devices/system/cpu/cpu1", "ACTION=online", "SUBSYSTEM=cpu"}), false},
  };
  for (const auto& c : cases) {
    auto ev = ParseUevent(c.msg);
    REQUIRE(ev.has_value());
    CAPTURE(ev->devpath);
    CHECK(AffectsUsbStorage(*ev) == c.affects);
  }
}

}  // namespace
}  // namespace vigil::agent

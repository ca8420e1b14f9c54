// Tests for the /boot/config-<release> parser.
#include "collectors/linux/kernel_config.h"

#include <doctest/doctest.h>

namespace vigil::collectors::linux_os {
namespace {

TEST_CASE("ParseKernelConfig reads y, m, 'is not set', and lets a later line win") {
  const char* text =
      "#\n"
      "# Automatically generated file; DO NOT EDIT.\n"
      "CONFIG_USB_STORAGE=m\n"
      "CONFIG_USB_UAS=y\n"
      "# CONFIG_USB_STORAGE_DEBUG is not set\n"
      "CONFIG_LOCALVERSION=\"-amd64\"\n"
      "  CONFIG_USB_UAS=m  \r\n"  // blanks and CR around a later value
      "# CONFIG_usb bogus is not set\n"
      "# just a comment\n"
      "garbage line\n";
  auto c = ParseKernelConfig(text);
  CHECK(c.at("CONFIG_USB_STORAGE").value == "m");
  CHECK(c.at("CONFIG_USB_STORAGE").line == 3);
  CHECK(c.at("CONFIG_USB_UAS").value == "m");
  CHECK(c.at("CONFIG_USB_UAS").line == 7);
  CHECK(c.at("CONFIG_USB_STORAGE_DEBUG").value == "n");
  CHECK(c.at("CONFIG_USB_STORAGE_DEBUG").raw == "# CONFIG_USB_STORAGE_DEBUG is not set");
  CHECK(c.at("CONFIG_LOCALVERSION").value == "\"-amd64\"");
  CHECK(c.size() == 4);

  auto later_unset = ParseKernelConfig("CONFIG_USB_STORAGE=y\n# CONFIG_USB_STORAGE is not set\n");
  CHECK(later_unset.at("CONFIG_USB_STORAGE").value == "n");
  CHECK(ParseKernelConfig("").empty());
  CHECK(ParseKernelConfig("CONFIG_=y\nCONFIG_X Y=y\n").empty());
}

}  // namespace
}  // namespace vigil::collectors::linux_os

// os-release(5) parsing: KEY=value lines with shell-style quoting.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace vigil::collectors::linux_os {

std::map<std::string, std::string> ParseOsRelease(std::string_view text);

}  // namespace vigil::collectors::linux_os

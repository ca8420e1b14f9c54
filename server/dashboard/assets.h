// The dashboard's files (index.html, app.js, style.css in this folder), embedded into the binary
// at build time by embed.cmake, so vigil-server needs no file at run time.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace vigil::server::dashboard {

struct Asset {
  std::string_view name;  // the file name, e.g. "app.js"
  std::string_view body;
};

std::span<const Asset> Assets();

}  // namespace vigil::server::dashboard

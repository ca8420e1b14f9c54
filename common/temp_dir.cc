#include "common/temp_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

namespace vigil {

TempDir::TempDir(std::string_view prefix) {
  const char* base = ::getenv("TMPDIR");
  std::string tmpl = (base != nullptr && *base != '\0') ? base : "/tmp";
  while (tmpl.size() > 1 && tmpl.back() == '/') tmpl.pop_back();
  tmpl += '/';
  tmpl += prefix;
  tmpl += "-XXXXXX";
  path_ = tmpl;
  if (::mkdtemp(path_.data()) == nullptr) {
    int error = errno;
    // mkdtemp may have overwritten the Xs: name the template asked for.
    throw std::system_error(error, std::generic_category(), "mkdtemp " + tmpl);
  }
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::operator/(std::string_view name) const {
  std::string p = path_;
  p += '/';
  p += name;
  return p;
}

}  // namespace vigil

// A temporary directory for tests, removed with everything in it when the TempDir goes out of
// scope: a test that stops early (a failed REQUIRE throws) leaves nothing behind either.
//
// Made with mkdtemp under $TMPDIR (or /tmp when unset). Removal is std::filesystem::remove_all,
// which deletes symlinks and never follows them out of the tree; errors on removal are ignored.
// Whatever holds files open inside the directory (a SQLite store, an outbox) must be destroyed
// first: declare the TempDir before it. Not copyable; path() may be read from any thread.
//
// When the directory cannot be made the constructor throws std::system_error (with errno), which
// doctest reports as a failure of the running test case, as a REQUIRE would. For tests only:
// production code reports errors as Status.
#pragma once

#include <string>
#include <string_view>

namespace vigil {

class TempDir {
 public:
  // `prefix` names the directory for people looking at the temp dir: "vigil-store" makes
  // $TMPDIR/vigil-store-XXXXXX.
  explicit TempDir(std::string_view prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The directory's path (absolute unless $TMPDIR is relative), without a trailing slash.
  const std::string& path() const { return path_; }

  // path() + "/" + name.
  std::string operator/(std::string_view name) const;

 private:
  std::string path_;
};

}  // namespace vigil

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "common/files.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/temp_dir.h"

namespace vigil {
namespace {

TEST_CASE("WriteFileAtomic writes content with the exact mode and replaces old content") {
  TempDir dir("vigil-files");
  std::string path = dir / "f";
  REQUIRE(WriteFileAtomic(path, "one", 0600).ok());
  REQUIRE(WriteFileAtomic(path, "two", 0600).ok());
  auto r = ReadWholeFile(path);
  REQUIRE(r.ok());
  CHECK(*r == "two");
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("ReadWholeFile reports missing files and refuses oversized ones") {
  TempDir dir("vigil-files");
  auto missing = ReadWholeFile(dir / "nope");
  CHECK(missing.status().code() == Status::Code::kNotFound);
  REQUIRE(WriteFileAtomic(dir / "big", std::string(100, 'x')).ok());
  CHECK(!ReadWholeFile(dir / "big", 10).ok());
}

TEST_CASE("MakeDirs creates nested directories and rejects a file in the way") {
  TempDir dir("vigil-files");
  CHECK(MakeDirs(dir / "a/b/c", 0700).ok());
  REQUIRE(WriteFileAtomic(dir / "file", "x").ok());
  CHECK(!MakeDirs(dir / "file", 0700).ok());
}

}  // namespace
}  // namespace vigil

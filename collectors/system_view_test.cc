#include "collectors/system_view.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <fstream>

#include "common/temp_dir.h"

namespace vigil::collectors {
namespace {

// Fills `dir` with a small /etc and returns its path, the root of a view.
std::string MakeTree(const TempDir& dir) {
  const std::string& root = dir.path();
  REQUIRE(::mkdir((root + "/etc").c_str(), 0755) == 0);
  std::ofstream(root + "/etc/hostname") << "fixture-host\n";
  std::ofstream(root + "/etc/b") << "b";
  // An absolute symlink must resolve inside the root, like in a chroot.
  REQUIRE(::symlink("/etc/hostname", (root + "/etc/link").c_str()) == 0);
  REQUIRE(::symlink("../../../../../../etc/passwd", (root + "/etc/escape").c_str()) == 0);
  return root;
}

TEST_CASE("a rooted view reads inside its root and cannot escape it") {
  TempDir tree("vigil-view");
  std::string root = MakeTree(tree);
  auto view = NewRootedSystemView(root);
  auto host = view->ReadFile("/etc/hostname");
  REQUIRE(host.ok());
  CHECK(*host == "fixture-host\n");
  auto via_link = view->ReadFile("/etc/link");
  REQUIRE(via_link.ok());
  CHECK(*via_link == "fixture-host\n");
  // ../ climbs stop at the root: /etc/passwd of the fixture (absent), not of the host.
  CHECK(view->ReadFile("/etc/escape").status().code() == Status::Code::kNotFound);
  CHECK(view->ReadFile("/../../etc/hostname").ok());
  CHECK(view->ReadFile("relative/path").status().code() == Status::Code::kInvalidArgument);
  CHECK(view->ReadFile("/etc").status().code() == Status::Code::kInvalidArgument);
  CHECK(
      !view->ReadFile("/etc/hostname", 4).ok());  // larger than the limit: an error, not truncation
  // A FIFO planted in a root tree must not hang collection.
  REQUIRE(::mkfifo((root + "/etc/fifo").c_str(), 0600) == 0);
  CHECK(view->ReadFile("/etc/fifo").status().code() == Status::Code::kInvalidArgument);
}

// systemd's RestrictSUIDSGID= (and kernels before 5.6) make openat2 fail with ENOSYS. In a
// child process under a seccomp filter that does the same: the live root still reads, any other
// root refuses with a reason rather than reading unconfined.
TEST_CASE("without openat2 the live root falls back to openat and other roots refuse") {
  TempDir tree("vigil-view");
  std::string root = MakeTree(tree);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
      ::_exit(10);
    }
    open_how how{};
    if (::syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how) >= 0 || errno != ENOSYS) {
      ::_exit(11);  // the filter is not in force: the test would prove nothing
    }
    auto live = NewRootedSystemView("/")->ReadFile("/etc/passwd");
    if (!live.ok() || live->find("root:") == std::string::npos) ::_exit(12);
    auto fixture = NewRootedSystemView(root)->ReadFile("/etc/hostname");
    if (fixture.ok() || fixture.status().code() != Status::Code::kFailedPrecondition ||
        fixture.status().message().find("openat2") == std::string::npos) {
      ::_exit(13);
    }
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("directory listing is sorted; stat and readlink work through the root") {
  TempDir tree("vigil-view");
  std::string root = MakeTree(tree);
  auto view = NewRootedSystemView(root + "/");
  auto entries = view->ListDir("/etc");
  REQUIRE(entries.ok());
  std::vector<std::string> names;
  for (const auto& e : *entries) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"b", "escape", "hostname", "link"});
  auto st = view->Stat("/etc/hostname");
  REQUIRE(st.ok());
  CHECK(st->type == FileType::kRegular);
  CHECK(st->size == 13);
  CHECK(st->mtime_ns > 0);
  auto dir = view->Stat("/etc");
  REQUIRE(dir.ok());
  CHECK(dir->type == FileType::kDirectory);
  auto link = view->ReadLink("/etc/link");
  REQUIRE(link.ok());
  CHECK(*link == "/etc/hostname");
  CHECK(view->Stat("/nope").status().code() == Status::Code::kNotFound);
  CHECK(view->Root() == root);
}

TEST_CASE("commands: only allow-listed, only on the live root, always with a timeout") {
  auto live = NewRootedSystemView("/", {"/bin/echo", "/bin/sleep"});
  auto out = live->Run({"/bin/echo", "hello"}, std::chrono::milliseconds(5000));
  REQUIRE(out.ok());
  CHECK(out->exit_code == 0);
  CHECK(out->out == "hello\n");
  CHECK(live->Run({"/bin/cat", "/etc/hostname"}, std::chrono::milliseconds(1000)).status().code() ==
        Status::Code::kPermissionDenied);
  auto slow = live->Run({"/bin/sleep", "5"}, std::chrono::milliseconds(100));
  CHECK(slow.status().code() == Status::Code::kDeadlineExceeded);
  // A child that closes its output and keeps running is still bounded by the timeout.
  auto sh = NewRootedSystemView("/", {"/bin/sh"});
  auto start = std::chrono::steady_clock::now();
  auto detached =
      sh->Run({"/bin/sh", "-c", "exec >&- 2>&-; sleep 5"}, std::chrono::milliseconds(200));
  CHECK(detached.status().code() == Status::Code::kDeadlineExceeded);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(3));
  TempDir tree("vigil-view");
  auto fixture = NewRootedSystemView(MakeTree(tree), {"/bin/echo"});
  CHECK(fixture->Run({"/bin/echo", "x"}, std::chrono::milliseconds(1000)).status().code() ==
        Status::Code::kFailedPrecondition);
}

}  // namespace
}  // namespace vigil::collectors

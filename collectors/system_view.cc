#include "collectors/system_view.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

extern char** environ;

namespace vigil::collectors {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

FileType TypeOf(mode_t mode) {
  if (S_ISREG(mode)) return FileType::kRegular;
  if (S_ISDIR(mode)) return FileType::kDirectory;
  if (S_ISLNK(mode)) return FileType::kSymlink;
  return FileType::kOther;
}

class RootedSystemView final : public SystemView {
 public:
  RootedSystemView(std::string root, std::vector<std::string> allowed)
      : root_(std::move(root)), allowed_(std::move(allowed)) {}
  ~RootedSystemView() override {
    if (root_fd_ >= 0) ::close(root_fd_);
  }

  Result<std::string> ReadFile(const std::string& path, size_t max_bytes) const override {
    // O_NONBLOCK: a FIFO or device planted in a root tree must not hang the agent.
    auto fd = Open(path, O_RDONLY | O_NONBLOCK);
    if (!fd.ok()) return fd.status();
    Fd f(*fd);
    struct stat st {};
    if (::fstat(f.get(), &st) != 0) return Status::FromErrno(errno, path);
    if (S_ISDIR(st.st_mode)) return Status::InvalidArgument(path + ": is a directory");
    if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + ": not a regular file");
    std::string out;
    char buf[16384];
    for (;;) {
      ssize_t n = ::read(f.get(), buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, path);
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
      if (out.size() > max_bytes) {
        return Status::InvalidArgument(path + ": larger than " + std::to_string(max_bytes) +
                                       " bytes");
      }
    }
    return out;
  }

  Result<std::vector<DirEntry>> ListDir(const std::string& path) const override {
    auto fd = Open(path, O_RDONLY | O_DIRECTORY);
    if (!fd.ok()) return fd.status();
    DIR* dir = ::fdopendir(*fd);
    if (dir == nullptr) {
      int err = errno;
      ::close(*fd);
      return Status::FromErrno(err, path);
    }
    std::vector<DirEntry> out;
    for (;;) {
      errno = 0;  // readdir signals errors only through errno
      struct dirent* d = ::readdir(dir);
      if (d == nullptr) break;
      std::string name = d->d_name;
      if (name == "." || name == "..") continue;
      FileType t = FileType::kOther;
      switch (d->d_type) {
        case DT_REG:
          t = FileType::kRegular;
          break;
        case DT_DIR:
          t = FileType::kDirectory;
          break;
        case DT_LNK:
          t = FileType::kSymlink;
          break;
        case DT_UNKNOWN: {
          struct stat st {};
          if (::fstatat(::dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            t = TypeOf(st.st_mode);
          break;
        }
        default:
          break;
      }
      out.push_back({std::move(name), t});
    }
    int err = errno;
    ::closedir(dir);
    if (err != 0) return Status::FromErrno(err, path);
    std::sort(out.begin(), out.end(),
              [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    return out;
  }

  Result<FileInfo> Stat(const std::string& path) const override {
    auto fd = Open(path, O_PATH);
    if (!fd.ok()) return fd.status();
    Fd f(*fd);
    struct stat st {};
    if (::fstat(f.get(), &st) != 0) return Status::FromErrno(errno, path);
    FileInfo info;
    info.type = TypeOf(st.st_mode);
    info.mode = st.st_mode & 07777;
    info.uid = st.st_uid;
    info.gid = st.st_gid;
    info.size = static_cast<uint64_t>(st.st_size);
    info.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    info.device = static_cast<uint64_t>(st.st_dev);
    info.inode = static_cast<uint64_t>(st.st_ino);
    return info;
  }

  Result<std::string> ReadLink(const std::string& path) const override {
    size_t slash = path.rfind('/');
    if (path.empty() || path[0] != '/' || slash == std::string::npos) {
      return Status::InvalidArgument(path + ": not an absolute path");
    }
    std::string parent = slash == 0 ? "/" : path.substr(0, slash);
    std::string base = path.substr(slash + 1);
    auto fd = Open(parent, O_PATH | O_DIRECTORY);
    if (!fd.ok()) return fd.status();
    Fd f(*fd);
    char buf[4096];
    ssize_t n = ::readlinkat(f.get(), base.c_str(), buf, sizeof buf);
    if (n < 0) return Status::FromErrno(errno, path);
    return std::string(buf, static_cast<size_t>(n));
  }

  Result<CommandResult> Run(const std::vector<std::string>& argv,
                            std::chrono::milliseconds timeout) const override {
    if (argv.empty()) return Status::InvalidArgument("empty command");
    if (std::find(allowed_.begin(), allowed_.end(), argv[0]) == allowed_.end()) {
      return Status::PermissionDenied(argv[0] + ": command is not allow-listed");
    }
    if (root_ != "/") {
      return Status::FailedPrecondition(argv[0] +
                                        ": commands run only on the live system (root /)");
    }
    return RunProcess(argv, timeout);
  }

  const std::string& Root() const override { return root_; }

 private:
  // Opens `path` as if root_ were "/": RESOLVE_IN_ROOT confines symlinks and "..".
  Result<int> Open(const std::string& path, int flags) const {
    if (path.empty() || path[0] != '/') {
      return Status::InvalidArgument(path + ": not an absolute path");
    }
    if (root_fd_ < 0) {
      int rfd = ::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (rfd < 0) return Status::FromErrno(errno, "root " + root_);
      int expected = -1;
      if (!root_fd_.compare_exchange_strong(expected, rfd)) ::close(rfd);
    }
    struct open_how how {};
    // openat2 rejects O_PATH combined with flags that only matter for real opens.
    int extra = (flags & O_PATH) ? O_CLOEXEC : (O_CLOEXEC | O_NOCTTY);
    how.flags = static_cast<uint64_t>(flags | extra);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    std::string rel = path.substr(1);
    if (rel.empty()) rel = ".";
    for (;;) {
      long fd = ::syscall(SYS_openat2, root_fd_.load(), rel.c_str(), &how, sizeof how);
      if (fd >= 0) return static_cast<int>(fd);
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ENOSYS) return OpenWithoutOpenat2(path, rel, flags | extra);
      return Status::FromErrno(errno, path);
    }
  }

  // openat2 fails with ENOSYS before Linux 5.6, and under seccomp filters that cannot inspect
  // its arguments: systemd's RestrictSUIDSGID= refuses it so that callers fall back to
  // openat. On the live system (root "/") plain openat resolves the same way, symlinks and ".."
  // included; a different root cannot be confined without it, so that is an error.
  Result<int> OpenWithoutOpenat2(const std::string& path, const std::string& rel, int flags) const {
    if (root_ != "/") {
      return Status::FailedPrecondition(
          path + ": reading under --root " + root_ +
          " needs openat2 (Linux 5.6 or later, not refused by a seccomp filter)");
    }
    for (;;) {
      int fd = ::openat(root_fd_.load(), rel.c_str(), flags);
      if (fd >= 0) return fd;
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, path);
    }
  }

  static Result<CommandResult> RunProcess(const std::vector<std::string>& argv,
                                          std::chrono::milliseconds timeout) {
    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
      ::close(out_pipe[0]);
      ::close(out_pipe[1]);
      return Status::FromErrno(errno, "pipe");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    char* env[] = {const_cast<char*>("PATH=/usr/sbin:/usr/bin:/sbin:/bin"),
                   const_cast<char*>("LC_ALL=C"), nullptr};
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, args.data(), env);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    Fd out_fd(out_pipe[0]), err_fd(err_pipe[0]);
    if (rc != 0) return Status::FromErrno(rc, "spawn " + argv[0]);

    CommandResult result;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool out_open = true, err_open = true, timed_out = false;
    constexpr size_t kMaxOutput = 4u << 20;
    while (out_open || err_open) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      struct pollfd fds[2] = {{out_open ? out_fd.get() : -1, POLLIN, 0},
                              {err_open ? err_fd.get() : -1, POLLIN, 0}};
      int n = ::poll(fds, 2, static_cast<int>(left.count()));
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[8192];
        ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
        if (r <= 0) {
          (i == 0 ? out_open : err_open) = false;
        } else {
          std::string& dst = i == 0 ? result.out : result.err;
          if (dst.size() < kMaxOutput) dst.append(buf, static_cast<size_t>(r));
        }
      }
    }
    if (timed_out) ::kill(pid, SIGKILL);
    // The child may close its pipes and keep running: wait for it only until the deadline.
    int wstatus = 0;
    for (;;) {
      pid_t r = ::waitpid(pid, &wstatus, timed_out ? 0 : WNOHANG);
      if (r == pid) break;
      if (r < 0 && errno != EINTR) return Status::FromErrno(errno, "waitpid " + argv[0]);
      if (r == 0) {
        if (std::chrono::steady_clock::now() >= deadline) {
          timed_out = true;
          ::kill(pid, SIGKILL);
        } else {
          ::usleep(1000);
        }
      }
    }
    if (timed_out) {
      return Status::DeadlineExceeded(argv[0] + ": timed out after " +
                                      std::to_string(timeout.count()) + " ms");
    }
    result.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    return result;
  }

  std::string root_;
  std::vector<std::string> allowed_;
  mutable std::atomic<int> root_fd_{-1};
};

}  // namespace

std::unique_ptr<SystemView> NewRootedSystemView(std::string root,
                                                std::vector<std::string> allowed_commands) {
  if (root.empty()) root = "/";
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return std::make_unique<RootedSystemView>(std::move(root), std::move(allowed_commands));
}

}  // namespace vigil::collectors

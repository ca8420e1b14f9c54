// SystemView: the one interface through which collectors read the operating system.
//
// Every path is absolute as seen from inside the view's root; a view rooted at a fixture tree
// behaves like a chroot (absolute symlinks resolve inside the root, ".." cannot escape it), so
// `vigil-agent collect --root DIR` and tests see exactly what collectors would see on a machine
// with that tree as "/". Commands are run only if allow-listed, only when the root is "/", and
// always with a timeout. Implementations are immutable after construction and may be called from
// any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace vigil::collectors {

enum class FileType { kRegular, kDirectory, kSymlink, kOther };

struct FileInfo {
  FileType type = FileType::kOther;
  uint32_t mode = 0;  // permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // modification time, nanoseconds since the epoch
  uint64_t device = 0;   // with inode: the file's identity (e.g. /lib and /usr/lib on merged /usr)
  uint64_t inode = 0;
};

struct DirEntry {
  std::string name;
  FileType type = FileType::kOther;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class SystemView {
 public:
  static constexpr size_t kDefaultMaxBytes = 16u << 20;

  virtual ~SystemView() = default;
  // Reads a whole file; files larger than `max_bytes` are an error, never silently truncated.
  virtual Result<std::string> ReadFile(const std::string& path,
                                       size_t max_bytes = kDefaultMaxBytes) const = 0;
  // Lists a directory, sorted by name, without "." and "..".
  virtual Result<std::vector<DirEntry>> ListDir(const std::string& path) const = 0;
  // Follows symlinks (inside the root).
  virtual Result<FileInfo> Stat(const std::string& path) const = 0;
  // Reads the target of a symlink, unresolved.
  virtual Result<std::string> ReadLink(const std::string& path) const = 0;
  // Runs an allow-listed program (argv[0] is an absolute path) with a timeout.
  virtual Result<CommandResult> Run(const std::vector<std::string>& argv,
                                    std::chrono::milliseconds timeout) const = 0;
  // The root this view reads ("/" on a live machine); for messages only.
  virtual const std::string& Root() const = 0;
};

// A view of the directory tree at `root`. `allowed_commands` lists absolute program paths.
std::unique_ptr<SystemView> NewRootedSystemView(std::string root,
                                                std::vector<std::string> allowed_commands = {});

// Forwards every call to another view; tests subclass it to make one call fail.
class ForwardingSystemView : public SystemView {
 public:
  explicit ForwardingSystemView(const SystemView& base) : base_(base) {}
  Result<std::string> ReadFile(const std::string& path, size_t max_bytes) const override {
    return base_.ReadFile(path, max_bytes);
  }
  Result<std::vector<DirEntry>> ListDir(const std::string& path) const override {
    return base_.ListDir(path);
  }
  Result<FileInfo> Stat(const std::string& path) const override { return base_.Stat(path); }
  Result<std::string> ReadLink(const std::string& path) const override {
    return base_.ReadLink(path);
  }
  Result<CommandResult> Run(const std::vector<std::string>& argv,
                            std::chrono::milliseconds timeout) const override {
    return base_.Run(argv, timeout);
  }
  const std::string& Root() const override { return base_.Root(); }

 private:
  const SystemView& base_;
};

// A view that cannot read one file (PermissionDenied "<path>: Permission denied"), as when the
// agent does not run as root: tests use it to prove an unreadable source is never a PASS.
class DenyReadView : public ForwardingSystemView {
 public:
  DenyReadView(const SystemView& base, std::string path)
      : ForwardingSystemView(base), path_(std::move(path)) {}
  Result<std::string> ReadFile(const std::string& path, size_t max_bytes) const override {
    if (path == path_) return Status::PermissionDenied(path + ": Permission denied");
    return ForwardingSystemView::ReadFile(path, max_bytes);
  }

 private:
  std::string path_;
};

}  // namespace vigil::collectors

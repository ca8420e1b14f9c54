#include "agent/state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>

#include "common/files.h"
#include "proto/json.h"
#include "vigil/v1/config.pb.h"

namespace vigil::agent {
namespace {

Status CheckPrivate(const std::string& path, bool dir) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, path);
  if (dir && !S_ISDIR(st.st_mode)) return Status::FailedPrecondition(path + " is not a directory");
  if (st.st_uid != ::geteuid()) {
    return Status::PermissionDenied(path + " is owned by uid " + std::to_string(st.st_uid) +
                                    ", not by the agent's uid " + std::to_string(::geteuid()));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return Status::PermissionDenied(path + " has mode " + mode +
                                    "; it must not be accessible to "
                                    "group or others (expected " +
                                    (dir ? "0700" : "0600") + ", fix with chmod " +
                                    (dir ? "700 " : "600 ") + path + ")");
  }
  return Status::Ok();
}

// A private key file: refused when others can read it.
Result<signing::DeviceKey> ReadKey(const std::string& path) {
  if (Status s = CheckPrivate(path, false); !s.ok()) return s;
  auto pem = ReadWholeFile(path, 16384);
  if (!pem.ok()) return pem.status();
  auto key = signing::DeviceKey::FromPem(*pem);
  if (!key.ok()) return Status::InvalidArgument(path + ": " + key.status().message());
  return key;
}

Result<signing::DeviceKey> LoadOrCreate(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return ReadKey(path);
  if (errno != ENOENT) return Status::FromErrno(errno, path);
  auto key = signing::DeviceKey::Generate();
  if (!key.ok()) return key.status();
  auto pem = key->ToPem();
  if (!pem.ok()) return pem.status();
  if (Status s = WriteFileAtomic(path, *pem, 0600); !s.ok()) return s;
  return key;
}

}  // namespace

StateDir::~StateDir() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status StateDir::Prepare() const {
  if (Status s = MakeDirs(path_, 0700); !s.ok()) return s;
  if (Status s = CheckPrivate(path_, true); !s.ok()) return s;
  if (Status s = Lock(); !s.ok()) return s;
  return MakeDirs(OutboxDir(), 0700);
}

Status StateDir::Lock() const {
  if (lock_fd_ >= 0) return Status::Ok();
  std::string lock_path = path_ + "/lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno(errno, lock_path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Status::FailedPrecondition("another vigil-agent is using " + path_ +
                                        " (stop it, or use another --state-dir)");
    }
    return Status::FromErrno(err, "lock " + lock_path);
  }
  lock_fd_ = fd;  // released when the process exits
  return Status::Ok();
}

Result<signing::DeviceKey> StateDir::LoadKey() const { return ReadKey(path_ + "/device.key"); }

Result<signing::DeviceKey> StateDir::LoadOrCreateKey() const {
  return LoadOrCreate(path_ + "/device.key");
}

Result<signing::DeviceKey> StateDir::LoadOrCreateNextKey() const {
  return LoadOrCreate(path_ + "/device.key.next");
}

bool StateDir::HasNextKey() const {
  struct stat st {};
  return ::stat((path_ + "/device.key.next").c_str(), &st) == 0;
}

Status StateDir::PromoteNextKey(const std::string& client_cert_pem) const {
  // The new certificate waits beside the new key; the key's rename is the commit point, and the
  // certificate follows (FinishPromotion completes it after a crash in between). At no point is
  // a key paired with a certificate for another key.
  if (!client_cert_pem.empty()) {
    if (Status s = WriteFileAtomic(path_ + "/device.crt.next", client_cert_pem, 0644); !s.ok()) {
      return s;
    }
  }
  if (::rename((path_ + "/device.key.next").c_str(), (path_ + "/device.key").c_str()) != 0) {
    return Status::FromErrno(errno, "rename " + path_ + "/device.key.next");
  }
  if (Status s = SyncDir(path_); !s.ok()) return s;
  return FinishPromotion();
}

Status StateDir::FinishPromotion() const {
  struct stat st {};
  std::string next_cert = path_ + "/device.crt.next";
  if (::stat(next_cert.c_str(), &st) != 0) return Status::Ok();
  if (HasNextKey()) {
    // The rotation did not commit: that certificate is for a key not in use yet.
    return Status::Ok();
  }
  if (::rename(next_cert.c_str(), (path_ + "/device.crt").c_str()) != 0) {
    return Status::FromErrno(errno, "rename " + next_cert);
  }
  return SyncDir(path_);
}

Status StateDir::DiscardNextKey() const {
  for (const char* name : {"/device.key.next", "/device.crt.next"}) {
    if (::unlink((path_ + name).c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno(errno, path_ + name);
    }
  }
  return SyncDir(path_);
}

std::string StateDir::CaCertificate() const {
  auto pem = ReadWholeFile(path_ + "/ca.crt", 1u << 20);
  return pem.ok() ? *pem : std::string();
}

std::string StateDir::ClientCertificate() const {
  auto pem = ReadWholeFile(path_ + "/device.crt", 1u << 20);
  return pem.ok() ? *pem : std::string();
}

Status StateDir::SaveCaCertificate(const std::string& pem) const {
  return WriteFileAtomic(path_ + "/ca.crt", pem, 0644);
}

Status StateDir::SaveClientCertificate(const std::string& pem) const {
  return WriteFileAtomic(path_ + "/device.crt", pem, 0644);
}

Result<std::string> StateDir::KeyPem() const {
  std::string key_path = path_ + "/device.key";
  if (Status s = CheckPrivate(key_path, false); !s.ok()) return s;
  return ReadWholeFile(key_path, 16384);
}

Result<std::string> StateDir::EnrolledServer() const {
  auto text = ReadWholeFile(path_ + "/device.json", 65536);
  if (!text.ok()) return text.status();
  v1::Enrollment e;
  if (Status s = ParseJsonStrict(*text, &e, path_ + "/device.json"); !s.ok()) return s;
  return e.server();
}

Result<std::string> StateDir::DeviceId() const {
  std::string file = path_ + "/device.json";
  auto text = ReadWholeFile(file, 65536);
  if (!text.ok()) {
    if (text.status().code() == Status::Code::kNotFound) {
      return Status::NotFound("not enrolled (no " + file + "); run vigil-agent enroll");
    }
    return text.status();
  }
  v1::Enrollment e;
  if (Status s = ParseJsonStrict(*text, &e, file); !s.ok()) return s;
  if (e.device_id().empty()) return Status::Corruption(file + ": deviceId is empty");
  return e.device_id();
}

Status StateDir::SaveEnrollment(const std::string& device_id, const std::string& server) const {
  v1::Enrollment e;
  e.set_device_id(device_id);
  e.set_server(server);
  return WriteFileAtomic(path_ + "/device.json", ToJson(e) + "\n", 0600);
}

Result<v1::AgentRunStatus> StateDir::LoadRunStatus() const {
  std::string file = path_ + "/status.json";
  v1::AgentRunStatus st;
  auto text = ReadWholeFile(file, 65536);
  if (!text.ok()) {
    if (text.status().code() == Status::Code::kNotFound) return st;
    return text.status();
  }
  if (Status s = ParseJsonStrict(*text, &st, file); !s.ok()) return s;
  return st;
}

Status StateDir::SaveRunStatus(const v1::AgentRunStatus& status) const {
  return WriteFileAtomic(path_ + "/status.json", ToJson(status) + "\n", 0600);
}

Result<uint64_t> StateDir::NextSequence() const {
  std::string seq_path = path_ + "/sequence";
  uint64_t last = 0;
  auto text = ReadWholeFile(seq_path, 64);
  if (text.ok()) {
    std::string t = *text;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), last);
    if (ec != std::errc() || p != t.data() + t.size()) {
      return Status::Corruption(seq_path + " does not hold a number; refusing to guess a sequence");
    }
  } else if (text.status().code() != Status::Code::kNotFound) {
    return text.status();
  }
  uint64_t next = last + 1;
  if (Status s = WriteFileAtomic(seq_path, std::to_string(next) + "\n", 0600); !s.ok()) return s;
  return next;
}

std::optional<v1::Policy> StateDir::LastPolicy() const {
  auto bytes = ReadWholeFile(path_ + "/policy.pb", 1u << 20);
  if (!bytes.ok()) return std::nullopt;
  v1::Policy p;
  if (!p.ParseFromString(*bytes)) return std::nullopt;
  return p;
}

Status StateDir::SavePolicy(const v1::Policy& policy) const {
  return WriteFileAtomic(path_ + "/policy.pb", policy.SerializeAsString(), 0600);
}

}  // namespace vigil::agent

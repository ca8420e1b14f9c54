#include "agent/outbox.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "common/files.h"

namespace vigil::agent {

std::string Outbox::PathOf(uint64_t sequence) const {
  char name[40];
  std::snprintf(name, sizeof name, "/%020" PRIu64 ".att", sequence);
  return dir_ + name;
}

Status Outbox::Put(uint64_t sequence, const v1::SignedAttestation& signed_att) const {
  auto pending = Pending();
  if (!pending.ok()) return pending.status();
  if (pending->size() >= kMaxEntries) {
    return Status::FailedPrecondition("outbox " + dir_ + " holds " +
                                      std::to_string(pending->size()) +
                                      " unsent attestations; not queueing more until the server "
                                      "acknowledges some");
  }
  return WriteFileAtomic(PathOf(sequence), signed_att.SerializeAsString(), 0600);
}

Result<std::vector<uint64_t>> Outbox::Pending() const {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return Status::FromErrno(errno, dir_);
  std::vector<uint64_t> out;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() != 24 || name.compare(20, 4, ".att") != 0) continue;
    uint64_t seq = 0;
    if (std::sscanf(name.c_str(), "%20" SCNu64, &seq) == 1) out.push_back(seq);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Result<v1::SignedAttestation> Outbox::Load(uint64_t sequence) const {
  auto bytes = ReadWholeFile(PathOf(sequence), 32u << 20);
  if (!bytes.ok()) return bytes.status();
  v1::SignedAttestation s;
  if (!s.ParseFromString(*bytes)) return Status::Corruption(PathOf(sequence) + " does not parse");
  return s;
}

Status Outbox::Acknowledge(uint64_t sequence) const { return RemoveFileDurable(PathOf(sequence)); }

Status Outbox::Reject(uint64_t sequence, const std::string& reason) const {
  std::string rejected = dir_ + "/rejected";
  if (Status s = MakeDirs(rejected, 0700); !s.ok()) return s;
  std::string base = PathOf(sequence).substr(dir_.size());
  if (Status s = WriteFileAtomic(rejected + base + ".reason", reason + "\n", 0600); !s.ok())
    return s;
  if (::rename(PathOf(sequence).c_str(), (rejected + base).c_str()) != 0) {
    return Status::FromErrno(errno, "move " + PathOf(sequence) + " to " + rejected);
  }
  if (Status s = SyncDir(rejected); !s.ok()) return s;
  return SyncDir(dir_);
}

}  // namespace vigil::agent

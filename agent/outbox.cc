#include "agent/outbox.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <set>

#include "common/files.h"

namespace vigil::agent {

std::string Outbox::PathOf(uint64_t sequence) const {
  char name[40];
  std::snprintf(name, sizeof name, "/%020" PRIu64 ".att", sequence);
  return dir_ + name;
}

namespace {

// The check ids an entry carries; empty when it cannot be read (such an entry is dropped first).
std::set<std::string> ChecksOf(const v1::SignedAttestation& s) {
  std::set<std::string> out;
  v1::Attestation a;
  if (!a.ParseFromString(s.attestation())) return out;
  for (const auto& c : a.checks()) out.insert(c.check());
  return out;
}

}  // namespace

Status Outbox::Put(uint64_t sequence, const v1::SignedAttestation& signed_att) const {
  if (Status s = MakeRoom(ChecksOf(signed_att)); !s.ok()) return s;
  return WriteFileAtomic(PathOf(sequence), signed_att.SerializeAsString(), 0600);
}

Status Outbox::MakeRoom(const std::set<std::string>& checks) const {
  auto pending = Pending();
  if (!pending.ok()) return pending.status();
  if (pending->size() < max_entries_) return Status::Ok();
  return Compact(*pending, pending->size() + 1 - max_entries_, checks);
}

Status Outbox::Compact(const std::vector<uint64_t>& pending, size_t count,
                       std::set<std::string> incoming) const {
  // Newest first: which checks a newer entry carries, for each entry.
  std::vector<bool> covered(pending.size(), false);
  std::set<std::string> newer = std::move(incoming);
  for (size_t i = pending.size(); i-- > 0;) {
    auto entry = Load(pending[i]);
    std::set<std::string> mine = entry.ok() ? ChecksOf(*entry) : std::set<std::string>{};
    covered[i] = std::includes(newer.begin(), newer.end(), mine.begin(), mine.end());
    newer.insert(mine.begin(), mine.end());
  }
  std::vector<uint64_t> drop;
  for (size_t i = 0; i < pending.size() && drop.size() < count; ++i) {
    if (covered[i]) drop.push_back(pending[i]);
  }
  for (size_t i = 0; i < pending.size() && drop.size() < count; ++i) {
    if (!covered[i]) drop.push_back(pending[i]);  // nothing else left: the oldest go
  }
  // The count first: a crash between the two leaves it too high, never too low.
  auto dropped = Dropped();
  if (!dropped.ok()) return dropped.status();
  if (Status s =
          WriteFileAtomic(dir_ + "/dropped", std::to_string(*dropped + drop.size()) + "\n", 0600);
      !s.ok()) {
    return s;
  }
  for (uint64_t seq : drop) {
    if (::unlink(PathOf(seq).c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno(errno, "drop " + PathOf(seq));
    }
  }
  return SyncDir(dir_);
}

Result<uint64_t> Outbox::Dropped() const {
  auto text = ReadWholeFile(dir_ + "/dropped", 64);
  if (!text.ok()) {
    if (text.status().code() == Status::Code::kNotFound) return uint64_t{0};
    return text.status();
  }
  uint64_t n = 0;
  if (std::sscanf(text->c_str(), "%20" SCNu64, &n) != 1) {
    return Status::Corruption(dir_ + "/dropped does not hold a count");
  }
  return n;
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

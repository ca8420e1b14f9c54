// Durable file helpers for state that must survive a crash: the agent's key, sequence counter
// and outbox, the server's data directory. Writes are atomic (temp file, fsync, rename, fsync
// of the directory): a reader sees the old content or the new, never a torn file.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"

namespace vigil {

// Reads a whole regular file (at most max_bytes).
Result<std::string> ReadWholeFile(const std::string& path, size_t max_bytes = 64u << 20);

// Reads a secret file (at most 4 KiB) without its trailing newline, spaces or CRs.
Result<std::string> ReadSecretFile(const std::string& path);

// Atomically replaces `path` with `data`, created with `mode`, and makes it durable.
Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode = 0600);

// Creates a directory (and parents) with `mode` when missing. Existing ones are left as they are.
Status MakeDirs(const std::string& path, mode_t mode = 0700);

// fsyncs a directory so renames and unlinks inside it are durable.
Status SyncDir(const std::string& path);

// Removes a file and makes the removal durable.
Status RemoveFileDurable(const std::string& path);

}  // namespace vigil

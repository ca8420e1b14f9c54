// The shared Store: a PostgreSQL database (through libpq) that several vigil-server replicas use
// at once, with the same observable behaviour as the embedded SqliteStore and the same test suite.
//
// Each replica holds one connection guarded by a mutex, so calls from one process run one at a
// time (thread-safe, not parallel); replicas run in parallel and rely on the database: row locks
// and constraints for device and credential updates, and a transaction-scoped advisory lock that
// serializes audit appends across processes so the hash chain never forks. Every Store call is one
// transaction. A dropped connection is re-established once per call when that is safe (before a
// transaction starts); otherwise, and when the server cannot be reached, the call returns
// Unavailable so the caller answers UNAVAILABLE/INTERNAL and the agent retries.
#pragma once

#include <memory>
#include <string>

#include "server/store.h"

namespace vigil::server {

// Connects to `url` (a libpq URI such as postgresql://vigil@127.0.0.1:5432/vigil, or a key=value
// conninfo string) and creates the schema when it is missing. Replicas opening the same database
// at the same time are safe: schema creation runs under an advisory lock.
Result<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url);

}  // namespace vigil::server

// The embedded Store: one SQLite database file in WAL mode. A single connection guarded by a
// mutex; every Store call is one transaction, committed with synchronous=FULL before it returns,
// so whatever the server acknowledges survives a crash.
#pragma once

#include <memory>
#include <string>

#include "server/store.h"

namespace vigil::server {

// Opens (creating when missing) the database at `path` and applies the schema.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace vigil::server

// SQL shared by the SQLite and PostgreSQL stores, so the two can never disagree on what a device
// status means: the effective-status filter (REVOKED > TAMPERED > PENDING > UNKNOWN > STALE >
// verdict), the ",a,b," encoding of failing checks, and short key prefixes for events.
#pragma once

#include <string>
#include <vector>

#include "vigil/v1/attestation.pb.h"

namespace vigil::server::store_sql {

// The WHERE conditions (each starting with " AND ") selecting devices whose effective status is
// `status`; empty for DEVICE_STATUS_UNSPECIFIED. `p` is the parameter marker ('?' for SQLite,
// '$' for PostgreSQL): parameter 2 is the stale-before time, 3 the status number.
std::string StatusFilter(v1::DeviceStatus status, char p);

// failing_checks is stored as ",a,b," so a search for ",a," matches whole names only.
std::string JoinChecks(const std::vector<std::string>& checks);
std::vector<std::string> SplitChecks(const std::string& s);

// The first 8 bytes of a key id in hex, for event texts.
std::string HexPrefix(const std::string& bytes);

}  // namespace vigil::server::store_sql

// The `run` loop on Boost.Asio: one thread, one timer. Collects at start and then every
// interval plus a random jitter (so a fleet does not report in lock-step), retries a failed flush
// with backoff, stops cleanly on SIGTERM/SIGINT and re-reads its configuration on SIGHUP.
#pragma once

#include <functional>
#include <string>

#include "common/status.h"
#include "vigil/v1/config.pb.h"

namespace vigil::agent {

// `load_config` is called at start and on every SIGHUP; a bad config on SIGHUP keeps the old one.
int RunDaemon(const std::function<Result<v1::AgentConfig>()>& load_config);

}  // namespace vigil::agent

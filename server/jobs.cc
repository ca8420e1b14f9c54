#include "server/jobs.h"

#include <spdlog/spdlog.h>

namespace vigil::server {

int BackgroundJobs::RunDue() {
  int ran = 0;
  if (retention_ms_ > 0) {
    int64_t now = clock_.NowMillis();
    auto claimed = store_.ClaimJob("history_retention", now, kRetentionPeriodMs);
    if (!claimed.ok()) {
      spdlog::error("history retention: {}", claimed.status().ToString());
    } else if (*claimed) {
      ++ran;
      auto pruned = store_.PruneHistory(now - retention_ms_);
      if (!pruned.ok()) {
        spdlog::error("history retention: {}", pruned.status().ToString());
        counters_.Inc("jobs.history_retention.failed");
      } else {
        counters_.Inc("history.pruned", *pruned);
        if (*pruned > 0) spdlog::info("history retention: {} old attestations deleted", *pruned);
      }
    }
  }
  return ran;
}

}  // namespace vigil::server

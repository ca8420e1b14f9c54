// Alert sinks: where the server's alerts go (docs/alerts.md). The dispatcher (server/alerts.h)
// reads the durable alert outbox in id order and calls Send once per delivery attempt; the sink
// makes exactly that one attempt, synchronously and bounded by its timeout, and says whether the
// alert got through, should be tried again later, or was refused for good. Retrying, backoff and
// remembering progress are the dispatcher's job, never the sink's.
//
// Three kinds: "webhook" (HTTP(S) POST of the Alert as JSON, signed with HMAC-SHA256), "slack"
// (a Slack-compatible incoming webhook, {"text": ...}) and "syslog" (RFC 5424 over a unix
// datagram socket, UDP, or TCP with RFC 6587 octet counting). Errors are one line and never hold
// a secret: not the HMAC key, and not a URL's path or query (Slack puts its token there).
//
// A sink holds only its configuration after MakeAlertSink (and, for https, an OpenSSL context);
// each Send uses its own io_context and connection, so Send may run on any thread, also
// concurrently. The clock gives timestamps (signatures, syslog), never timeouts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "vigil/v1/config.pb.h"
#include "vigil/v1/fleet_service.pb.h"

namespace vigil::server {

enum class DeliveryOutcome {
  kDelivered,
  kRetry,     // transient: connection refused or reset, timeout, HTTP 408/429/5xx, ...
  kRejected,  // permanent: the receiver refused this alert (other HTTP 4xx); don't retry
};

struct Delivery {
  DeliveryOutcome outcome;
  std::string error;  // empty when delivered; else one line, no secrets
};

class AlertSink {
 public:
  virtual ~AlertSink() = default;
  virtual const std::string& name() const = 0;
  virtual std::string type() const = 0;  // "webhook", "slack", "syslog"
  // One delivery attempt of `alert`, whose idempotency_key is already set.
  virtual Delivery Send(const v1::Alert& alert) = 0;
};

// Builds a sink from its configuration, reading its files now (secret_file, ca_file). Invalid
// configuration is InvalidArgument naming the sink and the field (JSON spelling, e.g.
// `alert sink "ops": webhook.secretFile: ...`).
Result<std::unique_ptr<AlertSink>> MakeAlertSink(const v1::AlertSink& config, const Clock& clock);

// The X-Vigil-Signature header value: "t=<unix_seconds>,v1=<hex>", where hex is the lowercase
// hex HMAC-SHA256 keyed with `secret` over "<unix_seconds>." followed by `body`.
std::string WebhookSignature(const std::string& secret, int64_t unix_seconds,
                             const std::string& body);

// The RFC 5424 line for `alert` (no trailing newline, no BOM): PRI from `facility` and the kind's
// severity, TIMESTAMP from `now_ms` (UTC, milliseconds), this process's id as PROCID, the kind as
// MSGID, structured data [vigil@32473 ...] and a one-line summary as MSG.
std::string SyslogLine(const v1::Alert& alert, uint32_t facility, const std::string& hostname,
                       const std::string& app_name, int64_t now_ms);

}  // namespace vigil::server

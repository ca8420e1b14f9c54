// Store: the server's durable state behind one interface (SQLite today; PostgreSQL later, with
// the same test suite). Every method is one transaction. Implementations are thread-safe.
// Methods that change security-relevant state take an AuditRecord and append it to the
// hash-chained audit log in the same transaction, so a change is never without its record.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "vigil/v1/attestation.pb.h"
#include "vigil/v1/fleet_service.pb.h"

namespace vigil::server {

struct DeviceRecord {
  std::string id;
  std::string key_id;      // SHA-256 of public_key (raw bytes)
  std::string public_key;  // raw Ed25519 key
  std::string hostname;
  v1::PlatformFacts platform;
  int64_t enrolled_at_ms = 0;
  int64_t last_seen_ms = 0;  // 0 = never reported
  uint64_t last_sequence = 0;
  // The verdict of the latest accepted attestation: COMPLIANT, NON_COMPLIANT, or UNKNOWN.
  v1::DeviceStatus status = v1::UNKNOWN;
  std::string status_reason;
  std::vector<std::string> failing_checks;
  bool tampered = false;
  std::string tamper_reason;
  std::string policy_version;      // policy the stored verdicts were judged under
  std::string latest_attestation;  // serialized Attestation carrying the server's verdicts
  bool pending = false;            // waiting for an admin's approval (approval mode)
  int64_t revoked_at_ms = 0;       // 0 = not revoked
  std::string revoke_reason;
  std::vector<std::string> tags;  // admin-set labels, sorted
};

// Enroll secrets and API tokens. Only the SHA-256 of the presented string is stored.
enum class CredentialKind { kEnrollSecret = 1, kToken = 2 };

struct CredentialRecord {
  CredentialKind kind = CredentialKind::kToken;
  std::string id;    // public part of the credential string, unique per kind
  std::string name;  // unique per kind; chosen by whoever created it
  int role = 0;      // tokens: v1 role number (see server/auth.h); secrets: 0
  std::string hash;  // SHA-256 of the whole credential string
  int64_t created_at_ms = 0;
  int64_t expires_at_ms = 0;  // 0 = never
  int64_t revoked_at_ms = 0;  // 0 = valid
};

// One audit log line before the store numbers and chains it.
struct AuditRecord {
  int64_t at_ms = 0;
  std::string actor;
  std::string action;
  std::string target;
  std::string detail;
  bool success = true;
};

// An attestation the server accepted, with the device's state after it.
struct AcceptedAttestation {
  std::string device_id;
  uint64_t sequence = 0;
  std::string digest;  // SHA-256 of the signed attestation bytes
  int64_t issued_at_ms = 0;
  int64_t received_at_ms = 0;
  v1::SignedAttestation envelope;  // kept verbatim so auditors can re-verify the signature
  DeviceRecord device_after;
  // false: issued too long ago to speak for the device now. Stored as history and its sequence
  // consumed, but the device's status, evidence and last-seen time are left as they were.
  bool live = true;
};

struct HistoryRow {
  uint64_t sequence = 0;
  int64_t issued_at_ms = 0;
  int64_t received_at_ms = 0;
  v1::DeviceStatus status = v1::UNKNOWN;
  std::vector<std::string> failing_checks;
};

// An alert as stored in the outbox (see v1::Alert). Device alerts are written by the store
// itself, in the transaction that changes the device's status.
struct AlertRecord {
  uint64_t id = 0;
  std::string kind;
  std::string device_id;
  std::string hostname;
  v1::DeviceStatus status = v1::DEVICE_STATUS_UNSPECIFIED;
  v1::DeviceStatus previous = v1::DEVICE_STATUS_UNSPECIFIED;
  int64_t at_ms = 0;
  std::string reason;
  std::vector<std::string> failing_checks;
};

// Delivery progress of one alert sink. One replica at a time holds a sink's lease and delivers
// its alerts in id order; every change is guarded by the lease.
struct SinkCursor {
  std::string sink;
  uint64_t delivered_id = 0;  // every alert up to this id is delivered or given up
  uint32_t attempts = 0;      // failed attempts at the next alert
  int64_t next_attempt_ms = 0;
  std::string last_error;
  uint64_t failed = 0;  // alerts given up on
  std::string owner;    // the replica holding the lease
  int64_t lease_until_ms = 0;
};

// One stored attestation for the evidence export.
struct ExportRow {
  std::string device_id;
  uint64_t sequence = 0;
  int64_t issued_at_ms = 0;
  int64_t received_at_ms = 0;
  v1::DeviceStatus status = v1::UNKNOWN;
  std::vector<std::string> failing_checks;
  std::string digest;
  v1::SignedAttestation envelope;
};

struct EventRow {
  int64_t at_ms = 0;
  std::string kind;
  std::string detail;
};

struct DeviceFilter {
  v1::DeviceStatus status = v1::DEVICE_STATUS_UNSPECIFIED;  // effective status, incl. STALE
  std::string failing_check;
  std::string os;
  std::string tag;
  int64_t not_seen_since_ms = 0;  // only last_seen_ms < this (0: any)
  int64_t stale_before_ms = 0;    // last_seen older than this is STALE
  std::string after_id;           // paging
  uint32_t limit = 1000;
};

// One applied policy version (Store::ApplyPolicyVersion). Numbers start at 1, without gaps.
struct PolicyVersionRecord {
  uint64_t number = 0;
  uint64_t change_id = 0;
  std::string set_version;  // PolicySetVersion of `set`
  v1::PolicySet set;
  int64_t applied_at_ms = 0;
  std::string applied_by;
};

class Store {
 public:
  virtual ~Store() = default;

  // Inserts a new device; AlreadyExists when the id or key is taken. Records an "enrolled" event.
  virtual Status InsertDevice(const DeviceRecord& device, const AuditRecord& audit) = 0;
  // Approves a PENDING device. NotFound when there is no such device.
  virtual Status ApproveDevice(const std::string& device_id, const AuditRecord& audit) = 0;
  // Revokes a device (sticky). NotFound when there is no such device.
  virtual Status RevokeDevice(const std::string& device_id, const std::string& reason,
                              int64_t at_ms, const AuditRecord& audit) = 0;
  // Replaces the device key if it is still `old_key_id` (FailedPrecondition otherwise);
  // AlreadyExists when the new key belongs to a device.
  virtual Status ReplaceDeviceKey(const std::string& device_id, const std::string& old_key_id,
                                  const std::string& new_public_key, const std::string& new_key_id,
                                  int64_t at_ms, const AuditRecord& audit) = 0;
  // The device holding this key, without latest_attestation (the ingest path's read).
  virtual Result<std::optional<DeviceRecord>> FindDeviceByKeyId(const std::string& key_id) = 0;
  virtual Result<std::optional<DeviceRecord>> GetDevice(const std::string& device_id) = 0;
  // Digest of the stored attestation (device, sequence), if any.
  virtual Result<std::optional<std::string>> AttestationDigest(const std::string& device_id,
                                                               uint64_t sequence) = 0;
  // Stores the attestation and the device's new state atomically.
  virtual Status CommitAttestation(const AcceptedAttestation& accepted) = 0;
  // Group commit: several attestations in ONE transaction (one fsync), all or none. In order, so
  // a later sequence of a device overtakes an earlier one in the same batch as across batches.
  virtual Status CommitAttestations(const std::vector<const AcceptedAttestation*>& batch) = 0;
  // Updates devices' verdict fields (re-evaluation under a new policy), in one transaction. A
  // device whose last_sequence is no longer the one read is skipped: a newer report committed
  // meanwhile and its verdict stands.
  virtual Status UpdateVerdicts(const std::vector<DeviceRecord>& devices) = 0;
  // Flags a device TAMPERED (sticky) and records the event.
  virtual Status MarkTampered(const std::string& device_id, const std::string& reason,
                              int64_t at_ms, const AuditRecord& audit) = 0;
  // In id order, without latest_attestation.
  virtual Result<std::vector<DeviceRecord>> ListDevices(const DeviceFilter& filter) = 0;
  virtual Result<std::vector<HistoryRow>> History(const std::string& device_id, uint32_t limit) = 0;
  // Newest first: sequence < before_sequence (0: any), received in [since_ms, until_ms)
  // (until_ms 0: no bound).
  virtual Result<std::vector<HistoryRow>> HistoryRange(const std::string& device_id,
                                                       int64_t since_ms, int64_t until_ms,
                                                       uint64_t before_sequence,
                                                       uint32_t limit) = 0;
  // The export: stored attestations received in [since_ms, until_ms) of devices with id >=
  // from_device (and sequence > after_sequence for that device), in (device, sequence) order.
  virtual Result<std::vector<ExportRow>> ExportRows(const std::string& from_device,
                                                    uint64_t after_sequence, int64_t since_ms,
                                                    int64_t until_ms, uint32_t limit) = 0;
  // Replaces a device's tags. NotFound when there is no such device.
  virtual Status SetDeviceTags(const std::string& device_id, const std::vector<std::string>& tags,
                               const AuditRecord& audit) = 0;
  virtual Result<std::vector<EventRow>> Events(const std::string& device_id, uint32_t limit) = 0;
  // Counts devices by effective status (STALE computed with stale_before_ms).
  virtual Result<std::vector<std::pair<v1::DeviceStatus, uint64_t>>> CountByStatus(
      int64_t stale_before_ms) = 0;

  // AlreadyExists when the kind already has this id or name.
  virtual Status InsertCredential(const CredentialRecord& credential, const AuditRecord& audit) = 0;
  virtual Result<std::optional<CredentialRecord>> FindCredential(CredentialKind kind,
                                                                 const std::string& id) = 0;
  virtual Result<std::vector<CredentialRecord>> ListCredentials(CredentialKind kind) = 0;
  // Revokes by id or name. NotFound when neither matches.
  virtual Status RevokeCredential(CredentialKind kind, const std::string& id_or_name, int64_t at_ms,
                                  const AuditRecord& audit) = 0;

  // Background work shared by replicas: true when this caller claimed job `name` for the period
  // (its last run is at least `period_ms` before `now_ms`); the claim is one atomic update, so
  // across replicas on one database exactly one wins each period.
  virtual Result<bool> ClaimJob(const std::string& name, int64_t now_ms, int64_t period_ms) = 0;
  // History retention: deletes stored attestations received before `before_ms`, except each
  // device's latest one. Returns how many were deleted. The audit log is never pruned.
  virtual Result<uint64_t> PruneHistory(int64_t before_ms) = 0;

  // Alerts. Device status transitions (into NON_COMPLIANT or TAMPERED, back to COMPLIANT) are
  // raised by the store in the transaction that makes them; STALE by RaiseStaleAlerts.
  // Raises "device.stale" for every device that last reported before stale_before_ms and has
  // not been announced stale since; returns how many.
  virtual Result<uint64_t> RaiseStaleAlerts(int64_t stale_before_ms, int64_t now_ms) = 0;
  // Appends an alert that is not about one device's status (e.g. enrollment failures).
  virtual Result<uint64_t> InsertAlert(const AlertRecord& alert) = 0;
  // Oldest first, id > after_id; only `device_id`'s when not empty.
  virtual Result<std::vector<AlertRecord>> ListAlerts(uint64_t after_id, uint32_t limit,
                                                      const std::string& device_id) = 0;
  // The highest alert id ever handed out (0 when none).
  virtual Result<uint64_t> LastAlertId() = 0;
  // A random id of this database, made with its schema: alert ids restart in another database
  // (a restored backup, a reinstall), so idempotency keys carry it too.
  virtual Result<std::string> InstanceId() = 0;
  // Takes or renews the lease on `sink` for `owner` until now_ms + lease_ms. A sink seen for
  // the first time starts after the newest alert (a new sink is not flooded with the past).
  // nullopt when another owner's lease is still running.
  virtual Result<std::optional<SinkCursor>> LeaseSink(const std::string& sink,
                                                      const std::string& owner, int64_t now_ms,
                                                      int64_t lease_ms) = 0;
  // Records progress; FailedPrecondition when `owner` no longer holds the lease.
  virtual Status UpdateSink(const SinkCursor& cursor) = 0;
  virtual Result<std::vector<SinkCursor>> ListSinks() = 0;
  // Audited authentication failures ("auth.failed") whose target starts with `target_prefix`
  // (e.g. "enroll.") at or after since_ms: the enrollment-failure alerts.
  virtual Result<uint64_t> CountAuthFailures(const std::string& target_prefix,
                                             int64_t since_ms) = 0;

  // ---- Policy versions and change requests (server/policy_changes.h). A change is stored as
  // its v1::PolicyChange (the store numbers it and keeps its state in a column); every write
  // appends its audit record in the same transaction. ----
  // Stores a new change with the next id (the given id is ignored); returns the id.
  virtual Result<uint64_t> InsertPolicyChange(const v1::PolicyChange& change,
                                              const AuditRecord& audit) = 0;
  // Replaces change `change.id` only if its stored state is still `from`: NotFound when there is
  // no such change, FailedPrecondition when its state moved (someone else decided first).
  virtual Status UpdatePolicyChange(const v1::PolicyChange& change, v1::PolicyChangeState from,
                                    const AuditRecord& audit) = 0;
  virtual Result<std::optional<v1::PolicyChange>> GetPolicyChange(uint64_t id) = 0;
  // In id order, id > after_id.
  virtual Result<std::vector<v1::PolicyChange>> ListPolicyChanges(uint64_t after_id,
                                                                  uint32_t limit) = 0;
  // Makes `version` current, in one transaction with the change's update (as UpdatePolicyChange,
  // from state `from`): version.number must be exactly the current number + 1 (0 + 1 when none),
  // otherwise FailedPrecondition (another version was applied meanwhile) and nothing changes.
  virtual Status ApplyPolicyVersion(const PolicyVersionRecord& version,
                                    const v1::PolicyChange& change, v1::PolicyChangeState from,
                                    const AuditRecord& audit) = 0;
  // The highest-numbered version; nullopt before the first.
  virtual Result<std::optional<PolicyVersionRecord>> CurrentPolicyVersion() = 0;
  virtual Result<std::optional<PolicyVersionRecord>> GetPolicyVersion(uint64_t number) = 0;

  // ---- Exceptions, stored as v1::PolicyException (state and expiry also in columns). ----
  virtual Result<uint64_t> InsertException(const v1::PolicyException& exception,
                                           const AuditRecord& audit) = 0;
  // Replaces exception `exception.id` only if its stored state is still `from` (NotFound,
  // FailedPrecondition as for changes). With `alert`, appends it to the alert outbox in the same
  // transaction (expiry alerts are never lost).
  virtual Status UpdateException(const v1::PolicyException& exception, v1::ExceptionState from,
                                 const AuditRecord& audit, const AlertRecord* alert) = 0;
  virtual Result<std::optional<v1::PolicyException>> GetException(uint64_t id) = 0;
  // In id order, id > after_id; only those in `state` unless it is UNSPECIFIED.
  virtual Result<std::vector<v1::PolicyException>> ListExceptions(v1::ExceptionState state,
                                                                  uint64_t after_id,
                                                                  uint32_t limit) = 0;

  // Appends to the hash-chained audit log (for events that change nothing else).
  virtual Status AppendAudit(const AuditRecord& audit) = 0;
  virtual Result<std::vector<v1::AuditEntry>> ListAudit(uint64_t after_id, uint32_t limit) = 0;
};

}  // namespace vigil::server

// ForwardingStore: a Store that forwards every call to another one. Tests subclass it to make
// one call fail (the fault-injection twin of the Store interface).
#pragma once

#include "server/store.h"

namespace vigil::server {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(Store& base) : base_(base) {}

  Status InsertDevice(const DeviceRecord& d, const AuditRecord& a) override {
    return base_.InsertDevice(d, a);
  }
  Status ApproveDevice(const std::string& id, const AuditRecord& a) override {
    return base_.ApproveDevice(id, a);
  }
  Status RevokeDevice(const std::string& id, const std::string& reason, int64_t at,
                      const AuditRecord& a) override {
    return base_.RevokeDevice(id, reason, at, a);
  }
  Status ReplaceDeviceKey(const std::string& id, const std::string& old_key_id,
                          const std::string& new_public_key, const std::string& new_key_id,
                          int64_t at, const AuditRecord& a) override {
    return base_.ReplaceDeviceKey(id, old_key_id, new_public_key, new_key_id, at, a);
  }
  Result<std::optional<DeviceRecord>> FindDeviceByKeyId(const std::string& k) override {
    return base_.FindDeviceByKeyId(k);
  }
  Result<std::optional<DeviceRecord>> GetDevice(const std::string& id) override {
    return base_.GetDevice(id);
  }
  Result<std::optional<std::string>> AttestationDigest(const std::string& id,
                                                       uint64_t seq) override {
    return base_.AttestationDigest(id, seq);
  }
  Status CommitAttestation(const AcceptedAttestation& a) override {
    return base_.CommitAttestation(a);
  }
  Status CommitAttestations(const std::vector<const AcceptedAttestation*>& batch) override {
    return base_.CommitAttestations(batch);
  }
  Status UpdateVerdicts(const std::vector<DeviceRecord>& d) override {
    return base_.UpdateVerdicts(d);
  }
  Status MarkTampered(const std::string& id, const std::string& r, int64_t at,
                      const AuditRecord& a) override {
    return base_.MarkTampered(id, r, at, a);
  }
  Result<std::vector<DeviceRecord>> ListDevices(const DeviceFilter& f) override {
    return base_.ListDevices(f);
  }
  Result<std::vector<HistoryRow>> History(const std::string& id, uint32_t n) override {
    return base_.History(id, n);
  }
  Result<std::vector<EventRow>> Events(const std::string& id, uint32_t n) override {
    return base_.Events(id, n);
  }
  Result<std::vector<std::pair<v1::DeviceStatus, uint64_t>>> CountByStatus(int64_t t) override {
    return base_.CountByStatus(t);
  }
  Status InsertCredential(const CredentialRecord& c, const AuditRecord& a) override {
    return base_.InsertCredential(c, a);
  }
  Result<std::optional<CredentialRecord>> FindCredential(CredentialKind k,
                                                         const std::string& id) override {
    return base_.FindCredential(k, id);
  }
  Result<std::vector<CredentialRecord>> ListCredentials(CredentialKind k) override {
    return base_.ListCredentials(k);
  }
  Status RevokeCredential(CredentialKind k, const std::string& id, int64_t at,
                          const AuditRecord& a) override {
    return base_.RevokeCredential(k, id, at, a);
  }
  Status AppendAudit(const AuditRecord& a) override { return base_.AppendAudit(a); }
  Result<bool> ClaimJob(const std::string& name, int64_t now, int64_t period) override {
    return base_.ClaimJob(name, now, period);
  }
  Result<uint64_t> PruneHistory(int64_t before_ms) override {
    return base_.PruneHistory(before_ms);
  }
  Result<std::vector<v1::AuditEntry>> ListAudit(uint64_t after, uint32_t limit) override {
    return base_.ListAudit(after, limit);
  }
  Result<std::vector<HistoryRow>> HistoryRange(const std::string& id, int64_t since, int64_t until,
                                               uint64_t before, uint32_t limit) override {
    return base_.HistoryRange(id, since, until, before, limit);
  }
  Result<std::vector<ExportRow>> ExportRows(const std::string& from, uint64_t after, int64_t since,
                                            int64_t until, uint32_t limit) override {
    return base_.ExportRows(from, after, since, until, limit);
  }
  Status SetDeviceTags(const std::string& id, const std::vector<std::string>& tags,
                       const AuditRecord& a) override {
    return base_.SetDeviceTags(id, tags, a);
  }
  Result<uint64_t> RaiseStaleAlerts(int64_t stale_before, int64_t now) override {
    return base_.RaiseStaleAlerts(stale_before, now);
  }
  Result<uint64_t> InsertAlert(const AlertRecord& a) override { return base_.InsertAlert(a); }
  Result<std::vector<AlertRecord>> ListAlerts(uint64_t after, uint32_t limit,
                                              const std::string& id) override {
    return base_.ListAlerts(after, limit, id);
  }
  Result<uint64_t> LastAlertId() override { return base_.LastAlertId(); }
  Result<std::string> InstanceId() override { return base_.InstanceId(); }
  Result<std::optional<SinkCursor>> LeaseSink(const std::string& sink, const std::string& owner,
                                              int64_t now, int64_t lease) override {
    return base_.LeaseSink(sink, owner, now, lease);
  }
  Status UpdateSink(const SinkCursor& c) override { return base_.UpdateSink(c); }
  Result<std::vector<SinkCursor>> ListSinks() override { return base_.ListSinks(); }
  Result<uint64_t> CountAuthFailures(const std::string& action, int64_t since) override {
    return base_.CountAuthFailures(action, since);
  }
  Result<uint64_t> InsertPolicyChange(const v1::PolicyChange& c, const AuditRecord& a) override {
    return base_.InsertPolicyChange(c, a);
  }
  Status UpdatePolicyChange(const v1::PolicyChange& c, v1::PolicyChangeState from,
                            const AuditRecord& a) override {
    return base_.UpdatePolicyChange(c, from, a);
  }
  Result<std::optional<v1::PolicyChange>> GetPolicyChange(uint64_t id) override {
    return base_.GetPolicyChange(id);
  }
  Result<std::vector<v1::PolicyChange>> ListPolicyChanges(uint64_t after, uint32_t limit) override {
    return base_.ListPolicyChanges(after, limit);
  }
  Status ApplyPolicyVersion(const PolicyVersionRecord& v, const v1::PolicyChange& c,
                            v1::PolicyChangeState from, const AuditRecord& a) override {
    return base_.ApplyPolicyVersion(v, c, from, a);
  }
  Result<std::optional<PolicyVersionRecord>> CurrentPolicyVersion() override {
    return base_.CurrentPolicyVersion();
  }
  Result<std::optional<PolicyVersionRecord>> GetPolicyVersion(uint64_t number) override {
    return base_.GetPolicyVersion(number);
  }
  Result<uint64_t> InsertException(const v1::PolicyException& e, const AuditRecord& a) override {
    return base_.InsertException(e, a);
  }
  Status UpdateException(const v1::PolicyException& e, v1::ExceptionState from,
                         const AuditRecord& a, const AlertRecord* alert) override {
    return base_.UpdateException(e, from, a, alert);
  }
  Result<std::optional<v1::PolicyException>> GetException(uint64_t id) override {
    return base_.GetException(id);
  }
  Result<std::vector<v1::PolicyException>> ListExceptions(v1::ExceptionState state, uint64_t after,
                                                          uint32_t limit) override {
    return base_.ListExceptions(state, after, limit);
  }

 private:
  Store& base_;
};

}  // namespace vigil::server

// The threat table of docs/security.md, one rejection at a time, at the domain level: every
// case asserts the exact status (or ack code) and that nothing was stored. The transport-level
// rows (TLS 1.3 only, tokens over gRPC, client certificates on the wire) are in the e2e test.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include "collectors/collectors.h"
#include "common/temp_dir.h"
#include "proto/audit_chain.h"
#include "proto/pki.h"
#include "proto/signing.h"
#include "server/aggregator.h"
#include "server/auth.h"
#include "server/fleet.h"
#include "server/forwarding_store.h"
#include "server/sqlite_store.h"

namespace vigil::server {
namespace {

constexpr int64_t kNow = 1'800'000'000'000;

signing::DeviceKey NewKey() {
  auto k = signing::DeviceKey::Generate();
  REQUIRE(k.ok());
  return *k;
}

struct Server {
  TempDir dir{"vigil-sec"};  // first, so it outlives the store
  FakeClock clock{kNow};
  Counters counters;
  std::unique_ptr<Store> store;
  std::unique_ptr<Credentials> credentials;
  std::unique_ptr<Aggregator> aggregator;
  std::unique_ptr<Fleet> fleet;
  std::string secret;
  v1::Policy policy;
  pki::KeyAndCert ca;

  explicit Server(AggregatorOptions opts = {}) {
    auto s = OpenSqliteStore(dir / "vigil.db");
    REQUIRE(s.ok());
    store = std::move(s).value();
    credentials = std::make_unique<Credentials>(*store, clock);
    auto created = credentials->Create(CredentialKind::kEnrollSecret, "fleet", 0, 0, "test");
    REQUIRE(created.ok());
    secret = *created;
    auto c = pki::CreateCa("test CA", kNow / 1000, 10);
    REQUIRE(c.ok());
    ca = *c;
    opts.ca = &ca;
    policy.set_checkin_window_seconds(3600);
    aggregator = std::make_unique<Aggregator>(*store, clock, *credentials, counters, policy, opts);
    fleet = std::make_unique<Fleet>(*store, clock, aggregator->policy(), counters);
  }

  Result<v1::EnrollResponse> TryEnroll(const signing::DeviceKey& key, const std::string& s,
                                       const std::string& peer = "ipv4:10.0.0.1:1000",
                                       std::string csr = "") {
    v1::EnrollRequest req;
    req.set_enroll_secret(s);
    req.set_public_key(key.PublicKey());
    req.set_hostname("laptop");
    req.set_csr(csr);
    CallInfo call;
    call.peer = peer;
    return aggregator->Enroll(req, call);
  }

  std::string Enroll(const signing::DeviceKey& key) {
    auto csr = pki::MakeCsr(*key.ToPem(), "device");
    REQUIRE(csr.ok());
    auto r = TryEnroll(key, secret, "ipv4:10.0.0.1:1000", *csr);
    REQUIRE(r.ok());
    return r->device_id();
  }

  v1::Attestation Att(const std::string& id, uint64_t seq, int64_t issued_ms = 0) {
    v1::Attestation a;
    a.set_device_id(id);
    a.set_sequence(seq);
    a.mutable_issued_at()->set_seconds((issued_ms ? issued_ms : clock.NowMillis()) / 1000);
    a.mutable_platform()->set_os("linux");
    auto* c = a.add_checks();
    c->set_check(collectors::kUsbStorage);
    c->mutable_evidence()->mutable_usb_storage();
    return a;
  }

  Result<v1::ReportResponse> Report(const std::vector<v1::SignedAttestation>& batch,
                                    const std::string& cert_device = "",
                                    const std::string& cert_key = "") {
    v1::ReportRequest req;
    for (const auto& s : batch) *req.add_attestations() = s;
    CallInfo call;
    call.peer = "ipv4:10.0.0.1:1000";
    call.client_cert_device = cert_device;
    call.client_cert_key = cert_key;
    return aggregator->Report(req, call);
  }

  v1::AttestationAck Send(const v1::Attestation& a, const signing::DeviceKey& key,
                          const std::string& cert_device = "", const std::string& cert_key = "") {
    auto s = signing::SignAttestation(a, key);
    REQUIRE(s.ok());
    auto r = Report({*s}, cert_device, cert_key);
    REQUIRE(r.ok());
    REQUIRE(r->acks_size() == 1);
    return r->acks(0);
  }

  size_t History(const std::string& id) {
    auto h = store->History(id, 1000);
    REQUIRE(h.ok());
    return h->size();
  }

  size_t Devices() {
    auto all = store->ListDevices(DeviceFilter());
    REQUIRE(all.ok());
    return all->size();
  }

  DeviceRecord Device(const std::string& id) {
    auto d = store->GetDevice(id);
    REQUIRE(d.ok());
    REQUIRE(d->has_value());
    return **d;
  }

  v1::DeviceStatus Status(const std::string& id) { return fleet->EffectiveStatus(Device(id)); }

  std::vector<v1::AuditEntry> Audit() {
    auto a = store->ListAudit(0, 100000);
    REQUIRE(a.ok());
    return *a;
  }

  bool Audited(const std::string& action, bool success) {
    for (const auto& e : Audit()) {
      if (e.action() == action && e.success() == success) return true;
    }
    return false;
  }
};

TEST_CASE("rogue enrollment: expired, revoked, malformed and other-kind secrets are refused") {
  Server s;
  auto short_lived = s.credentials->Create(CredentialKind::kEnrollSecret, "short", 0, 1000, "t");
  REQUIRE(short_lived.ok());
  auto token = s.credentials->Create(CredentialKind::kToken, "viewer", 1, 0, "t");
  REQUIRE(token.ok());
  s.clock.Advance(1000);
  auto key = NewKey();

  auto r = s.TryEnroll(key, *short_lived);
  REQUIRE(!r.ok());
  CHECK(r.status().code() == Status::Code::kPermissionDenied);
  CHECK(r.status().message().find("expired") != std::string::npos);

  REQUIRE(s.credentials->Revoke(CredentialKind::kEnrollSecret, "fleet", "t").ok());
  r = s.TryEnroll(key, s.secret);
  REQUIRE(!r.ok());
  CHECK(r.status().code() == Status::Code::kPermissionDenied);
  CHECK(r.status().message().find("revoked") != std::string::npos);

  // A token is not an enroll secret, even a valid one.
  r = s.TryEnroll(key, *token);
  REQUIRE(!r.ok());
  CHECK(r.status().code() == Status::Code::kPermissionDenied);
  CHECK(s.Devices() == 0);
  CHECK(s.counters.Get("enroll.rejected.bad_secret") == 3);
  CHECK(s.Audited("auth.failed", false));
  // The presented secret never reaches the audit log.
  for (const auto& e : s.Audit()) {
    CHECK(e.detail().find(s.secret.substr(17)) == std::string::npos);
    CHECK(e.detail().find(short_lived->substr(17)) == std::string::npos);
  }
}

TEST_CASE("a new secret works after rotation; the old one does not") {
  Server s;
  auto fresh = s.credentials->Create(CredentialKind::kEnrollSecret, "fleet-2027", 0, 0, "t");
  REQUIRE(fresh.ok());
  REQUIRE(s.credentials->Revoke(CredentialKind::kEnrollSecret, "fleet", "t").ok());
  CHECK(!s.TryEnroll(NewKey(), s.secret).ok());
  CHECK(s.TryEnroll(NewKey(), *fresh).ok());
  // Revoking twice, or something that does not exist: NotFound.
  CHECK(s.credentials->Revoke(CredentialKind::kEnrollSecret, "fleet", "t").code() ==
        Status::Code::kNotFound);
  CHECK(s.credentials->Create(CredentialKind::kEnrollSecret, "fleet-2027", 0, 0, "t")
            .status()
            .code() == Status::Code::kAlreadyExists);
  CHECK(s.credentials->Create(CredentialKind::kToken, "bad name!", 1, 0, "t").status().code() ==
        Status::Code::kInvalidArgument);
}

TEST_CASE("brute force: a peer that keeps failing is refused even with the right secret") {
  AggregatorOptions opts;
  opts.failed_auth_per_minute = 3;
  Server s(opts);
  for (int i = 0; i < 3; ++i) CHECK(!s.TryEnroll(NewKey(), "vgs_000000000000_guess").ok());
  auto r = s.TryEnroll(NewKey(), s.secret);
  REQUIRE(!r.ok());
  CHECK(r.status().code() == Status::Code::kResourceExhausted);
  CHECK(s.counters.Get("auth.rejected.rate_limited") == 1);
  // Another address is unaffected; the same one recovers as the bucket refills.
  CHECK(s.TryEnroll(NewKey(), s.secret, "ipv4:10.0.0.2:99").ok());
  s.clock.Advance(60 * 1000);
  CHECK(s.TryEnroll(NewKey(), s.secret).ok());
  CHECK(s.Devices() == 2);

  // Failures that slipped past the check concurrently are counted but not written beyond the
  // per-address budget; hostile text is cut and made printable before it is logged or stored.
  size_t rows = s.Audit().size();
  for (int i = 0; i < 10; ++i) s.aggregator->AuthFailed("ipv4:10.0.0.9:1", "auth.x", "d");
  CHECK(s.Audit().size() == rows + 3);
  CHECK(s.counters.Get("auth.x") == 10);
  v1::EnrollRequest huge;
  huge.set_enroll_secret("vgs_000000000000_guess");
  huge.set_public_key(NewKey().PublicKey());
  huge.set_hostname(std::string(100000, 'h'));
  CallInfo call;
  call.peer = "ipv4:10.0.0.3:1";
  CHECK(s.aggregator->Enroll(huge, call).status().code() == Status::Code::kInvalidArgument);
  huge.set_hostname("evil\n2027-01-01 [info] enrolled device dev-fake");
  CHECK(!s.aggregator->Enroll(huge, call).ok());
  CHECK(s.Audit().back().detail().find('\n') == std::string::npos);
  CHECK(Printable(std::string(300, 'a'), 128).size() == 131);
}

// Revokes the device inside the commit's window: between the aggregator's read and the write.
class RevokeDuringCommit : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Status CommitAttestation(const AcceptedAttestation& a) override {
    (void)ForwardingStore::RevokeDevice(a.device_id, "stolen", 1,
                                        AuditRecord{1, "t", "r", "", "", true});
    return ForwardingStore::CommitAttestation(a);
  }
  Status CommitAttestations(const std::vector<const AcceptedAttestation*>& batch) override {
    for (const auto* a : batch) {
      (void)ForwardingStore::RevokeDevice(a->device_id, "stolen", 1,
                                          AuditRecord{1, "t", "r", "", "", true});
    }
    return ForwardingStore::CommitAttestations(batch);
  }
};

TEST_CASE("a revocation racing a report wins: nothing of the report is stored") {
  Server s;
  auto key = NewKey();
  std::string id = s.Enroll(key);
  RevokeDuringCommit racing(*s.store);
  Aggregator agg(racing, s.clock, *s.credentials, s.counters, s.policy, AggregatorOptions());
  v1::ReportRequest req;
  *req.add_attestations() = *signing::SignAttestation(s.Att(id, 1), key);
  auto r = agg.Report(req);
  REQUIRE(r.ok());
  CHECK(r->acks(0).code() == kAckPermissionDenied);
  CHECK(r->acks(0).device_status() == v1::REVOKED);
  CHECK(s.History(id) == 0);
  CHECK(s.Device(id).last_sequence == 0);
  v1::DeviceActionRequest approve;
  approve.set_device_id(id);
  CHECK(s.fleet->ApproveDevice(approve, "x").status().code() == Status::Code::kFailedPrecondition);
}

TEST_CASE("tokens: roles, expiry, revocation and forgery") {
  Server s;
  auto viewer = s.credentials->Create(CredentialKind::kToken, "vic", 1, 0, "t");
  auto admin = s.credentials->Create(CredentialKind::kToken, "ada", 2, 86400000, "t");
  auto approver = s.credentials->Create(CredentialKind::kToken, "abe", 3, 0, "t");
  REQUIRE((viewer.ok() && admin.ok() && approver.ok()));
  CHECK(s.credentials->Authenticate(*viewer)->role == Role::kViewer);
  CHECK(s.credentials->Authenticate(*admin)->Actor() == "token:ada (admin)");

  CHECK(RoleAllows(Role::kViewer, Permission::kReadFleet));
  CHECK(!RoleAllows(Role::kViewer, Permission::kManageDevices));
  CHECK(!RoleAllows(Role::kViewer, Permission::kReadAudit));
  CHECK(RoleAllows(Role::kAdmin, Permission::kManageDevices));
  CHECK(RoleAllows(Role::kAdmin, Permission::kReadAudit));
  CHECK(!RoleAllows(Role::kApprover, Permission::kManageDevices));
  CHECK(RoleAllows(Role::kApprover, Permission::kReadAudit));

  std::string forged = *viewer;
  forged.back() = forged.back() == 'x' ? 'y' : 'x';
  for (const std::string& bad : {forged, std::string(""), std::string("Bearer"),
                                 std::string("vgt_short"), s.secret, std::string(200, 'a')}) {
    auto p = s.credentials->Authenticate(bad);
    REQUIRE(!p.ok());
    CHECK(p.status().code() == Status::Code::kUnauthenticated);
    CHECK(p.status().message().find(bad.size() > 10 ? bad.substr(10) : "\x01") ==
          std::string::npos);
  }
  s.clock.Advance(86400000);
  auto expired = s.credentials->Authenticate(*admin);
  REQUIRE(!expired.ok());
  CHECK(expired.status().code() == Status::Code::kPermissionDenied);
  CHECK(expired.status().message() == "token 'ada' has expired");
  REQUIRE(s.credentials->Revoke(CredentialKind::kToken, "vic", "t").ok());
  auto revoked = s.credentials->Authenticate(*viewer);
  REQUIRE(!revoked.ok());
  CHECK(revoked.status().message() == "token 'vic' was revoked");
  CHECK(s.credentials->Authenticate(*approver).ok());
  // Only hashes are stored.
  auto stored = s.store->ListCredentials(CredentialKind::kToken);
  REQUIRE(stored.ok());
  for (const auto& c : *stored) {
    CHECK(c.hash.size() == 32);
    for (const auto* t : {&*viewer, &*admin, &*approver}) CHECK(c.hash != *t);
  }
  CHECK(ParseDuration("90d").value() == 90LL * 86400000);
  CHECK(ParseDuration("never").value() == 0);
  CHECK(!ParseDuration("9x").ok());
  CHECK(!ParseDuration("-1d").ok());
}

TEST_CASE("approval mode: a pending device's reports wait (code 9) and nothing is stored") {
  AggregatorOptions opts;
  opts.approve_devices = true;
  Server s(opts);
  auto key = NewKey();
  auto enrolled = s.TryEnroll(key, s.secret);
  REQUIRE(enrolled.ok());
  CHECK(enrolled->status() == v1::PENDING);
  std::string id = enrolled->device_id();
  CHECK(s.Status(id) == v1::PENDING);
  auto ack = s.Send(s.Att(id, 1), key);
  CHECK(ack.code() == kAckFailedPrecondition);
  CHECK(s.History(id) == 0);
  CHECK(s.Device(id).last_sequence == 0);

  v1::DeviceActionRequest approve;
  approve.set_device_id(id);
  auto approved = s.fleet->ApproveDevice(approve, "token:ada (admin)");
  REQUIRE(approved.ok());
  CHECK(approved->device().status() == v1::UNKNOWN);
  CHECK(s.Send(s.Att(id, 1), key).code() == kAckOk);  // the queued attestation goes through
  CHECK(s.Status(id) == v1::COMPLIANT);
  CHECK(s.Audited("device.approve", true));
  approve.set_device_id("dev-nope");
  CHECK(s.fleet->ApproveDevice(approve, "x").status().code() == Status::Code::kNotFound);
}

TEST_CASE("revocation: reports refused, nothing stored, flagged REVOKED, no way back in") {
  Server s;
  auto key = NewKey();
  std::string id = s.Enroll(key);
  REQUIRE(s.Send(s.Att(id, 1), key).code() == kAckOk);
  v1::DeviceActionRequest revoke;
  revoke.set_device_id(id);
  CHECK(s.fleet->RevokeDevice(revoke, "x").status().code() == Status::Code::kInvalidArgument);
  revoke.set_reason("laptop stolen");
  auto r = s.fleet->RevokeDevice(revoke, "token:ada (admin)");
  REQUIRE(r.ok());
  CHECK(r->device().status() == v1::REVOKED);
  CHECK(r->device().status_reason() == "revoked: laptop stolen");

  auto ack = s.Send(s.Att(id, 2), key);
  CHECK(ack.code() == kAckPermissionDenied);
  CHECK(ack.message().find("revoked") != std::string::npos);
  CHECK(s.History(id) == 1);
  CHECK(s.Device(id).last_sequence == 1);
  CHECK(s.counters.Get("report.rejected.revoked") == 1);

  auto again = s.TryEnroll(key, s.secret);
  REQUIRE(!again.ok());
  CHECK(again.status().code() == Status::Code::kPermissionDenied);
  v1::DeviceActionRequest approve;
  approve.set_device_id(id);
  CHECK(s.fleet->ApproveDevice(approve, "x").status().code() == Status::Code::kFailedPrecondition);
  v1::ListDevicesRequest list;
  list.set_status(v1::REVOKED);
  CHECK(s.fleet->ListDevices(list)->devices_size() == 1);
  CHECK(s.Audited("device.revoke", true));
  revoke.set_device_id("dev-nope");
  CHECK(s.fleet->RevokeDevice(revoke, "x").status().code() == Status::Code::kNotFound);
}

TEST_CASE("replay window: a report from the future is refused; an old one is history only") {
  Server s;
  auto key = NewKey();
  std::string id = s.Enroll(key);
  REQUIRE(s.Send(s.Att(id, 1), key).code() == kAckOk);
  const int64_t seen = s.Device(id).last_seen_ms;

  auto ack = s.Send(s.Att(id, 2, kNow + 11 * 60 * 1000), key);
  CHECK(ack.code() == kAckInvalidArgument);
  CHECK(ack.message().find("ahead of the server clock") != std::string::npos);
  CHECK(s.History(id) == 1);
  CHECK(s.Device(id).last_sequence == 1);

  // Issued an hour ago with a new sequence (e.g. captured and held back, or queued offline):
  // kept as history; it cannot make a device look compliant now.
  s.clock.Advance(60 * 60 * 1000);
  v1::Attestation old = s.Att(id, 3, kNow);
  old.mutable_checks(0)->mutable_evidence()->set_collection_error("cannot read");
  ack = s.Send(old, key);
  CHECK(ack.code() == kAckOk);
  CHECK(ack.message().find("history") != std::string::npos);
  CHECK(s.History(id) == 2);
  DeviceRecord d = s.Device(id);
  CHECK(d.last_sequence == 3);
  CHECK(d.last_seen_ms == seen);
  CHECK(d.status == v1::COMPLIANT);  // the old NON_COMPLIANT evidence did not replace the live
  CHECK(s.counters.Get("report.accepted_history") == 1);
  // Its sequence is spent: sending 2 now is a replay.
  CHECK(s.Send(s.Att(id, 2), key).code() == kAckPermissionDenied);
}

TEST_CASE("hostile input: limits answer with exact codes, store nothing, and are counted") {
  AggregatorOptions opts;
  opts.max_batch = 3;
  opts.max_attestation_bytes = 4096;
  opts.max_checks = 4;
  opts.reports_per_minute = 2;
  opts.report_burst = 2;
  Server s(opts);
  auto key = NewKey();
  std::string id = s.Enroll(key);

  CHECK(s.Report({}).status().code() == Status::Code::kInvalidArgument);
  std::vector<v1::SignedAttestation> four(4);
  auto r = s.Report(four);
  REQUIRE(!r.ok());
  CHECK(r.status().code() == Status::Code::kInvalidArgument);
  CHECK(r.status().message().find("limit is 3") != std::string::npos);

  v1::Attestation big = s.Att(id, 1);
  big.mutable_checks(0)->set_reason(std::string(5000, 'x'));
  CHECK(s.Send(big, key).code() == kAckInvalidArgument);
  v1::Attestation many = s.Att(id, 1);
  for (int i = 0; i < 4; ++i) *many.add_checks() = many.checks(0);
  auto ack = s.Send(many, key);
  CHECK(ack.code() == kAckInvalidArgument);
  CHECK(ack.message().find("limit is 4") != std::string::npos);
  v1::SignedAttestation garbage;
  garbage.set_key_id(std::string(32, 'k'));
  garbage.set_attestation("\xff\xff\xff");
  r = s.Report({garbage});
  REQUIRE(r.ok());
  CHECK(r->acks(0).code() == kAckUnauthenticated);
  CHECK(s.History(id) == 0);

  // Rate: two per minute per device; the third waits, and so does the rest of its batch.
  std::vector<v1::SignedAttestation> batch;
  for (uint64_t seq = 1; seq <= 3; ++seq)
    batch.push_back(*signing::SignAttestation(s.Att(id, seq), key));
  r = s.Report(batch);
  REQUIRE(r.ok());
  CHECK(r->acks(0).code() == kAckOk);
  CHECK(r->acks(1).code() == kAckOk);
  CHECK(r->acks(2).code() == kAckResourceExhausted);
  CHECK(s.History(id) == 2);
  s.clock.Advance(30 * 1000);
  r = s.Report({batch[2]});
  REQUIRE(r.ok());
  CHECK(r->acks(0).code() == kAckOk);
  CHECK(s.counters.Get("report.rejected.rate_limited") == 1);
  CHECK(s.counters.Get("report.rejected.too_large") == 1);
  CHECK(s.counters.Get("report.rejected.too_many_checks") == 1);
  CHECK(s.counters.Get("report.rejected.batch_too_large") == 1);
  CHECK(s.counters.Get("report.accepted") == 3);
}

TEST_CASE("mutual TLS: certificates from CSRs, and reports bound to the certificate's device") {
  AggregatorOptions opts;
  opts.require_client_cert = true;
  Server s(opts);
  auto key = NewKey();
  auto other = NewKey();
  // A CSR for a different key than the one enrolling: refused, nothing stored.
  auto other_csr = pki::MakeCsr(*other.ToPem(), "x");
  REQUIRE(other_csr.ok());
  auto bad = s.TryEnroll(key, s.secret, "ipv4:10.0.0.1:1", *other_csr);
  REQUIRE(!bad.ok());
  CHECK(bad.status().code() == Status::Code::kInvalidArgument);
  CHECK(s.Devices() == 0);

  auto csr = pki::MakeCsr(*key.ToPem(), "anything");
  REQUIRE(csr.ok());
  auto enrolled = s.TryEnroll(key, s.secret, "ipv4:10.0.0.1:1", *csr);
  REQUIRE(enrolled.ok());
  std::string id = enrolled->device_id();
  CHECK(pki::CertCommonName(enrolled->client_certificate()).value() == id);
  CHECK(pki::VerifyCertChain(enrolled->client_certificate(), s.ca.cert_pem, kNow / 1000).ok());

  auto signed_att = signing::SignAttestation(s.Att(id, 1), key);
  auto r = s.Report({*signed_att});  // no client certificate on the connection
  REQUIRE(!r.ok());
  CHECK(r.status().code() == Status::Code::kUnauthenticated);
  std::string other_id = s.Enroll(other);
  const std::string k = key.PublicKey(), ok = other.PublicKey();
  CHECK(s.Send(s.Att(id, 1), key, other_id, ok).code() == kAckPermissionDenied);
  // The right name with another key (a certificate from before a key rotation) is refused too.
  CHECK(s.Send(s.Att(id, 1), key, id, ok).code() == kAckPermissionDenied);
  CHECK(s.History(id) == 0);
  CHECK(s.Status(id) == v1::UNKNOWN);  // refused, not flagged: the signature itself was fine
  CHECK(s.Send(s.Att(id, 1), key, id, k).code() == kAckOk);
  // A device with a valid certificate sending junk under an unknown key in another device's
  // name, or with a retired key in the device's own name, gets nobody flagged.
  auto stranger = NewKey();
  CHECK(s.Send(s.Att(id, 2), stranger, other_id, ok).code() == kAckUnauthenticated);
  CHECK(s.Send(s.Att(id, 2), stranger, id, ok).code() == kAckUnauthenticated);
  CHECK(s.Status(id) == v1::COMPLIANT);
  CHECK(s.Send(s.Att(id, 2), stranger, id, k).code() == kAckUnauthenticated);
  CHECK(s.Status(id) == v1::TAMPERED);  // from its own connection: the device's key is abused
  // Once flagged, more forgeries add no events or audit rows (a flood cannot fill the log).
  size_t audit_rows = s.Audit().size();
  for (int i = 0; i < 20; ++i) s.Send(s.Att(id, 3), stranger, id, k);
  CHECK(s.Audit().size() == audit_rows);
  CHECK(s.counters.Get("report.rejected.unknown_key") == 23);
}

v1::RotateKeyRequest Rotation(const std::string& id, const signing::DeviceKey& old_key,
                              const signing::DeviceKey& signer_old,
                              const signing::DeviceKey& new_key, int64_t issued_ms) {
  v1::KeyRotation rot;
  rot.set_device_id(id);
  rot.set_old_key_id(old_key.KeyId());
  rot.set_new_public_key(new_key.PublicKey());
  rot.mutable_issued_at()->set_seconds(issued_ms / 1000);
  v1::RotateKeyRequest req;
  req.set_rotation(rot.SerializeAsString());
  std::string msg = std::string(signing::kRotationDomain) + req.rotation();
  req.set_old_signature(*signer_old.Sign(msg));
  req.set_new_signature(*new_key.Sign(msg));
  return req;
}

TEST_CASE("key rotation: both keys must sign, the statement must be fresh, then only the new key") {
  Server s;
  auto key = NewKey();
  auto next = NewKey();
  auto thief = NewKey();
  std::string id = s.Enroll(key);
  REQUIRE(s.Send(s.Att(id, 1), key).code() == kAckOk);

  // Signed by someone else instead of the current key.
  auto r = s.aggregator->RotateKey(Rotation(id, key, thief, next, kNow));
  REQUIRE(!r.ok());
  CHECK(r.status().code() == Status::Code::kPermissionDenied);
  CHECK(s.Device(id).key_id == key.KeyId());
  CHECK(s.Audited("auth.failed", false));
  CHECK(s.counters.Get("rotate.rejected.bad_signature") == 1);
  // The new key did not sign (no proof of possession).
  auto req = Rotation(id, key, key, next, kNow);
  req.set_new_signature(std::string(64, '\0'));
  CHECK(s.aggregator->RotateKey(req).status().code() == Status::Code::kPermissionDenied);
  // Old or future statements.
  CHECK(s.aggregator->RotateKey(Rotation(id, key, key, next, kNow - 3600 * 1000)).status().code() ==
        Status::Code::kFailedPrecondition);
  // Garbage and unknown devices.
  v1::RotateKeyRequest garbage;
  garbage.set_rotation("\xff\x01");
  CHECK(s.aggregator->RotateKey(garbage).status().code() == Status::Code::kInvalidArgument);
  CHECK(s.aggregator->RotateKey(Rotation("dev-nope", key, key, next, kNow)).status().code() ==
        Status::Code::kPermissionDenied);
  // A key another device already uses.
  auto taken = NewKey();
  s.Enroll(taken);
  CHECK(s.aggregator->RotateKey(Rotation(id, key, key, taken, kNow)).status().code() ==
        Status::Code::kAlreadyExists);
  CHECK(s.Device(id).key_id == key.KeyId());

  REQUIRE(s.aggregator->RotateKey(Rotation(id, key, key, next, kNow)).ok());
  CHECK(s.Device(id).key_id == next.KeyId());
  CHECK(s.aggregator->RotateKey(Rotation(id, key, key, next, kNow)).ok());  // a retry: no-op
  // The statement cannot be replayed to go back, and the old key no longer signs for the device.
  CHECK(s.aggregator->RotateKey(Rotation(id, next, next, key, kNow)).ok() == true);
  CHECK(s.Device(id).key_id == key.KeyId());  // (a legitimate rotation back, signed by `next`)
  REQUIRE(s.aggregator->RotateKey(Rotation(id, key, key, next, kNow)).ok());
  CHECK(s.aggregator->RotateKey(Rotation(id, key, key, thief, kNow)).status().code() ==
        Status::Code::kFailedPrecondition);
  CHECK(s.Send(s.Att(id, 2), next).code() == kAckOk);
  CHECK(s.Send(s.Att(id, 3), key).code() == kAckUnauthenticated);
  CHECK(s.Status(id) == v1::TAMPERED);  // a report under a retired key claims the device
}

TEST_CASE("audit log: every security event, chained; edits and deletions are detected") {
  Server s;
  auto key = NewKey();
  std::string id = s.Enroll(key);
  (void)s.TryEnroll(NewKey(), "vgs_0123456789ab_wrong");
  v1::DeviceActionRequest revoke;
  revoke.set_device_id(id);
  revoke.set_reason("lost");
  REQUIRE(s.fleet->RevokeDevice(revoke, "token:ada (admin)").ok());
  auto entries = s.Audit();
  REQUIRE(entries.size() == 4);  // secret created, enrolled, failed enrollment, revoked
  CHECK(entries[0].action() == "enroll_secret.create");
  CHECK(entries[1].action() == "device.enroll");
  CHECK(entries[2].action() == "auth.failed");
  CHECK(entries[3].action() == "device.revoke");
  CHECK(entries[3].actor() == "token:ada (admin)");
  auto ok = audit::VerifyChain(entries, std::string(32, '\0'));
  REQUIRE(ok.ok());
  CHECK(ok->checked == 4);

  // The server's own connection cannot change or delete entries.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((s.dir / "vigil.db").c_str(), &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "UPDATE audit SET detail='x' WHERE id=2", nullptr, nullptr, nullptr) !=
        SQLITE_OK);
  CHECK(sqlite3_exec(db, "DELETE FROM audit WHERE id=2", nullptr, nullptr, nullptr) != SQLITE_OK);
  // Someone with the file drops the guard and edits: the chain breaks at that entry.
  REQUIRE(sqlite3_exec(db,
                       "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; "
                       "UPDATE audit SET actor='cli:uid 0' WHERE id=4",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  auto edited = audit::VerifyChain(s.Audit(), std::string(32, '\0'));
  REQUIRE(!edited.ok());
  CHECK(edited.status().message().find("audit entry 4") != std::string::npos);
  REQUIRE(sqlite3_exec(db, "DELETE FROM audit WHERE id=3", nullptr, nullptr, nullptr) == SQLITE_OK);
  auto deleted = audit::VerifyChain(s.Audit(), std::string(32, '\0'));
  REQUIRE(!deleted.ok());
  CHECK(deleted.status().message().find("deleted") != std::string::npos);
  sqlite3_close(db);
}

}  // namespace
}  // namespace vigil::server

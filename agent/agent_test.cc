#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "agent/agent.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <map>
#include <optional>
#include <set>

#include "common/files.h"
#include "common/temp_dir.h"
#include "proto/pki.h"
#include "proto/signing.h"

namespace vigil::agent {
namespace {

// A server double: records what it got; can be down, or reject particular sequences.
class FakeTransport : public Transport {
 public:
  bool down = false;
  std::set<uint64_t> reject;
  std::map<uint64_t, int32_t> transient;  // sequence -> ack code to answer (e.g. 8, 9)
  v1::EnrollRequest last_enroll;
  std::string issue_certificate;      // returned as the client certificate at enrollment
  std::optional<pki::KeyAndCert> ca;  // when set, certificates are issued for the CSR
  bool rotate_fails = false;
  bool keep_envelopes = false;
  std::vector<v1::SignedAttestation> envelopes;
  std::vector<uint64_t> received;
  int reports = 0;

  Result<v1::EnrollResponse> Enroll(const v1::EnrollRequest& req) override {
    if (down) return Status::Unavailable("down");
    if (req.enroll_secret() != "s3cret-s3cret-s3cret")
      return Status::PermissionDenied("bad secret");
    last_enroll = req;
    v1::EnrollResponse r;
    r.set_device_id("dev-test");
    r.set_client_certificate(issue_certificate);
    if (ca)
      r.set_client_certificate(
          *pki::IssueClientCert(*ca, req.csr(), "dev-test", 1'800'000'000, 365));
    return r;
  }
  Result<v1::ReportResponse> Report(const v1::ReportRequest& req) override {
    ++reports;
    if (down) return Status::Unavailable("down");
    v1::ReportResponse r;
    for (const auto& s : req.attestations()) {
      if (keep_envelopes) envelopes.push_back(s);
      v1::Attestation a;
      REQUIRE(a.ParseFromString(s.attestation()));
      auto* ack = r.add_acks();
      ack->set_sequence(a.sequence());
      if (reject.count(a.sequence())) {
        ack->set_code(7);
        ack->set_message("replay");
      } else if (transient.count(a.sequence())) {
        ack->set_code(transient[a.sequence()]);
        ack->set_message("later");
      } else {
        received.push_back(a.sequence());
      }
    }
    return r;
  }
  Result<v1::RotateKeyResponse> RotateKey(const v1::RotateKeyRequest& req) override {
    if (down) return Status::Unavailable("down");
    rotations.push_back(req);
    if (rotate_fails) return Status::PermissionDenied("no");
    v1::RotateKeyResponse r;
    r.set_client_certificate("new-cert");
    return r;
  }
  std::vector<v1::RotateKeyRequest> rotations;
};

struct Fixture {
  TempDir dir{"vigil-agent"};
  TempDir root{"vigil-agent"};  // an empty root for the system view
  std::unique_ptr<collectors::SystemView> view = collectors::NewRootedSystemView(root.path());
  FakeClock clock{1'800'000'000'000};
  v1::AgentConfig config;
  FakeTransport transport;
  Fixture() {
    config.set_server("127.0.0.1:1");
    config.set_state_dir(dir / "state");
    REQUIRE(NormalizeConfig(&config).ok());
    config.set_max_batch(2);
  }
};

TEST_CASE("enrollment creates a 0600 key in a 0700 directory and records the device id") {
  Fixture f;
  Agent agent(f.config, *f.view, f.clock);
  CHECK(agent.Enroll(f.transport, "wrong").code() == Status::Code::kPermissionDenied);
  CHECK(!agent.state().DeviceId().ok());
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  CHECK(*agent.state().DeviceId() == "dev-test");
  struct stat st {};
  REQUIRE(::stat((f.config.state_dir() + "/device.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat(f.config.state_dir().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  // Enrolling again keeps the same key.
  auto k1 = agent.state().LoadKey();
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  auto k2 = agent.state().LoadKey();
  REQUIRE(k1.ok());
  REQUIRE(k2.ok());
  CHECK(k1->PublicKey() == k2->PublicKey());
}

TEST_CASE("a key or state directory readable by others is refused") {
  Fixture f;
  Agent agent(f.config, *f.view, f.clock);
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  std::string key = f.config.state_dir() + "/device.key";
  REQUIRE(::chmod(key.c_str(), 0644) == 0);
  auto k = agent.state().LoadKey();
  REQUIRE(!k.ok());
  CHECK(k.status().message().find("0644") != std::string::npos);
  CHECK(!agent.CollectAndQueue().ok());
  REQUIRE(::chmod(key.c_str(), 0600) == 0);
  REQUIRE(::chmod(f.config.state_dir().c_str(), 0755) == 0);
  CHECK(!agent.CollectAndQueue().ok());
}

TEST_CASE("two agent processes cannot share a state directory") {
  Fixture f;
  StateDir first(f.config.state_dir());
  REQUIRE(first.Prepare().ok());
  StateDir second(f.config.state_dir());
  Status s = second.Prepare();
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK(s.message().find("another vigil-agent") != std::string::npos);
}

TEST_CASE("sequence numbers are persisted and never reused") {
  Fixture f;
  StateDir state(f.config.state_dir());
  REQUIRE(state.Prepare().ok());
  CHECK(*state.NextSequence() == 1);
  CHECK(*state.NextSequence() == 2);
  StateDir reopened(f.config.state_dir());
  CHECK(*reopened.NextSequence() == 3);
  REQUIRE(WriteFileAtomic(f.config.state_dir() + "/sequence", "garbage").ok());
  CHECK(!reopened.NextSequence().ok());
}

TEST_CASE(
    "offline: attestations wait in the outbox and are sent in order once the server is back") {
  Fixture f;
  Agent agent(f.config, *f.view, f.clock);
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  f.transport.down = true;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(agent.CollectAndQueue().ok());
    CHECK(!agent.Flush(f.transport).ok());
  }
  Outbox outbox(f.config.state_dir() + "/outbox");
  CHECK(outbox.Pending()->size() == 5);
  // A restart (new Agent over the same state) resends everything, oldest first, in batches.
  f.transport.down = false;
  Agent restarted(f.config, *f.view, f.clock);
  auto stats = restarted.Flush(f.transport);
  REQUIRE(stats.ok());
  CHECK(stats->acknowledged == 5);
  CHECK(f.transport.received == std::vector<uint64_t>{1, 2, 3, 4, 5});
  CHECK(f.transport.reports == 5 + 3);  // 5 failed attempts, then batches of 2, 2, 1
  CHECK(outbox.Pending()->empty());
}

v1::SignedAttestation WithChecks(uint64_t seq, std::vector<std::string> checks) {
  v1::Attestation a;
  a.set_sequence(seq);
  for (const auto& c : checks) a.add_checks()->set_check(c);
  v1::SignedAttestation s;
  s.set_attestation(a.SerializeAsString());
  return s;
}

TEST_CASE("a full outbox drops the oldest entries whose checks newer ones carry, and counts them") {
  TempDir dir("vigil-agent");
  Outbox outbox(dir.path(), 3);
  REQUIRE(outbox.Put(1, WithChecks(1, {"a", "b"})).ok());
  REQUIRE(outbox.Put(2, WithChecks(2, {"a"})).ok());
  REQUIRE(outbox.Put(3, WithChecks(3, {"b"})).ok());
  CHECK(*outbox.Dropped() == 0);
  REQUIRE(outbox.Put(4, WithChecks(4, {"a"})).ok());  // 1 is covered by 2 and 3: it goes
  CHECK(*outbox.Pending() == std::vector<uint64_t>{2, 3, 4});
  REQUIRE(outbox.Put(5, WithChecks(5, {"a"})).ok());  // 2 goes; 3 is the latest "b": it stays
  CHECK(*outbox.Pending() == std::vector<uint64_t>{3, 4, 5});
  REQUIRE(outbox.Put(6, WithChecks(6, {"a"})).ok());
  CHECK(*outbox.Pending() == std::vector<uint64_t>{3, 5, 6});
  // Only "b" entries older than the newest "b": none are covered, so the oldest goes.
  TempDir tight_dir("vigil-agent");
  Outbox tight(tight_dir.path(), 2);
  REQUIRE(tight.Put(1, WithChecks(1, {"x"})).ok());
  REQUIRE(tight.Put(2, WithChecks(2, {"y"})).ok());
  REQUIRE(tight.Put(3, WithChecks(3, {"z"})).ok());
  CHECK(*tight.Pending() == std::vector<uint64_t>{2, 3});
  CHECK(*tight.Dropped() == 1);
  CHECK(*outbox.Dropped() == 3);
  // The count is durable: a new Outbox over the directory reads it.
  CHECK(*Outbox(dir.path(), 3).Dropped() == 3);
}

TEST_CASE("a long outage: the outbox stays bounded, the newest arrive, the drops are reported") {
  Fixture f;
  f.config.set_outbox_max_entries(10);
  REQUIRE(NormalizeConfig(&f.config).ok());
  Agent agent(f.config, *f.view, f.clock);
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  f.transport.down = true;
  // Hourly collections for 25 hours with the server away.
  for (int i = 0; i < 25; ++i) {
    REQUIRE(agent.CollectAndQueue().ok());
    CHECK(!agent.Flush(f.transport).ok());
    f.clock.Advance(3'600'000);
  }
  Outbox outbox(f.config.state_dir() + "/outbox");
  CHECK(outbox.Pending()->size() == 10);
  CHECK(*outbox.Dropped() == 15);
  f.transport.down = false;
  f.transport.keep_envelopes = true;
  auto stats = agent.Flush(f.transport);
  REQUIRE(stats.ok());
  CHECK(stats->acknowledged == 10);
  CHECK(f.transport.received ==
        std::vector<uint64_t>{16, 17, 18, 19, 20, 21, 22, 23, 24, 25});  // the newest, in order
  v1::Attestation last;
  REQUIRE(last.ParseFromString(f.transport.envelopes.back().attestation()));
  CHECK(last.agent_health().outbox_dropped() == 15);
  CHECK(last.agent_health().outbox_depth() == 9);
  v1::Attestation first;
  REQUIRE(first.ParseFromString(f.transport.envelopes.front().attestation()));
  CHECK(first.agent_health().outbox_dropped() == 6);  // seq 16 made room by dropping 6
  // Health apart from compliance: 24 failed reports before seq 25, never reported, the error.
  CHECK(last.agent_health().report_failures() == 24);
  CHECK(last.agent_health().last_report_ms() == 0);
  CHECK(last.agent_health().last_error() == "report: down");
  CHECK(outbox.Pending()->empty());
  // The run status `vigil-agent status` shows: the last report succeeded, no error left.
  auto run = agent.state().LoadRunStatus();
  REQUIRE(run.ok());
  CHECK(run->last_report_ms() == f.clock.NowMillis());
  CHECK(run->last_collection_ms() == f.clock.NowMillis() - 3'600'000);
  CHECK(run->last_error().empty());
  const int64_t reported = f.clock.NowMillis();
  f.transport.down = true;
  f.clock.Advance(60'000);
  REQUIRE(agent.CollectAndQueue().ok());
  CHECK(!agent.Flush(f.transport).ok());
  CHECK(agent.state().LoadRunStatus()->last_error().find("report: ") == 0);
  CHECK(agent.state().LoadRunStatus()->last_report_ms() == reported);
  CHECK(agent.state().LoadRunStatus()->last_attempt_ms() == f.clock.NowMillis());
  // A bound outside 10..1000000 is refused, naming the field.
  v1::AgentConfig bad = f.config;
  bad.set_outbox_max_entries(5);
  CHECK(NormalizeConfig(&bad).message().find("outboxMaxEntries") != std::string::npos);
}

TEST_CASE(
    "agent health: failed reports and the last error reset on success; complete collections") {
  Fixture f;
  // The empty root cannot give password_policy evidence (ERROR); the compliant fixture gives
  // evidence for every check.
  auto full = collectors::NewRootedSystemView(std::string(VIGIL_FIXTURES_DIR) + "/e2e/compliant");
  // One Agent at a time owns the state directory: each step opens it with the view it needs.
  auto with = [&](const collectors::SystemView& view, const std::function<void(Agent&)>& step) {
    Agent agent(f.config, view, f.clock);
    step(agent);
  };
  f.transport.keep_envelopes = true;
  auto health_of = [&](size_t i) {
    v1::Attestation a;
    REQUIRE(a.ParseFromString(f.transport.envelopes.at(i).attestation()));
    return a.agent_health();
  };
  with(*f.view, [&](Agent& a) {
    REQUIRE(a.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
    REQUIRE(a.CollectAndQueue().ok());
    REQUIRE(a.Flush(f.transport).ok());
  });
  CHECK(health_of(0).last_complete_collection_ms() == 0);
  CHECK(health_of(0).report_failures() == 0);
  const int64_t reported = f.clock.NowMillis();

  f.clock.Advance(60'000);
  const int64_t complete = f.clock.NowMillis();
  f.transport.down = true;
  with(*full, [&](Agent& a) {
    REQUIRE(a.CollectAndQueue().ok());
    CHECK(!a.Flush(f.transport).ok());
  });
  f.clock.Advance(60'000);
  with(*f.view, [&](Agent& a) {
    REQUIRE(a.CollectAndQueue().ok());
    CHECK(!a.Flush(f.transport).ok());
  });
  f.transport.down = false;
  with(*full, [&](Agent& a) { REQUIRE(a.Flush(f.transport).ok()); });
  REQUIRE(f.transport.envelopes.size() == 3);
  CHECK(health_of(1).last_complete_collection_ms() == complete);
  CHECK(health_of(1).last_report_ms() == reported);
  CHECK(health_of(1).report_failures() == 0);
  CHECK(health_of(2).last_complete_collection_ms() == complete);  // its own had an ERROR
  CHECK(health_of(2).report_failures() == 1);
  CHECK(health_of(2).last_error() == "report: down");
  // After a successful report the next attestation is healthy again.
  f.clock.Advance(60'000);
  with(*full, [&](Agent& a) {
    REQUIRE(a.CollectAndQueue().ok());
    REQUIRE(a.Flush(f.transport).ok());
  });
  CHECK(health_of(3).report_failures() == 0);
  CHECK(health_of(3).last_error().empty());
  CHECK(health_of(3).last_report_ms() == f.clock.NowMillis() - 60'000);
  CHECK(health_of(3).last_complete_collection_ms() == f.clock.NowMillis());
}

TEST_CASE("a rejected attestation is kept aside with its reason, not lost") {
  Fixture f;
  Agent agent(f.config, *f.view, f.clock);
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  REQUIRE(agent.CollectAndQueue().ok());
  f.transport.reject = {1};
  auto stats = agent.Flush(f.transport);
  REQUIRE(stats.ok());
  CHECK(stats->rejected == 1);
  auto reason =
      ReadWholeFile(f.config.state_dir() + "/outbox/rejected/00000000000000000001.att.reason");
  REQUIRE(reason.ok());
  CHECK(*reason == "replay\n");
  CHECK(ReadWholeFile(f.config.state_dir() + "/outbox/rejected/00000000000000000001.att").ok());
}

TEST_CASE("attestations are signed by the device key and carry the sequence") {
  Fixture f;
  Agent agent(f.config, *f.view, f.clock);
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  auto seq = agent.CollectAndQueue();
  REQUIRE(seq.ok());
  Outbox outbox(f.config.state_dir() + "/outbox");
  auto s = outbox.Load(*seq);
  REQUIRE(s.ok());
  auto key = agent.state().LoadKey();
  REQUIRE(key.ok());
  auto att = signing::VerifyAttestation(*s, key->PublicKey());
  REQUIRE(att.ok());
  CHECK(att->device_id() == "dev-test");
  CHECK(att->sequence() == *seq);
  CHECK(att->checks_size() == 3);
  CHECK(att->issued_at().seconds() == 1'800'000'000);
}

TEST_CASE("config validation names the field") {
  v1::AgentConfig c;
  c.set_interval_seconds(5);
  auto s = NormalizeConfig(&c);
  REQUIRE(!s.ok());
  CHECK(s.message().find("intervalSeconds") != std::string::npos);
  c.set_interval_seconds(60);
  c.set_jitter_seconds(61);
  CHECK(NormalizeConfig(&c).message().find("jitterSeconds") != std::string::npos);
}

TEST_CASE("rate-limited and pending-approval answers keep attestations queued, in order") {
  Fixture f;
  Agent agent(f.config, *f.view, f.clock);
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  for (int32_t code : {8, 9}) {
    f.transport.transient = {{1, code}};
    if (code == 8) REQUIRE(agent.CollectAndQueue().ok());
    auto stats = agent.Flush(f.transport);
    CHECK(!stats.ok());
    CHECK(Outbox(f.config.state_dir() + "/outbox").Pending()->size() == 1);
    CHECK(!ReadWholeFile(f.config.state_dir() + "/outbox/rejected/00000000000000000001.att.reason")
               .ok());
  }
  f.transport.transient.clear();
  REQUIRE(agent.Flush(f.transport).ok());
  CHECK(f.transport.received == std::vector<uint64_t>{1});
}

TEST_CASE("enrollment sends a CSR for the device key and keeps the issued certificate") {
  Fixture f;
  f.transport.ca = *pki::CreateCa("test", 1'800'000'000, 10);
  Agent agent(f.config, *f.view, f.clock);
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  auto key = agent.state().LoadKey();
  REQUIRE(key.ok());
  CHECK(pki::CheckCsr(f.transport.last_enroll.csr(), key->PublicKey()).ok());
  std::string cert = agent.state().ClientCertificate();
  CHECK(pki::CertEd25519PublicKey(cert).value() == key->PublicKey());
  // The transport presents it, with the device key, and trusts the CA kept beside them.
  REQUIRE(agent.state().SaveCaCertificate("ca-pem").ok());
  auto options = TransportOptionsFor(f.config);
  REQUIRE(options.ok());
  CHECK(options->ca_pem == "ca-pem");
  CHECK(options->client_cert_pem == cert);
  CHECK(options->client_key_pem == *agent.state().KeyPem());
  f.config.set_insecure(true);
  CHECK(TransportOptionsFor(f.config)->client_key_pem.empty());
}

TEST_CASE("key rotation: both keys sign, the new key takes over only once the server agrees") {
  Fixture f;
  Agent agent(f.config, *f.view, f.clock);
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  auto old_key = agent.state().LoadKey();
  REQUIRE(old_key.ok());

  // Attestations queued under the old key (server down) are kept.
  f.transport.down = true;
  REQUIRE(agent.CollectAndQueue().ok());

  // Unreachable server: the rotation stays pending and blocks signing with either key.
  CHECK(agent.RotateKey(f.transport).code() == Status::Code::kUnavailable);
  CHECK(agent.RotationPending());
  CHECK(agent.state().LoadKey()->PublicKey() == old_key->PublicKey());
  CHECK(agent.CollectAndQueue().status().code() == Status::Code::kFailedPrecondition);
  f.transport.down = false;

  // Refused for good: the next key is dropped, the old one stays in use.
  f.transport.rotate_fails = true;
  CHECK(agent.RotateKey(f.transport).code() == Status::Code::kPermissionDenied);
  CHECK(!agent.RotationPending());
  CHECK(agent.state().LoadKey()->PublicKey() == old_key->PublicKey());

  f.transport.rotate_fails = false;
  REQUIRE(agent.RotateKey(f.transport).ok());
  REQUIRE(f.transport.rotations.size() == 2);
  const auto& req = f.transport.rotations.back();
  // A refused rotation's key is not reused.
  v1::KeyRotation rot;
  REQUIRE(rot.ParseFromString(req.rotation()));
  v1::KeyRotation first;
  REQUIRE(first.ParseFromString(f.transport.rotations[0].rotation()));
  CHECK(rot.new_public_key() != first.new_public_key());
  CHECK(rot.device_id() == "dev-test");
  CHECK(rot.old_key_id() == old_key->KeyId());
  std::string msg = std::string(signing::kRotationDomain) + req.rotation();
  CHECK(signing::Verify(old_key->PublicKey(), msg, req.old_signature()).ok());
  CHECK(signing::Verify(rot.new_public_key(), msg, req.new_signature()).ok());
  CHECK(pki::CheckCsr(req.csr(), rot.new_public_key()).ok());

  CHECK(!agent.RotationPending());
  auto new_key = agent.state().LoadKey();
  REQUIRE(new_key.ok());
  CHECK(new_key->PublicKey() == rot.new_public_key());
  CHECK(agent.state().ClientCertificate() == "new-cert");
  struct stat st {};
  REQUIRE(::stat((f.config.state_dir() + "/device.key").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto seq = agent.CollectAndQueue();
  REQUIRE(seq.ok());
  auto queued = Outbox(f.config.state_dir() + "/outbox").Load(*seq);
  REQUIRE(queued.ok());
  CHECK(signing::VerifyAttestation(*queued, new_key->PublicKey()).ok());
  // The attestation queued before the rotation goes out re-signed by the new key, same bytes.
  auto before = Outbox(f.config.state_dir() + "/outbox").Load(1);
  REQUIRE(before.ok());
  CHECK(before->key_id() == old_key->KeyId());
  f.transport.keep_envelopes = true;
  REQUIRE(agent.Flush(f.transport).ok());
  REQUIRE(f.transport.envelopes.size() == 2);
  CHECK(f.transport.envelopes[0].attestation() == before->attestation());
  CHECK(signing::VerifyAttestation(f.transport.envelopes[0], new_key->PublicKey()).ok());
}

TEST_CASE("a client certificate close to expiry asks for renewal; an expired one is not used") {
  Fixture f;
  auto ca = pki::CreateCa("test", f.clock.NowMillis() / 1000, 10);
  REQUIRE(ca.ok());
  Agent agent(f.config, *f.view, f.clock);
  REQUIRE(agent.Enroll(f.transport, "s3cret-s3cret-s3cret").ok());
  CHECK(!agent.CertificateNeedsRenewal());  // no certificate: nothing to renew
  auto key = agent.state().LoadKey();
  auto csr = pki::MakeCsr(*key->ToPem(), "x");
  auto year = pki::IssueClientCert(*ca, *csr, "dev-test", f.clock.NowMillis() / 1000, 365);
  REQUIRE(year.ok());
  REQUIRE(agent.state().SaveClientCertificate(*year).ok());
  CHECK(!agent.CertificateNeedsRenewal());
  f.clock.Advance(340LL * 86400 * 1000);
  CHECK(agent.CertificateNeedsRenewal());
  // Already expired (by the real clock): the transport connects without it.
  auto old = pki::IssueClientCert(*ca, *csr, "dev-test", 1'600'000'000, 1);
  REQUIRE(old.ok());
  REQUIRE(agent.state().SaveClientCertificate(*old).ok());
  auto options = TransportOptionsFor(f.config);
  REQUIRE(options.ok());
  CHECK(options->client_cert_pem.empty());
  CHECK(options->client_key_pem.empty());
}

TEST_CASE("an enrollment bundle others can read is refused; a malformed one names the field") {
  Fixture f;
  std::string path = f.dir / "bundle.json";
  REQUIRE(
      WriteFileAtomic(path, R"({"server": "h:1", "enrollSecret": "vgs_x", "caCert": "x"})", 0600)
          .ok());
  auto b = LoadBundle(path);
  REQUIRE(!b.ok());
  CHECK(b.status().message().find("caCert") != std::string::npos);
  REQUIRE(WriteFileAtomic(path, R"({"server": "h:1", "enrollSecret": "vgs_x"})", 0644).ok());
  b = LoadBundle(path);
  REQUIRE(!b.ok());
  CHECK(b.status().code() == Status::Code::kPermissionDenied);
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  CHECK(LoadBundle(path)->server() == "h:1");
  REQUIRE(WriteFileAtomic(path, R"({"server": "h:1"})", 0600).ok());
  CHECK(LoadBundle(path).status().code() == Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace vigil::agent

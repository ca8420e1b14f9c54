#include "server/aggregator.h"

#include <doctest/doctest.h>

#include <atomic>
#include <latch>
#include <thread>

#include "collectors/collectors.h"
#include "common/temp_dir.h"
#include "proto/signing.h"
#include "server/fleet.h"
#include "server/forwarding_store.h"
#include "server/sqlite_store.h"

namespace vigil::server {
namespace {

constexpr int64_t kStart = 1'800'000'000'000;

// A policy with only the check-in window: every check is NOT_APPLICABLE, so a clean
// attestation is COMPLIANT and one carrying a collection error is NON_COMPLIANT.
v1::Policy WindowOnlyPolicy() {
  v1::Policy p;
  p.set_checkin_window_seconds(3600);
  return p;
}

struct Harness {
  TempDir dir{"vigil-agg"};  // first, so it outlives the store
  FakeClock clock{kStart};
  std::unique_ptr<Store> store;
  Counters counters;
  std::unique_ptr<Credentials> credentials;
  std::string secret;  // a valid enroll secret
  std::unique_ptr<Aggregator> aggregator;
  std::unique_ptr<Fleet> fleet;
  v1::Policy policy;

  explicit Harness(v1::Policy p = WindowOnlyPolicy()) : policy(std::move(p)) { Open(); }

  void Open() {
    aggregator.reset();
    fleet.reset();
    store.reset();
    auto s = OpenSqliteStore(dir / "vigil.db");
    REQUIRE(s.ok());
    store = std::move(s).value();
    credentials = std::make_unique<Credentials>(*store, clock);
    if (secret.empty()) {
      auto created = credentials->Create(CredentialKind::kEnrollSecret, "test", 0, 0, "test");
      REQUIRE(created.ok());
      secret = *created;
    }
    AggregatorOptions opts;
    opts.max_batch = 5;
    opts.reports_per_minute = 0;
    aggregator = std::make_unique<Aggregator>(*store, clock, *credentials, counters, policy, opts);
    fleet = std::make_unique<Fleet>(*store, clock, aggregator->policy(), counters);
  }

  std::string Enroll(const signing::DeviceKey& key) {
    v1::EnrollRequest req;
    req.set_enroll_secret(secret);
    req.set_public_key(key.PublicKey());
    req.set_hostname("laptop-1");
    auto r = aggregator->Enroll(req);
    REQUIRE(r.ok());
    return r->device_id();
  }

  v1::AttestationAck Send(const v1::SignedAttestation& s) {
    v1::ReportRequest req;
    *req.add_attestations() = s;
    auto r = aggregator->Report(req);
    REQUIRE(r.ok());
    REQUIRE(r->acks_size() == 1);
    return r->acks(0);
  }

  v1::DeviceSummary Device(const std::string& id) {
    v1::GetDeviceRequest req;
    req.set_device_id(id);
    auto r = fleet->GetDevice(req);
    REQUIRE(r.ok());
    return r->device();
  }

  size_t HistorySize(const std::string& id) {
    auto h = store->History(id, 1000);
    REQUIRE(h.ok());
    return h->size();
  }
};

v1::Attestation Att(const std::string& device_id, uint64_t seq, bool failing = false,
                    int64_t issued_ms = kStart) {
  v1::Attestation a;
  a.set_device_id(device_id);
  a.set_sequence(seq);
  a.mutable_issued_at()->set_seconds(issued_ms / 1000);
  a.mutable_platform()->set_os("linux");
  a.mutable_platform()->set_hostname("laptop-1");
  for (const char* id :
       {collectors::kScreenLock, collectors::kPasswordPolicy, collectors::kUsbStorage}) {
    auto* c = a.add_checks();
    c->set_check(id);
    c->set_status(v1::PASS);  // the agent's claim; the server re-derives it
    if (failing && std::string(id) == collectors::kUsbStorage) {
      c->mutable_evidence()->set_collection_error("cannot read /proc/modules");
    } else {
      c->mutable_evidence()->mutable_usb_storage();
    }
  }
  return a;
}

v1::SignedAttestation Sign(const v1::Attestation& a, const signing::DeviceKey& key) {
  auto s = signing::SignAttestation(a, key);
  REQUIRE(s.ok());
  return *s;
}

TEST_CASE("enrollment: a wrong or empty secret is rejected and nothing is stored") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string almost = h.secret;
  almost.back() = almost.back() == 'A' ? 'B' : 'A';
  std::string unknown_id = h.secret;
  unknown_id[5] = unknown_id[5] == '0' ? '1' : '0';
  for (const std::string& secret :
       {std::string("wrong"), std::string(), almost, unknown_id, "vgt_" + h.secret.substr(4)}) {
    v1::EnrollRequest req;
    req.set_enroll_secret(secret);
    req.set_public_key(key->PublicKey());
    auto r = h.aggregator->Enroll(req);
    REQUIRE(!r.ok());
    CHECK(r.status().code() == Status::Code::kPermissionDenied);
  }
  auto all = h.store->ListDevices(DeviceFilter());
  REQUIRE(all.ok());
  CHECK(all->empty());
}

TEST_CASE("enrollment: malformed keys rejected; the same key enrolls to the same device") {
  Harness h;
  v1::EnrollRequest bad;
  bad.set_enroll_secret(h.secret);
  bad.set_public_key("short");
  CHECK(h.aggregator->Enroll(bad).status().code() == Status::Code::kInvalidArgument);
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string a = h.Enroll(*key);
  std::string b = h.Enroll(*key);
  CHECK(a == b);
  CHECK(h.Device(a).status() == v1::UNKNOWN);
}

TEST_CASE("report: accepted, re-evaluated by the server, history kept") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string id = h.Enroll(*key);
  auto ack = h.Send(Sign(Att(id, 1), *key));
  CHECK(ack.code() == kAckOk);
  CHECK(ack.sequence() == 1);
  CHECK(ack.device_status() == v1::COMPLIANT);
  // The agent claimed PASS; the server's own evaluation says ERROR and wins.
  ack = h.Send(Sign(Att(id, 2, /*failing=*/true), *key));
  CHECK(ack.code() == kAckOk);
  CHECK(ack.device_status() == v1::NON_COMPLIANT);
  auto d = h.Device(id);
  CHECK(d.status() == v1::NON_COMPLIANT);
  REQUIRE(d.failing_checks_size() == 1);
  CHECK(d.failing_checks(0) == "usb_storage");
  CHECK(h.HistorySize(id) == 2);
}

TEST_CASE("the agent's health is told apart from the device's compliance") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string id = h.Enroll(*key);
  auto problems = [&] {
    v1::GetDeviceRequest req;
    req.set_device_id(id);
    auto r = h.fleet->GetDevice(req);
    REQUIRE(r.ok());
    return std::vector<std::string>(r->agent_problems().begin(), r->agent_problems().end());
  };
  REQUIRE(h.Send(Sign(Att(id, 1), *key)).code() == kAckOk);
  CHECK(problems().empty());  // compliant and healthy
  // Evidence that could not be collected, reports that failed, drops: the agent needs attention.
  v1::Attestation sick = Att(id, 2, /*failing=*/true);
  sick.mutable_agent_health()->set_report_failures(3);
  sick.mutable_agent_health()->set_outbox_dropped(7);
  sick.mutable_agent_health()->set_last_error("report: deadline exceeded");
  REQUIRE(h.Send(Sign(sick, *key)).code() == kAckOk);
  CHECK(problems() ==
        std::vector<std::string>{"could not collect evidence for usb_storage",
                                 "3 report attempts failed in a row before this attestation",
                                 "7 attestations dropped from a full outbox while offline",
                                 "last error: report: deadline exceeded"});
}

TEST_CASE("a lost acknowledgement: the same attestation again is acknowledged and stored once") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string id = h.Enroll(*key);
  auto s = Sign(Att(id, 1), *key);
  CHECK(h.Send(s).code() == kAckOk);
  auto again = h.Send(s);
  CHECK(again.code() == kAckAlreadyExists);
  CHECK(again.device_status() == v1::COMPLIANT);
  CHECK(h.HistorySize(id) == 1);
  CHECK(h.Device(id).status() == v1::COMPLIANT);
}

TEST_CASE(
    "rejections: each is answered precisely, flags the device, and the server keeps serving") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  auto stranger = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  REQUIRE(stranger.ok());
  std::string id = h.Enroll(*key);
  REQUIRE(h.Send(Sign(Att(id, 1), *key)).code() == kAckOk);

  SUBCASE("tampered signature") {
    auto s = Sign(Att(id, 2), *key);
    (*s.mutable_signature())[5] ^= 1;
    auto ack = h.Send(s);
    CHECK(ack.code() == kAckPermissionDenied);
    CHECK(ack.device_status() == v1::TAMPERED);
  }
  SUBCASE("tampered attestation bytes") {
    auto s = Sign(Att(id, 2), *key);
    s.mutable_attestation()->back() ^= 1;
    CHECK(h.Send(s).code() == kAckPermissionDenied);
  }
  SUBCASE("a different attestation reusing a seen sequence (replay)") {
    auto ack = h.Send(Sign(Att(id, 1, /*failing=*/true), *key));
    CHECK(ack.code() == kAckPermissionDenied);
    CHECK(ack.message().find("replay") != std::string::npos);
  }
  SUBCASE("an old sequence that was never stored") {
    REQUIRE(h.Send(Sign(Att(id, 5), *key)).code() == kAckOk);
    auto ack = h.Send(Sign(Att(id, 3), *key));
    CHECK(ack.code() == kAckPermissionDenied);
  }
  SUBCASE("an unknown key claiming this device") {
    auto ack = h.Send(Sign(Att(id, 2), *stranger));
    CHECK(ack.code() == kAckUnauthenticated);
  }
  SUBCASE("this device's key used for another device id") {
    auto ack = h.Send(Sign(Att("dev-someone-else", 2), *key));
    CHECK(ack.code() == kAckPermissionDenied);
  }
  CHECK(h.Device(id).status() == v1::TAMPERED);
  // Still serving; TAMPERED is sticky even after a good report.
  auto good = h.Send(Sign(Att(id, 100), *key));
  CHECK(good.code() == kAckOk);
  CHECK(h.Device(id).status() == v1::TAMPERED);
  auto events = h.store->Events(id, 10);
  REQUIRE(events.ok());
  CHECK(events->front().kind == "tampered");
}

TEST_CASE("rejections that flag nobody") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  auto stranger = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  REQUIRE(stranger.ok());
  std::string id = h.Enroll(*key);
  // An unknown key claiming an unknown device: rejected, nothing to flag.
  CHECK(h.Send(Sign(Att("dev-nobody", 1), *stranger)).code() == kAckUnauthenticated);
  // Malformed key id.
  auto s = Sign(Att(id, 1), *key);
  s.set_key_id("abc");
  CHECK(h.Send(s).code() == kAckInvalidArgument);
  // Sequence 0 is invalid but not an attack.
  CHECK(h.Send(Sign(Att(id, 0), *key)).code() == kAckInvalidArgument);
  CHECK(h.Device(id).status() == v1::UNKNOWN);
  // Whole-request problems.
  CHECK(h.aggregator->Report(v1::ReportRequest()).status().code() ==
        Status::Code::kInvalidArgument);
  v1::ReportRequest big;
  for (int i = 1; i <= 6; ++i) *big.add_attestations() = Sign(Att(id, i), *key);
  CHECK(h.aggregator->Report(big).status().code() == Status::Code::kInvalidArgument);
}

TEST_CASE("a batch is answered per attestation, in order") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string id = h.Enroll(*key);
  v1::ReportRequest req;
  *req.add_attestations() = Sign(Att(id, 1), *key);
  *req.add_attestations() = Sign(Att(id, 2, true), *key);
  *req.add_attestations() = Sign(Att(id, 3), *key);
  auto r = h.aggregator->Report(req);
  REQUIRE(r.ok());
  REQUIRE(r->acks_size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(r->acks(i).code() == kAckOk);
    CHECK(r->acks(i).sequence() == static_cast<uint64_t>(i + 1));
  }
  CHECK(r->acks(1).device_status() == v1::NON_COMPLIANT);
  CHECK(h.Device(id).status() == v1::COMPLIANT);
  CHECK(h.HistorySize(id) == 3);
}

TEST_CASE("staleness follows the injected clock") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string id = h.Enroll(*key);
  REQUIRE(h.Send(Sign(Att(id, 1), *key)).code() == kAckOk);
  h.clock.Advance(3599 * 1000);
  CHECK(h.Device(id).status() == v1::COMPLIANT);
  h.clock.Advance(2 * 1000);
  CHECK(h.Device(id).status() == v1::STALE);
  v1::ListDevicesRequest stale;
  stale.set_status(v1::STALE);
  auto list = h.fleet->ListDevices(stale);
  REQUIRE(list.ok());
  CHECK(list->devices_size() == 1);
  auto summary = h.fleet->Summary(v1::SummaryRequest());
  REQUIRE(summary.ok());
  for (const auto& c : summary->by_status()) {
    CHECK(c.count() == (c.status() == v1::STALE ? 1u : 0u));
  }
  REQUIRE(h.Send(Sign(Att(id, 2, false, h.clock.NowMillis()), *key)).code() == kAckOk);
  CHECK(h.Device(id).status() == v1::COMPLIANT);
}

TEST_CASE("state survives a restart, and a new policy re-judges stored evidence") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string id = h.Enroll(*key);
  REQUIRE(h.Send(Sign(Att(id, 1), *key)).code() == kAckOk);
  h.Open();
  CHECK(h.Device(id).status() == v1::COMPLIANT);
  CHECK(h.Send(Sign(Att(id, 1), *key)).code() == kAckAlreadyExists);
  // Restart under a policy that requires usb_storage: the stored evidence (no rules, nothing
  // loaded) no longer passes, without the device reporting again.
  v1::Policy strict = WindowOnlyPolicy();
  strict.mutable_usb_storage()->set_mode(v1::BLOCKED);
  h.policy = strict;
  h.Open();
  REQUIRE(h.aggregator->ReevaluateFleet().ok());
  CHECK(h.Device(id).status() == v1::NON_COMPLIANT);
}

TEST_CASE("list filters: status, failing check, os") {
  Harness h;
  auto k1 = signing::DeviceKey::Generate();
  auto k2 = signing::DeviceKey::Generate();
  REQUIRE(k1.ok());
  REQUIRE(k2.ok());
  std::string a = h.Enroll(*k1);
  std::string b = h.Enroll(*k2);
  REQUIRE(h.Send(Sign(Att(a, 1), *k1)).code() == kAckOk);
  REQUIRE(h.Send(Sign(Att(b, 1, true), *k2)).code() == kAckOk);
  v1::ListDevicesRequest req;
  req.set_status(v1::NON_COMPLIANT);
  auto r = h.fleet->ListDevices(req);
  REQUIRE(r.ok());
  REQUIRE(r->devices_size() == 1);
  CHECK(r->devices(0).device_id() == b);
  req.Clear();
  req.set_failing_check("usb_storage");
  r = h.fleet->ListDevices(req);
  REQUIRE(r.ok());
  CHECK(r->devices_size() == 1);
  for (const char* partial : {"usb", "storage", "usb_storag"}) {  // whole ids only
    req.set_failing_check(partial);
    r = h.fleet->ListDevices(req);
    REQUIRE(r.ok());
    CHECK(r->devices_size() == 0);
  }
  for (const char* bad : {"%", "USB_STORAGE", "usb_%", "a,b"}) {  // no wildcards, no case folding
    req.set_failing_check(bad);
    CHECK(h.fleet->ListDevices(req).status().code() == Status::Code::kInvalidArgument);
  }
  req.Clear();
  req.set_os("windows");
  r = h.fleet->ListDevices(req);
  REQUIRE(r.ok());
  CHECK(r->devices_size() == 0);
}

// Fails every commit that includes one chosen sequence until healed; forwards everything else.
class FailingStore : public ForwardingStore {
 public:
  FailingStore(Store& base, uint64_t fail_sequence) : ForwardingStore(base), fail_(fail_sequence) {}
  void Heal() { fail_ = 0; }
  Status CommitAttestation(const AcceptedAttestation& a) override {
    if (a.sequence == fail_) return Status::IoError("disk full");
    return ForwardingStore::CommitAttestation(a);
  }
  Status CommitAttestations(const std::vector<const AcceptedAttestation*>& batch) override {
    for (const auto* a : batch) {
      if (a->sequence == fail_) return Status::IoError("disk full");
    }
    return ForwardingStore::CommitAttestations(batch);
  }

 private:
  uint64_t fail_;
};

TEST_CASE("a storage failure stops the batch, and the agent's retry is accepted, not a replay") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string id = h.Enroll(*key);
  FailingStore failing(*h.store, 2);
  AggregatorOptions opts;
  Aggregator agg(failing, h.clock, *h.credentials, h.counters, h.policy, opts);
  v1::ReportRequest req;
  for (uint64_t seq : {1, 2, 3}) *req.add_attestations() = Sign(Att(id, seq), *key);
  // The three are committed as one chain: the group fails, each is retried alone, 1 is stored,
  // 2 fails, and 3 must then not be committed (the retry of 2 would look like a replay).
  auto r = agg.Report(req);
  REQUIRE(r.ok());
  CHECK(r->acks(0).code() == kAckOk);
  CHECK(r->acks(1).code() == kAckInternal);
  CHECK(r->acks(2).code() == kAckInternal);
  CHECK(r->acks(2).message().find("not stored") != std::string::npos);
  CHECK(h.HistorySize(id) == 1);
  failing.Heal();
  r = agg.Report(req);  // the agent retries what it still has: 2 and 3 (1 again, acknowledged)
  REQUIRE(r.ok());
  CHECK(r->acks(0).code() == kAckAlreadyExists);
  CHECK(r->acks(1).code() == kAckOk);
  CHECK(r->acks(2).code() == kAckOk);
  CHECK(h.HistorySize(id) == 3);
  CHECK(h.Device(id).status() == v1::COMPLIANT);
}

// Counts group commits and their sizes.
class CountingStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Status CommitAttestations(const std::vector<const AcceptedAttestation*>& batch) override {
    sizes.push_back(batch.size());
    return ForwardingStore::CommitAttestations(batch);
  }
  std::vector<size_t> sizes;
};

TEST_CASE("a report's attestations are committed together, judged as if one by one") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string id = h.Enroll(*key);
  CountingStore counting(*h.store);
  AggregatorOptions opts;
  opts.reports_per_minute = 0;
  Aggregator agg(counting, h.clock, *h.credentials, h.counters, h.policy, opts);
  auto report = [&](std::vector<v1::SignedAttestation> atts) {
    v1::ReportRequest req;
    for (auto& a : atts) *req.add_attestations() = std::move(a);
    auto r = agg.Report(req);
    REQUIRE(r.ok());
    REQUIRE(r->acks_size() == static_cast<int>(req.attestations_size()));
    return *r;
  };
  SUBCASE("ten in one group commit, the device ends at the last") {
    std::vector<v1::SignedAttestation> ten;
    for (uint64_t seq = 1; seq <= 10; ++seq) ten.push_back(Sign(Att(id, seq, seq == 10), *key));
    v1::ReportResponse r = report(ten);
    for (const auto& ack : r.acks()) CHECK(ack.code() == kAckOk);
    CHECK(counting.sizes == std::vector<size_t>{10});
    CHECK(r.acks(9).device_status() == v1::NON_COMPLIANT);
    CHECK(h.Device(id).status() == v1::NON_COMPLIANT);
    CHECK(h.Device(id).last_sequence() == 10);
    CHECK(h.HistorySize(id) == 10);
  }
  SUBCASE("the same attestation twice in a report: stored once, acknowledged twice") {
    v1::SignedAttestation one = Sign(Att(id, 1), *key);
    v1::ReportResponse r = report({one, one, Sign(Att(id, 2), *key)});
    CHECK(r.acks(0).code() == kAckOk);
    CHECK(r.acks(1).code() == kAckAlreadyExists);  // not a replay: nobody is flagged
    CHECK(r.acks(2).code() == kAckOk);
    CHECK(h.Device(id).status() == v1::COMPLIANT);
    CHECK(h.HistorySize(id) == 2);
    CHECK(counting.sizes == std::vector<size_t>{1, 1});  // committed before the repeat was judged
  }
  SUBCASE("history after history: the device keeps its live state") {
    REQUIRE(report({Sign(Att(id, 1), *key)}).acks(0).code() == kAckOk);
    const int64_t two_days_ago = kStart - 2 * 86400 * 1000;
    v1::ReportResponse r = report(
        {Sign(Att(id, 2, true, two_days_ago), *key), Sign(Att(id, 3, false, two_days_ago), *key)});
    for (const auto& ack : r.acks()) {
      CHECK(ack.code() == kAckOk);
      CHECK(ack.message().find("history") != std::string::npos);
      CHECK(ack.device_status() == v1::COMPLIANT);  // the failing one is history, not the state
    }
    CHECK(h.Device(id).status() == v1::COMPLIANT);
    CHECK(h.Device(id).last_sequence() == 3);
  }
  SUBCASE("a tamper flag raised inside a report counts for the attestations after it") {
    v1::SignedAttestation forged = Sign(Att(id, 2), *key);
    forged.mutable_signature()->at(0) ^= 1;
    v1::ReportResponse r = report({Sign(Att(id, 1), *key), forged, Sign(Att(id, 3), *key)});
    CHECK(r.acks(0).code() == kAckOk);
    CHECK(r.acks(1).code() == kAckPermissionDenied);
    CHECK(r.acks(2).code() == kAckOk);
    CHECK(r.acks(2).device_status() == v1::TAMPERED);
    CHECK(h.Device(id).status() == v1::TAMPERED);
  }
  SUBCASE("a sequence going back inside a report is a replay, as it would be alone") {
    v1::ReportResponse r = report({Sign(Att(id, 5), *key), Sign(Att(id, 3), *key)});
    CHECK(r.acks(0).code() == kAckOk);
    CHECK(r.acks(1).code() == kAckPermissionDenied);
    CHECK(h.Device(id).status() == v1::TAMPERED);
    CHECK(h.HistorySize(id) == 1);
  }
}

// Revokes one device just before the first group commit (an admin acting between a report's
// verification and its commit).
class RevokeFirstStore : public ForwardingStore {
 public:
  RevokeFirstStore(Store& base, std::string victim)
      : ForwardingStore(base), base_(base), victim_(std::move(victim)) {}
  Status CommitAttestations(const std::vector<const AcceptedAttestation*>& batch) override {
    if (!victim_.empty()) {
      REQUIRE(base_
                  .RevokeDevice(victim_, "stolen", kStart,
                                {kStart, "admin", "revoke", victim_, "", true})
                  .ok());
      victim_.clear();
    }
    return ForwardingStore::CommitAttestations(batch);
  }

 private:
  Store& base_;
  std::string victim_;
};

TEST_CASE("a device revoked during a report's commit does not stop another device's attestations") {
  Harness h;
  auto a_key = signing::DeviceKey::Generate();
  auto b_key = signing::DeviceKey::Generate();
  REQUIRE(a_key.ok());
  REQUIRE(b_key.ok());
  std::string a = h.Enroll(*a_key);
  std::string b = h.Enroll(*b_key);
  RevokeFirstStore revoking(*h.store, a);
  AggregatorOptions opts;
  opts.reports_per_minute = 0;
  Aggregator agg(revoking, h.clock, *h.credentials, h.counters, h.policy, opts);
  v1::ReportRequest req;
  *req.add_attestations() = Sign(Att(a, 1), *a_key);
  *req.add_attestations() = Sign(Att(b, 1), *b_key);
  auto r = agg.Report(req);
  REQUIRE(r.ok());
  CHECK(r->acks(0).code() == kAckPermissionDenied);
  CHECK(r->acks(0).device_status() == v1::REVOKED);
  CHECK(r->acks(1).code() == kAckOk);
  CHECK(h.HistorySize(a) == 0);
  CHECK(h.HistorySize(b) == 1);
}

// Holds every group commit until released, to keep attestations in flight.
class HeldStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Status CommitAttestations(const std::vector<const AcceptedAttestation*>& batch) override {
    if (!signalled_.exchange(true)) entered_.count_down();
    released_.wait();
    return ForwardingStore::CommitAttestations(batch);
  }
  void WaitEntered() { entered_.wait(); }
  void Release() { released_.count_down(); }

 private:
  std::atomic<bool> signalled_{false};
  std::latch entered_{1};
  std::latch released_{1};
};

TEST_CASE("admission control: beyond max_inflight a report is answered busy at once") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  auto other = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  REQUIRE(other.ok());
  std::string id = h.Enroll(*key);
  std::string other_id = h.Enroll(*other);
  HeldStore held(*h.store);
  AggregatorOptions opts;
  opts.max_inflight = 2;
  opts.reports_per_minute = 0;
  Aggregator agg(held, h.clock, *h.credentials, h.counters, h.policy, opts);
  auto report = [&](std::vector<v1::SignedAttestation> atts) {
    v1::ReportRequest req;
    for (auto& a : atts) *req.add_attestations() = std::move(a);
    auto r = agg.Report(req);
    REQUIRE(r.ok());
    return *r;
  };
  // One attestation is held in its commit: one more fits, a batch of two does not.
  std::thread first([&] { CHECK(report({Sign(Att(id, 1), *key)}).acks(0).code() == kAckOk); });
  held.WaitEntered();
  v1::ReportResponse busy =
      report({Sign(Att(other_id, 1), *other), Sign(Att(other_id, 2), *other)});
  REQUIRE(busy.acks_size() == 2);
  for (const auto& ack : busy.acks()) {
    CHECK(ack.code() == kAckResourceExhausted);
    CHECK(ack.message().find("busy") != std::string::npos);
  }
  CHECK_FALSE(busy.has_policy());  // refused before any work: no policy, no version
  CHECK(busy.policy_version().empty());
  CHECK(h.counters.Get("report.rejected.overloaded") == 2);
  CHECK(h.HistorySize(other_id) == 0);  // nothing of a refused report is stored
  held.Release();
  first.join();
  // Capacity is back: the agent's retry of the same batch is accepted, not taken for a replay.
  v1::ReportResponse retried =
      report({Sign(Att(other_id, 1), *other), Sign(Att(other_id, 2), *other)});
  CHECK(retried.acks(0).code() == kAckOk);
  CHECK(retried.acks(1).code() == kAckOk);
  CHECK(h.HistorySize(other_id) == 2);
  CHECK(h.counters.Get("report.rejected.overloaded") == 2);  // refusals never counted in flight
  // A report larger than the limit is still taken by an idle server, never refused forever.
  v1::ReportResponse large =
      report({Sign(Att(id, 2), *key), Sign(Att(id, 3), *key), Sign(Att(id, 4), *key)});
  for (const auto& ack : large.acks()) CHECK(ack.code() == kAckOk);
}

TEST_CASE("device-chosen check ids cannot smuggle separators into storage") {
  Harness h;
  auto key = signing::DeviceKey::Generate();
  REQUIRE(key.ok());
  std::string id = h.Enroll(*key);
  v1::Attestation a = Att(id, 1);
  a.mutable_checks(0)->set_check("x,usb_storage");
  REQUIRE(h.Send(Sign(a, *key)).code() == kAckOk);
  auto d = h.Device(id);
  CHECK(d.status() == v1::NON_COMPLIANT);
  REQUIRE(d.failing_checks_size() == 1);
  CHECK(d.failing_checks(0) == "invalid_check_id");
}

}  // namespace
}  // namespace vigil::server

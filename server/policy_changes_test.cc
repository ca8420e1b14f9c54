// The change process and exceptions on a real store with an injected clock: who may decide,
// what preview promises and apply delivers, rollback, versions across replicas, exceptions and
// their expiry, and how a device's effective policy follows its tags.
#include "server/policy_changes.h"

#include <doctest/doctest.h>

#include <map>

#include "collectors/collectors.h"
#include "common/temp_dir.h"
#include "proto/signing.h"
#include "server/aggregator.h"
#include "server/auth.h"
#include "server/fleet.h"
#include "server/sqlite_store.h"

namespace vigil::server {
namespace {

constexpr int64_t kStart = 1'800'000'000'000;
const std::string kAlice = "token:alice (admin)";
const std::string kAliceApprover = "token:alice+approver (approver)";
const std::string kBob = "token:bob (approver)";

// Every check NOT_APPLICABLE: a device with any evidence is COMPLIANT.
v1::Policy Lenient() {
  v1::Policy p;
  p.set_checkin_window_seconds(3600);
  return p;
}

// The default requires USB storage BLOCKED; devices tagged "lab" are exempt (section cleared).
v1::PolicySet BlockUsbExceptLab() {
  v1::PolicySet set;
  set.mutable_default_policy()->set_checkin_window_seconds(3600);
  set.mutable_default_policy()->mutable_usb_storage()->set_mode(v1::BLOCKED);
  auto* o = set.add_overrides();
  o->set_name("lab");
  o->set_tag("lab");
  (*o->mutable_policy()->mutable_fields())["usbStorage"].set_null_value(
      google::protobuf::NULL_VALUE);
  return set;
}

struct World {
  TempDir dir{"vigil-policy"};  // first, so it outlives the store
  FakeClock clock{kStart};
  Counters counters;
  std::unique_ptr<Store> store;
  std::unique_ptr<Credentials> credentials;
  std::unique_ptr<PolicyState> policy;
  std::unique_ptr<Aggregator> aggregator;
  std::unique_ptr<Fleet> fleet;
  std::unique_ptr<PolicyChanges> changes;
  std::string secret;
  std::map<std::string, signing::DeviceKey> keys;
  std::map<std::string, uint64_t> sequence;

  World() {
    auto s = OpenSqliteStore(dir / "vigil.db");
    REQUIRE(s.ok());
    store = std::move(s).value();
    credentials = std::make_unique<Credentials>(*store, clock);
    secret = *credentials->Create(CredentialKind::kEnrollSecret, "test", 0, 0, "test");
    auto snapshot = PolicyChanges::Bootstrap(*store, clock, PolicySetOf(Lenient()), "test");
    REQUIRE(snapshot.ok());
    policy = std::make_unique<PolicyState>(*snapshot);
    AggregatorOptions opts;
    opts.reports_per_minute = 0;
    aggregator = std::make_unique<Aggregator>(*store, clock, *credentials, counters, *policy, opts);
    fleet = std::make_unique<Fleet>(*store, clock, *policy, counters);
    changes = std::make_unique<PolicyChanges>(*store, clock, *policy, counters);
  }
  // Enrolls a device and reports evidence: an empty USB section (no rules: fails BLOCKED).
  std::string Device() {
    auto key = signing::DeviceKey::Generate();
    REQUIRE(key.ok());
    v1::EnrollRequest req;
    req.set_enroll_secret(secret);
    req.set_public_key(key->PublicKey());
    req.mutable_platform()->set_os("linux");
    auto r = aggregator->Enroll(req);
    REQUIRE(r.ok());
    keys.emplace(r->device_id(), std::move(key).value());
    Report(r->device_id());
    return r->device_id();
  }

  v1::ReportResponse Report(const std::string& id, const std::string& agent_version = "") {
    v1::Attestation a;
    a.set_device_id(id);
    a.set_sequence(++sequence[id]);
    a.mutable_issued_at()->set_seconds(clock.NowMillis() / 1000);
    a.mutable_platform()->set_os("linux");
    a.set_policy_version(agent_version);
    auto* c = a.add_checks();
    c->set_check(collectors::kUsbStorage);
    c->mutable_evidence()->mutable_usb_storage();
    auto s = signing::SignAttestation(a, keys.at(id));
    REQUIRE(s.ok());
    v1::ReportRequest req;
    *req.add_attestations() = *s;
    auto r = aggregator->Report(req);
    REQUIRE(r.ok());
    REQUIRE(r->acks(0).code() == kAckOk);
    return *r;
  }

  v1::DeviceStatus Status(const std::string& id) {
    v1::GetDeviceRequest req;
    req.set_device_id(id);
    auto r = fleet->GetDevice(req);
    REQUIRE(r.ok());
    return r->device().status();
  }

  void Tag(const std::string& id, const std::string& tag) {
    v1::SetDeviceTagsRequest req;
    req.set_device_id(id);
    req.add_tags(tag);
    REQUIRE(fleet->SetDeviceTags(req, kAlice).ok());
  }

  std::map<v1::DeviceStatus, uint64_t> Counts() {
    auto r = fleet->Summary({});
    REQUIRE(r.ok());
    std::map<v1::DeviceStatus, uint64_t> out;
    for (const auto& c : r->by_status()) {
      if (c.count()) out[c.status()] = c.count();
    }
    return out;
  }

  uint64_t Propose(const v1::PolicySet& set) {
    v1::ProposePolicyChangeRequest req;
    *req.mutable_policy_set() = set;
    req.set_reason("block USB");
    req.set_rollback_plan("roll back to version 1");
    auto r = changes->Propose(req, kAlice);
    REQUIRE(r.ok());
    CHECK(r->state() == v1::PROPOSED);
    return r->id();
  }

  Result<v1::PolicyChange> Approve(uint64_t id, const std::string& who = kBob) {
    v1::PolicyDecisionRequest req;
    req.set_change_id(id);
    return changes->Approve(req, who);
  }

  Result<v1::PolicyChange> Apply(uint64_t id) {
    v1::PolicyChangeRequest req;
    req.set_change_id(id);
    return changes->Apply(req, kAlice);
  }

  std::vector<std::string> AuditActions(bool success) {
    auto entries = store->ListAudit(0, 10000);
    REQUIRE(entries.ok());
    std::vector<std::string> out;
    for (const auto& e : *entries) {
      if (e.success() == success) out.push_back(e.action());
    }
    return out;
  }
};

std::map<v1::DeviceStatus, uint64_t> NonZero(
    const google::protobuf::RepeatedPtrField<v1::StatusCount>& counts) {
  std::map<v1::DeviceStatus, uint64_t> out;
  for (const auto& c : counts) {
    if (c.count()) out[c.status()] = c.count();
  }
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST_CASE("policy: the start-up policy becomes version 1 once; a different one later is ignored") {
  World w;
  auto v = w.changes->GetPolicy({});
  REQUIRE(v.ok());
  CHECK(v->version() == 1);
  CHECK(v->change_id() == 1);
  // A restart with another --policy keeps version 1 in force.
  auto again = PolicyChanges::Bootstrap(*w.store, w.clock, BlockUsbExceptLab(), "restart");
  REQUIRE(again.ok());
  CHECK((*again)->version().number == 1);
  CHECK((*again)->version().set_version == v->set_version());
  auto history = w.changes->ListChanges({});
  REQUIRE(history.ok());
  REQUIRE(history->changes_size() == 1);
  CHECK(history->changes(0).kind() == v1::INITIAL);
  CHECK(history->changes(0).state() == v1::APPLIED);
}

TEST_CASE("policy: proposals need a reason, a rollback plan, a valid set that changes something") {
  World w;
  v1::ProposePolicyChangeRequest req;
  *req.mutable_policy_set() = BlockUsbExceptLab();
  req.set_rollback_plan("p");
  CHECK(w.changes->Propose(req, kAlice).status().code() == Status::Code::kInvalidArgument);
  req.set_reason("r");
  req.clear_rollback_plan();
  CHECK(w.changes->Propose(req, kAlice).status().code() == Status::Code::kInvalidArgument);
  req.set_rollback_plan("p");
  req.mutable_policy_set()->mutable_default_policy()->mutable_screen_lock()->set_max_idle_seconds(
      0);  // out of range (1..86400)
  auto bad = w.changes->Propose(req, kAlice);
  CHECK(bad.status().code() == Status::Code::kInvalidArgument);
  CHECK(bad.status().message().find("maxIdleSeconds") != std::string::npos);
  *req.mutable_policy_set() = PolicySetOf(Lenient());
  CHECK(w.changes->Propose(req, kAlice).status().code() == Status::Code::kFailedPrecondition);
  CHECK(w.changes->ListChanges({})->changes_size() == 1);  // nothing stored
}

TEST_CASE("policy: the proposer cannot approve, by any token of theirs; the refusal is audited") {
  World w;
  uint64_t id = w.Propose(BlockUsbExceptLab());
  CHECK(w.Approve(id, kAliceApprover).status().code() == Status::Code::kPermissionDenied);
  CHECK(w.Approve(id, "token:ALICE (approver)").status().code() == Status::Code::kPermissionDenied);
  CHECK(Contains(w.AuditActions(false), "policy.approve"));
  CHECK(w.Apply(id).status().code() == Status::Code::kFailedPrecondition);  // not approved
  auto approved = w.Approve(id);
  REQUIRE(approved.ok());
  CHECK(approved->state() == v1::APPROVED);
  CHECK(approved->decided_by() == kBob);
  CHECK(w.Approve(id).status().code() == Status::Code::kFailedPrecondition);  // once
  v1::PolicyDecisionRequest reject;
  reject.set_change_id(id);
  CHECK(w.changes->Reject(reject, kBob).status().code() == Status::Code::kInvalidArgument);
  reject.set_change_id(999);
  reject.set_reason("no");
  CHECK(w.changes->Reject(reject, kBob).status().code() == Status::Code::kNotFound);
}

TEST_CASE("policy: preview's numbers are the statuses after apply; rollback restores them") {
  World w;
  std::string plain1 = w.Device(), plain2 = w.Device(), lab = w.Device();
  w.Tag(lab, "lab");
  const auto before = w.Counts();
  CHECK(before == std::map<v1::DeviceStatus, uint64_t>{{v1::COMPLIANT, 3}});

  uint64_t id = w.Propose(BlockUsbExceptLab());
  v1::PolicyChangeRequest preq;
  preq.set_change_id(id);
  auto preview = w.changes->Preview(preq);
  REQUIRE(preview.ok());
  CHECK(preview->devices() == 3);
  CHECK(preview->changed() == 2);
  CHECK(NonZero(preview->before()) == before);
  const auto predicted = NonZero(preview->after());
  CHECK(predicted ==
        std::map<v1::DeviceStatus, uint64_t>{{v1::COMPLIANT, 1}, {v1::NON_COMPLIANT, 2}});
  REQUIRE(preview->checks_size() == 1);
  CHECK(preview->checks(0).check() == "usb_storage");
  CHECK(preview->checks(0).failing_before() == 0);
  CHECK(preview->checks(0).failing_after() == 2);
  CHECK(preview->checks(0).newly_failing() == 2);
  CHECK(w.Counts() == before);  // a preview changes nothing

  REQUIRE(w.Approve(id).ok());
  auto applied = w.Apply(id);
  REQUIRE(applied.ok());
  CHECK(applied->version() == 2);
  CHECK(applied->devices_changed() == 2);
  CHECK(w.Counts() == predicted);
  CHECK(w.Status(lab) == v1::COMPLIANT);
  CHECK(w.Status(plain1) == v1::NON_COMPLIANT);
  CHECK(NonZero(applied->before().by_status()) == before);
  CHECK(NonZero(applied->after().by_status()) == predicted);

  // Review: before, right after, and now.
  auto review = w.changes->Review(preq);
  REQUIRE(review.ok());
  CHECK(NonZero(review->now().by_status()) == predicted);
  REQUIRE(review->now().by_check_size() == 1);
  CHECK(review->now().by_check(0).failing() == 2);

  v1::RollbackPolicyRequest rb;
  rb.set_to_version(2);
  rb.set_reason("r");
  CHECK(w.changes->Rollback(rb, kAlice).status().code() == Status::Code::kFailedPrecondition);
  rb.set_to_version(7);
  CHECK(w.changes->Rollback(rb, kAlice).status().code() == Status::Code::kNotFound);
  rb.set_to_version(1);
  rb.clear_reason();
  CHECK(w.changes->Rollback(rb, kAlice).status().code() == Status::Code::kInvalidArgument);
  rb.set_reason("lab machines lost USB");
  auto rolled = w.changes->Rollback(rb, kAlice);
  REQUIRE(rolled.ok());
  CHECK(rolled->kind() == v1::ROLLBACK);
  CHECK(rolled->version() == 3);
  CHECK(rolled->rollback_to() == 1);
  CHECK(w.Counts() == before);
  CHECK(w.Status(plain2) == v1::COMPLIANT);

  v1::DiffPolicyVersionsRequest diff;
  diff.set_from_version(1);
  diff.set_to_version(2);
  auto lines = w.changes->Diff(diff);
  REQUIRE(lines.ok());
  CHECK_FALSE(lines->lines().empty());
  diff.set_to_version(3);
  CHECK(w.changes->Diff(diff)->lines().empty());  // version 3 is version 1 again
  for (const char* action : {"policy.propose", "policy.approve", "policy.apply",
                             "policy.reevaluate", "policy.rollback"}) {
    CHECK_MESSAGE(Contains(w.AuditActions(true), action), action);
  }
}

TEST_CASE("policy: one-step rollback only undoes the change in force; others need approval") {
  World w;
  uint64_t first = w.Propose(BlockUsbExceptLab());
  REQUIRE(w.Approve(first).ok());
  REQUIRE(w.Apply(first).ok());  // version 2, base 1
  v1::PolicySet other = BlockUsbExceptLab();
  other.set_description("second");
  uint64_t second = w.Propose(other);
  REQUIRE(w.Approve(second).ok());
  REQUIRE(w.Apply(second).ok());  // version 3, base 2
  v1::RollbackPolicyRequest rb;
  rb.set_reason("back to the start");
  rb.set_to_version(1);  // not what version 3 replaced
  auto proposed = w.changes->Rollback(rb, kAlice);
  REQUIRE(proposed.ok());
  CHECK(proposed->state() == v1::PROPOSED);
  CHECK(proposed->decided_by().empty());
  CHECK(w.changes->GetPolicy({})->version() == 3);
  CHECK(w.Approve(proposed->id(), kAliceApprover).status().code() ==
        Status::Code::kPermissionDenied);
  REQUIRE(w.Approve(proposed->id()).ok());
  auto applied = w.Apply(proposed->id());
  REQUIRE(applied.ok());
  CHECK(applied->version() == 4);
  CHECK(applied->kind() == v1::ROLLBACK);
  // Version 4 replaced version 3: going back to 3 is the plan, one step, approver recorded.
  rb.set_to_version(3);
  auto undo = w.changes->Rollback(rb, kAlice);
  REQUIRE(undo.ok());
  CHECK(undo->state() == v1::APPLIED);
  CHECK(undo->version() == 5);
  CHECK(undo->decided_by() == kBob);
  CHECK(undo->decision_reason().find("rollback plan of change " + std::to_string(proposed->id())) !=
        std::string::npos);
}

TEST_CASE("policy: a device's OS cannot pass for tags in the effective-policy cache") {
  v1::PolicySet set = BlockUsbExceptLab();
  auto normal = collectors::NormalizePolicySet(set);
  REQUIRE(normal.ok());
  PolicyVersionRecord v;
  v.number = 2;
  v.set = *normal;
  PolicySnapshot snap(v, {});
  // A device reporting os "linux\nlab" (or "5:linux3:lab") resolves to the default, first or
  // not, and never fills the entry of a real linux device tagged lab.
  for (const char* os : {"linux\nlab", "5:linux3:lab"}) {
    CHECK(snap.Resolve(os, {})->applied.empty());
  }
  CHECK(snap.Resolve("linux", {"lab"})->applied == std::vector<std::string>{"lab"});
  CHECK(snap.Resolve("linux\nlab", {})->applied.empty());
}

TEST_CASE("policy: a change proposed on an older version can be neither approved nor applied") {
  World w;
  uint64_t first = w.Propose(BlockUsbExceptLab());
  v1::PolicySet other = BlockUsbExceptLab();
  other.set_description("the other one");
  uint64_t second = w.Propose(other);
  REQUIRE(w.Approve(second).ok());
  REQUIRE(w.Approve(first).ok());
  REQUIRE(w.Apply(first).ok());
  auto refused = w.Apply(second);
  CHECK(refused.status().code() == Status::Code::kFailedPrecondition);
  CHECK(refused.status().message().find("propose it again") != std::string::npos);
  CHECK(w.changes->GetPolicy({})->version() == 2);
}

TEST_CASE("policy: agents get the version always and the policy only when theirs differs") {
  World w;
  std::string dev = w.Device();
  const std::string v1_version = w.policy->Get()->Resolve("linux", {})->policy.version();
  auto current = w.Report(dev, v1_version);
  CHECK(current.policy_version() == v1_version);
  CHECK_FALSE(current.has_policy());
  uint64_t id = w.Propose(BlockUsbExceptLab());
  REQUIRE(w.Approve(id).ok());
  REQUIRE(w.Apply(id).ok());
  auto behind = w.Report(dev, v1_version);
  CHECK(behind.policy_version() != v1_version);
  REQUIRE(behind.has_policy());
  CHECK(behind.policy().version() == behind.policy_version());
  CHECK(behind.policy().usb_storage().mode() == v1::BLOCKED);
  // A lab device is sent its own effective policy (the override clears the USB rule).
  w.Tag(dev, "lab");
  auto lab = w.Report(dev, behind.policy_version());
  REQUIRE(lab.has_policy());
  CHECK(lab.policy_version().find("+lab") != std::string::npos);
  CHECK_FALSE(lab.policy().has_usb_storage());
  // A resent attestation (its acknowledgement was lost) is answered with the version too.
  v1::Attestation again;
  again.set_device_id(dev);
  again.set_sequence(++w.sequence[dev]);
  again.mutable_issued_at()->set_seconds(w.clock.NowMillis() / 1000);
  again.mutable_platform()->set_os("linux");
  again.set_policy_version("old");
  v1::ReportRequest req;
  *req.add_attestations() = *signing::SignAttestation(again, w.keys.at(dev));
  REQUIRE(w.aggregator->Report(req)->acks(0).code() == kAckOk);
  auto dup = w.aggregator->Report(req);
  REQUIRE(dup.ok());
  CHECK(dup->acks(0).code() == kAckAlreadyExists);
  CHECK(dup->policy_version() == lab.policy_version());
  CHECK(dup->has_policy());  // the agent's "old" is not the version in force
}

TEST_CASE("policy: a tag change re-judges the device at once; GetDevicePolicy names origins") {
  World w;
  std::string dev = w.Device();
  uint64_t id = w.Propose(BlockUsbExceptLab());
  REQUIRE(w.Approve(id).ok());
  REQUIRE(w.Apply(id).ok());
  CHECK(w.Status(dev) == v1::NON_COMPLIANT);
  w.Tag(dev, "lab");
  CHECK(w.Status(dev) == v1::COMPLIANT);
  v1::GetDevicePolicyRequest req;
  req.set_device_id(dev);
  auto p = w.changes->GetDevicePolicy(req);
  REQUIRE(p.ok());
  CHECK(p->version() == 2);
  REQUIRE(p->applied_overrides_size() == 1);
  CHECK(p->applied_overrides(0) == "lab");
  REQUIRE(p->origins_size() == 1);
  CHECK(p->origins(0).path() == "usbStorage");
  CHECK(p->origins(0).override() == "lab");
  req.set_device_id("dev-none");
  CHECK(w.changes->GetDevicePolicy(req).status().code() == Status::Code::kNotFound);
}

TEST_CASE("policy: a version applied on one replica reaches the other at its next tick") {
  World w;
  std::string dev = w.Device();
  // A second server on the same database, with its own policy state.
  auto snapshot = LoadPolicySnapshot(*w.store);
  REQUIRE(snapshot.ok());
  PolicyState other(*snapshot);
  PolicyChanges other_changes(*w.store, w.clock, other, w.counters);
  uint64_t id = w.Propose(BlockUsbExceptLab());
  REQUIRE(w.Approve(id).ok());
  REQUIRE(w.Apply(id).ok());
  CHECK(other.Get()->version().number == 1);
  REQUIRE(other_changes.Tick().ok());
  CHECK(other.Get()->version().number == 2);
  CHECK(w.Status(dev) == v1::NON_COMPLIANT);
}

v1::RequestExceptionRequest ExceptionFor(const std::string& device, const std::string& tag,
                                         int64_t expires_ms) {
  v1::RequestExceptionRequest req;
  req.set_device_id(device);
  req.set_tag(tag);
  req.set_check("usb_storage");
  req.set_reason("lab work, ticket 7");
  *req.mutable_expires_at() = FromMillis(expires_ms);
  return req;
}

TEST_CASE("exceptions: approved by someone else, EXCEPTED while valid, expiry flips and alerts") {
  World w;
  std::string dev = w.Device(), tagged = w.Device();
  w.Tag(tagged, "team-x");
  uint64_t id = w.Propose(BlockUsbExceptLab());
  REQUIRE(w.Approve(id).ok());
  REQUIRE(w.Apply(id).ok());
  REQUIRE(w.Status(dev) == v1::NON_COMPLIANT);

  // Bad requests.
  CHECK(w.changes->RequestException(ExceptionFor(dev, "team-x", kStart + 60'000), kAlice)
            .status()
            .code() == Status::Code::kInvalidArgument);  // both device and tag
  CHECK(w.changes->RequestException(ExceptionFor(dev, "", kStart - 1), kAlice).status().code() ==
        Status::Code::kInvalidArgument);  // already expired
  CHECK(w.changes->RequestException(ExceptionFor(dev, "", kStart + 400LL * 86400'000), kAlice)
            .status()
            .code() == Status::Code::kInvalidArgument);  // too long
  auto unknown = ExceptionFor(dev, "", kStart + 60'000);
  unknown.set_check("usb");
  CHECK(w.changes->RequestException(unknown, kAlice).status().code() ==
        Status::Code::kInvalidArgument);
  CHECK(w.changes->RequestException(ExceptionFor("dev-none", "", kStart + 60'000), kAlice)
            .status()
            .code() == Status::Code::kNotFound);

  auto e = w.changes->RequestException(ExceptionFor(dev, "", kStart + 60'000), kAlice);
  REQUIRE(e.ok());
  auto t = w.changes->RequestException(ExceptionFor("", "team-x", kStart + 3'600'000), kAlice);
  REQUIRE(t.ok());
  CHECK(w.Status(dev) == v1::NON_COMPLIANT);  // requested is not approved
  v1::ExceptionDecisionRequest d;
  d.set_exception_id(e->id());
  CHECK(w.changes->ApproveException(d, kAliceApprover).status().code() ==
        Status::Code::kPermissionDenied);
  REQUIRE(w.changes->ApproveException(d, kBob).ok());
  CHECK(w.Status(dev) == v1::EXCEPTED);
  d.set_exception_id(t->id());
  REQUIRE(w.changes->ApproveException(d, kBob).ok());
  CHECK(w.Status(tagged) == v1::EXCEPTED);
  CHECK(w.Counts()[v1::EXCEPTED] == 2);

  // A report while excepted stays EXCEPTED; the check says which exception covers it.
  w.Report(dev);
  CHECK(w.Status(dev) == v1::EXCEPTED);
  v1::GetDeviceRequest gd;
  gd.set_device_id(dev);
  auto shown = w.fleet->GetDevice(gd);
  REQUIRE(shown.ok());
  REQUIRE(shown->checks_size() == 1);
  CHECK(shown->checks(0).status() == v1::CHECK_EXCEPTED);
  CHECK(shown->checks(0).reason().find("exception " + std::to_string(e->id())) !=
        std::string::npos);

  // Expiry by the server's clock: the device flips back and both alerts are raised.
  uint64_t last_alert = *w.store->LastAlertId();
  w.clock.Advance(61'000);
  auto expired = w.changes->Tick();
  REQUIRE(expired.ok());
  CHECK(*expired == 1);
  CHECK(w.Status(dev) == v1::NON_COMPLIANT);
  CHECK(w.Status(tagged) == v1::EXCEPTED);  // its exception runs for an hour
  auto alerts = w.store->ListAlerts(last_alert, 100, dev);
  REQUIRE(alerts.ok());
  REQUIRE(alerts->size() == 2);
  CHECK((*alerts)[0].kind == "exception.expired");
  CHECK((*alerts)[1].kind == "device.non_compliant");
  CHECK(*w.changes->Tick() == 0);  // once
  v1::ListExceptionsRequest list;
  list.set_state(v1::EXCEPTION_EXPIRED);
  CHECK(w.changes->ListExceptions(list)->exceptions_size() == 1);

  // Revocation ends the tag exception at once.
  d.set_exception_id(t->id());
  CHECK(w.changes->RevokeException(d, kAlice).status().code() == Status::Code::kInvalidArgument);
  d.set_reason("team-x is done");
  REQUIRE(w.changes->RevokeException(d, kAlice).ok());
  CHECK(w.Status(tagged) == v1::NON_COMPLIANT);
  CHECK(w.changes->RevokeException(d, kAlice).status().code() == Status::Code::kFailedPrecondition);
  for (const char* action :
       {"exception.request", "exception.approve", "exception.expire", "exception.revoke"}) {
    CHECK_MESSAGE(Contains(w.AuditActions(true), action), action);
  }
}

TEST_CASE("exceptions: an exception approved after its expiry is refused") {
  World w;
  std::string dev = w.Device();
  auto e = w.changes->RequestException(ExceptionFor(dev, "", kStart + 10'000), kAlice);
  REQUIRE(e.ok());
  w.clock.Advance(20'000);
  v1::ExceptionDecisionRequest d;
  d.set_exception_id(e->id());
  CHECK(w.changes->ApproveException(d, kBob).status().code() == Status::Code::kFailedPrecondition);
  d.set_reason("too late");
  REQUIRE(w.changes->RejectException(d, kBob).ok());
  CHECK(w.changes->RejectException(d, kBob).status().code() == Status::Code::kFailedPrecondition);
}

TEST_CASE("auth: PersonOf joins a person's tokens, case-insensitively") {
  CHECK(PersonOf("token:alice (admin)") == "alice");
  CHECK(PersonOf("token:Alice+approver (approver)") == "alice");
  CHECK(PersonOf("token:bob (approver)") == "bob");
  CHECK(PersonOf("server (--policy p.json)") == "server (--policy p.json)");
}

}  // namespace
}  // namespace vigil::server

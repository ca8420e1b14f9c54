// Policy as code: the change process (propose, preview, approve by someone else, reject, apply,
// roll back, review, history, diff) and exceptions (request, approve, reject, revoke, expire).
// Every step is one store transaction with its audit record; state moves are compare-and-set
// on the stored state, so two people (or two replicas) deciding at once cannot both win.
// Authorization by role happens in the service layer; the rules that depend on who the actor
// is (an approver is not the proposer) are here. docs/policy.md describes the process.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "server/limits.h"
#include "server/policy_state.h"
#include "server/store.h"
#include "vigil/v1/fleet_service.pb.h"

namespace vigil::server {

class PolicyChanges {
 public:
  PolicyChanges(Store& store, const Clock& clock, PolicyState& policy, Counters& counters)
      : store_(store), clock_(clock), policy_(policy), counters_(counters) {}

  // Start-up: when the store has no version yet, `initial` becomes version 1 (a change of kind
  // INITIAL by `actor`); then loads the current version into the PolicyState. When the store
  // already has one and `initial` differs, it stays in force and a warning says so (changes go
  // through the process, not through a server's flags). Replicas starting together are fine:
  // one installs version 1, the others load it.
  static Result<std::shared_ptr<const PolicySnapshot>> Bootstrap(Store& store, const Clock& clock,
                                                                 const v1::PolicySet& initial,
                                                                 const std::string& actor);

  Result<v1::PolicyVersionInfo> GetPolicy(const v1::GetPolicyRequest& req);
  Result<v1::DevicePolicyResponse> GetDevicePolicy(const v1::GetDevicePolicyRequest& req);
  Result<v1::PolicyChange> Propose(const v1::ProposePolicyChangeRequest& req,
                                   const std::string& actor);
  Result<v1::PolicyImpact> Preview(const v1::PolicyChangeRequest& req);
  Result<v1::PolicyChange> Approve(const v1::PolicyDecisionRequest& req, const std::string& actor);
  Result<v1::PolicyChange> Reject(const v1::PolicyDecisionRequest& req, const std::string& actor);
  Result<v1::PolicyChange> Apply(const v1::PolicyChangeRequest& req, const std::string& actor);
  Result<v1::PolicyChange> Rollback(const v1::RollbackPolicyRequest& req, const std::string& actor);
  Result<v1::PolicyReview> Review(const v1::PolicyChangeRequest& req);
  Result<v1::PolicyChange> GetChange(const v1::PolicyChangeRequest& req);
  Result<v1::ListPolicyChangesResponse> ListChanges(const v1::ListPolicyChangesRequest& req);
  Result<v1::DiffPolicyVersionsResponse> Diff(const v1::DiffPolicyVersionsRequest& req);

  Result<v1::PolicyException> RequestException(const v1::RequestExceptionRequest& req,
                                               const std::string& actor);
  Result<v1::PolicyException> ApproveException(const v1::ExceptionDecisionRequest& req,
                                               const std::string& actor);
  Result<v1::PolicyException> RejectException(const v1::ExceptionDecisionRequest& req,
                                              const std::string& actor);
  Result<v1::PolicyException> RevokeException(const v1::ExceptionDecisionRequest& req,
                                              const std::string& actor);
  Result<v1::ListExceptionsResponse> ListExceptions(const v1::ListExceptionsRequest& req);

  // The server's timer (every second or so): expires ACTIVE exceptions whose time has passed,
  // each with an "exception.expired" alert in the same transaction; picks up versions and
  // exceptions changed by other replicas; re-judges the devices they affect. Returns how many
  // exceptions this call expired.
  Result<uint64_t> Tick();

 private:
  // Re-reads the policy in force and re-judges what it changed.
  Result<ReevaluationResult> Refresh();
  Result<v1::PolicyChange> LoadChange(uint64_t id);
  Result<v1::PolicyException> LoadException(uint64_t id);
  Result<v1::ComplianceSnapshot> Snapshot();
  // Makes `change` (APPROVED) the next version: base check, apply, re-evaluation, snapshots.
  Result<v1::PolicyChange> ApplyApproved(v1::PolicyChange change, const std::string& actor);

  Store& store_;
  const Clock& clock_;
  PolicyState& policy_;
  Counters& counters_;
  std::mutex scan_mu_;                     // one preview or review at a time
  std::atomic<bool> sweep_needed_{false};  // a re-evaluation failed or has not run yet
  std::atomic<int> sweeps_pending_{0};     // sweeps still due after a swap (late reports)
};

}  // namespace vigil::server

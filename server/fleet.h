// Fleet: the security team's read side — device lists, one device's checks and history,
// summaries. Effective status is derived here: TAMPERED (sticky) over STALE (no attestation
// within the policy's check-in window, judged with the injected clock) over the last verdict.
#pragma once

#include "common/clock.h"
#include "common/status.h"
#include "server/store.h"
#include "vigil/v1/fleet_service.pb.h"
#include "vigil/v1/policy.pb.h"

namespace vigil::server {

class Fleet {
 public:
  Fleet(Store& store, const Clock& clock, const v1::Policy& policy);

  Result<v1::ListDevicesResponse> ListDevices(const v1::ListDevicesRequest& req);
  Result<v1::GetDeviceResponse> GetDevice(const v1::GetDeviceRequest& req);
  Result<v1::SummaryResponse> Summary(const v1::SummaryRequest& req);

  v1::DeviceStatus EffectiveStatus(const DeviceRecord& d) const;

 private:
  int64_t StaleBefore() const;
  v1::DeviceSummary ToSummary(const DeviceRecord& d) const;

  Store& store_;
  const Clock& clock_;
  const v1::Policy& policy_;
};

}  // namespace vigil::server

// The gRPC layer: thin. Each method validates, calls the domain (Aggregator, Fleet) and converts
// Status to grpc::Status. Never throws.
#pragma once

#include "server/aggregator.h"
#include "server/fleet.h"
#include "vigil/v1/agent_service.grpc.pb.h"
#include "vigil/v1/fleet_service.grpc.pb.h"

namespace vigil::server {

grpc::Status ToGrpc(const Status& s);

class AgentServiceImpl final : public v1::AgentService::Service {
 public:
  explicit AgentServiceImpl(Aggregator& aggregator) : aggregator_(aggregator) {}
  grpc::Status Enroll(grpc::ServerContext*, const v1::EnrollRequest* req,
                      v1::EnrollResponse* resp) override;
  grpc::Status Report(grpc::ServerContext*, const v1::ReportRequest* req,
                      v1::ReportResponse* resp) override;

 private:
  Aggregator& aggregator_;
};

class FleetServiceImpl final : public v1::FleetService::Service {
 public:
  explicit FleetServiceImpl(Fleet& fleet) : fleet_(fleet) {}
  grpc::Status ListDevices(grpc::ServerContext*, const v1::ListDevicesRequest* req,
                           v1::ListDevicesResponse* resp) override;
  grpc::Status GetDevice(grpc::ServerContext*, const v1::GetDeviceRequest* req,
                         v1::GetDeviceResponse* resp) override;
  grpc::Status Summary(grpc::ServerContext*, const v1::SummaryRequest* req,
                       v1::SummaryResponse* resp) override;

 private:
  Fleet& fleet_;
};

}  // namespace vigil::server

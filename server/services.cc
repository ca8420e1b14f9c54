#include "server/services.h"

namespace vigil::server {

grpc::Status ToGrpc(const Status& s) {
  using C = Status::Code;
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (s.code()) {
    case C::kOk:
      return grpc::Status::OK;
    case C::kNotFound:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case C::kPermissionDenied:
      code = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case C::kInvalidArgument:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case C::kUnavailable:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    case C::kDeadlineExceeded:
      code = grpc::StatusCode::DEADLINE_EXCEEDED;
      break;
    case C::kAlreadyExists:
      code = grpc::StatusCode::ALREADY_EXISTS;
      break;
    case C::kFailedPrecondition:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case C::kIoError:
    case C::kCorruption:
    case C::kInternal:
      code = grpc::StatusCode::INTERNAL;
      break;
  }
  return grpc::Status(code, s.message());
}

template <typename Resp>
static grpc::Status Reply(Result<Resp> r, Resp* out) {
  if (!r.ok()) return ToGrpc(r.status());
  *out = std::move(r).value();
  return grpc::Status::OK;
}

grpc::Status AgentServiceImpl::Enroll(grpc::ServerContext*, const v1::EnrollRequest* req,
                                      v1::EnrollResponse* resp) {
  return Reply(aggregator_.Enroll(*req), resp);
}

grpc::Status AgentServiceImpl::Report(grpc::ServerContext*, const v1::ReportRequest* req,
                                      v1::ReportResponse* resp) {
  return Reply(aggregator_.Report(*req), resp);
}

grpc::Status FleetServiceImpl::ListDevices(grpc::ServerContext*, const v1::ListDevicesRequest* req,
                                           v1::ListDevicesResponse* resp) {
  return Reply(fleet_.ListDevices(*req), resp);
}

grpc::Status FleetServiceImpl::GetDevice(grpc::ServerContext*, const v1::GetDeviceRequest* req,
                                         v1::GetDeviceResponse* resp) {
  return Reply(fleet_.GetDevice(*req), resp);
}

grpc::Status FleetServiceImpl::Summary(grpc::ServerContext*, const v1::SummaryRequest* req,
                                       v1::SummaryResponse* resp) {
  return Reply(fleet_.Summary(*req), resp);
}

}  // namespace vigil::server

#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace vigil {

Status Status::FromErrno(int err, const std::string& what) {
  std::string m = what + ": " + std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return NotFound(std::move(m));
    case EACCES:
    case EPERM:
      return PermissionDenied(std::move(m));
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
    case EXDEV:
      return InvalidArgument(std::move(m));
    case EEXIST:
      return AlreadyExists(std::move(m));
    case ETIMEDOUT:
      return DeadlineExceeded(std::move(m));
    default:
      return IoError(std::move(m));
  }
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  const char* name = "INTERNAL";
  switch (code_) {
    case Code::kOk:
      name = "OK";
      break;
    case Code::kNotFound:
      name = "NOT_FOUND";
      break;
    case Code::kPermissionDenied:
      name = "PERMISSION_DENIED";
      break;
    case Code::kInvalidArgument:
      name = "INVALID_ARGUMENT";
      break;
    case Code::kUnavailable:
      name = "UNAVAILABLE";
      break;
    case Code::kDeadlineExceeded:
      name = "DEADLINE_EXCEEDED";
      break;
    case Code::kIoError:
      name = "IO_ERROR";
      break;
    case Code::kCorruption:
      name = "CORRUPTION";
      break;
    case Code::kAlreadyExists:
      name = "ALREADY_EXISTS";
      break;
    case Code::kFailedPrecondition:
      name = "FAILED_PRECONDITION";
      break;
    case Code::kInternal:
      name = "INTERNAL";
      break;
    case Code::kUnauthenticated:
      name = "UNAUTHENTICATED";
      break;
    case Code::kResourceExhausted:
      name = "RESOURCE_EXHAUSTED";
      break;
  }
  return std::string(name) + ": " + message_;
}

}  // namespace vigil

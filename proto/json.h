// Strict JSON <-> protobuf (the protobuf JSON mapping). Unknown fields are errors; the error
// message names the offending field. Used for policy, agent config and CLI output.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "common/status.h"

namespace vigil {

// Parses `json` into `msg`. `what` names the input in messages (e.g. a file path).
Status ParseJsonStrict(const std::string& json, google::protobuf::Message* msg,
                       const std::string& what);

// Prints `msg` as JSON with the original proto field names in lowerCamelCase (the mapping's
// default), enums as names, and zero values included when `with_defaults`.
std::string ToJson(const google::protobuf::Message& msg, bool pretty = true,
                   bool with_defaults = false);

}  // namespace vigil

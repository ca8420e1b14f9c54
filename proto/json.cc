#include "proto/json.h"

#include <google/protobuf/util/json_util.h>

namespace vigil {

Status ParseJsonStrict(const std::string& json, google::protobuf::Message* msg,
                       const std::string& what) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  auto st = google::protobuf::util::JsonStringToMessage(json, msg, opts);
  if (!st.ok()) {
    return Status::InvalidArgument(what + ": " + std::string(st.message()));
  }
  return Status::Ok();
}

std::string ToJson(const google::protobuf::Message& msg, bool pretty, bool with_defaults) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = pretty;
  opts.always_print_primitive_fields = with_defaults;
  opts.preserve_proto_field_names = false;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(msg, &out, opts);
  return out;
}

}  // namespace vigil

// SanitizeUtf8 on any bytes: the result is valid UTF-8, by IsValidUtf8 and by protobuf's own
// parser of proto3 strings (the two agree on every input); valid input comes back unchanged and
// only valid input does; the result is stable (same input, same output; sanitizing it again
// changes nothing); SanitizeStrings does the same to a message's string fields.
#include <google/protobuf/stubs/logging.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "collectors/utf8.h"
#include "vigil/v1/evidence.pb.h"

namespace {

// Whether protobuf accepts `s` as a proto3 string: a StringFact whose value (field 1,
// length-delimited) holds `s`, parsed.
bool ProtobufAccepts(std::string_view s) {
  std::string wire = "\x0a";
  for (size_t n = s.size();; n >>= 7) {
    if (n < 0x80) {
      wire.push_back(static_cast<char>(n));
      break;
    }
    wire.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  wire.append(s);
  vigil::v1::StringFact fact;
  return fact.ParseFromString(wire);
}

void Require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // protobuf logs every string it refuses to parse or serialize.
  static auto* quiet = new google::protobuf::LogSilencer;
  (void)quiet;
  using vigil::collectors::IsValidUtf8;
  using vigil::collectors::SanitizeUtf8;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const bool valid = IsValidUtf8(in);
  const std::string out = SanitizeUtf8(in);
  Require(IsValidUtf8(out));
  Require(valid == (out == in));
  Require(SanitizeUtf8(in) == out);
  Require(SanitizeUtf8(out) == out);
  Require(ProtobufAccepts(in) == valid);
  Require(ProtobufAccepts(out));

  vigil::v1::StringFact fact;
  fact.set_value(std::string(in));
  fact.mutable_from()->set_raw(std::string(in));
  vigil::collectors::SanitizeStrings(&fact);
  Require(fact.value() == out && fact.from().raw() == out);
  return 0;
}

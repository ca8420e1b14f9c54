#include "collectors/utf8.h"

#include <google/protobuf/descriptor.h>

#include <vector>

namespace vigil::collectors {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Length of the well-formed sequence starting at s[i], 0 when there is none. The ranges of the
// second byte after E0, ED, F0 and F4 are what exclude overlong forms, surrogates and code points
// above U+10FFFF (the Unicode Standard, table 3-7).
size_t SequenceLength(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char b = at(0);
  if (b < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (b >= 0xc2 && b <= 0xdf) {
    len = 2;
  } else if (b >= 0xe0 && b <= 0xef) {
    len = 3;
    if (b == 0xe0) lo = 0xa0;  // below: overlong
    if (b == 0xed) hi = 0x9f;  // above: surrogates
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4;
    if (b == 0xf0) lo = 0x90;  // below: overlong
    if (b == 0xf4) hi = 0x8f;  // above: beyond U+10FFFF
  } else {
    return 0;  // a continuation byte, C0/C1 (always overlong) or F5..FF
  }
  if (s.size() - i < len) return 0;
  if (at(1) < lo || at(1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if ((at(k) & 0xc0) != 0x80) return 0;
  }
  return len;
}

void AppendEscape(unsigned char b, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->append("\\x");
  out->push_back(kHex[b >> 4]);
  out->push_back(kHex[b & 0xf]);
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = SequenceLength(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    if (size_t len = SequenceLength(s, i); len != 0) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      // One byte at a time, so each invalid byte keeps its own escape and the next byte gets its
      // chance to start a valid sequence (E2 82 41: `\xe2\x82A`).
      AppendEscape(static_cast<unsigned char>(s[i]), &out);
      ++i;
    }
  }
  return out;
}

void SanitizeStrings(Message* msg) {
  const Reflection* r = msg->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(*msg, &fields);  // set fields only: nothing unset is created
  for (const FieldDescriptor* f : fields) {
    if (f->type() == FieldDescriptor::TYPE_STRING) {
      std::string scratch;  // holds the value only when reflection cannot lend a reference
      if (f->is_repeated()) {
        for (int i = 0, n = r->FieldSize(*msg, f); i < n; ++i) {
          const std::string& v = r->GetRepeatedStringReference(*msg, f, i, &scratch);
          if (!IsValidUtf8(v)) r->SetRepeatedString(msg, f, i, SanitizeUtf8(v));
        }
      } else {
        const std::string& v = r->GetStringReference(*msg, f, &scratch);
        if (!IsValidUtf8(v)) r->SetString(msg, f, SanitizeUtf8(v));
      }
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      // Map fields are repeated entry messages to reflection, so their keys and values are
      // covered here too.
      if (f->is_repeated()) {
        for (int i = 0, n = r->FieldSize(*msg, f); i < n; ++i) {
          SanitizeStrings(r->MutableRepeatedMessage(msg, f, i));
        }
      } else {
        SanitizeStrings(r->MutableMessage(msg, f));
      }
    }
  }
}

}  // namespace vigil::collectors

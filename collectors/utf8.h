// UTF-8 hygiene for evidence. Collectors copy bytes from the machine (file names, raw config
// lines, dconf and KConfig values, user names, ...) into proto3 `string` fields, which must hold
// valid UTF-8: protobuf serializes invalid bytes (logging an error) but refuses to parse them, so
// a single byte a user writes into their own settings would make every attestation of the
// device unreadable by the server. The collectors' entry points pass what they return through
// SanitizeStrings, so whatever the agent signs parses.
//
// An invalid byte becomes the four characters `\xNN` (lower-case hex), the form vigilctl uses to
// show invalid UTF-8: the evidence says the byte was not text and which byte it was, and two
// inputs that differ only in their invalid bytes stay distinguishable (U+FFFD would merge them).
// Valid text, including a literal backslash, is left unchanged, so the text `\xff` and the byte
// 0xFF read the same; no escaping that leaves valid text alone can avoid that.
//
// Pure functions, safe to call from any thread.
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>

namespace vigil::collectors {

// True when `s` is well-formed UTF-8 (the Unicode Standard, table 3-7): no overlong forms, no
// surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence or stray continuation
// byte. This is what protobuf requires of a proto3 string.
bool IsValidUtf8(std::string_view s);

// `s` with each byte that does not belong to a well-formed sequence replaced by `\xNN`. Valid
// input comes back unchanged; the result is always valid UTF-8.
std::string SanitizeUtf8(std::string_view s);

// Applies SanitizeUtf8 to every set `string` field of `msg` and of its sub-messages, recursively
// (singular, repeated, oneof and map fields; map keys too). `bytes` fields are left alone.
void SanitizeStrings(google::protobuf::Message* msg);

}  // namespace vigil::collectors

// A reader for GVDB files: the compiled hash-table format dconf uses for its databases
// (/etc/dconf/db/NAME, ~/.config/dconf/user) and GLib for gschemas.compiled.
//
// Debian ships no public library that opens an arbitrary GVDB file, so this is a small
// reimplementation of the documented format (GLib gvdb-format.h) that mirrors the lookup rules of
// gvdb-reader.c exactly, because what dconf reads is what takes effect. Unlike gvdb-reader.c it
// never trusts the input: every offset is bounds-checked, a malformed hash table is an error (not
// silently an empty table), and big-endian files are rejected. Values are serialized GVariants and
// are decoded with GLib (untrusted mode).
//
// A GvdbTable is an immutable value that shares the file bytes with its nested tables; it may be
// used from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace vigil::collectors::linux_os {

// One decoded GVariant value: its type, its printed form, and the scalar when it has one.
struct VariantValue {
  std::string type;  // GVariant type string, e.g. "u", "b", "s"
  std::string text;  // g_variant_print with type annotations, e.g. "uint32 300"
  std::optional<bool> boolean;
  std::optional<int64_t> integer;  // y, n, q, i, u, x, h (t only when it fits)
  std::optional<double> floating;
  std::optional<std::string> string;  // s, o, g
};

// Parses GVariant text format (e.g. "uint32 300", "300", "true"). `type` is the expected
// GVariant type string, or empty to infer it from the text.
Result<VariantValue> ParseVariantText(std::string_view text, std::string_view type);

class GvdbTable {
 public:
  // Parses a whole GVDB file. Errors: a short file, a bad signature, a big-endian file, an unknown
  // version, or a root hash table whose sizes do not fit the file.
  static Result<GvdbTable> Parse(std::string bytes);

  // True when `key` names a value item (gvdb_table_has_value).
  bool HasValue(std::string_view key) const;
  // The value stored at `key`; nullopt when absent. An error when the item exists but its data
  // lies outside the file.
  Result<std::optional<VariantValue>> GetValue(std::string_view key) const;
  // The nested hash table at `key` (an 'H' item, e.g. dconf's ".locks"); nullopt when absent.
  Result<std::optional<GvdbTable>> GetTable(std::string_view key) const;
  // Every item's full name (parent names + own key), in item order. Items whose parent chain is
  // broken or cyclic are left out, as gvdb_table_get_names does; an error when the names would
  // exceed a size budget (a crafted file can make them grow quadratically).
  Result<std::vector<std::string>> Names() const;

  size_t item_count() const { return n_items_; }

 private:
  struct Item {
    uint32_t hash = 0;
    uint32_t parent = 0;
    uint32_t key_start = 0;
    uint16_t key_size = 0;
    char type = 0;
    uint32_t start = 0;  // value pointer
    uint32_t end = 0;
  };

  GvdbTable() = default;
  // Reads the hash table header at [start, end) of the file; mirrors gvdb_table_setup_root but
  // reports failure instead of leaving the table empty.
  static Result<GvdbTable> SetupTable(std::shared_ptr<const std::string> data, uint32_t start,
                                      uint32_t end);
  Item ItemAt(uint32_t index) const;
  std::optional<std::string_view> KeyOf(const Item& item) const;
  bool CheckName(uint32_t index, std::string_view key) const;
  std::optional<Item> Lookup(std::string_view key, char type) const;

  std::shared_ptr<const std::string> data_;
  uint32_t bloom_offset_ = 0;
  uint32_t n_bloom_words_ = 0;
  uint32_t buckets_offset_ = 0;
  uint32_t n_buckets_ = 0;
  uint32_t items_offset_ = 0;
  uint32_t n_items_ = 0;
};

}  // namespace vigil::collectors::linux_os

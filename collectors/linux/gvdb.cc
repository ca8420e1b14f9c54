#include "collectors/linux/gvdb.h"

#include <glib.h>

#include <limits>
#include <utility>

namespace vigil::collectors::linux_os {
namespace {

// gvdb-format.h: the header is { u32 signature[2]; u32le version; u32le options;
// gvdb_pointer root; } and a gvdb_pointer is { u32le start; u32le end; }.
constexpr size_t kHeaderSize = 24;
constexpr size_t kHashHeaderSize = 8;  // { u32le n_bloom_words (low 27 bits); u32le n_buckets; }
constexpr size_t kItemSize = 24;  // { hash, parent, key_start, u16 key_size, type, unused, ptr }
constexpr uint32_t kNoParent = 0xffffffffu;
// Budget for Names(); real dconf databases use a few kilobytes of names.
constexpr size_t kMaxNameBytes = 16u << 20;

uint32_t Le32(const std::string& d, size_t off) {
  const auto* p = reinterpret_cast<const unsigned char*>(d.data()) + off;
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

uint16_t Le16(const std::string& d, size_t off) {
  const auto* p = reinterpret_cast<const unsigned char*>(d.data()) + off;
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}

// gvdb_table_lookup's hash: djb2 over *signed* chars, as the C code does.
uint32_t GvdbHash(std::string_view key) {
  uint32_t h = 5381;
  for (char c : key) {
    h = h * 33 + static_cast<uint32_t>(static_cast<int32_t>(static_cast<signed char>(c)));
  }
  return h;
}

struct VariantDeleter {
  void operator()(GVariant* v) const { g_variant_unref(v); }
};
using VariantPtr = std::unique_ptr<GVariant, VariantDeleter>;

VariantValue Describe(GVariant* v) {
  VariantValue out;
  out.type = g_variant_get_type_string(v);
  gchar* printed = g_variant_print(v, TRUE);
  out.text = printed;
  g_free(printed);
  switch (g_variant_classify(v)) {
    case G_VARIANT_CLASS_BOOLEAN:
      out.boolean = g_variant_get_boolean(v) != FALSE;
      break;
    case G_VARIANT_CLASS_BYTE:
      out.integer = g_variant_get_byte(v);
      break;
    case G_VARIANT_CLASS_INT16:
      out.integer = g_variant_get_int16(v);
      break;
    case G_VARIANT_CLASS_UINT16:
      out.integer = g_variant_get_uint16(v);
      break;
    case G_VARIANT_CLASS_INT32:
      out.integer = g_variant_get_int32(v);
      break;
    case G_VARIANT_CLASS_HANDLE:
      out.integer = g_variant_get_handle(v);
      break;
    case G_VARIANT_CLASS_UINT32:
      out.integer = g_variant_get_uint32(v);
      break;
    case G_VARIANT_CLASS_INT64:
      out.integer = g_variant_get_int64(v);
      break;
    case G_VARIANT_CLASS_UINT64: {
      guint64 u = g_variant_get_uint64(v);
      if (u <= static_cast<guint64>(std::numeric_limits<int64_t>::max())) {
        out.integer = static_cast<int64_t>(u);
      }
      break;
    }
    case G_VARIANT_CLASS_DOUBLE:
      out.floating = g_variant_get_double(v);
      break;
    case G_VARIANT_CLASS_STRING:
    case G_VARIANT_CLASS_OBJECT_PATH:
    case G_VARIANT_CLASS_SIGNATURE:
      out.string = g_variant_get_string(v, nullptr);
      break;
    default:
      break;
  }
  return out;
}

}  // namespace

Result<VariantValue> ParseVariantText(std::string_view text, std::string_view type) {
  std::string type_str(type);
  if (!type_str.empty() && !g_variant_type_string_is_valid(type_str.c_str())) {
    return Status::InvalidArgument("invalid GVariant type '" + type_str + "'");
  }
  std::string copy(text);
  GError* error = nullptr;
  const GVariantType* want =
      type_str.empty() ? nullptr : reinterpret_cast<const GVariantType*>(type_str.c_str());
  GVariant* parsed = g_variant_parse(want, copy.data(), copy.data() + copy.size(), nullptr, &error);
  if (parsed == nullptr) {
    std::string msg = error != nullptr ? error->message : "parse error";
    if (error != nullptr) g_error_free(error);
    return Status::InvalidArgument("cannot parse GVariant '" + copy + "': " + msg);
  }
  VariantPtr owned(g_variant_ref_sink(parsed));
  return Describe(owned.get());
}

Result<GvdbTable> GvdbTable::Parse(std::string bytes) {
  if (bytes.size() < kHeaderSize) {
    return Status::Corruption("not a GVDB file: " + std::to_string(bytes.size()) +
                              " bytes is shorter than the 24-byte header");
  }
  if (bytes.compare(0, 8, "GVariant") != 0) {
    if (bytes.compare(0, 8, "raVGtnai") == 0) {
      return Status::Corruption("big-endian GVDB files are not supported");
    }
    return Status::Corruption("not a GVDB file: bad signature");
  }
  uint32_t version = Le32(bytes, 8);
  if (version != 0) {
    return Status::Corruption("unsupported GVDB version " + std::to_string(version));
  }
  uint32_t root_start = Le32(bytes, 16);
  uint32_t root_end = Le32(bytes, 20);
  return SetupTable(std::make_shared<const std::string>(std::move(bytes)), root_start, root_end);
}

Result<GvdbTable> GvdbTable::SetupTable(std::shared_ptr<const std::string> data, uint32_t start,
                                        uint32_t end) {
  const size_t file_size = data->size();
  auto where = [&] {
    return "GVDB hash table at [" + std::to_string(start) + ", " + std::to_string(end) + ")";
  };
  if (start > end || end > file_size || (start & 3) != 0) {
    return Status::Corruption(where() + " lies outside the file or is misaligned");
  }
  size_t size = end - start;
  if (size < kHashHeaderSize) return Status::Corruption(where() + " is too small");
  size -= kHashHeaderSize;
  // The top 5 bits of n_bloom_words hold the bloom shift; gvdb-reader.c masks them off.
  uint64_t n_bloom = Le32(*data, start) & ((1u << 27) - 1);
  uint64_t n_buckets = Le32(*data, start + 4);
  if (n_bloom * 4 > size) return Status::Corruption(where() + ": bloom filter exceeds the table");
  size -= n_bloom * 4;
  if (n_buckets * 4 > size) return Status::Corruption(where() + ": buckets exceed the table");
  size -= n_buckets * 4;
  if (size % kItemSize != 0) {
    return Status::Corruption(where() + ": item area is not a whole number of items");
  }
  GvdbTable t;
  t.data_ = std::move(data);
  t.bloom_offset_ = start + static_cast<uint32_t>(kHashHeaderSize);
  t.n_bloom_words_ = static_cast<uint32_t>(n_bloom);
  t.buckets_offset_ = t.bloom_offset_ + static_cast<uint32_t>(n_bloom * 4);
  t.n_buckets_ = static_cast<uint32_t>(n_buckets);
  t.items_offset_ = t.buckets_offset_ + static_cast<uint32_t>(n_buckets * 4);
  t.n_items_ = static_cast<uint32_t>(size / kItemSize);
  return t;
}

GvdbTable::Item GvdbTable::ItemAt(uint32_t index) const {
  // Callers guarantee index < n_items_, and SetupTable guaranteed the item area is in the file.
  size_t off = items_offset_ + static_cast<size_t>(index) * kItemSize;
  const std::string& d = *data_;
  Item it;
  it.hash = Le32(d, off);
  it.parent = Le32(d, off + 4);
  it.key_start = Le32(d, off + 8);
  it.key_size = Le16(d, off + 12);
  it.type = d[off + 14];
  it.start = Le32(d, off + 16);
  it.end = Le32(d, off + 20);
  return it;
}

std::optional<std::string_view> GvdbTable::KeyOf(const Item& item) const {
  uint64_t end = static_cast<uint64_t>(item.key_start) + item.key_size;
  if (end > data_->size()) return std::nullopt;
  return std::string_view(*data_).substr(item.key_start, item.key_size);
}

// gvdb_table_check_name: the key must equal the chain of segments ending at this item. Each step
// consumes at least one byte of `key`, so the loop is bounded by the key length.
bool GvdbTable::CheckName(uint32_t index, std::string_view key) const {
  for (;;) {
    Item item = ItemAt(index);
    auto segment = KeyOf(item);
    if (!segment || segment->size() > key.size()) return false;
    if (key.substr(key.size() - segment->size()) != *segment) return false;
    key.remove_suffix(segment->size());
    if (key.empty() && item.parent == kNoParent) return true;
    if (item.parent >= n_items_ || segment->empty()) return false;
    index = item.parent;
  }
}

std::optional<GvdbTable::Item> GvdbTable::Lookup(std::string_view key, char type) const {
  if (n_buckets_ == 0 || n_items_ == 0) return std::nullopt;
  uint32_t hash = GvdbHash(key);
  if (n_bloom_words_ != 0) {
    // gvdb-reader.c never sets bloom_shift from the header, so both bits come from the low 5.
    uint32_t word = Le32(*data_, bloom_offset_ + ((hash / 32) % n_bloom_words_) * 4);
    uint32_t mask = 1u << (hash & 31);
    if ((word & mask) != mask) return std::nullopt;
  }
  uint32_t bucket = hash % n_buckets_;
  uint32_t itemno = Le32(*data_, buckets_offset_ + bucket * 4);
  uint32_t lastno = n_items_;
  if (bucket != n_buckets_ - 1) {
    uint32_t next = Le32(*data_, buckets_offset_ + (bucket + 1) * 4);
    if (next <= n_items_) lastno = next;
  }
  for (; itemno < lastno; ++itemno) {
    Item item = ItemAt(itemno);
    if (item.hash == hash && CheckName(itemno, key) && item.type == type) return item;
  }
  return std::nullopt;
}

bool GvdbTable::HasValue(std::string_view key) const {
  auto item = Lookup(key, 'v');
  return item && item->start <= item->end && item->end <= data_->size() && (item->start & 7) == 0;
}

Result<std::optional<VariantValue>> GvdbTable::GetValue(std::string_view key) const {
  auto item = Lookup(key, 'v');
  if (!item) return std::optional<VariantValue>();
  if (item->start > item->end || item->end > data_->size() || (item->start & 7) != 0) {
    return Status::Corruption("GVDB value of '" + std::string(key) +
                              "' lies outside the file or is misaligned");
  }
  // g_bytes_new copies into malloc'd (suitably aligned) memory, as GVariant requires.
  GBytes* bytes = g_bytes_new(data_->data() + item->start, item->end - item->start);
  GVariant* boxed = g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE_VARIANT, bytes,
                                                                /*trusted=*/FALSE));
  g_bytes_unref(bytes);
  VariantPtr value(g_variant_get_variant(boxed));
  g_variant_unref(boxed);
  return std::optional<VariantValue>(Describe(value.get()));
}

Result<std::optional<GvdbTable>> GvdbTable::GetTable(std::string_view key) const {
  auto item = Lookup(key, 'H');
  if (!item) return std::optional<GvdbTable>();
  auto sub = SetupTable(data_, item->start, item->end);
  if (!sub.ok()) {
    return Status::Corruption("nested table '" + std::string(key) + "': " + sub.status().message());
  }
  return std::optional<GvdbTable>(std::move(sub).value());
}

Result<std::vector<std::string>> GvdbTable::Names() const {
  // gvdb_table_get_names' algorithm: each pass names the items whose parent was named in an
  // earlier pass, so cyclic or dangling parents are never named and no recursion is needed.
  std::vector<std::optional<std::string>> names(n_items_);
  size_t total_bytes = 0;
  for (bool filled = true; filled;) {
    filled = false;
    for (uint32_t i = 0; i < n_items_; ++i) {
      if (names[i]) continue;
      Item item = ItemAt(i);
      auto segment = KeyOf(item);
      if (!segment) continue;
      std::string name;
      if (item.parent == kNoParent) {
        name = std::string(*segment);
      } else if (item.parent < n_items_ && names[item.parent]) {
        name = *names[item.parent] + std::string(*segment);
      } else {
        continue;
      }
      // Key ranges may overlap, so a crafted file can make names grow quadratically.
      total_bytes += name.size();
      if (total_bytes > kMaxNameBytes) {
        return Status::Corruption("GVDB item names exceed " + std::to_string(kMaxNameBytes) +
                                  " bytes");
      }
      names[i] = std::move(name);
      filled = true;
    }
  }
  std::vector<std::string> out;
  for (auto& n : names) {
    if (n) out.push_back(std::move(*n));
  }
  return out;
}

}  // namespace vigil::collectors::linux_os

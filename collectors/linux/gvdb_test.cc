// GvdbTable against files written by the real `dconf compile`, and against hand-made and damaged
// files that must produce errors (or nothing), never crashes or hangs.
#include "collectors/linux/gvdb.h"

#include <doctest/doctest.h>
#include <glib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/temp_dir.h"

namespace vigil::collectors::linux_os {
namespace {

namespace fs = std::filesystem;

void WriteFile(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Compiles keyfiles (and locks) with dconf, as `dconf update` would, and returns the GVDB bytes.
std::string DconfCompile(const std::vector<std::pair<std::string, std::string>>& files) {
  REQUIRE_MESSAGE(fs::exists("/usr/bin/dconf"),
                  "dconf is required to build GVDB test data (apt-get install dconf-cli)");
  TempDir dir("vigil-gvdb");
  for (const auto& [name, text] : files) WriteFile(dir / ("db.d/" + name), text);
  fs::create_directories(dir / "db.d");
  std::string cmd = "/usr/bin/dconf compile '" + (dir / "db") + "' '" + (dir / "db.d") + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return ReadAll(dir / "db");
}

const std::vector<std::pair<std::string, std::string>> kScreensaverDb = {
    {"00-screensaver",
     "[org/gnome/desktop/session]\n"
     "idle-delay=uint32 600\n"
     "\n"
     "[org/gnome/desktop/screensaver]\n"
     "lock-enabled=true\n"
     "picture-uri='file:///usr/share/backgrounds/corp.png'\n"},
    {"locks/screensaver", "/org/gnome/desktop/session/idle-delay\n"},
};

TEST_CASE("GvdbTable reads values and locks from a dconf-compiled database") {
  auto table = GvdbTable::Parse(DconfCompile(kScreensaverDb));
  REQUIRE_MESSAGE(table.ok(), table.status().ToString());

  auto idle = table->GetValue("/org/gnome/desktop/session/idle-delay");
  REQUIRE(idle.ok());
  REQUIRE(idle->has_value());
  CHECK((*idle)->type == "u");
  CHECK((*idle)->integer == 600);
  CHECK((*idle)->text == "uint32 600");

  auto lock = table->GetValue("/org/gnome/desktop/screensaver/lock-enabled");
  REQUIRE(lock.ok());
  REQUIRE(lock->has_value());
  CHECK((*lock)->boolean == true);

  auto uri = table->GetValue("/org/gnome/desktop/screensaver/picture-uri");
  REQUIRE(uri.ok());
  REQUIRE(uri->has_value());
  CHECK((*uri)->string == "file:///usr/share/backgrounds/corp.png");

  // Absent keys, directories ('L' items) and partial names are not values.
  for (const char* key : {"/org/gnome/desktop/session/idle-delay2", "/org/gnome/desktop/session/",
                          "/org/", "idle-delay", "", "/org/gnome/desktop/screensaver/lock-delay"}) {
    INFO("key: " << key);
    auto v = table->GetValue(key);
    REQUIRE(v.ok());
    CHECK_FALSE(v->has_value());
    CHECK_FALSE(table->HasValue(key));
  }

  auto locks = table->GetTable(".locks");
  REQUIRE(locks.ok());
  REQUIRE(locks->has_value());
  CHECK((*locks)->HasValue("/org/gnome/desktop/session/idle-delay"));
  CHECK_FALSE((*locks)->HasValue("/org/gnome/desktop/screensaver/lock-enabled"));

  auto names = table->Names();
  REQUIRE(names.ok());
  auto has = [&](const std::string& n) {
    return std::find(names->begin(), names->end(), n) != names->end();
  };
  CHECK(has("/org/gnome/desktop/session/idle-delay"));
  CHECK(has("/org/gnome/"));
  CHECK(has(".locks"));
}

TEST_CASE("GvdbTable: a database without locks has no .locks table") {
  auto table = GvdbTable::Parse(DconfCompile({{"00", "[a/b]\nc=int32 -5\n"}}));
  REQUIRE(table.ok());
  auto locks = table->GetTable(".locks");
  REQUIRE(locks.ok());
  // dconf compile always writes a (possibly empty) lock table; either way nothing is locked.
  if (locks->has_value()) CHECK_FALSE((*locks)->HasValue("/a/b/c"));
  auto c = table->GetValue("/a/b/c");
  REQUIRE(c.ok());
  REQUIRE(c->has_value());
  CHECK((*c)->integer == -5);
}

std::string Le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

std::string Header(uint32_t version, uint32_t root_start, uint32_t root_end) {
  return std::string("GVariant") + Le32(version) + Le32(0) + Le32(root_start) + Le32(root_end);
}

uint32_t Hash(std::string_view key) {
  uint32_t h = 5381;
  for (char c : key)
    h = h * 33 + static_cast<uint32_t>(static_cast<int32_t>(static_cast<signed char>(c)));
  return h;
}

struct RawItem {
  uint32_t hash, parent, key_start;
  uint16_t key_size;
  char type;
  uint32_t start, end;
};

// One hash table at offset 24 with one bucket, then `tail` (keys and values) right after.
std::string BuildFile(const std::vector<RawItem>& items, const std::string& tail) {
  std::string table = Le32(0) + Le32(1) + Le32(0);
  for (const RawItem& it : items) {
    table += Le32(it.hash) + Le32(it.parent) + Le32(it.key_start);
    table += static_cast<char>(it.key_size & 0xff);
    table += static_cast<char>(it.key_size >> 8);
    table += it.type;
    table += '\0';
    table += Le32(it.start) + Le32(it.end);
  }
  uint32_t end = static_cast<uint32_t>(24 + table.size());
  return Header(0, 24, end) + table + tail;
}

std::string SerializedVariant(GVariant* inner) {
  GVariant* v = g_variant_ref_sink(g_variant_new_variant(inner));
  std::string out(static_cast<const char*>(g_variant_get_data(v)), g_variant_get_size(v));
  g_variant_unref(v);
  return out;
}

TEST_CASE("GvdbTable on a hand-built file: lookup through parent chains") {
  // Items: 0 = "/a/" (root), 1 = "key" under 0 holding uint32 7.
  const uint32_t tail_at = 24 + 12 + 2 * 24;  // header + hash header/bucket + 2 items = 84
  std::string keys = "/a/key";
  std::string pad(8 - (tail_at + keys.size()) % 8, '\0');
  uint32_t value_at = static_cast<uint32_t>(tail_at + keys.size() + pad.size());
  std::string value = SerializedVariant(g_variant_new_uint32(7));
  std::string file = BuildFile({{Hash("/a/"), 0xffffffffu, tail_at, 3, 'L', 0, 0},
                                {Hash("/a/key"), 0, tail_at + 3, 3, 'v', value_at,
                                 static_cast<uint32_t>(value_at + value.size())}},
                               keys + pad + value);
  auto t = GvdbTable::Parse(file);
  REQUIRE_MESSAGE(t.ok(), t.status().ToString());
  auto v = t->GetValue("/a/key");
  REQUIRE(v.ok());
  REQUIRE(v->has_value());
  CHECK((*v)->integer == 7);
  CHECK_FALSE(t->GetValue("/b/key")->has_value());
}

TEST_CASE("GvdbTable rejects malformed files with an error") {
  struct Bad {
    std::string name;
    std::string bytes;
    std::string message;
  };
  const std::vector<Bad> cases = {
      {"empty", "", "shorter than the 24-byte header"},
      {"short", "GVariant\0\0\0\0", "shorter than the 24-byte header"},
      {"text file", "[org/gnome/desktop/session]\nidle-delay=uint32 600\n", "bad signature"},
      {"big-endian", std::string("raVGtnai") + std::string(16, '\0'), "big-endian"},
      {"version 1", Header(1, 24, 32) + std::string(8, '\0'), "unsupported GVDB version 1"},
      {"root past the end", Header(0, 24, 4096), "outside the file"},
      {"root reversed", Header(0, 32, 24) + std::string(8, '\0'), "outside the file"},
      {"root misaligned", Header(0, 25, 33) + std::string(9, '\0'), "misaligned"},
      {"root too small", Header(0, 24, 28) + std::string(4, '\0'), "too small"},
      {"bloom too big", Header(0, 24, 32) + Le32(100) + Le32(0), "bloom filter"},
      {"buckets too big", Header(0, 24, 32) + Le32(0) + Le32(0x40000000u), "buckets"},
      {"partial item", Header(0, 24, 44) + Le32(0) + Le32(0) + std::string(12, '\0'),
       "whole number of items"},
  };
  for (const Bad& c : cases) {
    INFO("case: " << c.name);
    auto t = GvdbTable::Parse(c.bytes);
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == Status::Code::kCorruption);
    CHECK_MESSAGE(t.status().message().find(c.message) != std::string::npos, t.status().message());
  }
}

TEST_CASE("GvdbTable: cyclic parents and out-of-range pointers fail softly") {
  const uint32_t tail_at = 24 + 12 + 3 * 24;
  std::string keys = "ab";
  std::string file = BuildFile(
      {
          {Hash("ab"), 1, tail_at, 1, 'v', 0, 8},                     // "a" whose parent is item 1
          {Hash("ab"), 0, tail_at + 1, 1, 'v', 0, 8},                 // "b" whose parent is item 0
          {Hash("zz"), 0xffffffffu, 0xfffffff0u, 0xffff, 'v', 0, 8},  // key beyond the file
      },
      keys);
  auto t = GvdbTable::Parse(file);
  REQUIRE(t.ok());
  CHECK_FALSE(t->HasValue("ab"));
  CHECK_FALSE(t->GetValue("ba")->has_value());
  CHECK_FALSE(t->GetValue("zz")->has_value());
  auto names = t->Names();
  REQUIRE(names.ok());
  CHECK(names->empty());  // no item has a complete chain to a root

  // A value pointer past the end of the file is an error, not a read out of bounds.
  std::string bad = BuildFile({{Hash("k"), 0xffffffffu, 24 + 12 + 24, 1, 'v', 8, 4096}}, "k");
  auto t2 = GvdbTable::Parse(bad);
  REQUIRE(t2.ok());
  CHECK_FALSE(t2->HasValue("k"));
  auto v = t2->GetValue("k");
  REQUIRE_FALSE(v.ok());
  CHECK(v.status().message().find("outside the file") != std::string::npos);
  // A nested table whose pointer is garbage is an error too.
  std::string bad_table =
      BuildFile({{Hash(".locks"), 0xffffffffu, 24 + 12 + 24, 6, 'H', 4, 4096}}, ".locks");
  auto t3 = GvdbTable::Parse(bad_table);
  REQUIRE(t3.ok());
  CHECK_FALSE(t3->GetTable(".locks").ok());
}

// Exercises every accessor; used on damaged inputs, where only "no crash, no hang" matters.
void Exercise(const std::string& bytes) {
  auto t = GvdbTable::Parse(bytes);
  if (!t.ok()) return;
  (void)t->GetValue("/org/gnome/desktop/session/idle-delay");
  (void)t->HasValue("/org/gnome/desktop/session/idle-delay");
  auto names = t->Names();
  if (names.ok()) {
    for (const auto& n : *names) (void)t->GetValue(n);
  }
  auto locks = t->GetTable(".locks");
  if (locks.ok() && locks->has_value()) {
    (void)(*locks)->HasValue("/org/gnome/desktop/session/idle-delay");
  }
}

TEST_CASE("GvdbTable survives truncated and bit-flipped copies of a real database") {
  const std::string good = DconfCompile(kScreensaverDb);
  for (size_t len = 0; len < good.size(); ++len) Exercise(good.substr(0, len));
  for (size_t i = 0; i < good.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xff}) {
      std::string damaged = good;
      damaged[i] = static_cast<char>(static_cast<unsigned char>(damaged[i]) ^ mask);
      Exercise(damaged);
    }
  }
  // Cutting inside the root hash table is always detected.
  CHECK_FALSE(GvdbTable::Parse(good.substr(0, 40)).ok());
}

TEST_CASE("ParseVariantText") {
  struct Row {
    std::string text, type;
    bool ok;
    std::string printed;
  };
  const std::vector<Row> rows = {
      {"uint32 300", "u", true, "uint32 300"},
      {"300", "u", true, "uint32 300"},
      {"true", "b", true, "true"},
      {"'hello'", "s", true, "'hello'"},
      {"-1", "u", false, ""},
      {"uint32 300", "b", false, ""},
      {"300", "not a type", false, ""},
      {"", "u", false, ""},
  };
  for (const Row& r : rows) {
    INFO(r.text << " as " << r.type);
    auto v = ParseVariantText(r.text, r.type);
    CHECK(v.ok() == r.ok);
    if (v.ok()) CHECK(v->text == r.printed);
  }
}

}  // namespace
}  // namespace vigil::collectors::linux_os

// Unit tests of the DT_NEEDED resolver (runtime/src/plugin/needed): the ld.so.cache
// parser against glibc's own reader of that file (`ldconfig -p`) and against crafted
// caches, and the search order and token expansion over real libraries built by CMake.
#include "fixture_paths.hpp"
#include "plugin/needed.hpp"
#include "support/json_rows.hpp"
#include "support/subprocess.hpp"
#include "support/test_env.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using shoal::detail::CacheEntry;
using shoal::detail::ElfExports;
using shoal::detail::LibrarySearch;
using shoal::detail::missing_libraries;
using shoal::detail::parse_ld_cache;
using namespace shoal::test;

namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs pairs_of(const std::vector<CacheEntry>& entries) {
  Pairs out;
  for (const auto& e : entries) out.emplace_back(e.name, e.path);
  std::sort(out.begin(), out.end());
  return out;
}

void put32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }

// A cache in glibc's new format: `entries` (flags, name, path), the strings after the
// table, offsets counted from the header.
std::string new_cache(const std::vector<std::tuple<uint32_t, std::string, std::string>>& entries) {
  std::string head = "glibc-ld.so.cache1.1";
  put32(head, static_cast<uint32_t>(entries.size()));
  std::string strings;
  const size_t table_end = 48 + 24 * entries.size();
  std::string table;
  for (const auto& [flags, name, path] : entries) {
    put32(table, flags);
    put32(table, static_cast<uint32_t>(table_end + strings.size()));
    strings += name + '\0';
    put32(table, static_cast<uint32_t>(table_end + strings.size()));
    strings += path + '\0';
    table.append(12, '\0');  // osversion, hwcap
  }
  put32(head, static_cast<uint32_t>(strings.size()));
  head.append(20, '\0');  // flags, padding, extension offset, unused[3]
  REQUIRE(head.size() == 48);
  return head + table + strings;
}

constexpr uint32_t kLibc6X8664 = 0x0303;

}  // namespace

TEST_CASE("ld.so.cache: this machine's cache reads as ldconfig -p lists it", "[unit][needed]") {
  std::ifstream in("/etc/ld.so.cache", std::ios::binary);
  REQUIRE(in);
  const std::string bytes(std::istreambuf_iterator<char>(in), {});
  const auto entries = parse_ld_cache(bytes);

  auto r = run_process({"/sbin/ldconfig", "-p"}, ProcessOptions{});
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  // "\tNAME (libc6,x86-64[, hwcap: ...]) => PATH"; the first line is a count.
  Pairs listed;
  for (const auto& line : lines_of(r.out)) {
    const size_t open = line.find(" (");
    const size_t arrow = line.find(") => ");
    if (line.empty() || line[0] != '\t' || open == std::string::npos || arrow == std::string::npos) continue;
    listed.emplace_back(line.substr(1, open - 1), line.substr(arrow + 5));
  }
  std::sort(listed.begin(), listed.end());
  REQUIRE(listed.size() > 10);
  CHECK(pairs_of(entries) == listed);
  // libc is where it is looked up by soname.
  CHECK(std::any_of(entries.begin(), entries.end(), [](const CacheEntry& e) { return e.name == "libc.so.6"; }));
}

TEST_CASE("ld.so.cache: crafted caches, entries of other kinds and strings out of bounds", "[unit][needed]") {
  const std::string good = new_cache({{kLibc6X8664, "liba.so.1", "/x/liba.so.1"},
                                      {0x0000, "libold.so", "/x/libold.so"},  // libc5: another kind
                                      {1, "libb.so.2", "/x/libb.so.2"}});
  CHECK(pairs_of(parse_ld_cache(good)) == Pairs{{"liba.so.1", "/x/liba.so.1"}, {"libb.so.2", "/x/libb.so.2"}});

  SECTION("after the old table, 8-byte aligned, offsets from the new header") {
    std::string old = "ld.so-1.7.0";
    old.push_back('\0');
    put32(old, 1);
    old.append(12, '\x7f');  // one old entry, never read
    old.append(4, '\0');     // 28 bytes, aligned to 32
    CHECK(pairs_of(parse_ld_cache(old + good)) == pairs_of(parse_ld_cache(good)));
    CHECK(parse_ld_cache(old.substr(0, 20)).empty());
  }
  SECTION("an offset past the end, or a string without its NUL, drops that entry") {
    std::string bad = good;
    const uint32_t past = static_cast<uint32_t>(bad.size());
    std::memcpy(&bad[48 + 4], &past, 4);  // the first entry's name
    CHECK(pairs_of(parse_ld_cache(bad)) == Pairs{{"libb.so.2", "/x/libb.so.2"}});
    bad.pop_back();  // the last path's NUL
    CHECK(parse_ld_cache(bad).empty());
  }
  SECTION("a count the bytes cannot hold, a wrong magic, and every truncation") {
    std::string huge = good;
    const uint32_t count = 0xffffffff;
    std::memcpy(&huge[20], &count, 4);
    CHECK(parse_ld_cache(huge).empty());
    std::string other = good;
    other[19] = '2';  // "glibc-ld.so.cache1.2"
    CHECK(parse_ld_cache(other).empty());
    for (size_t n = 0; n < good.size(); ++n) CHECK(parse_ld_cache(good.substr(0, n)).size() <= 2);
  }
}

TEST_CASE("needed: the search order and $ORIGIN, ${ORIGIN} and $LIB over real libraries", "[unit][needed]") {
  const std::string dir = SHOAL_FX_NEEDED_DIR;
  const std::string module = dir + "/bare/any.so";  // $ORIGIN is bare/
  ElfExports elf;
  elf.needed = {"libfx_needed.so"};
  const LibrarySearch none;  // no LD_LIBRARY_PATH, no cache, no default directory
  const auto found = [&](const ElfExports& e, const LibrarySearch& search) {
    return missing_libraries(module, e, search).empty();
  };
  CHECK_FALSE(found(elf, none));

  ElfExports runpath = elf;
  runpath.runpath = "/nonexistent:${ORIGIN}/../lib";
  CHECK(found(runpath, none));
  runpath.runpath = "$ORIGINX/../lib";  // not the token
  CHECK_FALSE(found(runpath, none));

  ElfExports rpath = elf;
  rpath.rpath = "$ORIGIN/../lib";
  CHECK(found(rpath, none));
  rpath.runpath = "/nonexistent";  // with a RUNPATH, the loader ignores RPATH
  CHECK_FALSE(found(rpath, none));

  LibrarySearch library_path;
  library_path.library_path = {dir + "/lib"};
  CHECK(found(elf, library_path));
  LibrarySearch cache;
  cache.cache = {{"libfx_needed.so", dir + "/lib/libfx_needed.so"}, {"libother.so", "/nonexistent"}};
  CHECK(found(elf, cache));
  cache.cache = {{"libfx_needed.so", "/nonexistent/libfx_needed.so"}};
  CHECK_FALSE(found(elf, cache));

  ElfExports libc;
  libc.needed = {"libc.so.6"};
  CHECK_FALSE(found(libc, none));
  libc.runpath = "/$LIB";  // /lib/<multiarch>
  // libc is found there; what it needs in turn (the loader itself) is searched with
  // libc's own paths, which are none here: named with the chain.
  const auto beyond = missing_libraries(module, libc, none);
  REQUIRE(beyond.size() == 1);
  CHECK(beyond[0].name.starts_with("ld-linux"));
  CHECK(beyond[0].via == std::vector<std::string>{"libc.so.6"});
  // A name with a '/' is a path, searched nowhere else.
  ElfExports path;
  path.needed = {"$ORIGIN/../lib/libfx_needed.so"};
  CHECK(found(path, library_path));
  path.needed = {"./libfx_needed.so"};
  CHECK_FALSE(found(path, library_path));
}

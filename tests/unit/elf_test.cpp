// Unit tests of the ELF export reader (runtime/src/plugin/elf): what it reads from a real
// plugin, and that a damaged or hostile file yields an error, never a crash or a read
// outside the file (the ASan build runs these too). Nothing here loads a plugin.
#include "plugin/elf.hpp"
#include "support/crafted_elf.hpp"
#include "support/test_env.hpp"

#include <shoal/plugin.h>

#include <catch2/catch.hpp>

#include <elf.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

using shoal::detail::ElfExports;
using shoal::detail::kMaxElfName;
using shoal::detail::ModuleKind;
using shoal::detail::read_elf_exports;
using shoal::test::CraftedElf;
using shoal::test::TempDir;

namespace {

using Bytes = std::vector<char>;

Bytes load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

std::filesystem::path save(const TempDir& dir, const Bytes& bytes, const std::string& name = "mutant.so") {
  auto path = dir.path() / name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

template <class T>
T get(const Bytes& b, uint64_t offset) {
  REQUIRE(offset + sizeof(T) <= b.size());
  T v;
  std::memcpy(&v, b.data() + offset, sizeof v);
  return v;
}

template <class T>
void put(Bytes& b, uint64_t offset, const T& v) {
  REQUIRE(offset + sizeof(T) <= b.size());
  std::memcpy(b.data() + offset, &v, sizeof v);
}

// Where the parts a test corrupts sit in an intact file, found independently of the
// reader under test.
struct Layout {
  Elf64_Ehdr eh{};
  uint64_t dynsym_header = 0;  // file offset of .dynsym's section header
  uint64_t dynstr_header = 0;
  Elf64_Shdr dynsym{};
  uint64_t abi_symbol = 0;  // file offset of shoal_plugin_abi_version's Elf64_Sym
};

Layout layout_of(const Bytes& b) {
  Layout l;
  l.eh = get<Elf64_Ehdr>(b, 0);
  for (uint16_t i = 0; i < l.eh.e_shnum; ++i) {
    const uint64_t at = l.eh.e_shoff + uint64_t{i} * sizeof(Elf64_Shdr);
    if (get<Elf64_Shdr>(b, at).sh_type == SHT_DYNSYM) {
      l.dynsym_header = at;
      l.dynsym = get<Elf64_Shdr>(b, at);
    }
  }
  REQUIRE(l.dynsym_header != 0);
  l.dynstr_header = l.eh.e_shoff + uint64_t{l.dynsym.sh_link} * sizeof(Elf64_Shdr);
  const auto dynstr = get<Elf64_Shdr>(b, l.dynstr_header);
  for (uint64_t at = l.dynsym.sh_offset; at < l.dynsym.sh_offset + l.dynsym.sh_size; at += sizeof(Elf64_Sym)) {
    const auto sym = get<Elf64_Sym>(b, at);
    if (std::strcmp(b.data() + dynstr.sh_offset + sym.st_name, "shoal_plugin_abi_version") == 0) l.abi_symbol = at;
  }
  REQUIRE(l.abi_symbol != 0);
  return l;
}

// Caps this process's address space while it lives, so that a reader copying without
// bound fails with bad_alloc within the cap instead of exhausting the machine. Inactive
// under sanitizers, which reserve terabytes of shadow address space up front.
class AddressSpaceCap {
 public:
  explicit AddressSpaceCap(uint64_t extra_bytes) {
    if (shoal::test::kSanitized || ::getrlimit(RLIMIT_AS, &saved_) != 0) return;
    std::ifstream statm("/proc/self/statm");
    uint64_t pages = 0;
    if (!(statm >> pages)) return;
    rlimit cap = saved_;
    const uint64_t used = pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    cap.rlim_cur = std::min<rlim_t>(saved_.rlim_max, used + extra_bytes);
    active_ = ::setrlimit(RLIMIT_AS, &cap) == 0;
  }
  ~AddressSpaceCap() {
    if (active_) (void)::setrlimit(RLIMIT_AS, &saved_);
  }
  AddressSpaceCap(const AddressSpaceCap&) = delete;
  AddressSpaceCap& operator=(const AddressSpaceCap&) = delete;

 private:
  rlimit saved_{};
  bool active_ = false;
};

// A crafted file's .dynstr: "\0" then each name with its NUL; `offsets` gets where each starts.
std::string string_table(const std::vector<std::string>& names, std::vector<uint32_t>& offsets) {
  std::string table(1, '\0');
  for (const auto& name : names) {
    offsets.push_back(static_cast<uint32_t>(table.size()));
    table += name;
    table += '\0';
  }
  return table;
}

// The reader's verdict on `bytes`: the error message, or "" when it read the file.
std::string verdict(const TempDir& dir, const Bytes& bytes) {
  auto result = read_elf_exports(save(dir, bytes), "plugin");
  return result ? std::string() : result.error().message;
}

}  // namespace

TEST_CASE("elf: a plugin's exports, ABI version and needed libraries, read without loading it", "[unit][elf]") {
  auto elf = read_elf_exports(SHOAL_PLUGIN_ECHO, "plugin");
  INFO((elf ? std::string() : elf.error().message));
  REQUIRE(elf.ok());
  for (const char* name : {"shoal_plugin_abi", "shoal_init", "shoal_run", "shoal_fini", "shoal_plugin_abi_version"})
    CHECK(elf->exports(name));
  CHECK_FALSE(elf->exports("shoal_recover"));
  CHECK(std::is_sorted(elf->symbols.begin(), elf->symbols.end()));
  REQUIRE(shoal::detail::declared_abi(*elf, ModuleKind::task_plugin).has_value());
  CHECK(*shoal::detail::declared_abi(*elf, ModuleKind::task_plugin) == SHOAL_ABI_VERSION);
  CHECK_FALSE(shoal::detail::declared_abi(*elf, ModuleKind::resource_module).has_value());
  CHECK(std::find(elf->needed.begin(), elf->needed.end(), "libc.so.6") != elf->needed.end());
  CHECK(shoal::detail::missing_exports(*elf, ModuleKind::task_plugin).empty());
  CHECK(shoal::detail::missing_exports(*elf, ModuleKind::resource_module).size() == 3);
  CHECK(shoal::detail::check_module_file(SHOAL_PLUGIN_ECHO, ModuleKind::task_plugin).ok());
  auto as_resource = shoal::detail::check_module_file(SHOAL_PLUGIN_ECHO, ModuleKind::resource_module);
  REQUIRE_FALSE(as_resource.ok());
  CHECK(as_resource.error().message ==
        std::string("resource module ") + SHOAL_PLUGIN_ECHO + ": is a task plugin, not a resource module");
}

TEST_CASE("elf: each damaged table is reported, not followed", "[unit][elf]") {
  TempDir dir;
  const Bytes intact = load(SHOAL_PLUGIN_ECHO);
  const Layout l = layout_of(intact);
  REQUIRE(verdict(dir, intact).empty());
  Bytes b = intact;
  const std::string malformed = "plugin " + (dir.path() / "mutant.so").string() + ": malformed ELF file: ";

  SECTION("section headers past the end of the file") {
    put<uint64_t>(b, offsetof(Elf64_Ehdr, e_shoff), b.size() - 10);
    CHECK(verdict(dir, b) == malformed + "section headers outside the file");
  }
  SECTION("section header offset that wraps around") {
    put<uint64_t>(b, offsetof(Elf64_Ehdr, e_shoff), ~uint64_t{0} - 8);
    CHECK(verdict(dir, b) == malformed + "section headers outside the file");
  }
  SECTION("no section headers at all") {
    put<uint64_t>(b, offsetof(Elf64_Ehdr, e_shoff), 0);
    CHECK(verdict(dir, b).find("no section headers") != std::string::npos);
  }
  SECTION("a forged section header size") {
    put<uint16_t>(b, offsetof(Elf64_Ehdr, e_shentsize), 32);
    CHECK(verdict(dir, b) == malformed + "unexpected section header size");
  }
  SECTION("a .dynsym of a terabyte") {
    put<uint64_t>(b, l.dynsym_header + offsetof(Elf64_Shdr, sh_size), uint64_t{1} << 40);
    CHECK(verdict(dir, b) == malformed + ".dynsym outside the file or too large");
  }
  SECTION("a .dynsym that runs past the end of the file") {
    put<uint64_t>(b, l.dynsym_header + offsetof(Elf64_Shdr, sh_offset), b.size() - 16);
    CHECK(verdict(dir, b) == malformed + ".dynsym outside the file or too large");
  }
  SECTION("a .dynsym linked to a section that does not exist") {
    put<uint32_t>(b, l.dynsym_header + offsetof(Elf64_Shdr, sh_link), 60000);
    CHECK(verdict(dir, b) == malformed + "bad string table for .dynsym");
  }
  SECTION("a .dynstr that is not a string table") {
    put<uint32_t>(b, l.dynstr_header + offsetof(Elf64_Shdr, sh_type), SHT_PROGBITS);
    CHECK(verdict(dir, b).find(malformed + "bad string table") == 0);
  }
  SECTION("a .dynstr cut inside an exported name") {
    const auto sym = get<Elf64_Sym>(b, l.abi_symbol);
    put<uint64_t>(b, l.dynstr_header + offsetof(Elf64_Shdr, sh_size), uint64_t{sym.st_name} + 5);
    CHECK(verdict(dir, b).find(malformed) == 0);
  }
  SECTION("a symbol name past the end of .dynstr") {
    put<uint32_t>(b, l.abi_symbol + offsetof(Elf64_Sym, st_name), 0xfffffff0u);
    CHECK(verdict(dir, b) == malformed + "a symbol name outside .dynstr");
  }
  SECTION("an ABI symbol whose address lies outside its section") {
    put<uint64_t>(b, l.abi_symbol + offsetof(Elf64_Sym, st_value), ~uint64_t{0} - 2);
    CHECK(verdict(dir, b).find("shoal_plugin_abi_version is not a 4-byte constant") != std::string::npos);
  }
  SECTION("an ABI symbol in a section that does not exist") {
    put<uint16_t>(b, l.abi_symbol + offsetof(Elf64_Sym, st_shndx), 0xfeff);
    CHECK(verdict(dir, b).find("shoal_plugin_abi_version is not a 4-byte constant") != std::string::npos);
  }
  SECTION("an ABI symbol of the wrong size") {
    put<uint64_t>(b, l.abi_symbol + offsetof(Elf64_Sym, st_size), 8);
    CHECK(verdict(dir, b).find("shoal_plugin_abi_version is not a 4-byte constant") != std::string::npos);
  }
  SECTION("a big-endian header") {
    b[EI_DATA] = ELFDATA2MSB;
    CHECK(verdict(dir, b) == malformed + "not a little-endian ELF file");
  }
}

TEST_CASE("elf: truncated and randomly damaged files give a result, never a crash", "[unit][elf]") {
  TempDir dir;
  const Bytes intact = load(SHOAL_PLUGIN_ECHO);
  const Layout l = layout_of(intact);
  size_t errors = 0, reads = 0;
  auto count = [&](const Bytes& b) { (verdict(dir, b).empty() ? reads : errors)++; };

  // Every length up to the end of .dynsym, then in steps: each cut lands in a different
  // structure (header, program headers, tables, section headers).
  for (size_t n = 0; n < intact.size(); n += n < l.dynsym.sh_offset + l.dynsym.sh_size ? 7 : 997)
    count(Bytes(intact.begin(), intact.begin() + static_cast<std::ptrdiff_t>(n)));
  CHECK(errors > 0);

  // Random bytes written over the structures the reader follows: the ELF header, the
  // section header table and .dynsym. Seeded, so a failure reproduces.
  std::mt19937_64 rng(20240611);
  const std::vector<std::pair<uint64_t, uint64_t>> targets = {
      {0, sizeof(Elf64_Ehdr)},
      {l.eh.e_shoff, uint64_t{l.eh.e_shnum} * sizeof(Elf64_Shdr)},
      {l.dynsym.sh_offset, l.dynsym.sh_size}};
  errors = reads = 0;
  for (int round = 0; round < 3000; ++round) {
    Bytes b = intact;
    const auto& [begin, size] = targets[static_cast<size_t>(round) % targets.size()];
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < flips; ++k) b[begin + rng() % size] = static_cast<char>(rng());
    count(b);
  }
  INFO("read " << reads << ", refused " << errors);
  CHECK(errors > 0);
  CHECK(reads > 0);
}

TEST_CASE("elf: many entries naming one huge string are refused, not copied once each", "[unit][elf]") {
  // Each entry names the same 4 MiB string: copied per entry, 20000 entries would take
  // 80 GiB. The cap turns such a copy into bad_alloc long before that.
  TempDir dir;
  CraftedElf spec;
  spec.machine = shoal::test::elf_machine(SHOAL_PLUGIN_ECHO);
  std::vector<uint32_t> at;
  spec.dynstr = string_table({"shoal_" + std::string(size_t{4} << 20, 'x')}, at);
  const std::string malformed = "plugin " + (dir.path() / "mutant.so").string() + ": malformed ELF file: ";

  SECTION("as symbol names") {
    spec.symbols.assign(20000, at[0]);
    AddressSpaceCap cap(uint64_t{512} << 20);
    std::string message;
    REQUIRE_NOTHROW(message = verdict(dir, shoal::test::craft_elf(spec)));
    CHECK(message == malformed + "a symbol name longer than 1024 bytes");
  }
  SECTION("as DT_NEEDED libraries") {
    spec.needed.assign(20000, at[0]);
    AddressSpaceCap cap(uint64_t{512} << 20);
    std::string message;
    REQUIRE_NOTHROW(message = verdict(dir, shoal::test::craft_elf(spec)));
    CHECK(message == malformed + "a library name longer than 1024 bytes");
  }
  SECTION("through check_module_file: one line, naming the file") {
    spec.symbols.assign(20000, at[0]);
    const auto path = save(dir, shoal::test::craft_elf(spec));
    AddressSpaceCap cap(uint64_t{512} << 20);
    auto result = shoal::detail::check_module_file(path, ModuleKind::task_plugin);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message == malformed + "a symbol name longer than 1024 bytes");
  }
}

TEST_CASE("elf: names up to the cap are read, shoal_ names kept and the others counted", "[unit][elf]") {
  TempDir dir;
  CraftedElf spec;
  spec.machine = shoal::test::elf_machine(SHOAL_PLUGIN_ECHO);
  std::vector<uint32_t> at;
  const std::string longest(kMaxElfName, 'a');
  spec.dynstr = string_table({"shoal_init", longest, "helper", "libc.so.6", std::string(kMaxElfName + 1, 'b')}, at);
  // Repeats (as versioned symbols are) count once.
  spec.symbols = {at[0], at[0], at[2], at[2]};
  spec.symbols.insert(spec.symbols.end(), 30000, at[1]);
  spec.needed = {at[3], at[1]};
  {
    AddressSpaceCap cap(uint64_t{512} << 20);
    auto elf = read_elf_exports(save(dir, shoal::test::craft_elf(spec)), "file");
    INFO((elf ? std::string() : elf.error().message));
    REQUIRE(elf.ok());
    CHECK(elf->symbols == std::vector<std::string>{"shoal_init"});
    CHECK(elf->other_exports == 2);
    CHECK(elf->needed == std::vector<std::string>{"libc.so.6", longest});
    CHECK(elf->exports("shoal_init"));
    CHECK_FALSE(elf->exports("helper"));  // not kept: check and inspect look for shoal_* only
  }
  // One byte more than the cap.
  spec.symbols.push_back(at[4]);
  CHECK(verdict(dir, shoal::test::craft_elf(spec)) ==
        "plugin " + (dir.path() / "mutant.so").string() + ": malformed ELF file: a symbol name longer than 1024 bytes");
}

TEST_CASE("elf: the names a file makes the reader look at are bounded in total", "[unit][elf]") {
  TempDir dir;
  CraftedElf spec;
  spec.machine = shoal::test::elf_machine(SHOAL_PLUGIN_ECHO);
  std::vector<uint32_t> at;
  spec.dynstr = string_table({std::string(kMaxElfName, 'a'), "libfoo.so"}, at);
  const std::string malformed = "plugin " + (dir.path() / "mutant.so").string() + ": malformed ELF file: ";

  SECTION("exported names adding up past 64 MiB") {
    spec.symbols.assign(70000, at[0]);  // 70000 KiB of names in a 1.6 MiB file
    CHECK(verdict(dir, shoal::test::craft_elf(spec)) == malformed + "exported names add up to more than 64 MiB");
  }
  SECTION("more DT_NEEDED entries than any library has") {
    spec.needed.assign(4096, at[1]);
    CHECK(verdict(dir, shoal::test::craft_elf(spec)).empty());
    spec.needed.push_back(at[1]);
    CHECK(verdict(dir, shoal::test::craft_elf(spec)) == malformed + "more than 4096 DT_NEEDED entries");
  }
}

TEST_CASE("elf: a required entry point that is data, not a function, is refused", "[unit][elf]") {
  // `int shoal_run;` links and passes a name check, then every task jumps into data.
  TempDir dir;
  CraftedElf spec;
  spec.machine = shoal::test::elf_machine(SHOAL_PLUGIN_ECHO);
  std::vector<uint32_t> at;
  spec.dynstr = string_table({"shoal_plugin_abi", "shoal_init", "shoal_run", "shoal_fini", "shoal_recover"}, at);
  spec.symbols = {at[0], at[1], at[3]};
  spec.objects = {at[2]};
  const auto path = save(dir, shoal::test::craft_elf(spec));
  auto result = shoal::detail::check_module_file(path, ModuleKind::task_plugin);
  REQUIRE_FALSE(result);
  CHECK(result.error().message ==
        "plugin " + path.string() + ": shoal_run is a data symbol, not a function (calling it would crash the worker)");

  // Every entry point is a function: accepted. An optional one that is data is refused too.
  spec.symbols = {at[0], at[1], at[2], at[3]};
  spec.objects = {};
  CHECK(shoal::detail::check_module_file(save(dir, shoal::test::craft_elf(spec)), ModuleKind::task_plugin).ok());
  spec.objects = {at[4]};
  auto recover = shoal::detail::check_module_file(save(dir, shoal::test::craft_elf(spec)), ModuleKind::task_plugin);
  REQUIRE_FALSE(recover);
  CHECK(recover.error().message ==
        "plugin " + path.string() + ": shoal_recover is a data symbol, not a function (calling it would crash the worker)");
}

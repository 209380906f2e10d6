// Reads .dynsym, .dynstr and .dynamic through the section headers. Boost 1.74's
// dll::library_info is not used: it reads only SHT_SYMTAB, which `strip` removes from
// every packaged plugin, and it can pick the wrong string table. Everything here treats
// the file as hostile: each offset and size is checked against the file before it is
// used, tables and names are capped, and data is read with pread into owned buffers.
#include "plugin/elf.hpp"

#include "plugin/loader.hpp"
#include "plugin/params.hpp"

#include <shoal/plugin.h>

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace shoal::detail {

namespace {

// Far above any real plugin's dynamic tables, low enough that a forged size cannot make
// the check allocate without bound.
constexpr uint64_t kMaxTableBytes = uint64_t{64} << 20;
constexpr uint64_t kMaxNeeded = 4096;
// Indexed by ModuleKind.
constexpr std::string_view kAbiSymbols[kModuleKinds] = {"shoal_plugin_abi_version", "shoal_resource_abi_version",
                                                        "shoal_shared_abi_version"};
constexpr std::string_view kParamsSymbols[kModuleKinds] = {"shoal_plugin_params", "shoal_resource_params",
                                                           "shoal_shared_params"};

// The kind whose symbol in `table` is `name`, as an index; kModuleKinds when none.
size_t kind_of_symbol(const std::string_view (&table)[kModuleKinds], std::string_view name) {
  return static_cast<size_t>(std::find(std::begin(table), std::end(table), name) - std::begin(table));
}

// A read-only descriptor with reads that stay inside the file it had when opened.
class File {
 public:
  File(int fd, uint64_t size) : fd_(fd), size_(size) {}
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // True when `n` bytes at `offset` lie inside the file: checked before a buffer is sized
  // from the file's own numbers.
  bool holds(uint64_t offset, uint64_t n) const { return offset <= size_ && n <= size_ - offset; }

  // False unless all `n` bytes at `offset` lie inside the file and were read.
  bool read(uint64_t offset, void* out, uint64_t n) const {
    if (!holds(offset, n)) return false;
    auto* p = static_cast<char*>(out);
    while (n > 0) {
      const ssize_t got = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;  // an error, or the file shrank while it was read
      p += got;
      offset += static_cast<uint64_t>(got);
      n -= static_cast<uint64_t>(got);
    }
    return true;
  }

 private:
  int fd_;
  uint64_t size_;
};

// A section's bytes, read whole; its size is capped and must fit the file.
bool read_section(const File& file, const Elf64_Shdr& sh, std::vector<char>& out) {
  if (sh.sh_type == SHT_NOBITS || sh.sh_size > kMaxTableBytes || !file.holds(sh.sh_offset, sh.sh_size)) return false;
  out.resize(sh.sh_size);
  return file.read(sh.sh_offset, out.data(), sh.sh_size);
}

class Reader {
 public:
  Reader(const File& file, const std::filesystem::path& path, const char* what)
      : file_(file), path_(path), what_(what) {}

  Result<ElfExports> read() {
    Elf64_Ehdr eh{};
    if (!file_.read(0, &eh, sizeof eh)) return malformed("truncated ELF header");
    // read_elf_library's files have not been through check_shared_object: a 32-bit file
    // would have every Elf64 field below misread.
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return plugin_error(what_, path_, "no ELF header");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != host_machine())
      return plugin_error(what_, path_, "built for another machine or word size");
    // A big-endian header claiming this machine would have every field read here
    // byte-swapped.
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return malformed("not a little-endian ELF file");
    if (eh.e_type != ET_DYN) return plugin_error(what_, path_, "not a shared object");
    if (auto s = read_section_headers(eh); !s) return s.error();
    ElfExports out;
    if (auto s = read_symbols(out); !s) return s.error();
    if (auto s = read_dynamic(out); !s) return s.error();
    return out;
  }

 private:
  Error malformed(const std::string& why) const { return plugin_error(what_, path_, "malformed ELF file: " + why); }

  // The NUL-terminated name at `offset` of a string table, viewed in place, never copied
  // here. Its end is searched for in kMaxElfName + 1 bytes only: a forged file can point
  // every entry at one long unterminated run of bytes, and each entry would otherwise
  // scan it whole.
  Result<std::string_view> name_at(const std::vector<char>& table, uint64_t offset, const std::string& what,
                                   const char* table_name) const {
    if (offset >= table.size()) return malformed(what + " outside " + table_name);
    const char* begin = table.data() + offset;
    const size_t room = table.size() - offset;
    const void* nul = std::memchr(begin, '\0', std::min(room, kMaxElfName + 1));
    if (nul != nullptr) return std::string_view(begin, static_cast<size_t>(static_cast<const char*>(nul) - begin));
    if (room > kMaxElfName) return malformed(what + " longer than " + std::to_string(kMaxElfName) + " bytes");
    return malformed(what + " outside " + table_name);  // runs off the end of the table
  }

  Result<void> read_section_headers(const Elf64_Ehdr& eh) {
    if (eh.e_shoff == 0)
      return plugin_error(what_, path_,
                          "no section headers (removed after linking): its exports cannot be read without "
                          "loading it");
    if (eh.e_shentsize != sizeof(Elf64_Shdr)) return malformed("unexpected section header size");
    uint64_t count = eh.e_shnum;
    Elf64_Shdr first{};
    if (!file_.read(eh.e_shoff, &first, sizeof first)) return malformed("section headers outside the file");
    // More than 0xff00 sections: the count lives in the first header's sh_size.
    if (count == 0) count = first.sh_size;
    if (count == 0 || count > kMaxTableBytes / sizeof(Elf64_Shdr)) return malformed("implausible section count");
    if (!file_.holds(eh.e_shoff, count * sizeof(Elf64_Shdr))) return malformed("section headers outside the file");
    sections_.resize(count);
    if (!file_.read(eh.e_shoff, sections_.data(), count * sizeof(Elf64_Shdr)))
      return malformed("section headers outside the file");
    return {};
  }

  const Elf64_Shdr* find_section(uint32_t type) const {
    auto it = std::find_if(sections_.begin(), sections_.end(), [&](const Elf64_Shdr& s) { return s.sh_type == type; });
    return it == sections_.end() ? nullptr : &*it;
  }

  // The string table a section links to (sh_link), which must be one.
  Result<std::vector<char>> linked_strings(const Elf64_Shdr& sh, const char* name) const {
    std::vector<char> strings;
    if (sh.sh_link >= sections_.size() || sections_[sh.sh_link].sh_type != SHT_STRTAB ||
        !read_section(file_, sections_[sh.sh_link], strings))
      return malformed(std::string("bad string table for ") + name);
    return strings;
  }

  Result<void> read_symbols(ElfExports& out) {
    const Elf64_Shdr* dynsym = find_section(SHT_DYNSYM);
    if (dynsym == nullptr) return {};  // exports nothing: not an error, nothing to find
    if (dynsym->sh_entsize != sizeof(Elf64_Sym)) return malformed("unexpected .dynsym entry size");
    std::vector<char> table;
    if (!read_section(file_, *dynsym, table)) return malformed(".dynsym outside the file or too large");
    auto strings = linked_strings(*dynsym, ".dynsym");
    if (!strings) return strings.error();
    // Views into `strings`, deduplicated before any is copied. Their total length is
    // capped, so that many entries naming one long string cost a bounded sort.
    std::vector<std::string_view> names;
    uint64_t name_bytes = 0;
    const size_t count = table.size() / sizeof(Elf64_Sym);
    for (size_t i = 1; i < count; ++i) {  // entry 0 is the reserved null symbol
      Elf64_Sym sym;
      std::memcpy(&sym, table.data() + i * sizeof sym, sizeof sym);
      if (!is_export(sym)) continue;
      auto name = name_at(*strings, sym.st_name, "a symbol name", ".dynstr");
      if (!name) return name.error();
      if (name->empty()) continue;
      name_bytes += name->size();
      if (name_bytes > kMaxTableBytes)
        return malformed("exported names add up to more than " + std::to_string(kMaxTableBytes >> 20) + " MiB");
      if (const size_t k = kind_of_symbol(kAbiSymbols, *name); k < kModuleKinds) {
        auto value = read_abi_value(sym, *name);
        if (!value) return value.error();
        out.abi[k] = *value;
      } else if (const size_t p = kind_of_symbol(kParamsSymbols, *name); p < kModuleKinds) {
        auto text = read_params_text(sym, *name);
        if (!text) return text.error();
        out.params[p] = std::move(*text);
      } else if (name->starts_with("shoal_") && !is_code(sym)) {
        out.data_symbols.emplace_back(*name);
      }
      names.push_back(*name);
    }
    // Versioned symbols may appear once per version.
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    for (std::string_view name : names) {
      if (name.starts_with("shoal_")) {
        out.symbols.emplace_back(name);
      } else {
        ++out.other_exports;
      }
    }
    return {};
  }

  // STT_NOTYPE counts as code: an assembler label without .type is still a function.
  static bool is_code(const Elf64_Sym& sym) {
    const unsigned type = ELF64_ST_TYPE(sym.st_info);
    return type == STT_FUNC || type == STT_GNU_IFUNC || type == STT_NOTYPE;
  }

  // What dlsym could find: defined here, global or weak, default or protected visibility.
  static bool is_export(const Elf64_Sym& sym) {
    const unsigned bind = ELF64_ST_BIND(sym.st_info);
    const unsigned type = ELF64_ST_TYPE(sym.st_info);
    const unsigned visibility = ELF64_ST_VISIBILITY(sym.st_other);
    return sym.st_shndx != SHN_UNDEF && (bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE) &&
           (visibility == STV_DEFAULT || visibility == STV_PROTECTED) && type != STT_SECTION && type != STT_FILE;
  }

  // The 4-byte constant a data symbol names: its address, inside the section it belongs
  // to, maps to a file offset through that section's sh_addr and sh_offset.
  Result<uint32_t> read_abi_value(const Elf64_Sym& sym, std::string_view name) const {
    const Error bad =
        plugin_error(what_, path_, std::string(name) + " is not a 4-byte constant (declare it as in shoal/plugin.h)");
    if (sym.st_size != sizeof(uint32_t)) return bad;
    const auto at = object_bytes(sym);
    if (!at) return bad;
    if (*at == kZeroFilled) return uint32_t{0};  // zero-initialized (.bss)
    uint32_t value = 0;
    if (!file_.read(*at, &value, sizeof value)) return bad;
    return value;  // little-endian, as this machine (checked above)
  }

  // The text of a params declaration: a char array of at most kMaxParamsText bytes that
  // ends with its one NUL. Parsed later (plugin/params.hpp), by its one reader.
  Result<std::string> read_params_text(const Elf64_Sym& sym, std::string_view name) const {
    const Error bad = plugin_error(what_, path_,
                                   std::string(name) + " is not a NUL-terminated char array of at most " +
                                       std::to_string(kMaxParamsText) + " bytes (define it with SHOAL_PARAMS)");
    if (sym.st_size == 0 || sym.st_size > kMaxParamsText + 1) return bad;
    const auto at = object_bytes(sym);
    if (!at || *at == kZeroFilled) return bad;
    std::string text(sym.st_size, '\0');
    if (!file_.read(*at, text.data(), text.size()) || text.back() != '\0') return bad;
    text.pop_back();
    return text;
  }

  // Where a data symbol's st_size bytes lie in the file: its address, inside the section
  // it belongs to, maps to a file offset through that section's sh_addr and sh_offset.
  // kZeroFilled for a symbol in .bss; nullopt when it is not an object or lies outside.
  static constexpr uint64_t kZeroFilled = ~uint64_t{0};
  std::optional<uint64_t> object_bytes(const Elf64_Sym& sym) const {
    if (ELF64_ST_TYPE(sym.st_info) != STT_OBJECT || sym.st_shndx >= SHN_LORESERVE || sym.st_shndx >= sections_.size())
      return std::nullopt;
    const Elf64_Shdr& sec = sections_[sym.st_shndx];
    if (sym.st_value < sec.sh_addr || sym.st_value - sec.sh_addr > sec.sh_size ||
        sec.sh_size - (sym.st_value - sec.sh_addr) < sym.st_size)
      return std::nullopt;
    if (sec.sh_type == SHT_NOBITS) return kZeroFilled;
    const uint64_t offset = sec.sh_offset + (sym.st_value - sec.sh_addr);
    if (offset < sec.sh_offset || offset == kZeroFilled) return std::nullopt;
    return offset;
  }

  Result<void> read_dynamic(ElfExports& out) {
    const Elf64_Shdr* dynamic = find_section(SHT_DYNAMIC);
    if (dynamic == nullptr) return {};
    if (dynamic->sh_entsize != sizeof(Elf64_Dyn)) return malformed("unexpected .dynamic entry size");
    std::vector<char> table;
    if (!read_section(file_, *dynamic, table)) return malformed(".dynamic outside the file or too large");
    auto strings = linked_strings(*dynamic, ".dynamic");
    if (!strings) return strings.error();
    const size_t count = table.size() / sizeof(Elf64_Dyn);
    bool have_soname = false, have_runpath = false, have_rpath = false;
    for (size_t i = 0; i < count; ++i) {
      Elf64_Dyn dyn;
      std::memcpy(&dyn, table.data() + i * sizeof dyn, sizeof dyn);
      if (dyn.d_tag == DT_NULL) break;
      // Only the first DT_SONAME is read, and more than kMaxNeeded DT_NEEDED entries make
      // the file malformed: a forged .dynamic of millions of entries copies few names.
      if (dyn.d_tag == DT_SONAME && have_soname) continue;
      if (dyn.d_tag == DT_NEEDED && out.needed.size() == kMaxNeeded)
        return malformed("more than " + std::to_string(kMaxNeeded) + " DT_NEEDED entries");
      // The first DT_RUNPATH and DT_RPATH, as the loader reads them.
      if ((dyn.d_tag == DT_RUNPATH && have_runpath) || (dyn.d_tag == DT_RPATH && have_rpath)) continue;
      if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_SONAME && dyn.d_tag != DT_RUNPATH && dyn.d_tag != DT_RPATH)
        continue;
      auto name = name_at(*strings, dyn.d_un.d_val, "a library name", "the dynamic string table");
      if (!name) return name.error();
      if (dyn.d_tag == DT_SONAME) {
        out.soname = *name;
        have_soname = true;
      } else if (dyn.d_tag == DT_RUNPATH) {
        out.runpath = *name;
        have_runpath = true;
      } else if (dyn.d_tag == DT_RPATH) {
        out.rpath = *name;
        have_rpath = true;
      } else {
        out.needed.emplace_back(*name);
      }
    }
    return {};
  }

  const File& file_;
  const std::filesystem::path& path_;
  const char* what_;
  std::vector<Elf64_Shdr> sections_;
};

}  // namespace

bool ElfExports::exports(std::string_view name) const {
  return std::binary_search(symbols.begin(), symbols.end(), name, std::less<>());
}

Result<ElfExports> read_elf_exports(const std::filesystem::path& path, const char* what) {
  if (auto s = check_shared_object(path, what); !s) return s.error();
  return read_elf_library(path, what);
}

Result<ElfExports> read_elf_library(const std::filesystem::path& path, const char* what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return plugin_error(what, path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return plugin_error(what, path, "not a regular file");
  }
  const File file(fd, static_cast<uint64_t>(st.st_size));
  return Reader(file, path, what).read();
}

std::vector<std::string_view> missing_exports(const ElfExports& elf, ModuleKind kind) {
  std::vector<std::string_view> missing;
  for (const char* name : required_exports(kind))
    if (!elf.exports(name)) missing.emplace_back(name);
  return missing;
}

const char* abi_symbol(ModuleKind kind) { return kAbiSymbols[static_cast<size_t>(kind)].data(); }

std::optional<uint32_t> declared_abi(const ElfExports& elf, ModuleKind kind) { return elf.abi[static_cast<size_t>(kind)]; }

const std::optional<std::string>& declared_params(const ElfExports& elf, ModuleKind kind) {
  return elf.params[static_cast<size_t>(kind)];
}

const char* params_symbol(ModuleKind kind) { return kParamsSymbols[static_cast<size_t>(kind)].data(); }

Fit fit(const ElfExports& elf, ModuleKind kind) {
  const size_t missing = missing_exports(elf, kind).size();
  if (missing == 0) return Fit::complete;
  return missing < required_exports(kind).size() || declared_abi(elf, kind) ? Fit::partial : Fit::none;
}

Result<ElfExports> check_module_file(const std::filesystem::path& path, ModuleKind kind) {
  const char* what = role_name(kind);
  auto elf = read_elf_exports(path, what);
  if (!elf) return elf.error();
  const auto missing = missing_exports(*elf, kind);
  if (!missing.empty()) {
    for (ModuleKind other : kAllModuleKinds)
      if (other != kind && fit(*elf, other) == Fit::complete)
        return plugin_error(what, path, std::string("is a ") + kind_name(other) + ", not a " + kind_name(kind));
    std::string names;
    for (std::string_view name : missing) names += (names.empty() ? "" : ", ") + std::string(name);
    return plugin_error(what, path,
                        std::string(missing.size() == 1 ? "missing symbol " : "missing symbols ") + names +
                            " (not a shoal " + what + "?)");
  }
  // The loader resolves these by name and calls them: data under one of these names
  // passes dlsym and crashes the worker at the first call.
  std::vector<std::string_view> entry_points(required_exports(kind).begin(), required_exports(kind).end());
  if (const char* optional = optional_entry_point(kind)) entry_points.push_back(optional);
  for (std::string_view name : entry_points)
    if (std::find(elf->data_symbols.begin(), elf->data_symbols.end(), name) != elf->data_symbols.end())
      return plugin_error(what, path,
                          std::string(name) + " is a data symbol, not a function (calling it would crash the worker)");
  if (auto abi = declared_abi(*elf, kind))
    if (auto s = check_abi(*abi, path, what); !s) return s.error();
  return elf;
}

}  // namespace shoal::detail

// The dynamic loader's search (ld.so(8), glibc's elf/dl-load.c), done over files: no
// library is mapped, so nothing a library runs at load time can run here.
#include "plugin/needed.hpp"

#include <sys/stat.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <deque>
#include <fstream>
#include <set>

namespace shoal::detail {

namespace {

// glibc's elf/dl-cache.h: the "new" format ldconfig has written since glibc 2.2, alone
// since 2.32, after the old table before that.
constexpr std::string_view kOldMagic = "ld.so-1.7.0";
constexpr std::string_view kNewMagic = "glibc-ld.so.cache1.1";
constexpr size_t kOldHeader = 16;  // magic[11], padding, u32 nlibs
constexpr size_t kOldEntry = 12;   // i32 flags, u32 key, u32 value
constexpr size_t kNewHeader = 48;  // magic+version[20], u32 nlibs, u32 len_strings, flags, extension, unused
constexpr size_t kNewEntry = 24;   // i32 flags, u32 key, u32 value, u32 osversion, u64 hwcap
constexpr int32_t kFlagTypeMask = 0xff;
constexpr int32_t kFlagElf = 1, kFlagElfLibc6 = 3;
// A cache entry names a path, a DT_NEEDED entry a file name or a path: far below this.
constexpr size_t kMaxPath = 4096;
constexpr uint64_t kMaxCacheBytes = uint64_t{64} << 20;
// Far above any real dependency tree (a desktop toolkit pulls in ~100 libraries), low
// enough that a forged chain of libraries costs a bounded number of reads.
constexpr size_t kMaxLibraries = 512;
constexpr size_t kMaxDepth = 64;
constexpr const char* kWhat = "library";

#if defined(__x86_64__)
constexpr std::string_view kMultiarch = "x86_64-linux-gnu", kPlatform = "x86_64";
#elif defined(__aarch64__)
constexpr std::string_view kMultiarch = "aarch64-linux-gnu", kPlatform = "aarch64";
#else
#error "shoal: add this machine's multiarch triplet"
#endif

uint32_t u32_at(std::string_view bytes, size_t at) {
  uint32_t v = 0;
  std::memcpy(&v, bytes.data() + at, sizeof v);
  return v;
}

// The NUL-terminated string at `offset` of `table`, or nullopt when it runs off the end.
std::optional<std::string> string_at(std::string_view table, uint64_t offset) {
  if (offset >= table.size()) return std::nullopt;
  const std::string_view rest = table.substr(offset, kMaxPath + 1);
  const size_t nul = rest.find('\0');
  if (nul == std::string_view::npos || nul == 0) return std::nullopt;
  return std::string(rest.substr(0, nul));
}

std::vector<std::string> split(std::string_view text, std::string_view separators) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find_first_of(separators, start);
    parts.emplace_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// $ORIGIN and ${ORIGIN} (the directory of the object whose entry this is), $LIB and
// $PLATFORM, as Debian's glibc expands them. Anything else after a '$' is kept.
std::string expand(std::string_view text, const std::string& origin) {
  const std::pair<std::string_view, std::string> tokens[] = {
      {"ORIGIN", origin}, {"LIB", "lib/" + std::string(kMultiarch)}, {"PLATFORM", std::string(kPlatform)}};
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    bool replaced = false;
    for (const auto& [token, value] : tokens) {
      if (text[i] != '$' || replaced) break;
      const std::string braced = "{" + std::string(token) + "}";
      size_t length = 0;
      if (text.substr(i + 1, braced.size()) == braced) {
        length = 1 + braced.size();
      } else if (text.substr(i + 1, token.size()) == token) {
        // $LIBX is not $LIB followed by X: a plain token ends where a name would.
        const size_t after = i + 1 + token.size();
        const bool name_goes_on =
            after < text.size() && (std::isalnum(static_cast<unsigned char>(text[after])) != 0 || text[after] == '_');
        if (!name_goes_on) length = 1 + token.size();
      }
      if (length == 0) continue;
      out += value;
      i += length;
      replaced = true;
    }
    if (!replaced) out += text[i++];
  }
  return out;
}

// The directories of a RUNPATH, RPATH or LD_LIBRARY_PATH; an empty element is the
// working directory, as for the loader.
std::vector<std::string> dirs_of(std::string_view list, std::string_view separators, const std::string& origin) {
  std::vector<std::string> dirs;
  if (list.empty()) return dirs;
  for (const std::string& part : split(list, separators)) dirs.push_back(part.empty() ? "." : expand(part, origin));
  return dirs;
}

struct Object {
  std::filesystem::path path;
  ElfExports elf;
  std::vector<std::string> via;  // names from the module down to this one (the module: empty)
  size_t parent = SIZE_MAX;      // index in the walk of the object that pulled it in
};

class Walk {
 public:
  explicit Walk(const LibrarySearch& search) : search_(search) {}

  std::vector<MissingLibrary> run(const std::filesystem::path& module, const ElfExports& elf) {
    objects_.push_back({module, elf, {}, SIZE_MAX});
    if (!elf.soname.empty()) resolved_.insert(elf.soname);
    // Breadth first, as the loader orders its search list.
    for (size_t i = 0; i < objects_.size(); ++i) {
      if (objects_[i].via.size() >= kMaxDepth) continue;
      const std::vector<std::string> needed = objects_[i].elf.needed;
      for (const std::string& name : needed) {
        if (!resolved_.insert(name).second) continue;  // found, or reported missing, already
        MissingLibrary missing{name, objects_[i].via, {}};
        if (!find(i, name, missing.skipped)) out_.push_back(std::move(missing));
        if (objects_.size() >= kMaxLibraries) return out_;
      }
    }
    return out_;
  }

 private:
  static std::string origin_of(const std::filesystem::path& path) {
    const std::string dir = path.parent_path().string();
    return dir.empty() ? "." : dir;
  }

  // True when `name`, needed by object `from`, is found; the found library joins the walk.
  bool find(size_t from, const std::string& name, std::vector<std::string>& skipped) {
    const Object& object = objects_[from];
    if (name.find('/') != std::string::npos) return accept(from, name, expand(name, origin_of(object.path)), skipped);
    if (object.elf.runpath.empty()) {
      // DT_RPATH of the object, then of each object that pulled it in, up to the module.
      for (size_t at = from; at != SIZE_MAX; at = objects_[at].parent) {
        const Object& o = objects_[at];
        if (!o.elf.runpath.empty()) continue;
        for (const std::string& dir : dirs_of(o.elf.rpath, ":", origin_of(o.path)))
          if (accept(from, name, dir + "/" + name, skipped)) return true;
      }
    }
    for (const std::string& dir : search_.library_path)
      if (accept(from, name, dir + "/" + name, skipped)) return true;
    for (const std::string& dir : dirs_of(object.elf.runpath, ":", origin_of(object.path)))
      if (accept(from, name, dir + "/" + name, skipped)) return true;
    for (const CacheEntry& entry : search_.cache)
      if (entry.name == name && accept(from, name, entry.path, skipped)) return true;
    for (const std::string& dir : search_.system_dirs)
      if (accept(from, name, dir + "/" + name, skipped)) return true;
    return false;
  }

  // True when `path` is a library the loader would take for `name`. A file that is there
  // but not one (another machine, word size, not ELF) is passed over, as the loader does.
  bool accept(size_t from, const std::string& name, const std::string& path, std::vector<std::string>& skipped) {
    if (path.size() > kMaxPath) return false;
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return false;
    const bool seen = !read_.insert({st.st_dev, st.st_ino}).second;
    if (seen) return true;  // another name of a library already in the walk
    if (objects_.size() >= kMaxLibraries) return true;  // bounded: unread, assumed whole
    auto elf = S_ISREG(st.st_mode) ? read_elf_library(path, kWhat)
                                   : Result<ElfExports>(plugin_error(kWhat, path, "not a regular file"));
    if (!elf) {
      read_.erase({st.st_dev, st.st_ino});
      skipped.push_back(elf.error().message.substr(std::strlen(kWhat) + 1));
      return false;
    }
    if (!elf->soname.empty()) resolved_.insert(elf->soname);
    std::vector<std::string> via = objects_[from].via;
    via.push_back(name);
    objects_.push_back({path, std::move(*elf), std::move(via), from});
    return true;
  }

  const LibrarySearch& search_;
  std::deque<Object> objects_;
  std::set<std::string> resolved_;
  std::set<std::pair<dev_t, ino_t>> read_;
  std::vector<MissingLibrary> out_;
};

}  // namespace

std::vector<CacheEntry> parse_ld_cache(std::string_view bytes) {
  std::vector<CacheEntry> entries;
  size_t header = 0;
  if (bytes.substr(0, kOldMagic.size()) == kOldMagic) {
    // The old table first; the new one follows it, 8-byte aligned.
    if (bytes.size() < kOldHeader) return entries;
    const uint64_t old_libs = u32_at(bytes, 12);
    if (old_libs > (bytes.size() - kOldHeader) / kOldEntry) return entries;
    header = static_cast<size_t>((kOldHeader + old_libs * kOldEntry + 7) & ~uint64_t{7});
  }
  if (header > bytes.size() || bytes.size() - header < kNewHeader || bytes.substr(header, kNewMagic.size()) != kNewMagic)
    return entries;
  // String offsets of the new table count from its header.
  const std::string_view table = bytes.substr(header);
  const uint64_t nlibs = u32_at(table, 20);
  if (nlibs > (table.size() - kNewHeader) / kNewEntry) return entries;
  for (uint64_t i = 0; i < nlibs; ++i) {
    const size_t at = kNewHeader + static_cast<size_t>(i) * kNewEntry;
    const auto flags = static_cast<int32_t>(u32_at(table, at));
    if ((flags & kFlagTypeMask) != kFlagElf && (flags & kFlagTypeMask) != kFlagElfLibc6) continue;
    auto name = string_at(table, u32_at(table, at + 4));
    auto path = string_at(table, u32_at(table, at + 8));
    if (name && path) entries.push_back({std::move(*name), std::move(*path)});
  }
  return entries;
}

LibrarySearch library_search(const std::optional<std::string>& ld_library_path) {
  LibrarySearch search;
  // An empty LD_LIBRARY_PATH adds nothing; empty elements of a longer one are ".".
  if (ld_library_path && !ld_library_path->empty())
    search.library_path = dirs_of(*ld_library_path, ":;", std::string("."));
  // A cache that cannot be read is one the loader does without too.
  std::error_code ec;
  const auto size = std::filesystem::file_size("/etc/ld.so.cache", ec);
  std::ifstream in("/etc/ld.so.cache", std::ios::binary);
  if (!ec && size <= kMaxCacheBytes && in) {
    std::string bytes(static_cast<size_t>(size), '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    bytes.resize(static_cast<size_t>(in.gcount()));
    search.cache = parse_ld_cache(bytes);
  }
  const std::string multiarch(kMultiarch);
  search.system_dirs = {"/lib/" + multiarch, "/usr/lib/" + multiarch, "/lib", "/usr/lib"};
  return search;
}

std::vector<MissingLibrary> missing_libraries(const std::filesystem::path& module, const ElfExports& elf,
                                              const LibrarySearch& search) {
  return Walk(search).run(module, elf);
}

std::string describe(const MissingLibrary& missing) {
  std::string text = "needs " + missing.name;
  if (!missing.via.empty()) {
    text += " (through ";
    for (size_t i = 0; i < missing.via.size(); ++i) text += (i == 0 ? "" : ", ") + missing.via[i];
    text += ")";
  }
  text += ", which the dynamic loader does not find";
  for (const std::string& why : missing.skipped) text += "; skipped " + why;
  return text;
}

}  // namespace shoal::detail

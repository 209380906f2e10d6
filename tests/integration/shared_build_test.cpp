// Shared data (issue 18), the build: build_shared with real builder processes (the C and
// C++ fixtures), what it hands back (a sealed, read-only memfd holding a Boost.Interprocess
// segment whose named objects the test finds through a PROT_READ mapping), and every way
// a build fails: one line, the right Errc, no process, no descriptor left behind.
#include "fixture_paths.hpp"
#include "shared/segment.hpp"
#include "support/test_env.hpp"

#include <shoal/shared.hpp>

#include <boost/interprocess/managed_external_buffer.hpp>
#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;
namespace bi = boost::interprocess;
namespace fs = std::filesystem;

namespace {

size_t open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

SharedConfig entry(const std::string& name, const std::string& builder, uint64_t size,
                   std::map<std::string, std::string> params = {}) {
  SharedConfig e;
  e.name = name;
  e.builder = builder;
  e.size = size;
  e.params = std::move(params);
  return e;
}

PoolConfig builder_pool(Duration start_timeout = 30s) {
  PoolConfig p = pool_config(SHOAL_PLUGIN_ECHO, 1);
  p.name = "sp";
  p.start_timeout = start_timeout;
  return p;
}

Result<detail::SharedSegmentPtr> build(const SharedConfig& e, const PoolConfig& pool, int cancel_fd = -1) {
  return detail::build_shared(e, {SHOAL_WORKER_BIN, &pool, 7, cancel_fd});
}

// The pid in the builder's "built pid=N" event line (0 when there is none).
int builder_pid(const fs::path& events) {
  const std::string text = read_file(events);
  const auto at = text.find("built pid=");
  int pid = 0;
  if (at != std::string::npos) (void)std::from_chars(text.data() + at + 10, text.data() + text.size(), pid);
  return pid;  // 0 also while the line is half written
}

// The builder and its process group are gone (build_shared returns after both).
void require_gone(int pid) {
  REQUIRE(pid > 0);
  CHECK(::kill(pid, 0) == -1);
  CHECK(errno == ESRCH);
  CHECK(::kill(-pid, 0) == -1);
  CHECK(errno == ESRCH);
}

// The segment mapped as a worker maps it: PROT_READ, shared, whole.
struct ReadOnlyView {
  void* addr = MAP_FAILED;
  size_t size = 0;
  explicit ReadOnlyView(const detail::SharedSegment& s) : size(s.size) {
    addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, s.fd.get(), 0);
  }
  ~ReadOnlyView() {
    if (addr != MAP_FAILED) ::munmap(addr, size);
  }
  template <class T>
  std::pair<const T*, size_t> find(const char* name) const {
    bi::managed_external_buffer segment(bi::open_only, addr, size);
    auto [p, n] = segment.find_no_lock<T>(name);
    return {p, n};
  }
};

}  // namespace

TEST_CASE("shared build: a C builder's objects are found read-only and the memfd is sealed", "[integration][shared]") {
  TempDir dir;
  const fs::path events = dir.path() / "events";
  const PoolConfig pool = builder_pool();
  const size_t fds_before = open_fds();
  {
    auto seg = build(entry("table", fixture("fx_shared_builder"), 1 << 20,
                           {{"count", "5000"}, {"events", events.string()}}),
                     pool);
    REQUIRE(seg.ok());
    const detail::SharedSegment& s = **seg;
    CHECK(s.name == "table");
    CHECK(s.size == (1u << 20));
    CHECK(s.used > 5000 * (8 + 4));
    CHECK(s.used <= s.size);
    CHECK(s.generation == 7);
    CHECK(s.build_time > Duration::zero());
    CHECK(s.stamp == detail::shared_stamp(entry("table", fixture("fx_shared_builder"), 1 << 20,
                                                {{"count", "5000"}, {"events", events.string()}})));
    require_gone(builder_pid(events));

    // The kernel's word: every seal, the size, read-only access.
    CHECK(::fcntl(s.fd.get(), F_GET_SEALS) == (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL));
    CHECK((::fcntl(s.fd.get(), F_GETFL) & O_ACCMODE) == O_RDONLY);
    struct stat st {};
    REQUIRE(::fstat(s.fd.get(), &st) == 0);
    CHECK(static_cast<uint64_t>(st.st_size) == s.size);
    void* writable = ::mmap(nullptr, s.size, PROT_READ | PROT_WRITE, MAP_SHARED, s.fd.get(), 0);
    CHECK(writable == MAP_FAILED);
    if (writable != MAP_FAILED) ::munmap(writable, s.size);
    CHECK(::ftruncate(s.fd.get(), 2 << 20) != 0);

    ReadOnlyView view(s);
    REQUIRE(view.addr != MAP_FAILED);
    auto [numbers, count] = view.find<char>("numbers");
    REQUIRE(numbers != nullptr);
    REQUIRE(count == 5000 * sizeof(uint64_t));
    // Boost 1.74 places a named block 8-aligned whatever its type (shared.h says so).
  CHECK(reinterpret_cast<uintptr_t>(numbers) % 8 == 0);
    const auto* values = reinterpret_cast<const uint64_t*>(numbers);
    CHECK(values[0] == 0);
    CHECK(values[71] == 71 * 71);
    CHECK(values[4999] == 4999ull * 4999ull);
    auto [greeting, greeting_size] = view.find<char>("greeting");
    REQUIRE(greeting != nullptr);
    CHECK(std::string_view(greeting, greeting_size) == std::string_view("hello from the builder", 23));
    auto [index, index_size] = view.find<char>("index");
    REQUIRE(index != nullptr);
    REQUIRE(index_size == 16);
    uint64_t items = 0;
    int64_t offset = 0;
    std::memcpy(&items, index, 8);
    std::memcpy(&offset, index + 8, 8);
    CHECK(items == 5000);
    const auto* array = reinterpret_cast<const uint32_t*>(index + offset);
    CHECK(reinterpret_cast<uintptr_t>(array) % 16 == 0);  // allocate(b, n, 16)
    CHECK(array[0] == 0);
    CHECK(array[4321] == 4321);
    CHECK(view.find<char>("nothing").first == nullptr);
  }
  CHECK(open_fds() == fds_before);
}

TEST_CASE("shared build: a C++ builder's map and vector are found through open_only", "[integration][shared]") {
  const PoolConfig pool = builder_pool();
  auto seg = build(entry("words", fixture("fx_shared_builder_cpp"), 4 << 20, {{"count", "1000"}}), pool);
  REQUIRE(seg.ok());
  ReadOnlyView view(**seg);
  REQUIRE(view.addr != MAP_FAILED);
  using Words = SharedMap<SharedString, uint64_t>;
  auto [words, n] = view.find<Words>("words");
  REQUIRE(words != nullptr);
  CHECK(n == 1);
  CHECK(words->size() == 1000);
  // Heterogeneous lookups: nothing is allocated in the read-only segment.
  auto it = words->find(std::string_view("w742"));
  REQUIRE(it != words->end());
  CHECK(it->second == 742);
  CHECK(words->find(std::string_view("w1000")) == words->end());
  auto [squares, m] = view.find<SharedVector<uint64_t>>("squares");
  REQUIRE(squares != nullptr);
  REQUIRE(squares->size() == 1000);
  CHECK((*squares)[999] == 999u * 999u);
}

TEST_CASE("shared build: each failing builder is one line and an Errc and leaves nothing", "[integration][shared]") {
  TempDir dir;
  const fs::path events = dir.path() / "events";
  struct Case {
    std::string mode;
    Errc code;
    std::string says;
  };
  const Case cases[] = {
      {"crash", Errc::plugin, "pool 'sp': shared 'e': the builder crashed: signal 11 (SIGSEGV)"},
      {"overflow", Errc::plugin,
       "pool 'sp': shared 'e': the builder needs more than its size 64KiB: raise `size` of shared entry 'e'"},
      {"none", Errc::plugin, "named nothing"},
      {"fail", Errc::plugin, ": build failed: builder said no"},
  };
  const PoolConfig pool = builder_pool();
  for (const Case& c : cases) {
    INFO(c.mode);
    fs::remove(events);
    const size_t fds_before = open_fds();
    auto seg = build(entry("e", fixture("fx_shared_builder"), 64 << 10, {{"mode", c.mode}, {"events", events.string()}}),
                     pool);
    REQUIRE_FALSE(seg.ok());
    CHECK(seg.error().code == c.code);
    CHECK(seg.error().message.find(c.says) != std::string::npos);
    CHECK(seg.error().message.starts_with("pool 'sp': shared 'e': "));
    CHECK(seg.error().message.find('\n') == std::string::npos);
    require_gone(builder_pid(events));
    CHECK(open_fds() == fds_before);
  }
}

TEST_CASE("shared build: a builder that hangs past start_timeout is killed with its group", "[integration][shared]") {
  TempDir dir;
  const fs::path events = dir.path() / "events";
  // Long enough for a sanitizer build's builder to start and write its event line (the
  // pid require_gone needs) before the deadline kills it.
  const PoolConfig pool = builder_pool(std::chrono::milliseconds(1000 * kSlow));
  const size_t fds_before = open_fds();
  const auto t0 = std::chrono::steady_clock::now();
  auto seg = build(entry("slow", fixture("fx_shared_builder"), 64 << 10, {{"mode", "hang"}, {"events", events.string()}}),
                   pool);
  REQUIRE_FALSE(seg.ok());
  CHECK(seg.error().code == Errc::timeout);
  CHECK(seg.error().message.find("pool 'sp': shared 'slow': the builder did not finish within start_timeout") == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10 * kSlow));
  require_gone(builder_pid(events));
  CHECK(open_fds() == fds_before);
}

TEST_CASE("shared build: the cancel descriptor stops a hanging build", "[integration][shared]") {
  TempDir dir;
  const fs::path events = dir.path() / "events";
  const PoolConfig pool = builder_pool(0s);  // no start_timeout: only the cancel ends it
  int cancel[2];
  REQUIRE(::pipe2(cancel, O_CLOEXEC) == 0);
  const size_t fds_before = open_fds();
  // Cancels once the builder is in its build: its event line is written whole (the file
  // exists a moment before the line is in it, and require_gone needs the pid).
  std::thread canceller([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(20000 * kSlow);
    while (builder_pid(events) == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    (void)!::write(cancel[1], "x", 1);
  });
  auto seg = build(entry("held", fixture("fx_shared_builder"), 64 << 10, {{"mode", "hang"}, {"events", events.string()}}),
                   pool, cancel[0]);
  canceller.join();
  REQUIRE_FALSE(seg.ok());
  CHECK(seg.error().code == Errc::cancelled);
  CHECK(seg.error().message.find("pool 'sp': shared 'held': ") == 0);
  require_gone(builder_pid(events));
  CHECK(open_fds() == fds_before);
  ::close(cancel[0]);
  ::close(cancel[1]);
}

TEST_CASE("shared build: a builder that cannot load or refuses its params fails before it builds", "[integration][shared]") {
  TempDir dir;
  const fs::path events = dir.path() / "events";
  const PoolConfig pool = builder_pool();
  const size_t fds_before = open_fds();

  auto missing = build(entry("m", fixture("fx_shared_builder_nobuild"), 64 << 10), pool);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Errc::plugin);
  CHECK(missing.error().message == "pool 'sp': shared 'm': shared-data builder " + fixture("fx_shared_builder_nobuild") +
                                       ": missing symbol shoal_shared_build (not a shoal shared-data builder?)");

  auto plugin = build(entry("p", SHOAL_PLUGIN_ECHO, 64 << 10), pool);
  REQUIRE_FALSE(plugin.ok());
  CHECK(plugin.error().message == "pool 'sp': shared 'p': shared-data builder " + std::string(SHOAL_PLUGIN_ECHO) +
                                      ": is a task plugin, not a shared-data builder");

  auto params = build(entry("q", fixture("fx_shared_builder"), 64 << 10, {{"count", "0"}, {"events", events.string()}}),
                      pool);
  REQUIRE_FALSE(params.ok());
  CHECK(params.error().code == Errc::config);
  CHECK(params.error().message.find("pool 'sp': shared 'q': shared-data builder ") == 0);
  CHECK(params.error().message.find("count") != std::string::npos);
  CHECK_FALSE(fs::exists(events));  // refused before its code ran

  auto gone = build(entry("g", (dir.path() / "nope.so").string(), 64 << 10), pool);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().message.find(": file not found") != std::string::npos);
  CHECK(open_fds() == fds_before);
}

TEST_CASE("shared build: check reads builders like plugins and inspect names them", "[integration][shared][cli]") {
  TempDir dir;
  const std::string fx = fixture("fx_shared_builder"), nobuild = fixture("fx_shared_builder_nobuild");
  const auto q = [](const std::string& s) { return "\"" + s + "\""; };
  const fs::path config = dir.write("pools.yaml", "pools:\n"
                                                  "  p:\n"
                                                  "    plugin: " + q(SHOAL_PLUGIN_ECHO) + "\n"
                                                  "    workers: 1\n"
                                                  "    shared:\n"
                                                  "      - name: good\n"
                                                  "        builder: " + q(fx) + "\n"
                                                  "        size: 1MiB\n"
                                                  "        params: {mode: ok, count: 10}\n"
                                                  "      - name: badparam\n"
                                                  "        builder: " + q(fx) + "\n"
                                                  "        size: 1MiB\n"
                                                  "        params: {count: 0, colour: red}\n"
                                                  "      - name: plugin\n"
                                                  "        builder: " + q(SHOAL_PLUGIN_ECHO) + "\n"
                                                  "        size: 1MiB\n"
                                                  "      - name: nobuild\n"
                                                  "        builder: " + q(nobuild) + "\n"
                                                  "        size: 1MiB\n");
  const auto at = [&](int line, int column) {
    return config.string() + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
  };
  const ProcessResult r = shoal_cli({"check", config.string()});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 2);
  const std::vector<std::string> lines = [&] {
    std::vector<std::string> out;
    std::string line;
    for (char ch : r.out) {
      if (ch != '\n') line += ch;
      else out.push_back(std::exchange(line, {}));
    }
    return out;
  }();
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == at(13, 28) + "pool 'p' shared 'badparam': shared-data builder " + fx +
                        ": unknown param 'colour' (it takes mode, events, count)");
  CHECK(lines[1] == at(13, 25) + "pool 'p' shared 'badparam': shared-data builder " + fx +
                        ": param 'count': expected an integer from 1 to 100000000, found '0'");
  CHECK(lines[2] == at(15, 18) + "pool 'p' shared 'plugin': shared-data builder " + SHOAL_PLUGIN_ECHO +
                        ": is a task plugin, not a shared-data builder");
  CHECK(lines[3] == at(18, 18) + "pool 'p' shared 'nobuild': shared-data builder " + nobuild +
                        ": missing symbol shoal_shared_build (not a shoal shared-data builder?)");

  const ProcessResult good = shoal_cli(
      {"check", dir.write("good.yaml", "pools:\n  p:\n    plugin: " + q(SHOAL_PLUGIN_ECHO) +
                                           "\n    shared:\n      - {name: g, builder: " + q(fx) + ", size: 1MiB}\n")
                    .string()});
  INFO(good.out << good.err);
  CHECK(good.exit_code == 0);
  CHECK(good.err.find("(1 pool, 2 module files)") != std::string::npos);

  const ProcessResult inspect = shoal_cli({"inspect", fx, fixture("fx_shared_builder_cpp")});
  INFO(inspect.out << inspect.err);
  CHECK(inspect.exit_code == 0);
  const std::string abi = std::to_string(SHOAL_ABI_MAJOR) + "." + std::to_string(SHOAL_ABI_VERSION & 0xffff);
  CHECK(inspect.out.find("file: " + fx + "\nkind: shared-data builder\nabi: " + abi + "\n") != std::string::npos);
  CHECK(inspect.out.find("kind: shared-data builder\nabi: " + abi + "\nexports: shoal_shared_abi "
                         "shoal_shared_abi_version shoal_shared_build shoal_shared_params\n") != std::string::npos);
  for (const char* param : {"\n  mode ", "\n  events ", "\n  count "})
    CHECK(inspect.out.find(param) != std::string::npos);
  CHECK(inspect.out.find("file: " + fixture("fx_shared_builder_cpp") + "\nkind: shared-data builder\n") !=
        std::string::npos);
}

namespace {

// What the C++ builder reports through the host table when called directly.
std::string g_reported;
void record_error(shoal_ctx*, shoal_status, const char* msg) { g_reported = msg ? msg : ""; }

}  // namespace

TEST_CASE("shared build: SHOAL_SHARED_BUILDER refuses a worker of another Boost before it builds",
          "[integration][shared]") {
  // Loaded here, in the test, on purpose: the macro's check runs before anything touches
  // the segment, so a builder struct with no segment is enough to reach it.
  void* lib = ::dlopen(fixture("fx_shared_builder_cpp").c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(lib != nullptr);
  using BuildFn = shoal_status (*)(const shoal_host*, shoal_ctx*, shoal_shared_builder*);
  auto build_fn = reinterpret_cast<BuildFn>(::dlsym(lib, "shoal_shared_build"));
  REQUIRE(build_fn != nullptr);
  shoal_host host{};
  host.struct_size = sizeof host;
  host.abi_version = SHOAL_ABI_VERSION;
  host.report_error = record_error;
  shoal_shared_builder b{};
  b.struct_size = sizeof b;
  b.boost_version = BOOST_VERSION + 100;  // one minor release on
  b.size = 1 << 20;
  g_reported.clear();
  CHECK(build_fn(&host, nullptr, &b) == SHOAL_E_INVALID);
  const std::string ours = std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000);
  const std::string theirs =
      std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000 + 1);
  CHECK(g_reported == "built against Boost " + ours + " while the worker uses Boost " + theirs +
                          " (the segment's layout is Boost's: rebuild the builder against the worker's Boost)");
  b.struct_size = 8;  // a worker older than the builder's header
  CHECK(build_fn(&host, nullptr, &b) == SHOAL_E_INVALID);
  CHECK(g_reported.find("older") != std::string::npos);
  ::dlclose(lib);
}

TEST_CASE("shared build: a C++ builder past its size fails naming the key to raise", "[integration][shared]") {
  const PoolConfig pool = builder_pool();
  const size_t fds_before = open_fds();
  auto full = build(entry("words", fixture("fx_shared_builder_cpp"), 64 << 10, {{"count", "100000"}}), pool);
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().code == Errc::plugin);
  CHECK(full.error().message ==
        "pool 'sp': shared 'words': the builder needs more than its size 64KiB: raise `size` of shared entry 'words'");
  // Too small for the segment's own bookkeeping: the same advice.
  auto tiny = build(entry("words", fixture("fx_shared_builder_cpp"), 100), pool);
  REQUIRE_FALSE(tiny.ok());
  CHECK(tiny.error().message.starts_with(
      "pool 'sp': shared 'words': the builder needs more than its size 100 bytes"));
  CHECK(tiny.error().message.ends_with(": raise `size` of shared entry 'words'"));
  CHECK(open_fds() == fds_before);
}

TEST_CASE("shared build: what a builder prints and logs reaches the host's log as its entry's", "[integration][shared]") {
  TempDir dir;
  const fs::path log = dir.path() / "stderr";
  const PoolConfig pool = builder_pool();
  // The host's log is its stderr: caught in a file for the length of the build.
  const int saved = ::dup(STDERR_FILENO);
  REQUIRE(saved >= 0);
  const int file = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(file >= 0);
  REQUIRE(::dup2(file, STDERR_FILENO) == STDERR_FILENO);
  auto seg = build(entry("table", fixture("fx_shared_builder"), 1 << 20, {{"count", "10"}}), pool);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(file);
  REQUIRE(seg.ok());
  const std::string text = read_file(log);
  INFO(text);
  CHECK(text.find("shoal: sp shared table: fx_shared_builder: mode ok\n") != std::string::npos);
  CHECK(text.find("shoal: warning: sp shared table: fx_shared_builder: building\n") != std::string::npos);
}

#include "support/test_env.hpp"

#include "process/spawn.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace shoal::test {

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("shoal-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path TempDir::write(const std::string& name, const std::string& text) const {
  auto p = path_ / name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::string fixture(const std::string& name) { return std::string(SHOAL_FX_DIR) + "/" + name + ".so"; }

PoolConfig pool_config(const std::string& plugin, uint32_t workers) {
  PoolConfig c;
  c.name = "test";
  c.plugin = plugin;
  c.workers = workers;
  c.grace = std::chrono::seconds(2);
  c.fini_timeout = std::chrono::seconds(2);
  c.queue_capacity = 64 * 1024;
  return c;
}

std::unique_ptr<Pool> start_pool(const PoolConfig& config) {
  auto pool = Pool::start(config);
  INFO((pool ? std::string() : pool.error().message));
  REQUIRE(pool.ok());
  return std::move(*pool);
}

ProcessResult shoal_cli(std::vector<std::string> args, ProcessOptions options) {
  args.insert(args.begin(), SHOAL_BIN);
  if (options.timeout == ProcessOptions{}.timeout) options.timeout = std::chrono::seconds(60);
  auto r = run_process(args, options);
  INFO(describe(r));
  REQUIRE(r.spawn_error.empty());
  REQUIRE_FALSE(r.timed_out);
  REQUIRE(r.signal == 0);
  return r;
}

Outcome get(std::future<Outcome> f, std::chrono::seconds limit) {
  REQUIRE(f.wait_for(limit) == std::future_status::ready);
  return f.get();
}

bool all_gone(const std::vector<int>& pids, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    bool alive = false;
    for (int pid : pids)
      if (::kill(pid, 0) == 0 || errno != ESRCH) alive = true;
    if (!alive) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool no_child_left() { return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD; }

size_t entries_in(const std::filesystem::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

bool wait_for_file(const std::filesystem::path& path, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!std::filesystem::exists(path)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Background::Background(const std::vector<std::string>& argv, const std::filesystem::path& stdin_file,
                       const std::filesystem::path& stdout_file, const std::filesystem::path& stderr_file) {
  using shoal::detail::Fd;
  // Opened above 2 and close-on-exec; the spawn maps them onto 0, 1 and 2.
  Fd in(::fcntl(::open(stdin_file.c_str(), O_RDONLY | O_CLOEXEC), F_DUPFD_CLOEXEC, 10));
  Fd out(::fcntl(::open(stdout_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), F_DUPFD_CLOEXEC, 10));
  Fd err(::fcntl(::open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), F_DUPFD_CLOEXEC, 10));
  if (!in || !out || !err) return;
  shoal::detail::SpawnRequest req;
  req.executable = argv.at(0);
  req.argv = argv;
  req.env = shoal::detail::environment_with({}, {.all = true, .names = {}});
  req.fds = {{in.get(), 0}, {out.get(), 1}, {err.get(), 2}};
  auto child = shoal::detail::spawn_process(req);
  if (!child) return;
  pid_ = child->pid;
  pidfd_ = child->pidfd.release();
}

Background::~Background() {
  if (pidfd_ < 0) return;
  int code = 0;
  if (!wait(std::chrono::milliseconds(0), code)) {
    signal(SIGKILL);
    wait(std::chrono::milliseconds(10000), code);
  }
  ::close(pidfd_);
}

void Background::signal(int sig) const {
  if (pidfd_ >= 0) ::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0);
}

bool Background::wait(std::chrono::milliseconds limit, int& code) {
  if (pidfd_ < 0) return false;
  pollfd p{pidfd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return false;
  shoal::detail::ExitStatus st;
  if (!shoal::detail::reap(pidfd_, st)) return false;
  code = st.exited ? st.code : 128 + st.signal;
  ::close(pidfd_);
  pidfd_ = -1;
  return true;
}

long rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  long value = 0;
  while (in >> key) {
    if (key == "VmRSS:" && in >> value) return value;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

long peak_rss_kib(int pid, std::chrono::milliseconds span) {
  long peak = 0;
  const auto until = std::chrono::steady_clock::now() + span;
  while (std::chrono::steady_clock::now() < until) {
    peak = std::max(peak, rss_kib(pid));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return peak;
}

int listen_loopback(int& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 8) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  port = ntohs(a.sin_port);
  return fd;
}

ProcessResult run_as_user(const std::vector<std::string>& argv, const std::string& stdin_file,
                          std::vector<std::pair<std::string, std::string>> env) {
  ProcessOptions opts;
  opts.stdin_file = stdin_file;
  opts.timeout = std::chrono::seconds(60) * kSlow;
  opts.env = std::move(env);
  opts.unset = {"SHOAL_LOG", "SHOAL_LOG_FORMAT"};
  auto r = run_process(argv, opts);
  INFO(describe(r));
  REQUIRE(r.spawn_error.empty());
  REQUIRE_FALSE(r.timed_out);
  return r;
}

}  // namespace shoal::test

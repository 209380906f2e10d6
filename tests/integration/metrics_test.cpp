// `--metrics` as Prometheus and a load balancer use it: the built `shoal run` and `shoal
// serve` with their responder on a free port, scraped over real sockets, the text parsed
// by prometheus_client's OpenMetrics parser (tests/support/parse_openmetrics.py, run by
// Debian's /usr/bin/python3, where python3-prometheus-client installs it), the
// counters compared with the outcomes of the same run; /healthz and /readyz while Redis
// goes away and comes back; and clients that send nothing or garbage while tasks flow.
#include "support/redis_fleet.hpp"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

using namespace shoal::test;
using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

struct HttpReply {
  int status = 0;  // 0: no status line (reset, or nothing before the deadline)
  std::string head, body;
};

// Reads everything the server sends until it closes, or `limit` passes.
HttpReply read_reply(int fd, std::chrono::milliseconds limit) {
  std::string all;
  const auto deadline = Clock::now() + limit;
  char buf[4096];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    all.append(buf, static_cast<size_t>(n));
  }
  HttpReply r;
  const size_t end = all.find("\r\n\r\n");
  if (!all.starts_with("HTTP/1.1 ") || end == std::string::npos) return r;
  r.status = std::stoi(all.substr(9, 3));
  r.head = all.substr(0, end);
  r.body = all.substr(end + 4);
  return r;
}

HttpReply http_exchange(int port, const std::string& request, std::chrono::milliseconds limit = 10s) {
  const int fd = connect_to(port);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  HttpReply r = read_reply(fd, limit);
  ::close(fd);
  return r;
}

HttpReply get(int port, const std::string& path) {
  return http_exchange(port, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

// The port of "metrics on http://127.0.0.1:PORT/metrics" in a host's stderr; 0 if absent.
int logged_port(const std::string& err) {
  std::smatch m;
  if (!std::regex_search(err, m, std::regex("metrics on http://127\\.0\\.0\\.1:([0-9]+)/metrics"))) return 0;
  return std::stoi(m[1].str());
}

int wait_port(const std::function<std::string()>& err) {
  int port = 0;
  eventually([&] { return (port = logged_port(err())) != 0; }, 20s);
  INFO("stderr: " << err());
  REQUIRE(port != 0);
  return port;
}

// One scrape, parsed by prometheus_client; fails the test on any malformed family.
json scrape(int port, const TempDir& dir) {
  const HttpReply r = get(port, "/metrics");
  INFO("head: " << r.head);
  REQUIRE(r.status == 200);
  CHECK(r.head.find("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8") != std::string::npos);
  const auto file = dir.write("scrape.txt", r.body);
  auto p = run_process({"/usr/bin/python3", std::string(SHOAL_SOURCE_DIR) + "/tests/support/parse_openmetrics.py"}, file.string(),
                       bounded(30s));
  INFO("scrape: " << r.body << "\nparser: " << describe(p));
  REQUIRE(p.exit_code == 0);
  return json::parse(p.out);
}

// The sum of the samples called `sample` of `family` whose labels include `labels`.
double value(const json& fams, const std::string& family, const std::string& sample,
             const std::map<std::string, std::string>& labels = {}) {
  INFO("family " << family);
  REQUIRE(fams.contains(family));
  double sum = 0;
  for (const auto& s : fams.at(family).at("samples")) {
    if (s[0] != sample) continue;
    bool match = true;
    for (const auto& [k, v] : labels) match = match && s[1].contains(k) && s[1].at(k) == v;
    if (match && s[2].is_number()) sum += s[2].get<double>();
  }
  return sum;
}

std::string fault_config(const TempDir& dir, const std::string& extra = {}) {
  return dir
      .write("fault.yaml", "pools:\n  fault:\n    plugin: \"" + fixture("fx_fault") +
                               "\"\n    workers: 2\n    shutdown: {grace: 2s, fini_timeout: 2s}\n" + extra)
      .string();
}

// `shoal run` whose input is a FIFO the test writes: the run lasts until the test closes it.
struct FedRun {
  explicit FedRun(const TempDir& dir, const std::string& config, std::vector<std::string> flags = {})
      : fifo(dir.path() / "input.fifo"), err(dir.path() / "err"), out(dir.path() / "out") {
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    writer = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC);  // the run's open does not wait for a writer
    REQUIRE(writer >= 0);
    std::vector<std::string> argv = {SHOAL_BIN, "run", config, "--metrics", "0", "--log-level", "info"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    process = std::make_unique<Background>(argv, fifo, out, err);
    REQUIRE(process->started());
    port = wait_port([this] { return read_file(err); });
  }
  ~FedRun() { close_input(); }
  void feed(const std::vector<std::string>& lines) {
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    REQUIRE(::write(writer, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  }
  void close_input() {
    if (writer >= 0) ::close(writer);
    writer = -1;
  }
  size_t rows() const { return lines_of(read_file(out)).size(); }
  int wait_exit() {
    close_input();
    int code = -1;
    INFO("stderr: " << read_file(err));
    REQUIRE(process->wait(bounded(30s), code));
    return code;
  }

  std::filesystem::path fifo, err, out;
  int writer = -1;
  std::unique_ptr<Background> process;
  int port = 0;
};

std::vector<std::string> repeat(const std::string& line, size_t n) { return std::vector<std::string>(n, line); }

}  // namespace

TEST_CASE("metrics: a run's /metrics parses as OpenMetrics and its counters equal the run's outcomes",
          "[integration][metrics]") {
  TempDir dir;
  FedRun run(dir, fault_config(dir));
  std::vector<std::string> tasks = repeat("ok", 40);
  for (const auto& more : {repeat("error bad", 5), repeat("segv", 3), repeat("exit 3", 1), repeat("sleep 30", 4)})
    tasks.insert(tasks.end(), more.begin(), more.end());
  run.feed(tasks);
  REQUIRE(eventually([&] { return run.rows() == tasks.size(); }, 30s));

  // The rows are out; the loop publishes queued and in flight on its next turn.
  json m;
  eventually(
      [&] {
        m = scrape(run.port, dir);
        return value(m, "shoal_tasks_in_flight", "shoal_tasks_in_flight") == 0 &&
               value(m, "shoal_tasks", "shoal_tasks_total") == static_cast<double>(tasks.size());
      },
      10s);
  const std::map<std::string, std::string> pool = {{"pool", "fault"}};
  CHECK(value(m, "shoal_tasks", "shoal_tasks_total", {{"outcome", "ok"}}) == 44);
  CHECK(value(m, "shoal_tasks", "shoal_tasks_total", {{"outcome", "error"}}) == 5);
  CHECK(value(m, "shoal_tasks", "shoal_tasks_total", {{"outcome", "crashed"}}) == 4);
  CHECK(value(m, "shoal_tasks", "shoal_tasks_total", {{"outcome", "timeout"}}) == 0);
  CHECK(value(m, "shoal_worker_tasks", "shoal_worker_tasks_total") == static_cast<double>(tasks.size()));
  CHECK(value(m, "shoal_tasks_queued", "shoal_tasks_queued", pool) == 0);
  CHECK(value(m, "shoal_tasks_in_flight", "shoal_tasks_in_flight", pool) == 0);
  // Three SIGSEGV, one exit 3: each process that died was replaced.
  CHECK(value(m, "shoal_exits", "shoal_exits_total", {{"cause", "signal"}}) == 3);
  CHECK(value(m, "shoal_exits", "shoal_exits_total", {{"cause", "error"}}) == 1);
  CHECK(value(m, "shoal_worker_exits", "shoal_worker_exits_total") == 4);
  CHECK(value(m, "shoal_restarts", "shoal_restarts_total", pool) == 4);
  CHECK(value(m, "shoal_worker_up", "shoal_worker_up") == 2);
  CHECK(value(m, "shoal_pool_generation", "shoal_pool_generation") == 0);
  CHECK(value(m, "shoal_reloads", "shoal_reloads_total") == 0);
  CHECK(value(m, "shoal_worker_resident_bytes", "shoal_worker_resident_bytes") > 0);
  CHECK(value(m, "shoal_worker_busy_seconds", "shoal_worker_busy_seconds_total") >= 4 * 0.030);
  CHECK(m.at("shoal_tasks").at("type") == "counter");
  CHECK(m.at("shoal_tasks_queued").at("type") == "gauge");

  // The histogram holds the tasks that returned: 44 ok and 5 errors; the four 30 ms
  // sleeps are above 10 ms and at most 50 ms (the others take microseconds).
  const auto& h = m.at("shoal_task_duration_seconds");
  CHECK(h.at("type") == "histogram");
  CHECK(value(m, "shoal_task_duration_seconds", "shoal_task_duration_seconds_count") == 49);
  CHECK(value(m, "shoal_task_duration_seconds", "shoal_task_duration_seconds_bucket", {{"le", "+Inf"}}) == 49);
  CHECK(value(m, "shoal_task_duration_seconds", "shoal_task_duration_seconds_bucket", {{"le", "0.01"}}) == 45);
  CHECK(value(m, "shoal_task_duration_seconds", "shoal_task_duration_seconds_bucket", {{"le", "0.05"}}) >= 45);
  CHECK(value(m, "shoal_task_duration_seconds", "shoal_task_duration_seconds_sum") >= 4 * 0.030);

  CHECK(get(run.port, "/healthz").status == 200);
  const HttpReply ready = get(run.port, "/readyz");
  CHECK(ready.status == 200);
  CHECK(ready.body == "ready\n");
  CHECK(get(run.port, "/nope").status == 404);
  CHECK(http_exchange(run.port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").status == 405);
  const HttpReply head = http_exchange(run.port, "HEAD /healthz HTTP/1.1\r\n\r\n");
  CHECK(head.status == 200);
  CHECK(head.body.empty());

  CHECK(run.wait_exit() == 1);  // some tasks were not ok
  CHECK(run.rows() == tasks.size());
}

TEST_CASE("metrics: a silent or malformed client does not stall tasks or the next scrape",
          "[integration][metrics]") {
  TempDir dir;
  FedRun run(dir, fault_config(dir));
  constexpr size_t kBatch = 200;
  // A batch with no client around: the rate to hold to.
  auto t0 = Clock::now();
  run.feed(repeat("sleep 1", kBatch));
  REQUIRE(eventually([&] { return run.rows() == kBatch; }, 30s));
  const auto quiet = Clock::now() - t0;

  // A client that connects and sends nothing holds the responder for its read timeout.
  const int silent = connect_to(run.port);
  t0 = Clock::now();
  run.feed(repeat("sleep 1", kBatch));
  REQUIRE(eventually([&] { return run.rows() == 2 * kBatch; }, 30s));
  const auto with_silent = Clock::now() - t0;
  pollfd p{silent, POLLIN, 0};
  const bool still_waiting = ::poll(&p, 1, 0) == 0;
  INFO("quiet batch " << std::chrono::duration<double>(quiet).count() << " s, beside a silent client "
                      << std::chrono::duration<double>(with_silent).count() << " s");
  CHECK(still_waiting);  // the whole batch ran while the client hung on
  CHECK(with_silent < 2 * quiet + 300ms);

  // A good request behind it is answered once the silent one times out (2 s).
  t0 = Clock::now();
  CHECK(get(run.port, "/healthz").status == 200);
  CHECK(Clock::now() - t0 < 2s + 1s * kSlow);
  CHECK(read_reply(silent, 5s).status == 408);
  ::close(silent);

  // Garbage, then a header of 1 MiB: refused after at most 8 KiB, and the next scrape
  // is answered at once.
  CHECK(http_exchange(run.port, "hello there\r\n\r\n").status == 400);
  const int big = connect_to(run.port);
  const std::string header = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(1 << 20, 'a');
  ::fcntl(big, F_SETFL, O_NONBLOCK);
  size_t sent = 0;
  const auto until = Clock::now() + 5s;
  while (sent < header.size() && Clock::now() < until) {
    const ssize_t n = ::send(big, header.data() + sent, header.size() - sent, MSG_NOSIGNAL);
    if (n > 0) sent += static_cast<size_t>(n);
    else if (errno != EAGAIN) break;  // the responder closed it
    else ::poll(nullptr, 0, 5);
  }
  // Loopback buffers may take the whole MiB; the answer (431, or a reset once the
  // responder closed with the rest unread) comes without waiting for a timeout.
  t0 = Clock::now();
  const int big_status = read_reply(big, 5s).status;
  CHECK((big_status == 431 || big_status == 0));
  CHECK(Clock::now() - t0 < 1s * kSlow);
  ::close(big);
  t0 = Clock::now();
  scrape(run.port, dir);
  CHECK(Clock::now() - t0 < 1s * kSlow);

  CHECK(run.wait_exit() == 0);
  CHECK(run.rows() == 2 * kBatch);
}

TEST_CASE("metrics: a taken port and a malformed address are one-line errors naming the option or key",
          "[integration][metrics]") {
  TempDir dir;
  int port = 0;
  const int holder = listen_loopback(port);
  const std::string taken = std::to_string(port);

  const auto input = dir.write("in.txt", "ok\n");
  auto r = run_process({SHOAL_BIN, "run", fault_config(dir), "--metrics", taken}, input.string(), bounded(30s));
  CHECK(r.exit_code == 2);
  CHECK(r.err == "shoal: metrics: cannot listen on " + taken + " (--metrics): Address already in use\n");

  r = run_process({SHOAL_BIN, "run", fault_config(dir), "--metrics", "localhost:99999"}, input.string(), bounded(30s));
  CHECK(r.exit_code == 2);
  CHECK(r.err == "shoal: --metrics: expected HOST:PORT, [IPV6]:PORT, :PORT or PORT (port 0 to 65535), found "
                 "'localhost:99999'\n");

  const std::string config = fault_config(dir, "metrics: {listen: \"127.0.0.1:" + taken + "\"}\n");
  r = run_process({SHOAL_BIN, "run", config}, input.string(), bounded(30s));
  CHECK(r.exit_code == 2);
  CHECK(r.err == "shoal: metrics: cannot listen on 127.0.0.1:" + taken + " (metrics key at " + config +
                     ":6:19): Address already in use\n");

  r = run_process({SHOAL_BIN, "run", fault_config(dir, "metrics: {listn: 9464}\n")}, input.string(), bounded(30s));
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("did you mean 'listen'?") != std::string::npos);
  r = run_process({SHOAL_BIN, "run", fault_config(dir, "metrics: \"1.2.3.4:x\"\n")}, input.string(), bounded(30s));
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(":6:10: metrics: expected an address such as 127.0.0.1:9464") != std::string::npos);
  ::close(holder);
}

TEST_CASE("metrics: serve is not ready while Redis is down and its counters match what it wrote",
          "[integration][metrics][redis]") {
  Fleet fleet;
  // One delivery: the crashing task goes to the dead letters at once.
  const std::string config = fleet.config("m", HostOptions().with_max_deliveries(1));
  const auto stats = fleet.dir.path() / "stats.json";
  Host host(fleet, config, "m", {"--metrics", "0", "--log-level", "info", "--stats", stats.string(), "--stats-interval", "0.1"});
  const int port = wait_port([&] { return host.err(); });
  wait_ready(fleet, {&host});
  REQUIRE(eventually([&] { return get(port, "/readyz").status == 200; }, 10s));

  std::vector<std::string> tasks = repeat("ok", 30);
  tasks.push_back("error nope");
  tasks.push_back("segv");
  submit(fleet, config, tasks);
  REQUIRE(eventually([&] { return fleet.results() == static_cast<int64_t>(tasks.size()); }, 30s));
  json m;
  // Redis figures are gathered every 2 s: wait for a look after the last result.
  eventually(
      [&] {
        m = scrape(port, fleet.dir);
        return value(m, "shoal_tasks", "shoal_tasks_total") == static_cast<double>(tasks.size()) &&
               m.at("shoal_redis_pending_entries").at("samples").size() == 1 &&
               value(m, "shoal_redis_pending_entries", "shoal_redis_pending_entries") == 0 &&
               value(m, "shoal_redis_group_lag", "shoal_redis_group_lag") == 0;
      },
      15s);
  CHECK(value(m, "shoal_tasks", "shoal_tasks_total", {{"outcome", "ok"}}) == 30);
  CHECK(value(m, "shoal_tasks", "shoal_tasks_total", {{"outcome", "error"}}) == 1);
  CHECK(value(m, "shoal_redis_connected", "shoal_redis_connected") == 1);
  CHECK(value(m, "shoal_redis_pending_entries", "shoal_redis_pending_entries") == 0);
  CHECK(value(m, "shoal_redis_group_lag", "shoal_redis_group_lag") == 0);
  CHECK(value(m, "shoal_outbox_outcomes", "shoal_outbox_outcomes") == 0);
  CHECK(value(m, "shoal_tasks", "shoal_tasks_total", {{"outcome", "crashed"}}) == 1);
  CHECK(value(m, "shoal_exits", "shoal_exits_total", {{"cause", "signal"}}) == 1);
  CHECK(value(m, "shoal_dead_lettered", "shoal_dead_lettered_total") == 1);
  CHECK(fleet.integer({"XLEN", kStream + ":dead"}) == 1);
  CHECK(value(m, "shoal_redis_reconnects", "shoal_redis_reconnects_total") == 0);

  REQUIRE(fleet.redis.stop());
  REQUIRE(eventually([&] { return get(port, "/readyz").status == 503; }, 15s));
  const HttpReply waiting = get(port, "/readyz");
  INFO("readyz: " << waiting.body);
  CHECK(waiting.body.starts_with("waiting: "));
  CHECK(waiting.body.find(fleet.redis.url()) != std::string::npos);
  CHECK(std::count(waiting.body.begin(), waiting.body.end(), '\n') == 1);
  CHECK(get(port, "/healthz").status == 200);  // alive: its loop turns while it waits
  CHECK(value(scrape(port, fleet.dir), "shoal_redis_connected", "shoal_redis_connected") == 0);

  REQUIRE(fleet.redis.start());
  REQUIRE(eventually([&] { return get(port, "/readyz").status == 200; }, 20s));
  // The figures are those of the loop's last turn: the one after the reconnect shows it.
  CHECK(eventually(
      [&] { return value(scrape(port, fleet.dir), "shoal_redis_reconnects", "shoal_redis_reconnects_total") >= 1; },
      5s));
  CHECK(value(scrape(port, fleet.dir), "shoal_redis_connected", "shoal_redis_connected") == 1);

  host.signal(SIGTERM);
  CHECK(host.wait_exit(20s) == 0);
  const json s = json::parse(read_file(stats));
  CHECK(s.at("final") == true);
  CHECK(s.at("written") == tasks.size());
  CHECK(s.at("pools")[0].at("outcomes").at("ok") == 30);
  CHECK(s.at("redis").at("reconnects") >= 1);
  CHECK(s.at("redis").at("outbox") == 0);
  CHECK(s.at("redis").at("dead_lettered") == 1);
  check_drained(fleet);
}

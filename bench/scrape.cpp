// shoal_bench_scrape: issue 16's question, does scraping /metrics cost the task path?
//
//   shoal_bench_scrape [--reps N] [--tasks N] [--per-second N]
//
// Runs the built `shoal run` (not the library: the scrape goes through the CLI's HTTP
// responder, its Pool::stats() and its OpenMetrics text) over N tiny echo tasks (default
// 1,000,000; 2 workers), output to /dev/null, with `--metrics 0` every time. In one run of
// each pair a scraper thread here GETs /metrics PER_SECOND times a second (default 10,
// ten times what Prometheus would) until the run ends; in the other nobody scrapes. The
// pairs alternate which one goes first, so a drift of the machine's speed hits both
// alike. Throughput is the run's own summary (tasks over the time from its pool's start
// to its end). Prints each pair, then the medians and their ratio (scraped / quiet), and
// the median of the pairs' own ratios.
// Exits 1 when a run fails or a scrape is not answered 200.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "shoal_bench_scrape: %s\n", why.c_str());
  std::exit(1);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// One GET /metrics; true when answered 200.
bool scrape_once(int port, size_t& bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[16384];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  bytes = reply.size();
  return reply.starts_with("HTTP/1.1 200 ");
}

struct Run {
  double rate = 0;     // tasks/s, from the run's summary
  size_t scrapes = 0;  // answered
  double scrape_ms = 0;  // mean time of one scrape
};

// `shoal run` over the input; scrapes it `per_second` times a second when > 0.
Run run_once(const std::string& shoal, const std::string& config, const std::string& input, int per_second) {
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) fail("pipe2");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, input.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<std::string> args = {shoal, "run", config, "--metrics", "0", "--log-level", "info"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, shoal.c_str(), &fa, nullptr, argv.data(), environ) != 0) fail("cannot start " + shoal);
  posix_spawn_file_actions_destroy(&fa);
  ::close(err_pipe[1]);

  std::string err;
  std::atomic<int> port{0};
  std::atomic<bool> done{false};
  Run r;
  size_t failed = 0;
  double scrape_s = 0;
  std::thread scraper([&] {
    while (port.load() == 0 && !done.load()) std::this_thread::sleep_for(1ms);
    const auto every = std::chrono::microseconds(1'000'000 / std::max(per_second, 1));
    auto next = Clock::now();
    while (per_second > 0 && !done.load()) {
      size_t bytes = 0;
      const auto t0 = Clock::now();
      // The run may end between the check and the connect: its last scrape may fail.
      if (scrape_once(port.load(), bytes)) {
        ++r.scrapes;
        scrape_s += std::chrono::duration<double>(Clock::now() - t0).count();
      } else if (!done.load()) {
        ++failed;
      }
      next += every;
      std::this_thread::sleep_until(next);
    }
  });
  char buf[4096];
  ssize_t n;
  const std::regex listening("metrics on http://127\\.0\\.0\\.1:([0-9]+)/metrics");
  while ((n = ::read(err_pipe[0], buf, sizeof buf)) > 0) {
    err.append(buf, static_cast<size_t>(n));
    std::smatch m;
    if (port.load() == 0 && std::regex_search(err, m, listening)) port = std::stoi(m[1].str());
  }
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  done = true;
  scraper.join();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("shoal run failed:\n" + err);
  if (failed > 1) fail(std::to_string(failed) + " scrapes not answered 200");
  std::smatch m;
  if (!std::regex_search(err, m, std::regex(" ([0-9]+) tasks/s"))) fail("no summary in:\n" + err);
  r.rate = std::stod(m[1].str());
  r.scrape_ms = r.scrapes > 0 ? 1000 * scrape_s / static_cast<double>(r.scrapes) : 0;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 7, per_second = 10;
  long tasks = 1'000'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--tasks") == 0) tasks = std::atol(argv[i + 1]);
    else if (std::strcmp(argv[i], "--per-second") == 0) per_second = std::atoi(argv[i + 1]);
    else fail(std::string("unknown option ") + argv[i]);
  }
  const auto dir = std::filesystem::temp_directory_path() / ("shoal-bench-scrape-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string config = (dir / "echo.yaml").string(), input = (dir / "input.txt").string();
  std::ofstream(config) << "pools:\n  echo:\n    plugin: \"" SHOAL_BENCH_ECHO "\"\n    workers: 2\n";
  {
    std::ofstream in(input);
    for (long i = 0; i < tasks; ++i) in << "x\n";
  }
  std::vector<double> quiet, scraped, ratios;
  for (int rep = 0; rep < reps; ++rep) {
    Run q, s;
    if (rep % 2 == 0) {
      q = run_once(SHOAL_BENCH_SHOAL, config, input, 0);
      s = run_once(SHOAL_BENCH_SHOAL, config, input, per_second);
    } else {
      s = run_once(SHOAL_BENCH_SHOAL, config, input, per_second);
      q = run_once(SHOAL_BENCH_SHOAL, config, input, 0);
    }
    quiet.push_back(q.rate);
    scraped.push_back(s.rate);
    ratios.push_back(s.rate / q.rate);
    std::printf("# pair %d: quiet %.0f tasks/s, scraped %.0f tasks/s (%zu scrapes, %.2f ms each), ratio %.3f\n", rep + 1,
                q.rate, s.rate, s.scrapes, s.scrape_ms, s.rate / q.rate);
    std::fflush(stdout);
  }
  std::filesystem::remove_all(dir);
  std::printf("quiet_median %.0f tasks/s\nscraped_median %.0f tasks/s (%d scrapes/s)\n"
              "ratio %.3f (scraped / quiet, of the medians)\npair_ratio_median %.3f (of the pairs' ratios)\n",
              median(quiet), median(scraped), per_second, median(scraped) / median(quiet), median(ratios));
  return 0;
}

// Codes, not text: every Outcome carries a Reason and every start error an Errc that a
// caller can switch on (shoal serve does), set where the outcome or the error arises.
// The English beside them is for people and is not looked at here.
#include "support/test_env.hpp"

#include <shoal/runtime.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace shoal;
using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

// A copy of the fault plugin in `dir`: overwritten in place later, a respawned worker
// cannot load it (plugin_load_test), and the pool fails.
std::filesystem::path plugin_copy(const TempDir& dir) {
  const auto path = dir.path() / "fault.so";
  std::filesystem::copy_file(fixture("fx_fault"), path);
  return path;
}

void break_file(const std::filesystem::path& path) {
  std::ofstream out(path, std::ios::trunc);
  out << "this is not an ELF file\n";
}

}  // namespace

TEST_CASE("reason: ok error crashed and timed out outcomes each carry their code", "[integration][reason]") {
  auto cfg = pool_config(fixture("fx_fault"), 1);
  cfg.task_timeout = 300ms * kSlow;
  cfg.grace = 300ms;
  auto pool = start_pool(cfg);
  const Outcome ok = get(pool->submit("ok"));
  CHECK(ok.status == Status::ok);
  CHECK(ok.reason == Reason::none);
  const Outcome error = get(pool->submit("error boom"));
  CHECK(error.status == Status::error);
  CHECK(error.reason == Reason::plugin_error);
  const Outcome crashed = get(pool->submit("segv"));
  CHECK(crashed.status == Status::crashed);
  CHECK(crashed.reason == Reason::crashed);
  // Stopped when asked (the worker lives on), and killed past grace (it does not).
  const Outcome asked = get(pool->submit("wait-stop"));
  CHECK(asked.status == Status::timeout);
  CHECK(asked.reason == Reason::timed_out);
  const Outcome killed = get(pool->submit("hang"));
  CHECK(killed.status == Status::timeout);
  CHECK(killed.reason == Reason::timed_out);
  pool->join();
  CHECK(no_child_left());
}

TEST_CASE("reason: a submit after close or terminate is rejected with pool_closed", "[integration][reason]") {
  const bool terminate = GENERATE(false, true);
  INFO((terminate ? "terminate" : "close"));
  auto pool = start_pool(pool_config(SHOAL_PLUGIN_ECHO, 1));
  if (terminate) pool->terminate();
  else pool->close();
  const Outcome one = get(pool->submit("late"));
  CHECK(one.status == Status::rejected);
  CHECK(one.reason == Reason::pool_closed);
  CHECK(one.attempts == 0);
  const std::vector<std::string> inputs{"a", "b", "c"};
  for (const Outcome& o : pool->map(inputs)) {
    CHECK(o.status == Status::rejected);
    CHECK(o.reason == Reason::pool_closed);
  }
  pool->join();
  CHECK(no_child_left());
}

TEST_CASE("reason: terminate cancels the queued tasks with terminated", "[integration][reason]") {
  TempDir dir;
  auto cfg = pool_config(fixture("fx_fault"), 1);
  cfg.grace = 200ms;
  auto pool = start_pool(cfg);
  const auto started = dir.path() / "started";
  // The first outlasts grace: it is cut off; the rest wait behind it and never start.
  auto running = pool->submit("@" + started.string() + " sleep 5000");
  std::vector<std::future<Outcome>> queued;
  for (int i = 0; i < 4; ++i) queued.push_back(pool->submit("ok"));
  REQUIRE(wait_for_file(started, 10s * kSlow));
  pool->terminate();
  const Outcome cut = get(std::move(running));
  CHECK(cut.status == Status::cancelled);
  CHECK(cut.reason == Reason::terminated);
  CHECK(cut.attempts == 1);
  for (auto& f : queued) {
    const Outcome o = get(std::move(f));
    CHECK(o.status == Status::cancelled);
    CHECK(o.reason == Reason::terminated);
    CHECK(o.attempts == 0);
  }
  pool->join();
  CHECK(no_child_left());
}

TEST_CASE("reason: an input larger than the task ring is rejected with input_too_large", "[integration][reason]") {
  auto cfg = pool_config(SHOAL_PLUGIN_ECHO, 1);
  cfg.queue_capacity = 8192;
  auto pool = start_pool(cfg);
  const std::string big(9000, 'z');
  // submit checks at once, map as it dispatches: both say so by the code.
  const Outcome one = get(pool->submit(big));
  CHECK(one.status == Status::rejected);
  CHECK(one.reason == Reason::input_too_large);
  const std::vector<std::string> inputs{"small", big};
  const auto outs = pool->map(inputs);
  REQUIRE(outs.size() == 2);
  CHECK(outs[0].reason == Reason::none);
  CHECK(outs[1].status == Status::rejected);
  CHECK(outs[1].reason == Reason::input_too_large);
  pool->join();
}

TEST_CASE("reason: a pool that failed rejects with pool_failed and refuses a reload as failed",
          "[integration][reason]") {
  TempDir dir;
  const auto path = plugin_copy(dir);
  auto pool = start_pool(pool_config(path.string(), 1));
  CHECK(get(pool->submit("ok")).reason == Reason::none);
  break_file(path);
  REQUIRE(::kill(pool->worker_pids().at(0), SIGKILL) == 0);
  // Queued while the replacement fails, or submitted after: the same code either way.
  const Outcome first = get(pool->submit("ok"));
  CHECK(first.status == Status::rejected);
  CHECK(first.reason == Reason::pool_failed);
  const Outcome later = get(pool->submit("ok"));
  CHECK(later.status == Status::rejected);
  CHECK(later.reason == Reason::pool_failed);
  auto reloaded = pool->reload(pool_config(fixture("fx_fault"), 1));
  REQUIRE_FALSE(reloaded);
  CHECK(reloaded.error().code == Errc::failed);
  pool->join();
  CHECK(no_child_left());
}

TEST_CASE("start errors: a worker that cannot be spawned is Errc::spawn", "[integration][reason]") {
  TempDir dir;
  // Not executable (access fails), and executable but no program (posix_spawn fails).
  const bool exec_bit = GENERATE(false, true);
  INFO((exec_bit ? "not a program" : "not executable"));
  const auto worker = dir.path() / "shoal-worker";
  {
    std::ofstream out(worker);
    out << "not a program\n";
  }
  using std::filesystem::perms;
  std::filesystem::permissions(worker, exec_bit ? perms::owner_all : perms::owner_read);
  RuntimeOptions opts;
  opts.worker_path = worker.string();
  auto pool = Pool::start(pool_config(SHOAL_PLUGIN_ECHO, 1), opts);
  REQUIRE_FALSE(pool.ok());
  INFO(pool.error().message);
  CHECK(pool.error().code == Errc::spawn);
  CHECK(no_child_left());
}

TEST_CASE("start errors: a plugin refused is Errc::plugin", "[integration][reason]") {
  const std::string which = GENERATE(as<std::string>{}, "fx_abi_major_2", "fx_init_fails", "fx_ctor_crash");
  INFO(which);
  auto pool = Pool::start(pool_config(fixture(which), 1));
  REQUIRE_FALSE(pool.ok());
  INFO(pool.error().message);
  CHECK(pool.error().code == Errc::plugin);
  CHECK(no_child_left());
}

TEST_CASE("start errors: a param the plugin's declaration refuses is Errc::config", "[integration][reason]") {
  auto digest = pool_config(SHOAL_PLUGIN_SHA256, 1);
  digest.params["algoritm"] = "sha512";
  auto pool = Pool::start(digest);
  REQUIRE_FALSE(pool.ok());
  INFO(pool.error().message);
  CHECK(pool.error().code == Errc::config);
  CHECK(no_child_left());
}

TEST_CASE("start errors: start_timeout is Errc::timeout in a start and in a reload", "[integration][reason]") {
  auto hangs = pool_config(fixture("fx_fault"), 1);
  hangs.params["init_hang"] = "1";
  hangs.start_timeout = 300ms;
  hangs.grace = 200ms;
  auto pool = Pool::start(hangs);
  REQUIRE_FALSE(pool.ok());
  INFO(pool.error().message);
  CHECK(pool.error().code == Errc::timeout);

  auto serving = start_pool(pool_config(fixture("fx_fault"), 1));
  auto reloaded = serving->reload(hangs);
  REQUIRE_FALSE(reloaded);
  INFO(reloaded.error().message);
  CHECK(reloaded.error().code == Errc::timeout);
  CHECK(get(serving->submit("ok")).reason == Reason::none);  // the old generation serves on
  serving->join();
  CHECK(no_child_left());
}

TEST_CASE("start errors: a start cancelled through start_cancel_fd is Errc::cancelled", "[integration][reason]") {
  auto slow = pool_config(fixture("fx_fault"), 1);
  slow.params["init_hang"] = "1";
  slow.grace = 200ms;
  const int cancel = ::eventfd(1, EFD_CLOEXEC);  // readable from the start
  REQUIRE(cancel >= 0);
  RuntimeOptions opts;
  opts.start_cancel_fd = cancel;
  auto pool = Pool::start(slow, opts);
  ::close(cancel);
  REQUIRE_FALSE(pool.ok());
  INFO(pool.error().message);
  CHECK(pool.error().code == Errc::cancelled);
  CHECK(no_child_left());
}

TEST_CASE("reason: to_string gives each code its enumerator's name", "[integration][reason]") {
  CHECK(to_string(Reason::none) == "none");
  CHECK(to_string(Reason::plugin_error) == "plugin_error");
  CHECK(to_string(Reason::crashed) == "crashed");
  CHECK(to_string(Reason::timed_out) == "timed_out");
  CHECK(to_string(Reason::pool_closed) == "pool_closed");
  CHECK(to_string(Reason::pool_failed) == "pool_failed");
  CHECK(to_string(Reason::input_too_large) == "input_too_large");
  CHECK(to_string(Reason::terminated) == "terminated");
  CHECK(to_string(Reason::reentrant) == "reentrant");
}

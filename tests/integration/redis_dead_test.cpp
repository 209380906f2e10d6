// `shoal dead` against a real redis-server and a real `shoal serve` host
// (support/redis_fleet.hpp): a poison task goes to the dead letters, is listed and shown,
// and once its cause is gone a requeue runs it again to an ok result.
#include "support/redis_fleet.hpp"

#include <nlohmann/json.hpp>

#include <signal.h>

#include <set>
#include <thread>

using namespace shoal::test;
using namespace std::chrono_literals;

namespace {

// No assertion inside: Catch's are not thread-safe, and one test runs two at once.
ProcessResult run_dead(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {SHOAL_BIN, "dead"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, {}, bounded(20s));
}

ProcessResult dead(const std::vector<std::string>& args) {
  auto r = run_dead(args);
  REQUIRE_FALSE(r.timed_out);
  return r;
}

std::vector<redis::Entry> entries(const Fleet& fleet, const std::string& key) {
  return redis::parse_entries(fleet.redis.command({"XRANGE", key, "-", "+"}).view());
}

}  // namespace

TEST_CASE("redis dead: a poison task is dead-lettered then requeued and runs again once fixed",
          "[integration][redis][dead]") {
  Fleet fleet;
  const std::string config = fleet.config("a", HostOptions().with_max_deliveries(2));
  Host a(fleet, config, "a");
  wait_ready(fleet, {&a});
  const auto poison = fleet.dir.write("poison", "");
  const std::string poison_input = "segv-if " + poison.string();
  submit(fleet, config, {"echo 0", poison_input, "echo 2"});

  const auto rows = collect(config, 3, 1);
  CHECK(rows.at(id(1)).at("status").text == "crashed");
  const auto letters = entries(fleet, kStream + ":dead");
  REQUIRE(letters.size() == 1);
  const std::string letter = letters[0].id;
  const std::string task_entry(letters[0].field("entry").value_or(""));

  // The host's log names the task at each failed delivery.
  const std::string err = a.err();
  INFO("host stderr: " << err);
  const std::string task = "task " + task_entry + " (id " + id(1) + ") crashed: ";
  CHECK(err.find(task) != std::string::npos);
  CHECK(err.find("; failed delivery 1 of 2, delivered again") != std::string::npos);
  CHECK(err.find("; failed delivery 2 of 2: dead letter in " + kStream + ":dead") != std::string::npos);

  auto list = dead({"list", config});
  INFO(describe(list));
  CHECK(list.exit_code == 0);
  REQUIRE(lines_of(list.out).size() == 1);
  CHECK(list.out.starts_with(letter + "  "));
  for (const std::string& part : {id(1), std::string("crashed"), std::string("2 deliveries"), std::string("SIGSEGV")})
    CHECK(list.out.find(part) != std::string::npos);
  CHECK(list.err == "shoal: 1 dead letter in " + kStream + ":dead\n");

  auto json = dead({"list", config, "--json"});
  INFO(describe(json));
  CHECK(json.exit_code == 0);
  REQUIRE(lines_of(json.out).size() == 1);
  const auto row = nlohmann::json::parse(json.out);
  CHECK(row["entry"] == letter);
  CHECK(row["id"] == id(1));
  CHECK(row["deliveries"] == 2);
  CHECK(row["input"] == poison_input);
  CHECK(row["result"]["status"] == "crashed");
  CHECK(row["result"]["seq"] == 1);

  auto show = dead({"show", letter, config});
  INFO(describe(show));
  CHECK(show.exit_code == 0);
  CHECK(show.out.find("entry       " + letter + "\n") != std::string::npos);
  CHECK(show.out.find("input       " + poison_input + "\n") != std::string::npos);
  CHECK(show.out.find("\"status\":\"crashed\"") != std::string::npos);

  for (const std::string action : {"show", "requeue", "purge"}) {
    auto unknown = dead({action, "1-0", config});
    INFO(describe(unknown));
    CHECK(unknown.exit_code == 1);
    CHECK(unknown.out.empty());
    CHECK(unknown.err.starts_with("shoal: dead " + action + ": no dead letter 1-0 in " + kStream + ":dead\n"));
  }

  // The cause is fixed: the requeued task runs again, under its task id, to an ok result.
  std::filesystem::remove(poison);
  auto requeue = dead({"requeue", "--all", config});
  INFO(describe(requeue));
  CHECK(requeue.exit_code == 0);
  REQUIRE(lines_of(requeue.out).size() == 1);
  CHECK(requeue.out.starts_with(letter + " requeued as "));
  CHECK(requeue.out.find("(id " + id(1) + ")") != std::string::npos);
  CHECK(fleet.integer({"XLEN", kStream + ":dead"}) == 0);
  REQUIRE(eventually([&] { return fleet.results() == 4; }, 20s));
  const auto results = entries(fleet, results_key());
  CHECK(results.back().field("id") == std::optional<std::string_view>(id(1)));
  CHECK(results.back().field("status") == std::optional<std::string_view>("ok"));

  // collect prints a task's result once: the requeued run's, which replaces the dead
  // letter's (read in the same batch here; one read earlier, both are printed).
  auto collected = run_process({SHOAL_BIN, "collect", config, "--job", job()}, {}, bounded(20s));
  INFO(describe(collected));
  CHECK(collected.exit_code == 0);
  const auto lines = lines_of(collected.out);
  REQUIRE(lines.size() == 3);
  CHECK(std::count_if(lines.begin(), lines.end(), [&](const std::string& l) {
          return l.find("\"id\":\"" + id(1) + "\"") != std::string::npos &&
                 l.find("\"output\":\"recovered\"") != std::string::npos;
        }) == 1);
  CHECK(collected.err.find("3 tasks, 3 ok") != std::string::npos);

  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  check_drained(fleet);
}

TEST_CASE("redis dead: purge deletes the dead letters named or all and says how many", "[integration][redis][dead]") {
  Fleet fleet;
  const std::string config = fleet.config("a");
  for (int i = 0; i < 3; ++i)
    fleet.redis.command({"XADD", kStream + ":dead", "*", "id", "t:" + std::to_string(i), "entry", "1-" + std::to_string(i),
                         "deliveries", "3", "input", "segv", "result", "{\"seq\":0,\"status\":\"crashed\"}"});
  const auto letters = entries(fleet, kStream + ":dead");
  REQUIRE(letters.size() == 3);

  auto one = dead({"purge", letters[0].id, config});
  INFO(describe(one));
  CHECK(one.exit_code == 0);
  CHECK(one.err == "shoal: purged 1 dead letter from " + kStream + ":dead\n");
  CHECK(fleet.integer({"XLEN", kStream + ":dead"}) == 2);

  auto all = dead({"purge", config});
  INFO(describe(all));
  CHECK(all.exit_code == 0);
  CHECK(all.err == "shoal: purged 2 dead letters from " + kStream + ":dead\n");
  CHECK(fleet.integer({"EXISTS", kStream + ":dead"}) == 0);

  auto empty = dead({"list", config});
  CHECK(empty.exit_code == 0);
  CHECK(empty.out.empty());
  CHECK(empty.err == "shoal: 0 dead letters in " + kStream + ":dead\n");
}

TEST_CASE("redis dead: usage and Redis errors are one line", "[integration][redis][dead]") {
  Fleet fleet;
  const std::string config = fleet.config("a");
  const auto one_line = [](const ProcessResult& r, int code, const std::string& expected) {
    INFO(describe(r));
    CHECK(r.exit_code == code);
    CHECK(r.out.empty());
    REQUIRE(lines_of(r.err).size() == 1);
    CHECK(r.err.find(expected) != std::string::npos);
  };
  one_line(dead({}), 2, "dead: missing list, show, requeue or purge");
  one_line(dead({"lsit"}), 2, "dead: unknown action 'lsit'");
  one_line(dead({"show", config}), 2, "dead show: show takes one ID");
  one_line(dead({"requeue", config}), 2, "requeue takes IDs or --all");
  one_line(dead({"requeue", "1-0", "--all", config}), 2, "requeue takes IDs or --all");
  one_line(dead({"list", config, "t-abc:5"}), 2, "'t-abc:5' is not a dead letter's entry id");
  one_line(dead({"list"}), 2, "missing --redis URL");
  // Nothing listens there; the password in the URL is redacted.
  one_line(dead({"list", "--redis", "redis://u:hunter5@127.0.0.1:1"}), 2, "127.0.0.1:1");
  CHECK(dead({"list", "--redis", "redis://u:hunter5@127.0.0.1:1"}).err.find("hunter5") == std::string::npos);
  fleet.redis.command({"SET", kStream + ":dead", "x"});
  one_line(dead({"list", config}), 2, "key " + kStream + ":dead is a string, not a stream");
}

TEST_CASE("redis dead: two requeues at once queue each dead letter exactly once", "[integration][redis][dead]") {
  Fleet fleet;
  const std::string config = fleet.config("a");
  constexpr int kLetters = 2000;  // enough for the two to overlap (0.25 s here)
  std::vector<redis::Args> adds;
  for (int i = 0; i < kLetters; ++i)
    adds.push_back({"XADD", kStream + ":dead", "*", "id", "t:" + std::to_string(i), "entry", "1-" + std::to_string(i),
                    "deliveries", "3", "input", "echo " + std::to_string(i),
                    "result", "{\"seq\":" + std::to_string(i) + ",\"status\":\"crashed\"}"});
  auto conn = fleet.redis.connect();
  REQUIRE(bool(conn.pipeline(adds)));

  // Each takes the dead letters the other has not: WATCH makes a transaction that raced
  // the other's fail and read again, so none is queued twice and none is lost.
  ProcessResult one, two;
  std::thread other([&] { two = run_dead({"requeue", "--all", config}); });
  one = run_dead({"requeue", "--all", config});
  other.join();
  INFO(describe(one) << "\n" << describe(two));
  REQUIRE_FALSE(one.timed_out);
  REQUIRE_FALSE(two.timed_out);
  CHECK(one.exit_code == 0);
  CHECK(two.exit_code == 0);
  std::set<std::string> requeued;
  for (const auto& out : {one.out, two.out})
    for (const auto& line : lines_of(out)) CHECK(requeued.insert(line.substr(0, line.find(' '))).second);
  CHECK(requeued.size() == kLetters);
  CHECK(fleet.integer({"XLEN", kStream + ":dead"}) == 0);
  const auto tasks = entries(fleet, kStream);
  REQUIRE(tasks.size() == kLetters);
  std::set<std::string> ids;
  for (const auto& t : tasks) {
    const auto task = redis::task_of(t);
    CHECK(task.input == "echo " + std::to_string(task.seq));
    CHECK(task.task_id == "t:" + std::to_string(task.seq));
    ids.insert(task.task_id);
  }
  CHECK(ids.size() == kLetters);
}

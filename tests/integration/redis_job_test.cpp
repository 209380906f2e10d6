// Jobs (issue 20): shoal::Client against a real redis-server and real `shoal serve` hosts,
// jobs kept apart on one stream and on two, `collect --job --timeout`, result retention,
// and payloads with every byte value.
#include "support/cut_proxy.hpp"
#include "support/redis_fleet.hpp"

#include <shoal/client.hpp>

#include <catch2/catch.hpp>

#include <sys/eventfd.h>
#include <csignal>
#include <unistd.h>

#include <regex>
#include <set>
#include <tuple>
#include <string>
#include <thread>
#include <vector>

using namespace shoal::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

shoal::Client connect(const Fleet& fleet, const std::string& stream = kStream,
                      std::chrono::milliseconds ttl = std::chrono::hours(24)) {
  shoal::ClientOptions o;
  o.url = fleet.redis.url();
  o.stream = stream;
  o.result_ttl = ttl;
  auto c = shoal::Client::connect(o);
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c.ok());
  return std::move(*c);
}

std::vector<std::string_view> views(const std::vector<std::string>& inputs) {
  return std::vector<std::string_view>(inputs.begin(), inputs.end());
}

Clock::time_point in(std::chrono::milliseconds d) { return Clock::now() + bounded(d); }

// Every result of a sealed job, by id, through collect (each id once).
std::map<std::string, shoal::TaskResult> collect_all(shoal::Client& c, const std::string& job) {
  std::map<std::string, shoal::TaskResult> out;
  auto n = c.collect(job, in(20s), [&](const shoal::TaskResult& r) {
    CHECK(out.emplace(r.id, r).second);  // once per id
    return true;
  });
  INFO((n ? std::string() : n.error().message));
  REQUIRE(n.ok());
  CHECK(*n == out.size());
  return out;
}

// SIGTERM to each, then each exits 0.
void stop_all(const std::vector<Host*>& hosts) {
  for (Host* h : hosts) h->signal(SIGTERM);
  for (Host* h : hosts) CHECK(h->wait_exit(20s) == 0);
}

}  // namespace

TEST_CASE("client: submit a job, wait for each result by id in reverse order, collect it whole",
          "[integration][redis][client]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  wait_ready(fleet, {&a});
  shoal::Client c = connect(fleet);
  auto job = c.create_job("t");
  REQUIRE(job.ok());
  CHECK(std::regex_match(*job, std::regex("t-[0-9a-f]{16}")));
  const std::vector<std::string> inputs = {"echo 0", "echo 1", "echo 2", "error bad", "echo 4"};
  auto ids = c.submit_many(*job, views(inputs));
  REQUIRE(ids.ok());
  REQUIRE(ids->size() == inputs.size());
  for (size_t i = 0; i < ids->size(); ++i) CHECK((*ids)[i] == *job + ":" + std::to_string(i));

  for (size_t i = inputs.size(); i-- > 0;) {
    auto r = c.wait((*ids)[i], in(20s));
    INFO((r ? std::string() : r.error().message));
    REQUIRE(r.ok());
    CHECK(r->id == (*ids)[i]);
    CHECK(r->job == *job);
    CHECK(r->seq == i);
    CHECK(r->consumer == "a");
    if (i == 3) {
      CHECK(r->outcome.status == shoal::Status::error);
      CHECK(r->outcome.error == "bad");
      CHECK(r->outcome.reason == shoal::Reason::plugin_error);
    } else {
      CHECK(r->outcome.status == shoal::Status::ok);
      CHECK(r->outcome.output == std::to_string(i));
      CHECK(r->outcome.attempts == 1);
    }
  }
  // One more added, then sealed: collect ends by itself at six.
  auto more = c.submit(*job, "echo 5");
  REQUIRE(more.ok());
  CHECK(*more == *job + ":5");
  REQUIRE(c.seal(*job).ok());
  const auto all = collect_all(c, *job);
  CHECK(all.size() == 6);
  CHECK(all.at(*job + ":5").outcome.output == "5");
  // Another Client, from scratch, sees the same whole job.
  shoal::Client other = connect(fleet);
  CHECK(collect_all(other, *job).size() == 6);
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  check_drained(fleet);
}

TEST_CASE("client: a seq reservation whose answer is lost leaves no gap and collect ends at the total",
          "[integration][redis][client]") {
  Fleet fleet;
  const auto url = redis::parse_url(fleet.redis.url());
  REQUIRE(url.ok());
  // The reservation script reaches Redis and runs; its answer never comes back. Sent
  // again as it was, it would reserve a second range: ids from 3, a total of 6, and a
  // collect waiting for three tasks that do not exist.
  CutProxy proxy(fleet.redis.port(), CutProxy::Options::cut("'HINCRBY', KEYS[1], 'next'", [u = *url] {
                   auto c = redis::Connection::open(u, 1s);
                   if (!c) return false;
                   auto keys = c->command({"KEYS", kStream + ":job:*"});
                   if (!keys) return false;
                   for (size_t i = 0; i < keys->view().size(); ++i) {
                     auto next = c->command({"HGET", std::string(keys->view()[i].str()), "next"});
                     if (next && next->view().is_string() && next->str() != "0") return true;
                   }
                   return false;
                 }));
  REQUIRE(proxy.ok());
  Host a(fleet, fleet.config("a"), "a");
  wait_ready(fleet, {&a});
  shoal::ClientOptions o;
  o.url = proxy.url();
  o.stream = kStream;
  auto c = shoal::Client::connect(o);
  REQUIRE(c.ok());
  auto job = c->create_job("t");
  REQUIRE(job.ok());
  const std::vector<std::string> inputs = {"echo 0", "echo 1", "echo 2"};
  auto ids = c->submit_many(*job, views(inputs));
  INFO((ids ? std::string() : ids.error().message));
  REQUIRE(ids.ok());
  CHECK(proxy.cuts() == 1);
  REQUIRE(ids->size() == 3);
  for (size_t i = 0; i < 3; ++i) CHECK((*ids)[i] == *job + ":" + std::to_string(i));
  CHECK(fleet.redis.command({"HGET", kStream + ":job:" + *job, "next"}).str() == "3");
  REQUIRE(c->seal(*job).ok());
  const auto rows = collect_all(*c, *job);
  CHECK(rows.size() == 3);
  stop_all({&a});
}

TEST_CASE("client: a deadline that passes is Errc::timeout on time, and a later wait gets the result",
          "[integration][redis][client]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  wait_ready(fleet, {&a});
  shoal::Client c = connect(fleet);
  auto job = c.create_job("t");
  REQUIRE(job.ok());
  auto id = c.submit(*job, "sleep 1500");
  REQUIRE(id.ok());
  const auto t0 = Clock::now();
  auto early = c.wait(*id, t0 + 200ms);
  REQUIRE_FALSE(early.ok());
  CHECK(early.error().code == shoal::Errc::timeout);
  CHECK(early.error().message.find(*id) != std::string::npos);
  CHECK(Clock::now() - t0 < bounded(1s));
  // collect with a deadline says how far the sealed job got and what is missing.
  REQUIRE(c.seal(*job).ok());
  auto partial = c.collect(*job, Clock::now() + 100ms, [](const shoal::TaskResult&) { return true; });
  REQUIRE_FALSE(partial.ok());
  CHECK(partial.error().code == shoal::Errc::timeout);
  CHECK(partial.error().message.find("0 of 1 results, missing " + *id) != std::string::npos);
  auto later = c.wait(*id, in(20s));
  REQUIRE(later.ok());
  CHECK(later->outcome.status == shoal::Status::ok);
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
}

TEST_CASE("client: interrupt_fd ends a wait with Errc::cancelled and a job that does not exist is not_found",
          "[integration][redis][client]") {
  Fleet fleet;
  const int efd = ::eventfd(0, EFD_CLOEXEC);
  REQUIRE(efd >= 0);
  shoal::ClientOptions o;
  o.url = fleet.redis.url();
  o.stream = kStream;
  o.interrupt_fd = efd;
  auto c = shoal::Client::connect(o);
  REQUIRE(c.ok());
  auto job = c->create_job("t");
  REQUIRE(job.ok());
  auto id = c->submit(*job, "echo x");  // no host: it never runs
  REQUIRE(id.ok());
  std::thread poke([efd] {
    std::this_thread::sleep_for(200ms);
    const uint64_t one = 1;
    CHECK(::write(efd, &one, sizeof one) == sizeof one);
  });
  const auto t0 = Clock::now();
  auto r = c->wait(*id, in(30s));
  poke.join();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == shoal::Errc::cancelled);
  CHECK(Clock::now() - t0 < bounded(5s));
  ::close(efd);

  shoal::Client plain = connect(fleet);
  auto none = plain.submit("t-0000000000000000", "echo x");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().code == shoal::Errc::not_found);
  CHECK(none.error().message.find("t-0000000000000000 does not exist") != std::string::npos);
  auto bad = plain.create_job("no spaces");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == shoal::Errc::config);
}

TEST_CASE("client: jobs on two streams with a host each, and two jobs on one stream, never mix",
          "[integration][redis][client][job]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  Host b(fleet, fleet.config("b"), "b", {"--stream", "other"});
  wait_ready(fleet, {&a, &b});
  shoal::Client on_tasks = connect(fleet), on_other = connect(fleet, "other");
  // Interleaved: A, B, A, B, … on the one stream; C on the other.
  auto ja = on_tasks.create_job("t"), jb = on_tasks.create_job("t"), jc = on_other.create_job("t");
  REQUIRE((ja.ok() && jb.ok() && jc.ok()));
  for (int i = 0; i < 5; ++i) {
    REQUIRE(on_tasks.submit(*ja, "echo A" + std::to_string(i)).ok());
    REQUIRE(on_tasks.submit(*jb, "echo B" + std::to_string(i)).ok());
    REQUIRE(on_other.submit(*jc, "echo C" + std::to_string(i)).ok());
  }
  for (auto* j : {&*ja, &*jb}) REQUIRE(on_tasks.seal(*j).ok());
  REQUIRE(on_other.seal(*jc).ok());
  for (const auto& [client, job, letter, host] :
       {std::tuple{&on_tasks, *ja, "A", "a"}, std::tuple{&on_tasks, *jb, "B", "b"}, std::tuple{&on_other, *jc, "C", "b"}}) {
    INFO("job " << job);
    const auto rows = collect_all(*client, job);
    REQUIRE(rows.size() == 5);
    for (int i = 0; i < 5; ++i) {
      const auto& r = rows.at(job + ":" + std::to_string(i));
      CHECK(r.outcome.output == letter + std::to_string(i));
      if (std::string(letter) == "C") CHECK(r.consumer == host);  // only b serves "other"
    }
  }
  // The CLI's collect of one job prints that job only, whatever --expect asks.
  const auto rows_b = collect(fleet.config("collect"), 5, 0, *jb);
  for (const auto& [id, row] : rows_b) CHECK(row.at("output").text.starts_with("B"));
  stop_all({&a, &b});
}

TEST_CASE("client: payloads with every byte value round-trip through two hosts unchanged",
          "[integration][redis][client][binary]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  Host b(fleet, fleet.config("b"), "b");
  wait_ready(fleet, {&a, &b});
  std::string every;
  for (int v = 0; v < 256; ++v) every.push_back(static_cast<char>(v));
  const std::vector<std::string> payloads = {every, std::string("\0lead", 5), "trail\r\n", std::string(3, '\0'),
                                             "\xff\xfe not utf-8 \xc3\x28", std::string(70000, '\x80') + every};
  std::vector<std::string> inputs;
  for (const auto& p : payloads) inputs.push_back("echo " + p);
  shoal::Client c = connect(fleet);
  auto bin_job = c.create_job("bin");
  REQUIRE(bin_job.ok());
  // Many of each, so that both hosts run some.
  std::vector<std::string> many;
  for (int round = 0; round < 20; ++round) many.insert(many.end(), inputs.begin(), inputs.end());
  auto ids = c.submit_many(*bin_job, views(many));
  REQUIRE(ids.ok());
  REQUIRE(c.seal(*bin_job).ok());
  const auto rows = collect_all(c, *bin_job);
  REQUIRE(rows.size() == many.size());
  std::set<std::string> hosts;
  for (const auto& [id, r] : rows) {
    INFO("task " << id);
    REQUIRE(r.outcome.status == shoal::Status::ok);
    CHECK(r.outcome.output == payloads[r.seq % payloads.size()]);
    hosts.insert(r.consumer);
  }
  CHECK(hosts == std::set<std::string>{"a", "b"});

  // The CLI: base64 in, base64 out, the same bytes.
  // coreutils' base64 is the independent coder.
  std::string encoded;
  for (const auto& p : inputs) {
    auto r = run_process({"base64", "-w0", fleet.dir.write("raw", p).string()}, {}, bounded(10s));
    REQUIRE(r.exit_code == 0);
    encoded += r.out + "\n";
  }
  const auto file = fleet.dir.write("b64.txt", encoded);
  auto sub = run_process({SHOAL_BIN, "submit", fleet.config("s"), "--input", file.string(), "--input-format", "base64",
                          "--prefix", "t"},
                         {}, bounded(20s));
  INFO(describe(sub));
  REQUIRE(sub.exit_code == 0);
  check_submitted(sub.out, inputs.size());
  auto col = run_process({SHOAL_BIN, "collect", fleet.config("c"), "--job", job(), "--output-encoding", "base64"}, {},
                         bounded(20s));
  INFO(describe(col));
  REQUIRE(col.exit_code == 0);
  const auto lines = lines_of(col.out);
  REQUIRE(lines.size() == inputs.size());
  for (const auto& line : lines) {
    auto row = Parser(line).row();
    REQUIRE(row.has_value());
    CHECK(row->at("encoding").text == "base64");
    const size_t seq = static_cast<size_t>(std::stoul(row->at("seq").text));
    auto decoded = run_process({"base64", "-d", fleet.dir.write("enc", row->at("output").text).string()}, {},
                               bounded(10s));
    CHECK(decoded.out == payloads.at(seq));
  }
  stop_all({&a, &b});
}

TEST_CASE("collect --job --timeout prints what came, names what is missing and exits 3",
          "[integration][redis][job]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a", HostOptions().with_grace("1s")), "a");
  wait_ready(fleet, {&a});
  submit(fleet, fleet.config("submit"), {"echo 0", "echo 1", "hang"});
  const auto t0 = Clock::now();
  auto r = run_process({SHOAL_BIN, "collect", fleet.config("c"), "--job", job(), "--timeout", "1s"}, {}, bounded(20s));
  INFO(describe(r));
  CHECK(r.exit_code == 3);
  CHECK(Clock::now() - t0 < bounded(5s));
  CHECK(lines_of(r.out).size() == 2);
  CHECK(r.err.find("--timeout 1s passed: job " + job() + ": 2 of 3 results, missing " + id(2) + "\n") !=
        std::string::npos);
  // Usage errors are one line and exit 2.
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--timeout", "soon"}, {"--output-encoding", "hex"}, {"--delete"}}) {
    std::vector<std::string> argv = {SHOAL_BIN, "collect", fleet.config("c")};
    argv.insert(argv.end(), bad.begin(), bad.end());
    auto u = run_process(argv, {}, bounded(10s));
    INFO(describe(u));
    CHECK(u.exit_code == 2);
    CHECK(lines_of(u.err).size() == 1);
  }
  a.signal(SIGKILL);
  a.wait_exit(20s);
}

TEST_CASE("retention: a job's results expire result_ttl after the last, --delete removes them at once, 0 keeps them",
          "[integration][redis][job][retention]") {
  Fleet fleet;
  Host a(fleet, fleet.config("a"), "a");
  wait_ready(fleet, {&a});
  auto submit_with = [&](const std::string& ttl) {
    const auto file = fleet.dir.write("in.txt", "echo 0\necho 1\n");
    auto r = run_process({SHOAL_BIN, "submit", fleet.config("s"), "--input", file.string(), "--prefix", "t",
                          "--result-ttl", ttl},
                         {}, bounded(20s));
    INFO(describe(r));
    REQUIRE(r.exit_code == 0);
    check_submitted(r.out, 2);
    return job();
  };
  const auto meta = [](const std::string& j) { return kStream + ":job:" + j; };

  const std::string short_lived = submit_with("2s");
  collect(fleet.config("c"), 2);
  const int64_t pttl = fleet.integer({"PTTL", results_key()});
  CHECK(pttl > 0);
  CHECK(pttl <= 2000);
  CHECK(fleet.integer({"PTTL", meta(short_lived)}) > 0);
  CHECK(eventually([&] { return fleet.integer({"EXISTS", results_key(), meta(short_lived)}) == 0; }, 5s));

  const std::string kept = submit_with("0");
  collect(fleet.config("c"), 2);
  CHECK(fleet.integer({"PTTL", results_key()}) == -1);
  CHECK(fleet.integer({"PTTL", meta(kept)}) == -1);

  auto del = run_process({SHOAL_BIN, "collect", fleet.config("c"), "--job", kept, "--delete"}, {}, bounded(20s));
  INFO(describe(del));
  CHECK(del.exit_code == 0);
  CHECK(lines_of(del.out).size() == 2);
  CHECK(fleet.integer({"EXISTS", results_key(), meta(kept)}) == 0);
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
  check_drained(fleet);
}

TEST_CASE("jobs: a job's result key of the wrong type loses no result, and submit --job adds to an open job",
          "[integration][redis][job]") {
  Fleet fleet;
  submit(fleet, fleet.config("s"), {"echo 0"});
  const std::string first = job();
  // Someone wrote a string where the job's results go.
  REQUIRE(fleet.redis.command({"SET", results_key(), "x"}).str() == "OK");
  Host a(fleet, fleet.config("a"), "a");
  REQUIRE(logged(a, "not a stream: the results of job " + first + " go to " + kStream + ":results", 20s));
  auto legacy = run_process({SHOAL_BIN, "collect", fleet.config("c"), "--expect", "1", "--timeout", "10s"}, {},
                            bounded(20s));
  INFO(describe(legacy));
  CHECK(legacy.exit_code == 0);
  CHECK(legacy.out.find("\"id\":\"" + first + ":0\"") != std::string::npos);

  // An open job: two submits add to it, seqs never repeat, then collect ends at the total.
  const auto part = [&](const std::vector<std::string>& extra, const std::string& text) {
    const auto file = fleet.dir.write("part.txt", text);
    std::vector<std::string> argv = {SHOAL_BIN, "submit", fleet.config("s"), "--input", file.string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = run_process(argv, {}, bounded(20s));
    INFO(describe(r));
    REQUIRE(r.exit_code == 0);
    return r.out;
  };
  const std::string opened = part({"--prefix", "open", "--no-seal"}, "echo 0\necho 1\n");
  std::smatch m;
  REQUIRE(std::regex_search(opened, m, std::regex("as job (open-[0-9a-f]{16}) .*, not sealed\n")));
  const std::string open_job = m[1].str();
  const std::string added = part({"--job", open_job}, "echo 2\n");
  CHECK(added.find("(ids " + open_job + ":2 to " + open_job + ":2)\n") != std::string::npos);
  auto whole = run_process({SHOAL_BIN, "collect", fleet.config("c"), "--job", open_job}, {}, bounded(20s));
  INFO(describe(whole));
  CHECK(whole.exit_code == 0);
  CHECK(lines_of(whole.out).size() == 3);
  auto missing = run_process({SHOAL_BIN, "submit", fleet.config("s"), "--job", "nope-1"},
                             fleet.dir.write("one.txt", "echo\n").string(), bounded(20s));
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("job nope-1 does not exist") != std::string::npos);
  a.signal(SIGTERM);
  CHECK(a.wait_exit(20s) == 0);
}

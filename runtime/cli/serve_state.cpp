#include "serve_state.hpp"

#include "common/event.hpp"
#include "common/log.hpp"
#include "common/printable.hpp"

#include <sys/eventfd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>

namespace shoal::cli {

using detail::LogLevel;
using detail::log_line;

namespace {

// The outcome in a result JSON written by result_json (a failed delivery's, kept in
// STREAM:last): what a dead letter's result then says. A status it lacks is crashed.
Outcome outcome_in(std::string_view text) {
  Outcome o;
  o.status = Status::crashed;
  o.reason = Reason::crashed;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return o;
  auto text_of = [&](const char* key) { return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : ""; };
  o.status = status_from(text_of("status")).value_or(Status::crashed);
  if (j.contains("reason") && j["reason"].is_string()) o.reason = redis::reason_of(text_of("reason"));
  o.output = text_of("output");
  o.error = text_of("error");
  if (j.contains("worker") && j["worker"].is_number_integer()) o.worker = j["worker"].get<int32_t>();
  if (j.contains("attempts") && j["attempts"].is_number_unsigned()) o.attempts = j["attempts"].get<uint32_t>();
  if (j.contains("generation") && j["generation"].is_number_unsigned()) o.generation = j["generation"].get<uint32_t>();
  if (j.contains("ms") && j["ms"].is_number())
    o.duration = std::chrono::nanoseconds(static_cast<int64_t>(j["ms"].get<double>() * 1e6));
  return o;
}

// What CLIENT SETNAME accepts: no spaces or control characters.
std::string client_name(const std::string& consumer) {
  std::string name = "shoal:" + consumer;
  for (char& ch : name)
    if (ch <= ' ' || ch > '~') ch = '_';
  return name;
}

// "ENTRY (id TASK-ID)" for a log line: the entry id is what `shoal dead` and redis-cli
// take, the task id what the submitter knows.
std::string task_name(const redis::Task& t) {
  if (t.task_id == t.entry_id) return t.entry_id;
  return t.entry_id + " (id " + detail::printable(t.task_id, 100) + ")";
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Inbox

Inbox::Inbox() : event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void Inbox::push(std::string entry, Outcome&& outcome) {
  std::lock_guard lock(m_);
  items_.emplace_back(std::move(entry), std::move(outcome));
  detail::eventfd_signal(event_.get());
}

std::vector<std::pair<std::string, Outcome>> Inbox::take() {
  detail::eventfd_drain(event_.get());
  std::lock_guard lock(m_);
  return std::exchange(items_, {});
}

bool Inbox::empty() const {
  std::lock_guard lock(m_);
  return items_.empty();
}

// ---------------------------------------------------------------------------------------
// Connection

ServeState::ServeState(ServeSettings s) : s_(std::move(s)), keys_(redis::Keys::of(s_.redis.stream)) {}

std::chrono::milliseconds ServeState::visibility() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(s_.redis.visibility_timeout);
}

void ServeState::schedule_retry() { next_attempt_ = Clock::now() + backoff_.next(); }

bool ServeState::lost(const Error& error) {
  conn_.close();
  down_cause_ = error.message;
  // Before the first connection the host says "waiting for Redis" itself (serve.cpp).
  if (!down_reported_ && ever_connected_) {
    down_reported_ = true;
    log_line(LogLevel::warn, "redis: " + error.message + "; retrying with back-off (" +
                                 std::to_string(held_.size() + outbox_.size()) + " tasks held)");
  }
  schedule_retry();
  return false;
}

bool ServeState::ensure_group() {
  auto g = redis::ensure_group(conn_, keys_, s_.redis.group);
  if (g) return true;
  if (g.error().code == Errc::io) return lost(g.error());
  fatal_ = g.error().message;
  return false;
}

bool ServeState::refused(std::string_view command, redis::ReplyView reply) {
  const std::string what = std::string(command) + ": " + std::string(reply.str());
  if (reply.str().starts_with("NOGROUP")) {
    // The stream or the group was deleted, or Redis came back without its data: every
    // entry held stays ours to finish, and new ones need the group again.
    log_line(LogLevel::warn, "redis: " + what + "; creating the group again");
    ensure_group();
    return false;
  }
  if (redis::is_transient(reply)) return lost(Error{Errc::io, s_.url.display + ": " + what});
  fatal_ = what;
  return false;
}

bool ServeState::connect() {
  auto c = redis::Connection::open(s_.url, kIoTimeout);
  if (!c) {
    // A refused AUTH or SELECT: retrying would never end.
    if (c.error().code != Errc::io) {
      fatal_ = c.error().message;
      return false;
    }
    return lost(c.error());
  }
  conn_ = std::move(*c);
  auto id = conn_.command({"CLIENT", "ID"});
  if (!id) return lost(id.error());
  client_id_ = std::to_string(id->view().integer());
  // A connection that was cut off may linger in Redis's client list for a while.
  own_client_ids_.push_back(client_id_);
  if (own_client_ids_.size() > 8) own_client_ids_.erase(own_client_ids_.begin());
  if (auto t = redis::check_types(conn_, keys_); !t) {
    if (t.error().code == Errc::io) return lost(t.error());
    fatal_ = t.error().message;
    return false;
  }
  if (!ensure_group()) return false;
  if (!persistence_checked_) {
    auto aof = redis::appendonly(conn_);
    if (!aof) return lost(aof.error());
    persistence_checked_ = true;
    if (*aof && **aof == "no")
      log_line(LogLevel::warn, "redis at " + s_.url.display +
                                   " runs with appendonly no: tasks it accepted are lost if it dies "
                                   "(set appendonly yes)");
  }
  // Operators (and the tests) find each host in CLIENT LIST by this name; Redis creates
  // a group's consumer only when a read returns entries, so XINFO cannot show an idle host.
  auto named = conn_.command({"CLIENT", "SETNAME", client_name(consumer())});
  if (!named) return lost(named.error());
  if (ever_connected_) ++reconnects_;
  if (down_reported_) log_line(LogLevel::warn, "redis: connected again to " + s_.url.display);
  down_reported_ = false;
  recover_due_ = true;
  count_as_handed_back_ = ever_connected_;
  ever_connected_ = true;
  down_cause_.clear();
  backoff_.reset();
  // The outage may have lasted long enough for the held entries to look abandoned.
  for_each_held([](Held& h) { h.refreshed = Clock::time_point{}; });
  return true;
}

// ---------------------------------------------------------------------------------------
// Entries

size_t ServeState::free_slots() const {
  const size_t used = held_.size() + outbox_.size();
  return used >= s_.in_flight ? 0 : s_.in_flight - used;
}

bool ServeState::holds(std::string_view entry_id) const {
  bool known = false;
  for_each_held([&](const Held& h) { known = known || h.entry.task.entry_id == entry_id; });
  return known;
}

bool ServeState::hold(const Delivery& entry) {
  if (holds(entry.task.entry_id)) return false;
  held_.emplace(entry.task.entry_id, Held{entry, Clock::now()});
  return true;
}

bool ServeState::is_pool_failure(const Outcome& o) { return o.reason == Reason::pool_failed; }

void ServeState::finish(const std::string& entry, Outcome&& outcome, bool stopping) {
  auto it = held_.find(entry);
  if (it == held_.end()) return;
  const Delivery& d = it->second.entry;
  Kind kind = Kind::result;
  switch (outcome.status) {
    case Status::ok:
    case Status::error:
      break;
    case Status::crashed:
    case Status::timeout: {
      // Perhaps this machine, perhaps the task: another delivery (maybe on another host)
      // tells, until the last one allowed. This delivery failed too.
      const uint32_t failed = d.deliveries - std::min(d.handed_back, d.deliveries);
      kind = exhausted(failed) ? Kind::dead : Kind::retry;
      // The pool's own line names the worker only: the task is known here.
      log_line(LogLevel::warn, "task " + task_name(d.task) + " " + std::string(to_string(outcome.status)) + ": " +
                                   outcome.error + "; failed delivery " + std::to_string(failed) + " of " +
                                   std::to_string(s_.redis.max_deliveries) +
                                   (kind == Kind::dead ? ": dead letter in " + keys_.dead : ", delivered again"));
      break;
    }
    case Status::cancelled:
      // Never started, or stopped unfinished when the grace of a shutdown passed.
      kind = Kind::release;
      break;
    case Status::rejected:
      // Refused because this host's pool is closing or failed: another host can run it.
      // Refused for itself (too large for the rings): it is final.
      if (stopping || outcome.reason == Reason::pool_closed || outcome.reason == Reason::pool_failed)
        kind = Kind::release;
      break;
  }
  Pending p{kind, std::move(it->second), std::move(outcome)};
  held_.erase(it);
  outbox_.push_back(std::move(p));
}

Outcome ServeState::outcome_of_dead(uint32_t deliveries) {
  Outcome o;
  o.status = Status::crashed;
  o.reason = Reason::crashed;
  o.error = "delivered " + std::to_string(deliveries) +
            " times without an outcome: the hosts running it died or were stopped";
  return o;
}

void ServeState::count(const Pending& p) {
  if (p.kind == Kind::result || p.kind == Kind::dead) ++counts_.by_status[static_cast<size_t>(p.outcome.status)];
  if (p.kind == Kind::dead) ++dead_;
  if (p.kind == Kind::retry) ++retried_;
  if (p.kind == Kind::release) ++handed_back_;
}

// The outcomes a lost transaction carried may or may not have been applied. An entry no
// longer pending had its transaction applied (or another host finished it): its outcome
// is written, and writing it again would duplicate it. A hand-back that left the entry
// idle past the visibility timeout, or in another host's hands, was applied as well.
bool ServeState::settle_sent() {
  std::vector<redis::Args> asks;
  for (const auto& p : outbox_)
    if (p.sent) asks.push_back({"XPENDING", keys_.tasks, s_.redis.group, p.held.entry.task.entry_id,
                                p.held.entry.task.entry_id, "1"});
  if (asks.empty()) return true;
  auto answers = conn_.pipeline(asks);
  if (!answers) return lost(answers.error());
  for (const auto& a : *answers)
    if (a.is_error()) return refused("XPENDING", a.view());
  size_t i = 0;
  std::erase_if(outbox_, [&](Pending& p) {
    if (!p.sent) return false;
    const redis::ReplyView a = (*answers)[i++].view();
    const redis::ReplyView info = a[0];  // [id, consumer, idle ms, deliveries]
    bool applied = a.size() == 0;
    if (!applied && (p.kind == Kind::retry || p.kind == Kind::release))
      applied = info[1].str() != consumer() || info[2].integer() >= visibility().count();
    p.sent = false;
    if (applied) count(p);
    return applied;
  });
  return true;
}

bool ServeState::check_jobs() {
  std::vector<std::string> fresh;
  for (const auto& p : outbox_) {
    const std::string& job = p.held.entry.task.job;
    if ((p.kind == Kind::result || p.kind == Kind::dead) && !job.empty() && !jobs_.contains(job) &&
        std::find(fresh.begin(), fresh.end(), job) == fresh.end())
      fresh.push_back(job);
  }
  if (fresh.empty()) return true;
  // A long-lived host sees job after job: what it knows of the old ones goes.
  if (jobs_.size() + fresh.size() > 10000) jobs_.clear();
  std::vector<redis::Args> asks;
  for (const auto& job : fresh) {
    asks.push_back({"TYPE", keys_.job_results(job)});
    asks.push_back({"HGET", keys_.job_meta(job), "ttl"});
  }
  auto answers = conn_.pipeline(asks);
  if (!answers) return lost(answers.error());
  for (size_t i = 0; i < fresh.size(); ++i) {
    JobKeys k{keys_.job_results(fresh[i]), keys_.job_meta(fresh[i])};
    const redis::ReplyView type = (*answers)[2 * i].view(), ttl = (*answers)[2 * i + 1].view();
    if (type.is_error() && redis::is_transient(type)) return refused("TYPE", type);
    if (type.is_string() && type.str() != "none" && type.str() != "stream") {
      k.usable = false;
      log_line(LogLevel::warn, "key " + k.results + " is a " + std::string(type.str()) +
                                   ", not a stream: the results of job " + fresh[i] + " go to " + keys_.results);
    }
    if (ttl.is_string()) k.ttl_ms = std::max(0LL, std::atoll(std::string(ttl.str()).c_str()));
    jobs_.emplace(fresh[i], std::move(k));
  }
  return true;
}

const ServeState::JobKeys* ServeState::job_keys(const redis::Task& t) const {
  if (t.job.empty()) return nullptr;
  auto it = jobs_.find(t.job);
  return it != jobs_.end() && it->second.usable ? &it->second : nullptr;
}

redis::Args ServeState::hand_back(const std::vector<std::string>& ids) const {
  // JUSTID leaves the delivery count alone; the claim counts the next delivery.
  redis::Args cmd = {"XCLAIM", keys_.tasks, s_.redis.group, consumer(), "0"};
  cmd.insert(cmd.end(), ids.begin(), ids.end());
  cmd.insert(cmd.end(), {"IDLE", std::to_string(visibility().count() + 1), "JUSTID"});
  return cmd;
}

// Redis checks each command as it is queued (OOM, syntax) and then runs none;
// check_types() rules out failures while it runs.
bool ServeState::transaction(const std::vector<redis::Args>& tx, std::string_view what) {
  auto replies = conn_.pipeline(tx);
  if (!replies) return lost(replies.error());
  const redis::ReplyView done = replies->back().view();
  if (!done.is_array()) {
    // EXECABORT: a command was refused as it was queued; its own reply says why.
    for (const auto& r : *replies)
      if (r.is_error() && !r.str().starts_with("EXECABORT")) return refused(what, r.view());
    return refused(what, done);
  }
  for (size_t i = 0; i < done.size(); ++i)
    if (done[i].is_error()) return refused(what, done[i]);
  return true;
}

bool ServeState::flush() {
  if (outbox_.empty()) return true;
  if (!settle_sent()) return false;
  if (outbox_.empty()) return true;
  // One transaction: each result is stored together with the acknowledgement and deletion
  // of its entry, so a lost connection can neither repeat a result whose entry was
  // acknowledged nor leave an acknowledged entry in the stream (whose length is what
  // submit's back-pressure reads).
  if (!check_jobs()) return false;
  std::vector<redis::Args> tx = {{"MULTI"}};
  redis::Args ack = {"XACK", keys_.tasks, s_.redis.group};
  std::vector<const JobKeys*> touched;
  redis::Args del = {"XDEL", keys_.tasks};
  redis::Args forget = {"HDEL", keys_.last};
  for (auto& p : outbox_) {
    p.sent = true;
    const redis::Task& t = p.held.entry.task;
    const JobKeys* job = job_keys(t);
    switch (p.kind) {
      case Kind::dead: {
        redis::Args dead = {"XADD", keys_.dead, "*", "id", t.task_id, "entry", t.entry_id, "deliveries",
                            std::to_string(p.held.entry.deliveries), "input", t.input.value_or(""), "result",
                            redis::result_json(t, p.outcome, consumer())};
        if (!t.job.empty()) dead.insert(dead.end(), {"job", t.job, "seq", std::to_string(t.seq)});
        tx.push_back(std::move(dead));
        [[fallthrough]];
      }
      case Kind::result:
        if (job != nullptr) {
          tx.push_back(redis::result_entry(keys_, t, p.outcome, consumer()));
          if (job->ttl_ms > 0 && std::find(touched.begin(), touched.end(), job) == touched.end()) touched.push_back(job);
        } else {
          tx.push_back({"XADD", keys_.results, "*", "id", t.task_id, "status", std::string(to_string(p.outcome.status)),
                        "generation", std::to_string(p.outcome.generation), "result",
                        redis::result_json(t, p.outcome, consumer())});
        }
        ack.push_back(t.entry_id);
        del.push_back(t.entry_id);
        if (p.held.entry.deliveries > 1) {
          forget.push_back(t.entry_id);
          forget.push_back(redis::handed_back_field(t.entry_id));
        }
        break;
      case Kind::retry:
        tx.push_back({"HSET", keys_.last, t.entry_id, redis::result_json(t, p.outcome, consumer())});
        tx.push_back(hand_back({t.entry_id}));
        break;
      case Kind::release:
        tx.push_back({"HINCRBY", keys_.last, redis::handed_back_field(t.entry_id), "1"});
        tx.push_back(hand_back({t.entry_id}));
        break;
    }
  }
  if (ack.size() > 3) {
    tx.push_back(std::move(ack));
    tx.push_back(std::move(del));
  }
  if (forget.size() > 2) tx.push_back(std::move(forget));
  // A job's results and record live result_ttl past its last result (PEXPIRE never
  // fails at EXEC, whatever the key's type).
  for (const JobKeys* job : touched) {
    tx.push_back({"PEXPIRE", job->results, std::to_string(job->ttl_ms)});
    tx.push_back({"PEXPIRE", job->meta, std::to_string(job->ttl_ms)});
  }
  tx.push_back({"EXEC"});
  if (!transaction(tx, "writing outcomes")) return false;
  for (const auto& p : outbox_) count(p);
  outbox_.clear();
  return true;
}

Clock::time_point ServeState::next_refresh() const {
  const auto every = visibility() / 3;
  Clock::time_point t = Clock::time_point::max();
  for_each_held([&](const Held& h) { t = std::min(t, h.refreshed + every); });
  return t;
}

std::chrono::milliseconds ServeState::block_time() const {
  const auto now = Clock::now();
  const auto until = std::min(next_claim_, next_refresh());
  const auto left = until <= now ? std::chrono::milliseconds(0)
                                 : std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
  return std::clamp(left, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
}

bool ServeState::refresh() {
  const auto now = Clock::now();
  const auto every = visibility() / 3;
  // Entries due soon go along with the one due now: one round trip for a batch that
  // arrived together, not one per entry a millisecond apart.
  const auto due = every - every / 4;
  // XCLAIM with min-idle 0 and JUSTID sets the idle time to 0 without counting a
  // delivery. Of an entry another host claimed meanwhile (this one was cut off longer
  // than the timeout) it takes ownership back; both hosts run it, which at-least-once allows.
  redis::Args cmd = {"XCLAIM", keys_.tasks, s_.redis.group, consumer(), "0"};
  std::vector<Clock::time_point*> touched;
  for_each_held([&](Held& h) {
    if (now - h.refreshed < due) return;
    cmd.push_back(h.entry.task.entry_id);
    touched.push_back(&h.refreshed);
  });
  if (touched.empty()) return true;
  cmd.push_back("JUSTID");
  auto r = conn_.command(cmd);
  if (!r) return lost(r.error());
  if (r->is_error()) return refused("XCLAIM", r->view());
  for (auto* t : touched) *t = now;
  return true;
}

bool ServeState::consumer_shared() {
  auto r = conn_.command({"CLIENT", "LIST", "TYPE", "normal"});
  if (!r || r->is_error()) return false;  // cannot tell: a lost connection shows next time
  const std::string name = " name=" + client_name(consumer()) + " ";
  for (std::string_view rest = r->view().str(); !rest.empty();) {
    const std::string_view line = rest.substr(0, rest.find('\n'));
    rest.remove_prefix(std::min(rest.size(), line.size() + 1));
    if (line.find(name) == std::string_view::npos || !line.starts_with("id=")) continue;
    const std::string_view id = line.substr(3, line.find(' ') - 3);
    if (std::find(own_client_ids_.begin(), own_client_ids_.end(), id) == own_client_ids_.end()) return true;
  }
  return false;
}

bool ServeState::recover() {
  if (!recover_due_) return true;
  // An entry this host holds is its own to finish (refresh re-owned it). Of the others,
  // only those well within the visibility timeout: one near it may be claimed by another
  // host between this XPENDING and the XCLAIM below, whose min-idle 0 would take it back
  // from that host while it runs it; XAUTOCLAIM gets those a third of the timeout later.
  const long long young = visibility().count() - visibility().count() / 3;
  constexpr int kPage = 100;
  std::vector<std::string> ids;
  for (std::string from = "-";;) {
    auto r = conn_.command({"XPENDING", keys_.tasks, s_.redis.group, from, "+", std::to_string(kPage), consumer()});
    if (!r) return lost(r.error());
    if (r->is_error()) return refused("XPENDING", r->view());
    const redis::ReplyView page = r->view();  // [[id, consumer, idle ms, deliveries], …]
    for (size_t i = 0; i < page.size(); ++i)
      if (page[i][2].integer() < young && !holds(page[i][0].str())) ids.emplace_back(page[i][0].str());
    if (page.size() < kPage) break;
    from = "(" + std::string(page[page.size() - 1][0].str());
  }
  if (ids.empty()) {
    recover_due_ = false;
    return true;
  }
  const std::string entries = std::to_string(ids.size()) + (ids.size() == 1 ? " entry" : " entries");
  // A second live process with this --consumer: what looks lost here is running there.
  if (consumer_shared()) {
    log_line(LogLevel::warn, "redis: another connection is named " + client_name(consumer()) + ": " + entries +
                                 " pending to consumer " + consumer() +
                                 " are left to the visibility timeout (give each host its own --consumer)");
    recover_due_ = false;
    return true;
  }
  // Reading them with XREADGROUP … 0 instead would count a delivery for every entry of
  // this consumer, held ones included, and reset the idle time of those handed back.
  std::vector<redis::Args> tx = {{"MULTI"}};
  if (count_as_handed_back_)
    for (const auto& id : ids) tx.push_back({"HINCRBY", keys_.last, redis::handed_back_field(id), "1"});
  tx.push_back(hand_back(ids));
  tx.push_back({"EXEC"});
  if (!transaction(tx, "handing back")) return false;
  log_line(LogLevel::warn, "redis: " + entries +
                               (count_as_handed_back_ ? " delivered while the connection was down: handed back"
                                                      : " pending to consumer " + consumer() +
                                                            " from an earlier run: handed back as failed deliveries"));
  handed_back_ += ids.size();
  recover_due_ = false;
  cursor_ = "0-0";
  next_claim_ = Clock::now();
  return true;
}

bool ServeState::claim(std::vector<Delivery>& out) {
  const auto now = Clock::now();
  const auto interval = std::clamp(visibility() / 4, std::chrono::milliseconds(50), std::chrono::milliseconds(5000));
  const size_t free = free_slots();
  if (free == 0) {
    next_claim_ = now + interval;
    return true;
  }
  auto r = conn_.command({"XAUTOCLAIM", keys_.tasks, s_.redis.group, consumer(), std::to_string(visibility().count()),
                          cursor_, "COUNT", std::to_string(free)});
  if (!r) return lost(r.error());
  if (r->is_error()) {
    next_claim_ = now + interval;
    return refused("XAUTOCLAIM", r->view());
  }
  cursor_ = std::string(r->view()[0].str());
  if (cursor_.empty()) cursor_ = "0-0";
  // A scan not yet through the pending list goes on at once; a finished one waits.
  next_claim_ = cursor_ != "0-0" ? now : now + interval;
  const auto entries = redis::parse_entries(r->view()[1]);
  if (entries.empty()) return true;

  // XAUTOCLAIM does not say how often an entry was delivered; XPENDING does, and the
  // hash of retries says how many of those were hand-backs and what the last failure was.
  std::vector<redis::Args> asks;
  for (const auto& e : entries) {
    asks.push_back({"XPENDING", keys_.tasks, s_.redis.group, e.id, e.id, "1"});
    asks.push_back({"HMGET", keys_.last, e.id, redis::handed_back_field(e.id)});
  }
  auto answers = conn_.pipeline(asks);
  if (!answers) return lost(answers.error());
  for (size_t i = 0; i < entries.size(); ++i) {
    const redis::ReplyView pending = (*answers)[2 * i].view();
    if (pending.size() == 0) continue;  // acknowledged meanwhile
    const redis::ReplyView history = (*answers)[2 * i + 1].view();
    Delivery d{redis::task_of(entries[i]), static_cast<uint32_t>(std::max<long long>(1, pending[0][3].integer()))};
    long long handed_back = 0;
    if (history[1].is_string()) handed_back = std::atoll(std::string(history[1].str()).c_str());
    d.handed_back = static_cast<uint32_t>(std::clamp<long long>(handed_back, 0, d.deliveries - 1));
    // The deliveries before this one that neither ended in a hand-back: they failed.
    if (!exhausted(d.deliveries - 1 - d.handed_back)) {
      out.push_back(std::move(d));
      continue;
    }
    if (holds(d.task.entry_id)) continue;  // running here: its outcome decides
    log_line(LogLevel::warn, "task " + task_name(d.task) + " failed " +
                                 std::to_string(d.deliveries - 1 - d.handed_back) +
                                 " deliveries, the last without an outcome (its host died or was stopped): "
                                 "dead letter in " + keys_.dead);
    Outcome o = history[0].is_string() ? outcome_in(history[0].str()) : outcome_of_dead(d.deliveries);
    outbox_.push_back(Pending{Kind::dead, Held{std::move(d), now}, std::move(o)});
  }
  return true;
}

void ServeState::leave_group() {
  if (dead_ + retried_ + handed_back_ > 0)
    print_info(std::to_string(dead_) + " dead-lettered, " + std::to_string(retried_) + " retried, " +
                std::to_string(handed_back_) + " handed back");
  if (!conn_) return;
  // XGROUP DELCONSUMER drops the consumer's pending entries with it: only an empty one goes.
  auto r = conn_.command({"XPENDING", keys_.tasks, s_.redis.group, "-", "+", "1", consumer()});
  if (!r || r->is_error() || r->view().size() != 0) return;
  auto d = conn_.command({"XGROUP", "DELCONSUMER", keys_.tasks, s_.redis.group, consumer()});
  (void)d;
}

}  // namespace shoal::cli

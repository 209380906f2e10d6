#include "serve_state.hpp"

#include "common/log.hpp"

#include <sys/eventfd.h>

#include <algorithm>

namespace shoal::cli {

using detail::LogLevel;
using detail::log_line;

namespace {

// The status word of a result JSON written by result_json ("status" is its second key).
Status status_in(std::string_view json) {
  constexpr std::string_view key = "\"status\":\"";
  const auto at = json.find(key);
  if (at == std::string_view::npos) return Status::crashed;
  const std::string_view rest = json.substr(at + key.size());
  const std::string_view word = rest.substr(0, rest.find('"'));
  for (Status s : {Status::ok, Status::error, Status::crashed, Status::timeout, Status::cancelled, Status::rejected})
    if (to_string(s) == word) return s;
  return Status::crashed;
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

ServeState::ServeState(ServeSettings s)
    : s_(std::move(s)),
      keys_(redis::Keys::of(s_.redis.stream)),
      backoff_(std::chrono::milliseconds(100), std::chrono::seconds(2)) {}

std::chrono::milliseconds ServeState::visibility() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(s_.redis.visibility_timeout);
}

void ServeState::schedule_retry() { next_attempt_ = Clock::now() + backoff_.next(); }

bool ServeState::lost(const Error& error) {
  conn_.close();
  if (!down_reported_) {
    down_reported_ = true;
    log_line(LogLevel::warn, "redis: " + error.message + "; retrying with back-off (" +
                                 std::to_string(held_.size() + outbox_.size()) + " tasks held)");
  }
  schedule_retry();
  return false;
}

bool ServeState::refused(std::string_view command, redis::ReplyView reply) {
  const std::string what = std::string(command) + ": " + std::string(reply.str());
  if (reply.str().starts_with("NOGROUP")) {
    // The stream or the group was deleted, or Redis came back without its data: every
    // entry held stays ours to finish, and new ones need the group again.
    log_line(LogLevel::warn, "redis: " + what + "; creating the group again");
    if (auto g = redis::ensure_group(conn_, keys_, s_.redis.group); !g) {
      if (g.error().code == Errc::io) return lost(g.error());
      fatal_ = g.error().message;
    }
    return false;
  }
  if (redis::is_transient(reply)) return lost(Error{Errc::io, s_.url.display + ": " + what});
  fatal_ = what;
  return false;
}

bool ServeState::connect(std::chrono::milliseconds timeout) {
  auto c = redis::Connection::open(s_.url, timeout);
  if (!c) return lost(c.error());
  conn_ = std::move(*c);
  auto id = conn_.command({"CLIENT", "ID"});
  if (!id) return lost(id.error());
  client_id_ = std::to_string(id->view().integer());
  if (auto g = redis::ensure_group(conn_, keys_, s_.redis.group); !g) {
    if (g.error().code == Errc::io) return lost(g.error());
    fatal_ = g.error().message;
    return false;
  }
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
  std::string name = "shoal:" + consumer();
  for (char& ch : name)
    if (ch <= ' ' || ch > '~') ch = '_';
  auto named = conn_.command({"CLIENT", "SETNAME", name});
  if (!named) return lost(named.error());
  if (down_reported_) log_line(LogLevel::warn, "redis: connected again to " + s_.url.display);
  down_reported_ = false;
  backoff_.reset();
  // The outage may have lasted long enough for the held entries to look abandoned.
  for (auto& entry : held_) entry.second.refreshed = Clock::time_point{};
  for (auto& p : outbox_) p.held.refreshed = Clock::time_point{};
  return true;
}

// ---------------------------------------------------------------------------------------
// Entries

size_t ServeState::free_slots() const {
  const size_t used = held_.size() + outbox_.size();
  return used >= s_.in_flight ? 0 : s_.in_flight - used;
}

bool ServeState::hold(const redis::Task& task, uint32_t deliveries) {
  if (held_.count(task.entry_id) != 0 ||
      std::any_of(outbox_.begin(), outbox_.end(),
                  [&](const Pending& p) { return p.held.task.entry_id == task.entry_id; }))
    return false;
  held_.emplace(task.entry_id, Held{task, deliveries, Clock::now()});
  return true;
}

bool ServeState::is_pool_failure(const Outcome& o) {
  return o.status == Status::rejected && o.error.starts_with("pool failed");
}

void ServeState::finish(const std::string& entry, Outcome&& outcome, bool stopping) {
  auto it = held_.find(entry);
  if (it == held_.end()) return;
  Kind kind = Kind::result;
  switch (outcome.status) {
    case Status::ok:
    case Status::error:
      break;
    case Status::crashed:
    case Status::timeout:
      // Perhaps this machine, perhaps the task: another delivery (maybe on another host)
      // tells, until the last one allowed.
      kind = it->second.deliveries >= s_.redis.max_deliveries ? Kind::dead : Kind::retry;
      break;
    case Status::cancelled:
      kind = Kind::release;
      break;
    case Status::rejected:
      // Refused because this host's pool is closing or failed: another host can run it.
      // Refused for itself (too large for the rings): it is final.
      if (stopping || is_pool_failure(outcome) || outcome.error.starts_with("pool closed")) kind = Kind::release;
      break;
  }
  std::string json = redis::result_json(it->second.task, outcome, consumer());
  Pending p{kind, std::move(it->second), std::move(json), outcome.status};
  held_.erase(it);
  outbox_.push_back(std::move(p));
}

std::string ServeState::outcome_of_dead(const redis::Task& task, uint32_t deliveries) const {
  Outcome o;
  o.status = Status::crashed;
  o.error = "delivered " + std::to_string(deliveries) +
            " times without an outcome: the hosts running it died or were stopped";
  return redis::result_json(task, o, consumer());
}

bool ServeState::flush() {
  if (outbox_.empty()) return true;
  const std::string idle = std::to_string(visibility().count() + 1);
  std::vector<redis::Args> writes;
  for (const auto& p : outbox_) {
    const redis::Task& t = p.held.task;
    switch (p.kind) {
      case Kind::dead:
        writes.push_back({"XADD", keys_.dead, "*", "id", t.task_id, "entry", t.entry_id, "deliveries",
                          std::to_string(p.held.deliveries), "input", t.input.value_or(""), "result", p.json});
        [[fallthrough]];
      case Kind::result:
        writes.push_back({"XADD", keys_.results, "*", "id", t.task_id, "status", std::string(to_string(p.status)),
                          "result", p.json});
        break;
      case Kind::retry:
        writes.push_back({"HSET", keys_.last, t.entry_id, p.json});
        [[fallthrough]];
      case Kind::release:
        // Idle past the visibility timeout at once: the next XAUTOCLAIM of any host takes
        // it. JUSTID leaves the delivery count alone; the claim counts the next delivery.
        writes.push_back({"XCLAIM", keys_.tasks, s_.redis.group, consumer(), "0", t.entry_id, "IDLE", idle, "JUSTID"});
        break;
    }
  }
  auto replies = conn_.pipeline(writes);
  if (!replies) return lost(replies.error());
  for (const auto& r : *replies)
    if (r.is_error()) return refused("writing outcomes", r.view());

  // Only now that every result is stored: a crash before this point repeats a result,
  // one after it cannot lose one. The entry is deleted as well, so that the stream's
  // length is the number of unfinished tasks, which is what submit's back-pressure reads.
  redis::Args ack = {"XACK", keys_.tasks, s_.redis.group};
  redis::Args del = {"XDEL", keys_.tasks};
  redis::Args forget = {"HDEL", keys_.last};
  for (const auto& p : outbox_) {
    if (p.kind != Kind::result && p.kind != Kind::dead) continue;
    ack.push_back(p.held.task.entry_id);
    del.push_back(p.held.task.entry_id);
    if (p.held.deliveries > 1) forget.push_back(p.held.task.entry_id);
  }
  std::vector<redis::Args> acks;
  if (ack.size() > 3) {
    acks.push_back(std::move(ack));
    acks.push_back(std::move(del));
  }
  if (forget.size() > 2) acks.push_back(std::move(forget));
  if (!acks.empty()) {
    auto acked = conn_.pipeline(acks);
    if (!acked) return lost(acked.error());
    for (const auto& r : *acked)
      if (r.is_error()) return refused("acknowledging", r.view());
  }
  for (const auto& p : outbox_) {
    if (p.kind == Kind::result || p.kind == Kind::dead) ++counts_.by_status[static_cast<size_t>(p.status)];
    if (p.kind == Kind::dead) ++dead_;
    if (p.kind == Kind::retry) ++retried_;
    if (p.kind == Kind::release) ++handed_back_;
  }
  outbox_.clear();
  return true;
}

Clock::time_point ServeState::next_refresh() const {
  const auto every = visibility() / 3;
  Clock::time_point t = Clock::time_point::max();
  for (const auto& [id, h] : held_) t = std::min(t, h.refreshed + every);
  for (const auto& p : outbox_) t = std::min(t, p.held.refreshed + every);
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
  // XCLAIM with min-idle 0 and JUSTID sets the idle time to 0 without counting a
  // delivery. Of an entry another host claimed meanwhile (this one was cut off longer
  // than the timeout) it takes ownership back; both hosts run it, which at-least-once allows.
  redis::Args cmd = {"XCLAIM", keys_.tasks, s_.redis.group, consumer(), "0"};
  std::vector<Clock::time_point*> touched;
  for (auto& [id, h] : held_) {
    if (now - h.refreshed < every) continue;
    cmd.push_back(id);
    touched.push_back(&h.refreshed);
  }
  for (auto& p : outbox_) {
    if (now - p.held.refreshed < every) continue;
    cmd.push_back(p.held.task.entry_id);
    touched.push_back(&p.held.refreshed);
  }
  if (touched.empty()) return true;
  cmd.push_back("JUSTID");
  auto r = conn_.command(cmd);
  if (!r) return lost(r.error());
  if (r->is_error()) return refused("XCLAIM", r->view());
  for (auto* t : touched) *t = now;
  return true;
}

bool ServeState::claim(std::vector<std::pair<redis::Task, uint32_t>>& out) {
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

  // XAUTOCLAIM does not say how often an entry was delivered; XPENDING does.
  std::vector<redis::Args> asks;
  for (const auto& e : entries) {
    asks.push_back({"XPENDING", keys_.tasks, s_.redis.group, e.id, e.id, "1"});
    asks.push_back({"HGET", keys_.last, e.id});
  }
  auto answers = conn_.pipeline(asks);
  if (!answers) return lost(answers.error());
  for (size_t i = 0; i < entries.size(); ++i) {
    const redis::ReplyView pending = (*answers)[2 * i].view();
    if (pending.size() == 0) continue;  // acknowledged meanwhile
    const auto deliveries = static_cast<uint32_t>(std::max<long long>(1, pending[0][3].integer()));
    redis::Task task = redis::task_of(entries[i]);
    if (deliveries <= s_.redis.max_deliveries) {
      out.emplace_back(std::move(task), deliveries);
      continue;
    }
    if (held_.count(task.entry_id) != 0) continue;  // ours, running: its outcome decides
    const redis::ReplyView last = (*answers)[2 * i + 1].view();
    std::string json = last.is_string() ? std::string(last.str()) : outcome_of_dead(task, deliveries);
    const Status status = status_in(json);
    outbox_.push_back(Pending{Kind::dead, Held{std::move(task), deliveries, now}, std::move(json), status});
  }
  return true;
}

void ServeState::leave_group() {
  if (dead_ + retried_ + handed_back_ > 0)
    print_error(std::to_string(dead_) + " dead-lettered, " + std::to_string(retried_) + " retried, " +
                std::to_string(handed_back_) + " handed back");
  if (!conn_) return;
  // XGROUP DELCONSUMER drops the consumer's pending entries with it: only an empty one goes.
  auto r = conn_.command({"XPENDING", keys_.tasks, s_.redis.group, "-", "+", "1", consumer()});
  if (!r || r->is_error() || r->view().size() != 0) return;
  auto d = conn_.command({"XGROUP", "DELCONSUMER", keys_.tasks, s_.redis.group, consumer()});
  (void)d;
}

}  // namespace shoal::cli

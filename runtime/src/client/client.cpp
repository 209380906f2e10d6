// shoal::Client (shoal/client.hpp) over the stream layout of redis/streams.hpp.
//
// Seqs come from the job's `next` counter (HINCRBY), in a script that also notes the
// reservation under this Client's own field: when the reply is lost, reading that field
// tells whether the reservation was made, so a retry never leaves a gap of seqs that no
// task holds (collect would wait for them until its deadline). Seqs reserved and then not
// queued (an interruption mid-batch) are noted as holes, which seal takes off the total.
#include <shoal/client.hpp>

#include "config/values.hpp"
#include "redis/link.hpp"
#include "redis/streams.hpp"
#include "redis/submitter.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <unordered_map>

namespace shoal {

namespace redis = detail::redis;
using Clock = std::chrono::steady_clock;

namespace {

// KEYS[1] the job's hash; ARGV: count, this Client's field. The end of the range.
constexpr const char* kReserve =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOJOB') end "
    "local e = redis.call('HINCRBY', KEYS[1], 'next', ARGV[1]) "
    "redis.call('HSET', KEYS[1], ARGV[2], e) "
    "local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl') or '0') "
    "if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end "
    "return e";
// KEYS[1] the job's hash. The total: seqs handed out less the holes.
constexpr const char* kSeal =
    "local f = redis.call('HGETALL', KEYS[1]) "
    "local next, holes = 0, 0 "
    "for i = 1, #f, 2 do "
    "  if f[i] == 'next' then next = tonumber(f[i + 1]) "
    "  elseif string.sub(f[i], 1, 2) == 'h:' then holes = holes + tonumber(f[i + 1]) end "
    "end "
    "redis.call('HSET', KEYS[1], 'total', next - holes, 'sealed', '1') "
    "return next - holes";

// A blocked read is cut into slices this long so that a deadline is met in time.
constexpr auto kBlockSlice = std::chrono::milliseconds(200);
constexpr size_t kBatch = 512;
// Every reply but a read of results is a few bytes: anything near this is not Redis, and
// must not be read up to redis::kMaxReplyBytes first.
constexpr size_t kSmallReply = 64 << 10;

Result<std::string> random_hex() {
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) return Error{Errc::io, "getrandom failed"};
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(r));
  return std::string(hex);
}

struct JobState {
  std::string cursor = "0-0";                       // of the job's result stream
  std::unordered_map<std::string, Status> seen;      // every id with a result, its status
  std::unordered_map<std::string, TaskResult> held;  // results not yet handed out by collect
  long long reserved_end = -1;                      // this Client's last reservation's end
  bool sealed = false;
  uint64_t total = 0;
};

}  // namespace

struct Client::Impl {
  ClientOptions options;
  redis::Keys keys;
  redis::Link link;
  std::string token;  // this Client's own field in a job's hash
  std::unordered_map<std::string, JobState> jobs;

  Impl(ClientOptions o, redis::Url url, std::string t)
      : options(std::move(o)), keys(redis::Keys::of(options.stream)),
        link(std::move(url), options.name, options.reconnect_for, options.io_timeout, hooks(options)),
        token(std::move(t)) {}

  static redis::Link::Hooks hooks(const ClientOptions& o) {
    redis::Link::Hooks h;
    h.interrupt_fd = o.interrupt_fd;
    h.say = o.on_notice;
    h.limit_name = "ClientOptions::reconnect_for (shoal's --connect-timeout)";
    return h;
  }

  Error stopped() const {
    if (link.stopped_by() != 0) return Error{Errc::cancelled, options.name + ": interrupted"};
    return Error{Errc::io, options.name + ": " + link.fatal()};
  }

  // One command, retried across reconnects and transient refusals (with
  // `retry_after_loss` false, a lost answer is Errc::io: the caller finds out whether it
  // was applied); a final refusal is Errc::failed naming the command.
  Result<redis::Reply> call(const redis::Args& args, bool retry_after_loss = true, bool large_reply = false) {
    for (;;) {
      if (!link && !link.reconnect()) return stopped();
      link.conn().set_max_reply(large_reply ? redis::kMaxReplyBytes : kSmallReply);
      auto r = link.conn().command(args);
      if (!r) {
        link.lost(r.error());
        if (!retry_after_loss) return Error{Errc::io, r.error().message};
        continue;
      }
      if (redis::is_transient(r->view())) {
        link.lost(args[0] + ": " + std::string(r->str()));
        continue;
      }
      link.ok();
      if (r->is_error()) return Error{Errc::failed, options.name + ": " + args[0] + ": " + std::string(r->str())};
      return r;
    }
  }

  Result<long long> reserve(const std::string& job, JobState& st, size_t n) {
    const std::string meta = keys.job_meta(job), field = "r:" + token;
    for (;;) {
      auto r = call({"EVAL", kReserve, "1", meta, std::to_string(n), field}, false);
      if (r) {
        st.reserved_end = r->view().integer();
        return st.reserved_end;
      }
      if (r.error().code == Errc::failed && r.error().message.ends_with("NOJOB"))
        return Error{Errc::not_found, options.name + ": job " + job +
                                          " does not exist (never created, or expired after its result_ttl)"};
      if (r.error().code != Errc::io || link.stopped_by() != 0 || !link.fatal().empty()) return stopped_or(r.error());
      // The reply was lost: this Client's field says whether the script ran.
      auto mine = call({"HGET", meta, field});
      if (!mine) return mine.error();
      long long at = -1;
      if (mine->view().is_string() && detail::parse_int_in<long long>(mine->str(), 0, INT64_MAX, at) &&
          at != st.reserved_end) {
        st.reserved_end = at;
        return at;
      }
    }
  }

  Error stopped_or(const Error& e) const {
    return link.stopped_by() != 0 || !link.fatal().empty() ? stopped() : e;
  }

  // Reads what the job's result stream holds past the cursor, blocking until `deadline`
  // at most (in slices) when `block`; the results that are new (or replace a dead
  // letter's) are added to `held` and their ids to `fresh`.
  Result<void> read(const std::string& job, JobState& st, Clock::time_point deadline, bool block,
                    std::vector<std::string>* fresh) {
    redis::Args args = {"XREAD", "COUNT", "1000"};
    if (block) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      // BLOCK 0 would wait for ever.
      if (left.count() <= 0) return {};
      args.insert(args.end(), {"BLOCK", std::to_string(std::min(left, kBlockSlice).count())});
    }
    args.insert(args.end(), {"STREAMS", keys.job_results(job), st.cursor});
    auto r = call(args, true, true);
    if (!r) return r.error();
    for (const auto& e : redis::parse_read(r->view())) {
      st.cursor = e.id;
      auto result = redis::task_result(e);
      if (!result) continue;
      auto [it, first] = st.seen.try_emplace(result->id, result->outcome.status);
      if (!first) {
        if (!redis::replaces(it->second)) continue;
        it->second = result->outcome.status;
      }
      if (fresh) fresh->push_back(result->id);
      const std::string id = result->id;
      st.held.insert_or_assign(id, std::move(*result));
    }
    return {};
  }

  Result<void> read_meta(const std::string& job, JobState& st) {
    auto r = call({"HMGET", keys.job_meta(job), "sealed", "total"});
    if (!r) return r.error();
    const redis::ReplyView v = r->view();
    if (v[0].is_string() && v[0].str() == "1" && v[1].is_string()) {
      uint64_t total = 0;
      if (detail::parse_int_in<uint64_t>(v[1].str(), 0, UINT64_MAX, total)) {
        st.sealed = true;
        st.total = total;
      }
    }
    return {};
  }

  // What a collect that met its deadline lacks: the first ten ids of a sealed job.
  std::string missing(const std::string& job, const JobState& st) const {
    std::string text = "job " + job + ": " + std::to_string(st.seen.size()) +
                       (st.sealed ? " of " + std::to_string(st.total) : std::string(" (not sealed)")) + " results";
    if (!st.sealed) return text;
    int listed = 0;
    for (uint64_t seq = 0; seq < st.total && listed < 10; ++seq) {
      const std::string id = job + ":" + std::to_string(seq);
      if (st.seen.contains(id)) continue;
      text += (listed++ == 0 ? ", missing " : ", ") + id;
    }
    return text;
  }

  // A result collect handed out and dropped: found again by reading the stream anew.
  Result<std::optional<TaskResult>> rescan(const std::string& job, std::string_view id) {
    std::optional<TaskResult> found;
    std::string from = "-";
    for (;;) {
      auto r = call({"XRANGE", keys.job_results(job), from, "+", "COUNT", "1000"}, true, true);
      if (!r) return r.error();
      const auto entries = redis::parse_entries(r->view());
      for (const auto& e : entries) {
        if (e.field("id") != id) continue;
        auto result = redis::task_result(e);
        if (result && (!found || redis::replaces(found->outcome.status))) found = std::move(result);
      }
      if (entries.size() < 1000) return found;
      from = "(" + entries.back().id;
    }
  }
};

Client::Client(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::connect(ClientOptions options) {
  auto url = redis::parse_url(options.url);
  if (!url) return url.error();
  if (!options.password.empty()) url->password = options.password;
  auto token = random_hex();
  if (!token) return token.error();
  auto impl = std::make_unique<Impl>(std::move(options), std::move(*url), std::move(*token));
  impl->link.set_max_reply(kSmallReply);
  if (auto o = impl->link.open(); !o) return o.error();
  return Client(std::move(impl));
}

Result<std::string> Client::create_job(std::string_view prefix) {
  Impl& m = *impl_;
  std::string name;
  if (prefix.empty()) {
    name = std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
  } else if (!redis::valid_job_name(prefix, 64)) {
    return Error{Errc::config, "job prefix '" + std::string(prefix).substr(0, 100) +
                                   "': expected 1 to 64 of A-Z a-z 0-9 . _ -"};
  } else {
    name = std::string(prefix);
  }
  auto token = random_hex();
  if (!token) return token.error();
  name += "-" + *token;
  const auto ttl = m.options.result_ttl.count();
  auto r = m.call({"HSET", m.keys.job_meta(name), "ttl", std::to_string(std::max<long long>(0, ttl)), "next", "0"});
  if (!r) return r.error();
  if (ttl > 0) {
    if (auto e = m.call({"PEXPIRE", m.keys.job_meta(name), std::to_string(ttl)}); !e) return e.error();
  }
  m.jobs.try_emplace(name);
  return name;
}

Result<std::string> Client::submit(std::string_view job, std::string_view input) {
  auto ids = submit_many(job, std::span<const std::string_view>(&input, 1));
  if (!ids) return ids.error();
  return std::move(ids->front());
}

Result<std::vector<std::string>> Client::submit_many(std::string_view job_name,
                                                     std::span<const std::string_view> inputs, uint64_t* queued) {
  Impl& m = *impl_;
  if (queued) *queued = 0;
  const std::string job(job_name);
  if (!redis::valid_job_name(job)) return Error{Errc::config, "'" + job.substr(0, 100) + "' is not a job name"};
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].size() > m.options.max_input)
      return Error{Errc::config, "input " + std::to_string(i) + " is " + std::to_string(inputs[i].size()) +
                                     " bytes, more than ClientOptions::max_input (redis.max_input, " +
                                     std::to_string(m.options.max_input) + " bytes): nothing queued"};
  JobState& st = m.jobs[job];
  redis::Submitter submitter(m.link, m.keys.tasks, m.options.max_stream_length);
  std::vector<std::string> ids;
  ids.reserve(inputs.size());
  for (size_t at = 0; at < inputs.size(); at += kBatch) {
    const size_t n = std::min(kBatch, inputs.size() - at);
    auto end = m.reserve(job, st, n);
    if (!end) return end.error();
    const auto first = static_cast<uint64_t>(*end) - n;
    std::vector<redis::Args> batch;
    batch.reserve(n);
    for (size_t i = 0; i < n; ++i) batch.push_back(redis::task_entry(m.keys, job, first + i, inputs[at + i]));
    if (m.link) m.link.conn().set_max_reply(kSmallReply);  // a read may have raised it
    const size_t sent = submitter.send(batch);
    if (queued) *queued += sent;
    if (sent < n) {
      // Reserved and not queued: seal must not count them. Best effort: the link is down
      // or interrupted, and a seal that counts them makes collect wait for its deadline.
      const std::string hole = "h:" + m.token + ":" + std::to_string(*end);
      if (m.link) (void)m.link.conn().command({"HSET", m.keys.job_meta(job), hole, std::to_string(n - sent)});
      if (!submitter.fatal().empty() && m.link.stopped_by() == 0)
        return Error{Errc::failed, m.options.name + ": " + submitter.fatal()};
      return m.stopped();
    }
    for (size_t i = 0; i < n; ++i) ids.push_back(job + ":" + std::to_string(first + i));
  }
  return ids;
}

Result<void> Client::seal(std::string_view job) {
  Impl& m = *impl_;
  auto r = m.call({"EVAL", kSeal, "1", m.keys.job_meta(job)});
  if (!r) return r.error();
  return {};
}

Result<TaskResult> Client::wait(std::string_view task_id, Clock::time_point deadline) {
  Impl& m = *impl_;
  const std::string id(task_id), job(redis::job_of(task_id));
  if (!redis::valid_job_name(job)) return Error{Errc::config, "'" + id.substr(0, 100) + "' is not a task id JOB:SEQ"};
  JobState& st = m.jobs[job];
  for (;;) {
    if (auto it = st.held.find(id); it != st.held.end()) return it->second;
    if (st.seen.contains(id)) {
      auto again = m.rescan(job, id);
      if (!again) return again.error();
      if (*again) return std::move(**again);
    }
    if (Clock::now() >= deadline)
      return Error{Errc::timeout, m.options.name + ": no result for " + id + " by the deadline"};
    if (auto r = m.read(job, st, deadline, true, nullptr); !r) return r.error();
  }
}

Result<uint64_t> Client::collect(std::string_view job_name, Clock::time_point deadline,
                                 const std::function<bool(const TaskResult&)>& on_result) {
  Impl& m = *impl_;
  const std::string job(job_name);
  if (!redis::valid_job_name(job)) return Error{Errc::config, "'" + job.substr(0, 100) + "' is not a job name"};
  JobState& st = m.jobs[job];
  uint64_t delivered = 0;
  // What an earlier wait() read goes first; handed out, a result is dropped (collect may
  // read millions), and a wait() for it reads the stream again.
  auto hand_out = [&](const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
      auto it = st.held.find(id);
      if (it == st.held.end()) continue;
      const TaskResult r = std::move(it->second);
      st.held.erase(it);
      ++delivered;
      if (!on_result(r)) return false;
    }
    return true;
  };
  std::vector<std::string> fresh;
  for (const auto& [id, r] : st.held) fresh.push_back(id);
  if (!hand_out(fresh)) return delivered;
  bool block = false;
  for (;;) {
    if (!st.sealed) {
      if (auto r = m.read_meta(job, st); !r) return r.error();
    }
    if (st.sealed && st.seen.size() >= st.total) return delivered;
    if (block && Clock::now() >= deadline) return Error{Errc::timeout, m.missing(job, st)};
    fresh.clear();
    if (auto r = m.read(job, st, deadline, block, &fresh); !r) return r.error();
    if (!hand_out(fresh)) return delivered;
    // Reading without blocking first drains what is there; then each read waits.
    block = fresh.empty();
  }
}

Result<void> Client::forget(std::string_view job) {
  Impl& m = *impl_;
  auto r = m.call({"DEL", m.keys.job_results(job), m.keys.job_meta(job)});
  if (!r) return r.error();
  m.jobs.erase(std::string(job));
  return {};
}

}  // namespace shoal

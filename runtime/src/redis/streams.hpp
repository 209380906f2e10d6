// The Redis Streams layout of scale-out mode, shared by `shoal serve`, `submit` and
// `collect` so that each writes exactly what the others read:
//
//   STREAM           tasks:   id TASK-ID, job JOB, seq N, input BYTES   (XADD by submit, a
//                    Client, or anyone: `job` may be absent, `id` too)
//   STREAM:job:JOB:results  a job's results, one field per Outcome member, bytes as they
//                    are: id, seq, status, reason, output, error, worker, attempts, ns,
//                    generation, consumer
//   STREAM:job:JOB   hash: next (seqs handed out), total and sealed (set by seal), ttl (ms
//                    the job's keys live after its last result; absent or 0: for ever)
//   STREAM:results   results of entries without a job: id TASK-ID, status WORD,
//                    generation N, result JSON
//   STREAM:dead      dead letters: id, entry, deliveries, input, result
//   STREAM:last      hash: entry id -> JSON of its last failed outcome (while it is retried),
//                    and ENTRY/handed-back -> deliveries hosts handed back unrun (on a stop);
//                    both go when the entry gets its result
//
// The result JSON is outcome_json's object (the row `shoal run` writes) with "id",
// "consumer" and "generation" (of the host's pool that ran it: 0 until its first reload)
// appended.
#ifndef SHOAL_REDIS_STREAMS_HPP
#define SHOAL_REDIS_STREAMS_HPP

#include "redis/client.hpp"

#include <shoal/client.hpp>
#include <shoal/runtime.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shoal::detail::redis {

/// The keys that belong to one task stream.
struct Keys {
  std::string tasks;
  std::string results;
  std::string dead;
  std::string last;
  static Keys of(const std::string& stream);
  std::string job_results(std::string_view job) const;
  std::string job_meta(std::string_view job) const;
};

/// A job name's bytes: [A-Za-z0-9._-], 1 to `max` of them. No ':' (the task id's
/// separator, and Redis key namespaces) and nothing a shell or a terminal treats apart.
bool valid_job_name(std::string_view name, size_t max = 100);

/// The job of a task id JOB:SEQ (up to its last ':'); empty when it has none.
std::string_view job_of(std::string_view task_id);

/// The XADD that queues one task of `job`.
Args task_entry(const Keys& keys, std::string_view job, uint64_t seq, std::string_view input);

/// One stream entry: its id and field/value pairs in order.
struct Entry {
  std::string id;
  std::vector<std::pair<std::string, std::string>> fields;
  /// The value of `name`, or nullopt when the entry lacks it.
  std::optional<std::string_view> field(std::string_view name) const;
};

/// Entries of an XRANGE-shaped array ([[id, [k, v, ...]], ...]). An entry deleted
/// since it was delivered comes back with nil fields: it is kept, with no fields.
std::vector<Entry> parse_entries(ReplyView array);

/// Entries of the one stream in an XREAD/XREADGROUP reply; empty for nil (timeout).
std::vector<Entry> parse_read(ReplyView reply);

/// The field of STREAM:last that counts the hand-backs of `entry_id`: deliveries that
/// ended unrun (the host stopped) and so must not count against max_deliveries.
std::string handed_back_field(std::string_view entry_id);

/// A task as the serving host sees it.
struct Task {
  std::string entry_id;
  std::string task_id;  ///< the `id` field; the entry id when absent
  uint64_t seq = 0;     ///< the `seq` field; 0 when absent or not a number
  std::optional<std::string> input;  ///< nullopt when the entry has no `input` field
  std::string job;      ///< the `job` field when it is a valid name; empty: no job
};
Task task_of(const Entry& entry);

/// The XADD of a job's result, to keys.job_results(task.job).
Args result_entry(const Keys& keys, const Task& task, const Outcome& outcome, std::string_view consumer);

/// The status word of a result ("ok", "crashed", …); nullopt for another word.
std::optional<Status> status_of(std::string_view word);
/// The reason word of a result ("plugin_error", …); Reason::none for another word.
Reason reason_of(std::string_view word);

/// A result entry of a job read back; nullopt when it lacks `id` or `status`.
std::optional<TaskResult> task_result(const Entry& entry);

/// Which of two results of one task id a reader keeps: the first, unless it is a dead
/// letter's (crashed or timed out on every delivery: serve retries any other), whose task
/// may have been requeued since; then the later one.
inline bool replaces(Status kept) { return kept == Status::crashed || kept == Status::timeout; }

/// The JSON of one result: the `shoal run` row plus "id", "consumer" and "generation".
std::string result_json(const Task& task, const Outcome& outcome, std::string_view consumer);

/// An error reply that passes with time (LOADING after a restart, BUSY script, a replica
/// without its master, OOM): the command may be sent again later.
bool is_transient(ReplyView reply);

/// XGROUP CREATE … 0 MKSTREAM, where an existing group is fine. Errc::io when the
/// connection failed or the refusal is transient, Errc::failed when Redis refused for
/// good (the key is not a stream, …).
Result<void> ensure_group(Connection& conn, const Keys& keys, const std::string& group);

/// Fails (Errc::failed, naming the key) when one of the keys exists with another type
/// than the layout's: a transaction that wrote to it would fail halfway, after its
/// acknowledgement. Errc::io when the connection failed.
Result<void> check_types(Connection& conn, const Keys& keys);

/// CONFIG GET appendonly: "yes", "no", or nullopt when the server does not say (CONFIG
/// renamed or refused). Errc::io when the connection failed.
Result<std::optional<std::string>> appendonly(Connection& conn);

}  // namespace shoal::detail::redis

#endif  // SHOAL_REDIS_STREAMS_HPP

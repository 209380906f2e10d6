// The Redis Streams layout of scale-out mode, shared by `shoal serve`, `submit` and
// `collect` so that each writes exactly what the others read:
//
//   STREAM           tasks:   id TASK-ID, seq N, input BYTES   (XADD by submit or anyone)
//   STREAM:results   results: id TASK-ID, status WORD, generation N, result JSON
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
};

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
};
Task task_of(const Entry& entry);

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

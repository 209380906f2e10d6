// The Redis side of `shoal serve`: the connection and its re-opening, the entries this
// host holds, and the outcomes on their way to Redis. Used from the main thread only,
// except Inbox, which the pool's loop thread pushes into.
#ifndef SHOAL_CLI_SERVE_STATE_HPP
#define SHOAL_CLI_SERVE_STATE_HPP

#include "scale_out_shared.hpp"
#include "terminal.hpp"

#include <shoal/config.hpp>
#include <shoal/runtime.hpp>

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace shoal::cli {

/// Outcomes handed from the pool's loop thread to the main thread; the eventfd is
/// readable while any wait.
class Inbox {
 public:
  Inbox();
  bool ok() const { return bool(event_); }
  int fd() const { return event_.get(); }
  void push(std::string entry, Outcome&& outcome);
  std::vector<std::pair<std::string, Outcome>> take();
  bool empty() const;

 private:
  mutable std::mutex m_;
  std::vector<std::pair<std::string, Outcome>> items_;
  Fd event_;
};

struct ServeSettings {
  RedisConfig redis;  ///< consumer filled in
  redis::Url url;
  uint32_t in_flight = 1;
};

class ServeState {
 public:
  /// An entry to run and its history: read as new (one delivery) or claimed.
  struct Delivery {
    redis::Task task;
    uint32_t deliveries = 1;   ///< XPENDING's count, this delivery included
    uint32_t handed_back = 0;  ///< deliveries that hosts handed back unrun
  };

  explicit ServeState(ServeSettings s);

  const RedisConfig& settings() const { return s_.redis; }
  const redis::Url& url() const { return s_.url; }
  const redis::Keys& keys() const { return keys_; }
  const std::string& consumer() const { return s_.redis.consumer; }
  uint32_t in_flight() const { return s_.in_flight; }
  /// A reload changed the pool's size: entries held past the new bound finish as they are.
  void set_in_flight(uint32_t n) { s_.in_flight = n; }

  // -- connection
  bool connected() const { return bool(conn_); }
  redis::Connection& conn() { return conn_; }
  const std::string& client_id() const { return client_id_; }
  Clock::time_point next_attempt() const { return next_attempt_; }
  /// Opens the connection, checks the keys' types and makes sure the group exists; the
  /// first time, warns when the server runs without an append-only file. False: try again
  /// at next_attempt(), or fatal() when Redis refused for good (AUTH, SELECT, a key of
  /// the wrong type).
  bool connect();
  std::chrono::milliseconds visibility() const;
  /// The connection failed: closes it, reports the outage once, schedules a retry.
  /// Always false, so a caller can `return lost(e)`.
  bool lost(const Error& error);
  /// Redis refused `command`: re-creates a missing group, backs off on a transient
  /// refusal (LOADING …), ends the host on anything else. Always false.
  bool refused(std::string_view command, redis::ReplyView reply);
  /// Connected once at least: a later outage is an outage, not a start still waiting.
  bool ever_connected() const { return ever_connected_; }
  /// Why the last attempt or the connection failed ("" while connected).
  const std::string& down_cause() const { return down_cause_; }
  bool fatal() const { return !fatal_.empty(); }
  const std::string& fatal_message() const { return fatal_; }

  // -- entries
  /// Starts holding an entry; false when it is held already (claimed back).
  bool hold(const Delivery& entry);
  size_t held() const { return held_.size(); }
  size_t free_slots() const;
  /// The outcome of a held entry: what goes to Redis is decided here.
  void finish(const std::string& entry, Outcome&& outcome, bool stopping);
  static bool is_pool_failure(const Outcome& o);
  bool has_outbox() const { return !outbox_.empty(); }
  size_t outbox_size() const { return outbox_.size(); }
  bool idle() const { return held_.empty() && outbox_.empty(); }

  // -- Redis round trips; each returns false when the connection was lost or refused
  /// In one MULTI/EXEC: writes outcomes (results, dead letters) with the acknowledgement
  /// and deletion of their entries, and hands back entries to be delivered again.
  bool flush();
  /// Resets the idle time of held entries past a third of the visibility timeout.
  bool refresh();
  /// Once after each connect: hands back at once the entries pending to this consumer
  /// that it does not hold, instead of leaving them for the visibility timeout. They are
  /// deliveries whose answer an outage took (a Redis restart, a cut connection), or a
  /// previous process's under the same --consumer. Then claim() is due at once.
  bool recover();
  /// XAUTOCLAIM of entries idle past the visibility timeout: the ones to run go to `out`;
  /// those that failed too often go to the dead letters.
  bool claim(std::vector<Delivery>& out);
  /// At exit: removes this consumer from the group when it holds no entry there.
  void leave_group();

  /// When the next claim and refresh are due; meaningful while connected only (both are
  /// round trips: while Redis is down there is nothing to wait for but the next attempt).
  Clock::time_point next_claim() const { return next_claim_; }
  Clock::time_point next_refresh() const;
  /// How long a read may block and still leave claims and refreshes on time.
  std::chrono::milliseconds block_time() const;
  const Counts& counts() const { return counts_; }
  /// For the watchers (serve_watch.hpp): connections opened again after one was lost,
  /// and entries moved to the dead letters.
  uint64_t reconnects() const { return reconnects_; }
  uint64_t dead_lettered() const { return dead_; }

 private:
  enum class Kind { result, dead, retry, release };
  struct Held {
    Delivery entry;
    Clock::time_point refreshed;
  };
  struct Pending {
    Kind kind;
    Held held;
    Outcome outcome;
    /// Went out in a transaction whose answer was lost: it may have been applied.
    bool sent = false;
  };

  /// Every entry this host holds: running, or with its outcome on the way.
  template <class F>
  void for_each_held(F&& f) {
    for (auto& [id, h] : held_) f(h);
    for (auto& p : outbox_) f(p.held);
  }
  template <class F>
  void for_each_held(F&& f) const {
    for (const auto& [id, h] : held_) f(h);
    for (const auto& p : outbox_) f(p.held);
  }

  /// The one dead-letter rule, for a failed delivery and for a claim alike: an entry has
  /// used up its deliveries once `failed` of them (crashes, timeouts, hosts that died with
  /// it) reach max_deliveries. Deliveries handed back unrun are not failures.
  bool exhausted(uint32_t failed) const { return failed >= s_.redis.max_deliveries; }
  bool holds(std::string_view entry_id) const;
  /// XCLAIM that leaves `ids` idle past the visibility timeout: the next XAUTOCLAIM of any
  /// host takes them.
  redis::Args hand_back(const std::vector<std::string>& ids) const;
  /// MULTI … EXEC (both in `tx`) in one round trip; false when lost or refused.
  bool transaction(const std::vector<redis::Args>& tx, std::string_view what);
  /// Another connection than this process's carries this host's client name.
  bool consumer_shared();
  bool ensure_group();
  /// Before a transaction goes out again: drops what the lost one did apply.
  bool settle_sent();
  /// An outcome written: for the summary at exit.
  void count(const Pending& p);
  void schedule_retry();
  static Outcome outcome_of_dead(uint32_t deliveries);
  /// Where a job's results go, as far as this host knows it.
  struct JobKeys {
    std::string results, meta;
    long long ttl_ms = 0;  ///< the job's `ttl`; 0: its keys never expire
    bool usable = true;    ///< false: its results key is not a stream (they go to STREAM:results)
  };
  /// Looks up the jobs of the outbox's results not seen before: the type of their result
  /// key (a transaction must not fail at EXEC, after its acknowledgements) and their ttl.
  bool check_jobs();
  /// The keys of the job of `t`; null when it has none or they are not usable.
  const JobKeys* job_keys(const redis::Task& t) const;

  ServeSettings s_;
  redis::Keys keys_;
  redis::Connection conn_;
  std::string client_id_;
  std::vector<std::string> own_client_ids_;  ///< this process's latest connections
  redis::Backoff backoff_ = reconnect_backoff();
  Clock::time_point next_attempt_{};
  bool down_reported_ = false;
  bool ever_connected_ = false;
  std::string down_cause_;
  bool persistence_checked_ = false;
  std::string fatal_;
  std::unordered_map<std::string, Held> held_;
  std::unordered_map<std::string, JobKeys> jobs_;
  std::vector<Pending> outbox_;
  bool recover_due_ = false;
  /// A reconnect: this process never got the deliveries recover() finds, so they count as
  /// handed back. On the first connect they were a previous process's, which may have
  /// died of the task: failed deliveries, as XAUTOCLAIM would count them.
  bool count_as_handed_back_ = false;
  std::string cursor_ = "0-0";
  Clock::time_point next_claim_{};
  Counts counts_;
  uint64_t dead_ = 0, retried_ = 0, handed_back_ = 0;
  uint64_t reconnects_ = 0;
};

}  // namespace shoal::cli

#endif

// File: shoal/client.hpp
//
// A program's side of scale-out (`shoal serve` hosts reading a Redis stream): submit a
// job's tasks and wait for their results, by task id or as the job completes, without
// spawning `shoal submit` and parsing `shoal collect`.
//
//   auto client = shoal::Client::connect({.url = "redis://10.0.0.5:6379"});
//   auto job = client->create_job("resize");            // "resize-9f86d081884c7d65"
//   auto ids = client->submit_many(*job, inputs);       // "resize-…:0", "resize-…:1", …
//   client->seal(*job);                                  // no more tasks: collect can end
//   client->collect(*job, deadline, [](const shoal::TaskResult& r) { …; return true; });
//
// Delivery is at least once: a task may run twice (its host died after running it), and
// a Client gives each task id's first result only, except after a dead letter (crashed or
// timed out on every delivery): a requeued run's result (`shoal dead requeue`) replaces it.
//
// Inputs and outputs are bytes: any value, NUL included, goes through unchanged.
// A job's results expire `result_ttl` after its last one was written (0: kept until
// forget()). A Client is one connection: use it from one thread at a time; it reconnects
// by itself when Redis goes away, for up to `reconnect_for` without an answer.
#ifndef SHOAL_CLIENT_HPP
#define SHOAL_CLIENT_HPP

#include <shoal/export.hpp>
#include <shoal/result.hpp>
#include <shoal/runtime.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shoal {

struct ClientOptions {
  std::string url = "redis://127.0.0.1:6379";  ///< redis://HOST[:PORT][/DB] or unix:///PATH
  std::string password;                          ///< AUTH; empty = none (kept out of `url`)
  std::string stream = "shoal:tasks";            ///< the task stream the hosts serve (redis.stream)
  std::chrono::milliseconds io_timeout{5000};    ///< one command; past it the connection is lost
  std::chrono::milliseconds reconnect_for{60000};  ///< without an answer from Redis: Errc::io; 0 = forever
  uint64_t max_stream_length = 100000;  ///< submit waits while the stream holds more (redis.max_stream_length)
  uint64_t max_input = uint64_t{64} << 20;  ///< a longer input is refused (redis.max_input)
  std::chrono::milliseconds result_ttl = std::chrono::hours(24);  ///< of the jobs created; 0 = keep
  /// Readable (an eventfd, a signalfd, a pipe) when a wait must end: the call returns
  /// Errc::cancelled. Read by the Client, never consumed. -1: none.
  int interrupt_fd = -1;
  /// Lines for a person: a lost connection being retried (`warning`), a connection
  /// back, submit waiting for room in the stream. Null: not told.
  std::function<void(bool warning, const std::string& line)> on_notice;
  std::string name = "shoal client";  ///< starts each notice line
};

/// One task's result, as a host wrote it.
struct TaskResult {
  std::string id;        ///< JOB:SEQ
  std::string job;
  uint64_t seq = 0;
  Outcome outcome;       ///< output and error are the bytes the plugin gave
  std::string consumer;  ///< the host that ran it (redis.consumer)
};

class Client {
 public:
  /// Connects (one attempt: an unreachable server is an error here, a later outage is
  /// retried). Errc::io: no connection; Errc::config: a bad URL; Errc::failed: refused
  /// (AUTH, SELECT, not Redis).
  SHOAL_API static Result<Client> connect(ClientOptions options);
  SHOAL_API Client(Client&&) noexcept;
  SHOAL_API Client& operator=(Client&&) noexcept;
  SHOAL_API ~Client();

  /// A new job, named PREFIX-RANDOM (64 random bits, so that two never share a name).
  /// `prefix`: [A-Za-z0-9._-], at most 64 bytes; empty = the time in ms.
  SHOAL_API Result<std::string> create_job(std::string_view prefix = {});
  /// Queues one task of `job`; its id. Several producers may add to one job, until it is
  /// sealed. Errc::not_found: no such job (never created, or expired).
  SHOAL_API Result<std::string> submit(std::string_view job, std::string_view input);
  /// Queues the tasks in order, pipelined, waiting while the stream is full; their ids.
  /// On an error, `*queued` (when given) tells how many of the first inputs were queued.
  SHOAL_API Result<std::vector<std::string>> submit_many(std::string_view job,
                                                         std::span<const std::string_view> inputs,
                                                         uint64_t* queued = nullptr);
  /// No more tasks: collect() then ends once every task of the job has its result.
  SHOAL_API Result<void> seal(std::string_view job);
  /// The result of one task (JOB:SEQ), waiting until `deadline`: Errc::timeout when it
  /// passes first, Errc::cancelled when interrupt_fd became readable. The same id may be
  /// waited for again (until forget()).
  SHOAL_API Result<TaskResult> wait(std::string_view task_id, std::chrono::steady_clock::time_point deadline);
  /// Calls `on_result` with each task's result as it arrives, once per task id (a
  /// requeued dead letter's second), until the job is sealed and complete, `on_result`
  /// returns false, or `deadline` passes (Errc::timeout; what came is delivered). The
  /// number of results delivered.
  SHOAL_API Result<uint64_t> collect(std::string_view job, std::chrono::steady_clock::time_point deadline,
                                     const std::function<bool(const TaskResult&)>& on_result);
  /// Deletes the job's results and its record in Redis, and what this Client holds of it.
  SHOAL_API Result<void> forget(std::string_view job);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal

#endif  // SHOAL_CLIENT_HPP

#include "redis/streams.hpp"

#include "common/json.hpp"
#include "config/values.hpp"

#include <cctype>
#include <limits>

namespace shoal::detail::redis {

Keys Keys::of(const std::string& stream) {
  return Keys{stream, stream + ":results", stream + ":dead", stream + ":last"};
}

std::string Keys::job_results(std::string_view job) const { return tasks + ":job:" + std::string(job) + ":results"; }
std::string Keys::job_meta(std::string_view job) const { return tasks + ":job:" + std::string(job); }

bool valid_job_name(std::string_view name, size_t max) {
  if (name.empty() || name.size() > max) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

std::string_view job_of(std::string_view task_id) {
  const size_t colon = task_id.rfind(':');
  return colon == std::string_view::npos ? std::string_view() : task_id.substr(0, colon);
}

Args task_entry(const Keys& keys, std::string_view job, uint64_t seq, std::string_view input) {
  const std::string n = std::to_string(seq);
  return {"XADD", keys.tasks, "*", "id", std::string(job) + ":" + n, "job", std::string(job), "seq", n, "input",
          std::string(input)};
}

std::optional<std::string_view> Entry::field(std::string_view name) const {
  for (const auto& [k, v] : fields)
    if (k == name) return std::string_view(v);
  return std::nullopt;
}

std::vector<Entry> parse_entries(ReplyView array) {
  std::vector<Entry> out;
  out.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    const ReplyView item = array[i];
    if (!item[0].is_string()) continue;
    Entry e;
    e.id = std::string(item[0].str());
    const ReplyView kv = item[1];
    for (size_t k = 0; k + 1 < kv.size(); k += 2)
      e.fields.emplace_back(std::string(kv[k].str()), std::string(kv[k + 1].str()));
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<Entry> parse_read(ReplyView reply) {
  // [[stream, [[id, [k, v, ...]], ...]]]; one stream is read at a time.
  if (!reply.is_array() || reply.size() == 0) return {};
  return parse_entries(reply[0][1]);
}

std::string handed_back_field(std::string_view entry_id) { return std::string(entry_id) + "/handed-back"; }

Task task_of(const Entry& entry) {
  Task t;
  t.entry_id = entry.id;
  const auto id = entry.field("id");
  t.task_id = id && !id->empty() ? std::string(*id) : entry.id;
  if (const auto seq = entry.field("seq")) {
    if (!parse_int_in<uint64_t>(*seq, 0, UINT64_MAX, t.seq)) t.seq = 0;
  }
  if (const auto input = entry.field("input")) t.input = std::string(*input);
  if (const auto job = entry.field("job"); job && valid_job_name(*job)) t.job = std::string(*job);
  return t;
}

Args result_entry(const Keys& keys, const Task& task, const Outcome& o, std::string_view consumer) {
  return {"XADD", keys.job_results(task.job), "*", "id", task.task_id, "seq", std::to_string(task.seq), "status",
          std::string(to_string(o.status)), "reason", std::string(to_string(o.reason)), "output", o.output, "error",
          o.error, "worker", std::to_string(o.worker), "attempts", std::to_string(o.attempts), "ns",
          std::to_string(o.duration.count()), "generation", std::to_string(o.generation), "consumer",
          std::string(consumer)};
}

namespace {

template <class T>
T number_or(const Entry& e, std::string_view name, T fallback) {
  T v{};
  const auto text = e.field(name);
  return text && parse_int_in<T>(*text, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), v) ? v
                                                                                                        : fallback;
}

}  // namespace

std::optional<Status> status_of(std::string_view word) {
  for (Status s : {Status::ok, Status::error, Status::crashed, Status::timeout, Status::cancelled, Status::rejected})
    if (to_string(s) == word) return s;
  return std::nullopt;
}

Reason reason_of(std::string_view word) {
  for (uint8_t i = 0; i <= static_cast<uint8_t>(Reason::reentrant); ++i)
    if (to_string(static_cast<Reason>(i)) == word) return static_cast<Reason>(i);
  return Reason::none;
}

std::optional<TaskResult> task_result(const Entry& e) {
  const auto id = e.field("id");
  const auto status = e.field("status");
  if (!id || !status) return std::nullopt;
  TaskResult r;
  r.id = std::string(*id);
  r.job = std::string(job_of(r.id));
  r.seq = number_or<uint64_t>(e, "seq", 0);
  Outcome& o = r.outcome;
  o.status = status_of(*status).value_or(Status::rejected);
  o.reason = reason_of(e.field("reason").value_or("none"));
  o.output = std::string(e.field("output").value_or(""));
  o.error = std::string(e.field("error").value_or(""));
  o.worker = number_or<int32_t>(e, "worker", -1);
  o.attempts = number_or<uint32_t>(e, "attempts", 0);
  o.duration = std::chrono::nanoseconds(number_or<int64_t>(e, "ns", 0));
  o.generation = number_or<uint32_t>(e, "generation", 0);
  r.consumer = std::string(e.field("consumer").value_or(""));
  return r;
}

std::string result_json(const Task& task, const Outcome& outcome, std::string_view consumer) {
  std::string json = outcome_json(task.seq, outcome);
  json.pop_back();  // the closing brace; three keys follow
  json += ",\"id\":";
  append_json_string(json, task.task_id);
  json += ",\"consumer\":";
  append_json_string(json, consumer);
  json += ",\"generation\":";
  json += std::to_string(outcome.generation);
  json += '}';
  return json;
}

bool is_transient(ReplyView reply) {
  if (!reply.is_error()) return false;
  const std::string_view e = reply.str();
  const std::string_view code = e.substr(0, e.find(' '));
  for (std::string_view c : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "OOM", "CLUSTERDOWN"})
    if (code == c) return true;
  return false;
}

Result<void> ensure_group(Connection& conn, const Keys& keys, const std::string& group) {
  // From 0, not $: tasks submitted before the first host started belong to the group.
  auto r = conn.command({"XGROUP", "CREATE", keys.tasks, group, "0", "MKSTREAM"});
  if (!r) return r.error();
  if (!r->is_error() || r->str().starts_with("BUSYGROUP")) return {};
  return Error{is_transient(r->view()) ? Errc::io : Errc::failed,
               "XGROUP CREATE " + keys.tasks + " " + group + ": " + std::string(r->str())};
}

Result<void> check_types(Connection& conn, const Keys& keys) {
  const std::pair<const std::string*, std::string_view> expected[] = {
      {&keys.tasks, "stream"}, {&keys.results, "stream"}, {&keys.dead, "stream"}, {&keys.last, "hash"}};
  std::vector<Args> asks;
  for (const auto& [key, type] : expected) asks.push_back({"TYPE", *key});
  auto replies = conn.pipeline(asks);
  if (!replies) return replies.error();
  for (size_t i = 0; i < asks.size(); ++i) {
    if ((*replies)[i].is_error()) continue;  // TYPE renamed or refused: nothing to tell
    const std::string_view type = (*replies)[i].str();
    if (type != "none" && type != expected[i].second)
      return Error{Errc::failed, "key " + *expected[i].first + " is a " + std::string(type) + ", not a " +
                                     std::string(expected[i].second)};
  }
  return {};
}

Result<std::optional<std::string>> appendonly(Connection& conn) {
  auto r = conn.command({"CONFIG", "GET", "appendonly"});
  if (!r) return r.error();
  const ReplyView v = r->view();
  if (v.size() != 2 || !v[1].is_string()) return std::optional<std::string>();
  return std::optional<std::string>(std::string(v[1].str()));
}

}  // namespace shoal::detail::redis

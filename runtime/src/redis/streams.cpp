#include "redis/streams.hpp"

#include "common/json.hpp"
#include "config/values.hpp"

namespace shoal::detail::redis {

Keys Keys::of(const std::string& stream) {
  return Keys{stream, stream + ":results", stream + ":dead", stream + ":last"};
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
  return t;
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

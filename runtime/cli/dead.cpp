// `shoal dead`: the dead letters of a task stream, which `shoal serve` writes to
// STREAM:dead when a task used up redis.max_deliveries (redis/streams.hpp has the
// layout). `list` and `show` read them; `requeue` turns one back into a task; `purge`
// deletes them. Requeue and purge change the stream only in transactions, so a crash or
// a lost connection leaves each dead letter either where it was or requeued, never both
// and never neither.
#include "options.hpp"
#include "scale_out.hpp"
#include "scale_out_shared.hpp"
#include "terminal.hpp"

#include "common/json.hpp"
#include "common/printable.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

namespace shoal::cli {

namespace {

constexpr std::string_view kDeadUsage =
    "Usage: shoal dead list    [CONFIG] [--json] [options]\n"
    "       shoal dead show    ID [CONFIG] [--json] [options]\n"
    "       shoal dead requeue ID... | --all [CONFIG] [options]\n"
    "       shoal dead purge   [ID...] [CONFIG] [options]\n"
    "\n"
    "The dead letters of STREAM (in STREAM:dead): tasks that crashed or timed out on\n"
    "redis.max_deliveries deliveries, kept with their input and last outcome. ID is a\n"
    "dead letter's entry id, the first word of each line of 'list' (1765012345678-0);\n"
    "any other argument is CONFIG.\n"
    "\n"
    "  list      one line per dead letter, oldest first: entry id, when it died\n"
    "            (UTC), task id, last status, deliveries, the start of the error;\n"
    "            the count on standard error. --json: one object a line instead:\n"
    "            {\"entry\":\"...\",\"time\":\"...\",\"id\":\"...\",\"deliveries\":3,\n"
    "             \"input\":\"...\",\"result\":{the last outcome, as collect prints it}}\n"
    "  show ID   one dead letter whole: its input and last outcome (--json: as list)\n"
    "  requeue   queues each again as a new task on STREAM (same task id and input,\n"
    "            a fresh delivery count) and deletes its dead letter, in one\n"
    "            transaction each; --all: those there are when it starts. Waits\n"
    "            while STREAM holds redis.max_stream_length entries. One line each:\n"
    "            ENTRY requeued as NEW-ENTRY (id TASK-ID)\n"
    "  purge     deletes the dead letters named, or all without an ID; says how many\n"
    "\n"
    SHOAL_CLIENT_REDIS_OPTIONS
    "  --json          list, show: JSON lines\n"
    "  --all           requeue: every dead letter\n"
    "  -h, --help      show this help\n"
    "\n"
    "Exit status: 0 done; 1 an ID named no dead letter (the others were done);\n"
    "2 usage, config or Redis error (a requeue or purge cut short by one did all\n"
    "or nothing of each dead letter: 'list' shows what is left); 128+N stopped by\n"
    "signal N.\n";

constexpr size_t kPage = 500;

bool is_number(std::string_view d) {
  return !d.empty() && d.size() <= 20 && std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// An entry id as Redis writes them: MS-SEQ, both decimal.
bool is_entry_id(std::string_view s) {
  const auto dash = s.find('-');
  return dash != std::string_view::npos && is_number(s.substr(0, dash)) && is_number(s.substr(dash + 1));
}

// When the dead letter was written: the milliseconds an entry id starts with, in UTC.
std::string entry_time(std::string_view id) {
  const auto ms = std::strtoull(std::string(id.substr(0, id.find('-'))).c_str(), nullptr, 10);
  const auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  char text[32] = "?";
  if (::gmtime_r(&secs, &tm) != nullptr) std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// The last outcome a dead letter holds, parsed; a discarded value when serve did not
// write it (someone XADDed by hand).
nlohmann::json outcome_of(const redis::Entry& e) {
  return nlohmann::json::parse(e.field("result").value_or(""), nullptr, false);
}

std::string text_field(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return {};
  return j[key].get<std::string>();
}

// `list`'s line: ENTRY  TIME  TASK-ID  STATUS  N deliveries  ERROR (cut short).
std::string list_line(const redis::Entry& e) {
  const nlohmann::json outcome = outcome_of(e);
  const std::string status = text_field(outcome, "status");
  const std::string deliveries(e.field("deliveries").value_or("?"));
  return e.id + "  " + entry_time(e.id) + "  " + detail::printable(e.field("id").value_or("-"), 80) + "  " +
         (status.empty() ? "?" : status) + "  " + deliveries + (deliveries == "1" ? " delivery  " : " deliveries  ") +
         detail::printable(text_field(outcome, "error"), 120) + "\n";
}

// `--json`'s object: the dead letter's fields, its last outcome as an object.
std::string json_line(const redis::Entry& e) {
  std::string out = "{\"entry\":";
  detail::append_json_string(out, e.id);
  out += ",\"time\":\"" + entry_time(e.id) + "\",\"id\":";
  detail::append_json_string(out, e.field("id").value_or(""));
  const std::string deliveries(e.field("deliveries").value_or(""));
  out += ",\"deliveries\":" + (is_number(deliveries) ? deliveries : std::string("null")) + ",\"input\":";
  detail::append_json_string(out, e.field("input").value_or(""));
  out += ",\"result\":";
  if (outcome_of(e).is_object()) out += e.field("result").value_or("null");
  else detail::append_json_string(out, e.field("result").value_or(""));
  return out + "}\n";
}

// `show`'s text: one field a line, the input and the outcome whole.
std::string show_text(const redis::Entry& e) {
  std::string out = "entry       " + e.id + "\ntime        " + entry_time(e.id) + "\n";
  out += "id          " + detail::printable(e.field("id").value_or("-")) + "\n";
  out += "deliveries  " + detail::printable(e.field("deliveries").value_or("?")) + "\n";
  out += "input       " + detail::printable(e.field("input").value_or("")) + "\n";
  out += "result      " + detail::printable(e.field("result").value_or("")) + "\n";
  return out;
}

// The dead letters of one stream, over a connection that is not re-opened: a command
// that fails ends the command with its error (nothing is left half done, see above).
class DeadLetters {
 public:
  DeadLetters(RedisLink& link, const RedisConfig& settings)
      : link_(link), keys_(redis::Keys::of(settings.stream)), max_stream_length_(settings.max_stream_length) {}

  const redis::Keys& keys() const { return keys_; }

  Result<void> check() {
    auto t = redis::check_types(link_.conn(), keys_);
    if (!t) return Error{t.error().code, link_.url().display + ": " + t.error().message};
    return {};
  }

  // The dead letters after `after` ("-" for the first) up to `last`, at most kPage.
  Result<std::vector<redis::Entry>> page(const std::string& after, const std::string& last = "+") {
    auto r = ask({"XRANGE", keys_.dead, after == "-" ? after : "(" + after, last, "COUNT", std::to_string(kPage)});
    if (!r) return r.error();
    return redis::parse_entries(r->view());
  }

  Result<std::optional<redis::Entry>> find(const std::string& id) {
    auto r = ask({"XRANGE", keys_.dead, id, id});
    if (!r) return r.error();
    auto entries = redis::parse_entries(r->view());
    if (entries.empty()) return std::optional<redis::Entry>();
    return std::optional<redis::Entry>(std::move(entries.front()));
  }

  // The id of the newest dead letter; "" when there is none.
  Result<std::string> newest() {
    auto r = ask({"XREVRANGE", keys_.dead, "+", "-", "COUNT", "1"});
    if (!r) return r.error();
    auto entries = redis::parse_entries(r->view());
    return entries.empty() ? std::string() : entries.front().id;
  }

  struct Requeued {
    std::string entry;  ///< the new task entry
    std::string task_id;
  };

  // Queues dead letter `id` again and deletes it, in one transaction; nullopt when there
  // is no such dead letter (never was, or someone else took it). WATCH makes the
  // transaction fail when the dead letters changed after they were read (another requeue
  // or purge of the same one, a new dead letter): it is read again then.
  Result<std::optional<Requeued>> requeue(const std::string& id) {
    for (int attempt = 0;; ++attempt) {
      if (attempt == 1000)
        return Error{Errc::failed, "requeue " + id + ": " + keys_.dead + " changed at every one of 1000 attempts"};
      if (auto w = ask({"WATCH", keys_.dead}); !w) return w.error();
      auto found = find(id);
      if (!found || !*found) {
        (void)link_.conn().command({"UNWATCH"});
        if (!found) return found.error();
        return std::optional<Requeued>();
      }
      if (auto room = wait_for_room(); !room) {
        (void)link_.conn().command({"UNWATCH"});
        return room.error();
      }
      const redis::Entry& e = **found;
      // The task as submit queued it, in its job; a dead letter written before jobs keeps
      // its seq in the outcome only.
      redis::Args add = {"XADD", keys_.tasks, "*", "id", std::string(e.field("id").value_or(""))};
      if (const auto job = e.field("job"); job && redis::valid_job_name(*job))
        add.insert(add.end(), {"job", std::string(*job)});
      if (const auto seq = e.field("seq")) {
        add.insert(add.end(), {"seq", std::string(*seq)});
      } else if (const auto outcome = outcome_of(e); outcome.is_object() && outcome.contains("seq") &&
                                                     outcome["seq"].is_number_unsigned()) {
        add.insert(add.end(), {"seq", std::to_string(outcome["seq"].get<uint64_t>())});
      }
      add.insert(add.end(), {"input", std::string(e.field("input").value_or(""))});
      auto replies = link_.conn().pipeline({{"MULTI"}, add, {"XDEL", keys_.dead, id}, {"EXEC"}});
      if (!replies) return replies.error();
      const redis::ReplyView done = replies->back().view();
      if (done.is_nil()) continue;  // the dead letters changed meanwhile
      if (!done.is_array()) return refusal("requeue " + id, *replies);
      if (done[0].is_error()) return refusal("XADD " + keys_.tasks, *replies);
      return std::optional<Requeued>(Requeued{std::string(done[0].str()), std::string(e.field("id").value_or(""))});
    }
  }

  // Deletes dead letter `id`; false when there is none.
  Result<bool> purge(const std::string& id) {
    auto r = ask({"XDEL", keys_.dead, id});
    if (!r) return r.error();
    return r->view().integer() > 0;
  }

  // Deletes them all; how many there were. Counted in the same transaction, so a dead
  // letter written meanwhile is either counted and deleted or neither.
  Result<int64_t> purge_all() {
    auto replies = link_.conn().pipeline({{"MULTI"}, {"XLEN", keys_.dead}, {"DEL", keys_.dead}, {"EXEC"}});
    if (!replies) return replies.error();
    const redis::ReplyView done = replies->back().view();
    if (!done.is_array() || done[0].is_error()) return refusal("purge " + keys_.dead, *replies);
    return static_cast<int64_t>(done[0].integer());
  }

 private:
  Result<redis::Reply> ask(const redis::Args& args) {
    auto r = link_.conn().command(args);
    if (!r) return r.error();
    if (r->is_error())
      return Error{Errc::failed, link_.url().display + ": " + args[0] + " " + (args.size() > 1 ? args[1] : "") + ": " +
                                     std::string(r->str())};
    return r;
  }

  // The first error among a transaction's replies (EXECABORT names none of its own).
  Error refusal(const std::string& what, const std::vector<redis::Reply>& replies) {
    std::string why = "refused";
    for (const auto& r : replies)
      if (r.is_error()) {
        why = std::string(r.str());
        if (!why.starts_with("EXECABORT")) break;
      }
    const redis::ReplyView done = replies.back().view();
    for (size_t i = 0; done.is_array() && i < done.size(); ++i)
      if (done[i].is_error()) why = std::string(done[i].str());
    return Error{Errc::failed, link_.url().display + ": " + what + ": " + why};
  }

  // As submit does: the stream's bound holds for tasks coming back too.
  Result<void> wait_for_room() {
    redis::Backoff wait(std::chrono::milliseconds(20), std::chrono::seconds(1));
    bool reported = false;
    for (;;) {
      auto len = ask({"XLEN", keys_.tasks});
      if (!len) return len.error();
      const auto held = static_cast<uint64_t>(std::max<long long>(0, len->view().integer()));
      if (held < max_stream_length_) return {};
      if (!reported) {
        reported = true;
        print_info("dead: " + keys_.tasks + " holds " + std::to_string(held) + " entries (redis.max_stream_length " +
                   std::to_string(max_stream_length_) + "): waiting");
      }
      if (!link_.pause(wait.next())) return Error{Errc::io, "stopped"};  // failed() reports the signal
    }
  }

  RedisLink& link_;
  redis::Keys keys_;
  uint64_t max_stream_length_;
};

int write_out(const std::string& text) {
  const int err = text.empty() ? 0 : write_all(STDOUT_FILENO, text.data(), text.size());
  if (err != 0 && err != EPIPE) print_error("cannot write output (standard output): " + errno_text(err));
  return err;
}

int list(DeadLetters& dead, bool json) {
  uint64_t n = 0;
  std::string after = "-";
  for (;;) {
    auto entries = dead.page(after);
    if (!entries) {
      print_error("dead: " + entries.error().message);
      return 2;
    }
    if (entries->empty()) break;
    std::string out;
    for (const auto& e : *entries) out += json ? json_line(e) : list_line(e);
    if (const int err = write_out(out); err != 0) return err == EPIPE ? 0 : 2;
    n += entries->size();
    after = entries->back().id;
  }
  print_info(std::to_string(n) + (n == 1 ? " dead letter in " : " dead letters in ") + dead.keys().dead);
  return 0;
}

}  // namespace

std::string_view dead_usage() noexcept { return kDeadUsage; }

int dead_command(int argc, char** argv) {
  const std::string action = argc > 0 ? argv[0] : "";
  if (action == "-h" || action == "--help") {
    std::fwrite(kDeadUsage.data(), 1, kDeadUsage.size(), stdout);
    return 0;
  }
  if (action != "list" && action != "show" && action != "requeue" && action != "purge") {
    print_error(action.empty() ? "dead: missing list, show, requeue or purge (see 'shoal dead --help')"
                               : "dead: unknown action '" + detail::printable(action, 60) +
                                     "' (list, show, requeue or purge; see 'shoal dead --help')");
    return 2;
  }
  RedisFlags flags;
  bool json = false, all = false;
  const OptionSpec specs[] = {{"--redis", &flags.url},
                              {"--redis-password-file", &flags.password_file},
                              {"--stream", &flags.stream},
                              {"--json", nullptr, &json},
                              {"--all", nullptr, &all}};
  std::vector<std::string> positional;
  const std::string command = "dead " + action;
  if (auto code = parse_options({command, kDeadUsage, "ID", 0, SIZE_MAX}, argc - 1, argv + 1, specs, positional))
    return *code;
  std::vector<std::string> config, ids;
  for (auto& p : positional) (is_entry_id(p) ? ids : config).push_back(std::move(p));
  const auto usage = [&](const std::string& what) {
    print_error(command + ": " + what + " (see 'shoal dead --help')");
    return 2;
  };
  if (config.size() > 1)
    return usage("'" + detail::printable(config[1], 60) + "' is not a dead letter's entry id (such as 1765012345678-0)");
  if (json && action != "list" && action != "show") return usage("--json is for list and show");
  if (all && action != "requeue") return usage("--all is for requeue");
  if (action == "list" && !ids.empty()) return usage("list takes no ID");
  if (action == "show" && ids.size() != 1) return usage("show takes one ID");
  if (action == "requeue" && ids.empty() == !all) return usage("requeue takes IDs or --all");

  StopSignals signals;
  ignore_sigpipe();
  auto target = redis_target(config, flags, "dead");
  if (!target) {
    print_error(target.error().message);
    return 2;
  }
  RedisLink link(target->url, signals, "dead");
  if (auto o = link.open(); !o) {
    print_error(o.error().message);
    return 2;
  }
  DeadLetters dead(link, target->settings);
  if (auto c = dead.check(); !c) {
    print_error(c.error().message);
    return 2;
  }
  const auto failed = [&](const Error& e) {
    if (int sig = signals.poll(); sig != 0 || link.stopped_by() != 0) return 128 + (sig != 0 ? sig : link.stopped_by());
    print_error(command + ": " + e.message);
    return 2;
  };
  const auto unknown = [&](const std::string& id) {
    print_error(command + ": no dead letter " + id + " in " + dead.keys().dead);
  };

  if (action == "list") return list(dead, json);
  if (action == "show") {
    auto found = dead.find(ids[0]);
    if (!found) return failed(found.error());
    if (!*found) {
      unknown(ids[0]);
      return 1;
    }
    const int err = write_out(json ? json_line(**found) : show_text(**found));
    return err == 0 || err == EPIPE ? 0 : 2;
  }
  if (action == "purge" && ids.empty()) {
    auto n = dead.purge_all();
    if (!n) return failed(n.error());
    print_info("purged " + std::to_string(*n) + (*n == 1 ? " dead letter from " : " dead letters from ") +
               dead.keys().dead);
    return 0;
  }
  if (all) {
    // Those there are now: a task requeued here that dies again before the end would
    // otherwise come round again.
    auto last = dead.newest();
    if (!last) return failed(last.error());
    for (std::string after = "-"; !last->empty();) {
      auto entries = dead.page(after, *last);
      if (!entries) return failed(entries.error());
      if (entries->empty()) break;
      for (const auto& e : *entries) ids.push_back(e.id);
      after = entries->back().id;
    }
  }
  uint64_t done = 0;
  int code = 0;
  for (const auto& id : ids) {
    if (action == "purge") {
      auto gone = dead.purge(id);
      if (!gone) return failed(gone.error());
      if (!*gone) {
        unknown(id);
        code = 1;
      }
      done += *gone ? 1u : 0u;
      continue;
    }
    auto added = dead.requeue(id);
    if (!added) return failed(added.error());
    if (!*added) {
      // With --all, another requeue or a purge took it first: nothing to report.
      if (!all) unknown(id);
      code = all ? code : 1;
      continue;
    }
    ++done;
    // The requeue is done whether or not anyone reads this (a closed pipe is no error).
    const std::string line = id + " requeued as " + (*added)->entry + " (id " + detail::printable((*added)->task_id, 80) + ")\n";
    if (const int err = write_out(line); err != 0 && err != EPIPE) return 2;
  }
  print_info((action == "purge" ? "purged " : "requeued ") + std::to_string(done) +
             (done == 1 ? " dead letter" : " dead letters") + (action == "purge" ? " from " : " to ") +
             (action == "purge" ? dead.keys().dead : dead.keys().tasks));
  return code;
}

}  // namespace shoal::cli

#include "serve_watch.hpp"

namespace shoal::cli {

namespace {

// XPENDING's summary: [count, first, last, [[consumer, count], ...]]; this consumer's count
// (0 when it holds none: it is not listed then).
std::optional<uint64_t> pending_of(redis::ReplyView r, std::string_view consumer) {
  if (!r.is_array() || r.size() < 4) return std::nullopt;
  const redis::ReplyView per = r[3];
  for (size_t i = 0; i < per.size(); ++i)
    if (per[i][0].str() == consumer) return std::strtoull(std::string(per[i][1].str()).c_str(), nullptr, 10);
  return 0;
}

// XINFO GROUPS: one flat field/value array per group; `lag` is nil when Redis cannot tell
// (and missing before Redis 7).
std::optional<uint64_t> lag_of(redis::ReplyView r, std::string_view group) {
  for (size_t g = 0; g < r.size(); ++g) {
    const redis::ReplyView fields = r[g];
    bool ours = false;
    std::optional<uint64_t> lag;
    for (size_t k = 0; k + 1 < fields.size(); k += 2) {
      if (fields[k].str() == "name") ours = fields[k + 1].str() == group;
      if (fields[k].str() == "lag" && fields[k + 1].is_integer())
        lag = static_cast<uint64_t>(fields[k + 1].integer());
    }
    if (ours) return lag;
  }
  return std::nullopt;
}

}  // namespace

void ServeWatch::gather(ServeState& state) {
  figures_.connected = state.connected();
  figures_.reconnects = state.reconnects();
  figures_.dead_lettered = state.dead_lettered();
  figures_.outbox = state.outbox_size();
  if (state.connected() && Clock::now() >= next_figures_) {
    next_figures_ = Clock::now() + kFiguresEvery;
    auto replies = state.conn().pipeline({{"XPENDING", state.keys().tasks, state.settings().group},
                                          {"XINFO", "GROUPS", state.keys().tasks}});
    if (!replies) {
      state.lost(replies.error());
      figures_.connected = false;
    } else {
      figures_.pending = pending_of((*replies)[0].view(), state.consumer());
      figures_.lag = lag_of((*replies)[1].view(), state.settings().group);
    }
  }
  metrics_.publish(figures_);
}

void ServeWatch::write_stats(const ServeState& state, bool final) {
  if (options_.stats.empty() || !stats_error_.empty()) return;
  const uint64_t written = state.counts().total();
  RunStats s{std::chrono::duration<double>(Clock::now() - started_).count(), final, written + state.held(), written,
             {{pool_name_, pool_.stats()}}, figures_};
  stats_error_ = write_stats_file(options_.stats, stats_json(s));
  next_stats_ = Clock::now() + options_.stats_every;
}

std::string ServeWatch::begin(const ServeState& state) {
  write_stats(state, false);
  return stats_error_;
}

void ServeWatch::turn(ServeState& state) {
  gather(state);
  if (Clock::now() >= next_stats_) write_stats(state, false);
}

std::string ServeWatch::end(const ServeState& state) {
  figures_.connected = state.connected();
  figures_.outbox = state.outbox_size();
  figures_.dead_lettered = state.dead_lettered();
  write_stats(state, true);
  return stats_error_;
}

}  // namespace shoal::cli

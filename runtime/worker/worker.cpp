#include "worker.hpp"

#include "common/log.hpp"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

struct shoal_ctx {
  shoal::detail::Worker* worker;
};

namespace shoal::detail {

namespace {

Worker* of(shoal_ctx* ctx) { return ctx->worker; }

void* host_reserve(shoal_ctx* c, size_t n) { return of(c)->reserve(n); }
shoal_status host_emit(shoal_ctx* c, const void* d, size_t n) { return of(c)->emit(d, n); }
void host_report_error(shoal_ctx* c, shoal_status code, const char* msg) { of(c)->report_error(code, msg); }
int32_t host_should_stop(shoal_ctx* c) { return of(c)->should_stop() ? 1 : 0; }
shoal_status host_add_finalizer(shoal_ctx* c, int32_t prio, shoal_finalizer_fn fn, void* arg) {
  if (fn == nullptr) return SHOAL_E_INVALID;
  of(c)->add_finalizer(prio, fn, arg);
  return SHOAL_OK;
}
void* host_resource(shoal_ctx*, const char*) { return nullptr; }
const char* host_param(shoal_ctx* c, const char* key) { return key ? of(c)->param(key) : nullptr; }
void host_log(shoal_ctx* c, int32_t level, const char* msg) { of(c)->log(level, msg ? msg : ""); }
uint32_t host_worker_index(shoal_ctx* c) { return of(c)->index(); }

shoal_ctx g_ctx;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Spinning longer than this before sleeping burns a core for nothing: a task that has not
// arrived within ~10 µs is not part of a back-to-back stream.
constexpr int64_t kSpinNs = 10'000;

}  // namespace

bool Worker::fatal(const std::string& message) {
  (void)write_all(kWorkerControlFd, encode_message(MsgType::fatal, message));
  return false;
}

bool Worker::apply_init(const KeyValues& kv) {
  for (const auto& [k, v] : kv) {
    if (k == "pool") pool_ = v;
    else if (k == "plugin") plugin_path_ = v;
    else if (k == "index") index_ = static_cast<uint32_t>(std::stoul(v));
    else if (k == "capacity") capacity_ = std::stoull(v);
    else if (k == "segment_size") segment_size_ = std::stoull(v);
    else if (k == "grace_ns") grace_ns_ = std::stoll(v);
    else if (k == "fini_priority") fini_priority_ = static_cast<int32_t>(std::stol(v));
    else if (k.rfind("param.", 0) == 0) params_[k.substr(6)] = v;
  }
  return capacity_ != 0 && !plugin_path_.empty();
}

bool Worker::map_segment() {
  // The descriptor and the layout come from the host; check that they agree before
  // mapping anything, so a mismatch is a clear error instead of a SIGBUS later.
  struct stat st{};
  SegmentLayout layout;
  if (::fstat(kWorkerSegmentFd, &st) != 0) return fatal("segment descriptor missing");
  auto header = map_shared(kWorkerSegmentFd, 0, kPageSize);
  if (!header) return fatal(header.error().message);
  header_map_ = std::move(*header);
  pool_header_ = reinterpret_cast<PoolHeader*>(header_map_.data());
  layout.workers = pool_header_->workers;
  layout.capacity = pool_header_->ring_capacity;
  if (pool_header_->magic != kSegmentMagic || pool_header_->version != kSegmentVersion ||
      layout.capacity != capacity_ || index_ >= layout.workers ||
      static_cast<uint64_t>(st.st_size) < layout.total())
    return fatal("shared-memory segment does not match this worker (version or layout)");
  auto block = map_shared(kWorkerSegmentFd, layout.block_offset(index_), kPageSize);
  auto tasks = map_ring(kWorkerSegmentFd, layout.task_ring_offset(index_), capacity_);
  auto results = map_ring(kWorkerSegmentFd, layout.result_ring_offset(index_), capacity_);
  if (!block) return fatal(block.error().message);
  if (!tasks) return fatal(tasks.error().message);
  if (!results) return fatal(results.error().message);
  block_map_ = std::move(*block);
  task_map_ = std::move(*tasks);
  result_map_ = std::move(*results);
  block_ = reinterpret_cast<WorkerBlock*>(block_map_.data());
  tasks_ = RingConsumer(&block_->tasks, task_map_.data(), capacity_);
  results_ = RingProducer(&block_->results, result_map_.data(), capacity_);
  return true;
}

bool Worker::start() {
  Message init;
  if (!read_message(kWorkerControlFd, init) || init.type != MsgType::init) return false;
  auto kv = decode_kv(init.body);
  if (!kv || !apply_init(*kv)) return fatal("malformed init message from the host");
  if (!map_segment()) return false;

  g_ctx.worker = this;
  host_.struct_size = sizeof(shoal_host);
  host_.abi_version = SHOAL_ABI_VERSION;
  host_.reserve = host_reserve;
  host_.emit = host_emit;
  host_.report_error = host_report_error;
  host_.should_stop = host_should_stop;
  host_.add_finalizer = host_add_finalizer;
  host_.resource = host_resource;
  host_.param = host_param;
  host_.log = host_log;
  host_.worker_index = host_worker_index;

  auto api = load_plugin(plugin_path_);
  if (!api) return fatal(api.error().message);
  api_ = *api;
  failed_ = false;
  error_.clear();
  shoal_status rc = api_.init(&host_, &g_ctx, &user_);
  if (rc != SHOAL_OK || failed_) {
    std::string why = error_.empty() ? "returned " + std::to_string(rc) : error_;
    return fatal("plugin " + plugin_path_ + ": init failed: " + why);
  }
  chain_.add(fini_priority_, "plugin fini", [this] { api_.fini(&g_ctx, user_); });
  if (!write_all(kWorkerControlFd, encode_message(MsgType::ready, {}))) return false;
  std::thread([this] { watch_host(); }).detach();
  return true;
}

// The control socket reaches EOF when the host process is gone, however it died. The
// worker then stops as on terminate; a task that ignores should_stop past the grace
// period cannot be waited for, since nobody is left to collect its result.
void Worker::watch_host() {
  Message m;
  while (read_message(kWorkerControlFd, m)) {
  }
  host_gone_.store(true);
  block_->worker_wake.fetch_add(1);
  futex_wake_all(&block_->worker_wake);
  struct timespec ts{static_cast<time_t>(grace_ns_ / 1000000000), static_cast<long>(grace_ns_ % 1000000000)};
  while (::nanosleep(&ts, &ts) != 0) {
  }
  _exit(kExitHostGone);
}

template <class Pred>
void Worker::wait_until(Pred ready) {
  int64_t spin_until = now_ns() + kSpinNs;
  for (int i = 0;; ++i) {
    if (ready()) return;
    if ((i & 63) == 63 && now_ns() > spin_until) break;
    __builtin_ia32_pause();
  }
  for (;;) {
    uint32_t seq = block_->worker_wake.load(std::memory_order_acquire);
    block_->worker_sleeping.store(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ready()) break;
    // The timeout is a safety net only; every state change bumps worker_wake.
    futex_wait(&block_->worker_wake, seq, 1'000'000'000);
    if (ready()) break;
  }
  block_->worker_sleeping.store(0, std::memory_order_relaxed);
}

void Worker::wake_host() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (pool_header_->host_sleeping.load(std::memory_order_relaxed) != 0 &&
      pool_header_->host_sleeping.exchange(0) != 0)
    eventfd_signal(kWorkerEventFd);
}

bool Worker::should_stop() const noexcept {
  return host_gone_.load(std::memory_order_relaxed) ||
         block_->stop.load(std::memory_order_relaxed) == static_cast<uint32_t>(StopMode::now);
}

std::byte* Worker::result_space(uint64_t bytes) {
  std::byte* p = results_.reserve(bytes);
  if (p != nullptr) return p;
  wait_until([&] { return (p = results_.reserve(bytes)) != nullptr || results_.corrupt() || host_gone_.load(); });
  return p;
}

void* Worker::reserve(size_t size) {
  if (out_record_ == nullptr) {
    report_error(SHOAL_E_INVALID, "reserve called outside of shoal_run");
    return nullptr;
  }
  uint64_t need = record_bytes(out_size_ + size);
  if (size > capacity_ || need > capacity_) {
    report_error(SHOAL_E_NO_SPACE, ("output of " + std::to_string(out_size_ + size) +
                                    " bytes exceeds the result ring capacity of " + std::to_string(capacity_) +
                                    " bytes (raise queue.capacity)")
                                       .c_str());
    return nullptr;
  }
  std::byte* base = result_space(need);
  if (base == nullptr) return nullptr;
  void* at = base + sizeof(RecordHeader) + out_size_;
  out_size_ += size;
  return at;
}

shoal_status Worker::emit(const void* data, size_t size) {
  void* p = reserve(size);
  if (p == nullptr) return SHOAL_E_NO_SPACE;
  if (size != 0) std::memcpy(p, data, size);
  return SHOAL_OK;
}

void Worker::report_error(shoal_status, const char* msg) {
  failed_ = true;
  error_ = msg != nullptr && *msg != '\0' ? msg : "plugin reported an error";
}

const char* Worker::param(const char* key) const {
  auto it = params_.find(key);
  return it == params_.end() ? nullptr : it->second.c_str();
}

void Worker::log(int32_t level, const char* msg) const {
  auto lv = level <= SHOAL_LOG_DEBUG ? LogLevel::debug
            : level == SHOAL_LOG_INFO ? LogLevel::info
            : level == SHOAL_LOG_WARN ? LogLevel::warn
                                      : LogLevel::error;
  log_line(lv, pool_ + "[" + std::to_string(index_) + "]: " + msg);
}

void Worker::add_finalizer(int32_t priority, shoal_finalizer_fn fn, void* arg) {
  chain_.add(priority, "plugin finalizer", [fn, arg] { fn(arg); });
}

bool Worker::next_task(RecordView& out) {
  for (;;) {
    auto stop = static_cast<StopMode>(block_->stop.load(std::memory_order_acquire));
    if (stop == StopMode::now || host_gone_.load()) return false;
    if (auto rec = tasks_.peek()) {
      out = *rec;
      return true;
    }
    if (tasks_.corrupt()) return false;
    if (stop == StopMode::drain) return false;
    wait_until([&] {
      return tasks_.has_data() || block_->stop.load(std::memory_order_relaxed) != 0 || host_gone_.load();
    });
  }
}

void Worker::run_task(const RecordView& task) {
  block_->running_task.store(task.header.task_id, std::memory_order_release);
  out_record_ = result_space(record_bytes(0));
  out_size_ = 0;
  failed_ = false;
  error_.clear();
  if (out_record_ == nullptr) return;  // host gone: the stop path takes over
  int64_t t0 = now_ns();
  shoal_status rc = api_.run(&g_ctx, user_, shoal_bytes{task.payload, task.header.size});
  int64_t elapsed = now_ns() - t0;
  tasks_.consume(task);
  if (rc != SHOAL_OK && !failed_) report_error(rc, ("shoal_run returned " + std::to_string(rc)).c_str());
  // The error text follows the output; cut it so that the record still fits the ring.
  uint64_t room = max_payload(capacity_) - out_size_;
  if (error_.size() > room) error_.resize(room);
  std::byte* base = result_space(record_bytes(out_size_ + error_.size()));
  out_record_ = nullptr;
  if (base == nullptr) return;
  std::memcpy(base + sizeof(RecordHeader) + out_size_, error_.data(), error_.size());
  RecordHeader h{};
  h.task_id = task.header.task_id;
  h.size = static_cast<uint32_t>(out_size_ + error_.size());
  h.status = static_cast<uint32_t>(failed_ ? WireStatus::error : WireStatus::ok);
  h.error_size = static_cast<uint32_t>(error_.size());
  h.duration_ns = static_cast<uint64_t>(elapsed);
  write_header(base, h);
  results_.advance(record_bytes(h.size));
  results_.publish();
  block_->running_task.store(0, std::memory_order_release);
  wake_host();
}

int Worker::serve() {
  RecordView task{};
  while (next_task(task)) run_task(task);
  chain_.run_all();
  return 0;
}

}  // namespace shoal::detail

// Worker start: the Init message, the segment, resources in their listed order, then the
// plugin. Anything opened before a failure is closed again through the chain.
#include "worker.hpp"

#include "common/log.hpp"
#include "ipc/fatal.hpp"
#include "plugin/elf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>
#include <variant>

namespace shoal::detail {

namespace {

void* host_reserve(shoal_ctx* c, size_t n) { return c->worker->reserve(n); }
shoal_status host_emit(shoal_ctx* c, const void* d, size_t n) { return c->worker->emit(d, n); }
void host_report_error(shoal_ctx* c, shoal_status code, const char* msg) { c->worker->report_error(code, msg); }
int32_t host_should_stop(shoal_ctx* c) { return c->worker->should_stop() ? 1 : 0; }
shoal_status host_add_finalizer(shoal_ctx* c, int32_t prio, shoal_finalizer_fn fn, void* arg) {
  if (fn == nullptr) return SHOAL_E_INVALID;
  c->worker->add_finalizer(prio, fn, arg);
  return SHOAL_OK;
}
void* host_resource(shoal_ctx* c, const char* name) { return name ? c->worker->resource(name) : nullptr; }
const char* host_param(shoal_ctx* c, const char* key) {
  if (key == nullptr) return nullptr;
  auto it = c->params->find(key);
  if (it != c->params->end()) return it->second.c_str();
  if (c->declared != nullptr && c->declared->find(key) == nullptr) c->worker->undeclared_param(c, key);
  return nullptr;
}
void host_log(shoal_ctx* c, int32_t level, const char* msg) { c->worker->log(c, level, msg ? msg : ""); }
uint32_t host_worker_index(shoal_ctx* c) { return c->worker->index(); }
const void* host_shared(shoal_ctx* c, const char* name, size_t* size) { return c->worker->shared(name, size); }

}  // namespace

bool Worker::fatal(Errc code, const std::string& message) {
  send_control(MsgType::fatal, encode_fatal(code, message));
  return false;
}

// The rings' pages are the memfd's, allocated (and zeroed) on first touch: by the host
// writing a task or the worker writing a result, each side then faulting the page into
// its own mapping. On this 2-vCPU VM, a tiny task's first lap of a 4 MiB ring paid that
// at every 4 KiB: 1% of busy round trips took 20-45 µs instead of 0.4 (their p99; 0.53
// µs once a lap had run). Allocated here, after `ready` so a start does not wait for it,
// on a thread of its own so the first tasks do not either; the host's own page-table
// entries are then minor faults on pages that exist. MADV_POPULATE_WRITE (Linux 5.14)
// faults the pages in without writing to them, so it races with nothing the rings hold;
// on an older kernel it fails and the pages come on first touch, as before. The same
// thread then takes the task clock's second reading (task_clock.hpp).
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // <linux/mman.h>, absent from older C libraries' headers
#endif
void Worker::warm_up() {
  try {
    std::thread([tasks = task_map_.data(), results = result_map_.data(), bytes = init_.capacity, clock = &clock_] {
      (void)::madvise(tasks, bytes, MADV_POPULATE_WRITE);
      (void)::madvise(results, bytes, MADV_POPULATE_WRITE);
      clock->calibrate();  // task_clock.hpp: its second reading, milliseconds after the first
    }).detach();
  } catch (const std::system_error&) {
    // No thread (limits.address_space leaves no room for its stack): first touch, as before.
  }
}

bool Worker::map_segment() {
  // The layout comes from the host's Init message, never from the segment: a page that
  // every worker could write is a page one plugin could break for every replacement.
  // Check the descriptor against it before mapping, so a mismatch is a clear error
  // instead of a SIGBUS later.
  struct stat st{};
  if (::fstat(kWorkerSegmentFd, &st) != 0)
    return fatal(Errc::ipc, std::string("shared-memory segment (descriptor 3): fstat: ") + std::strerror(errno));
  if (std::string why = segment_mismatch(init_, static_cast<uint64_t>(st.st_size)); !why.empty())
    return fatal(Errc::ipc, why);
  clock_.start();
  const SegmentLayout layout{init_.capacity};
  auto block = map_shared(kWorkerSegmentFd, SegmentLayout::block_offset(), kPageSize);
  auto tasks = map_ring(kWorkerSegmentFd, layout.task_ring_offset(), init_.capacity);
  auto results = map_ring(kWorkerSegmentFd, layout.result_ring_offset(), init_.capacity);
  if (!block) return fatal(Errc::ipc, block.error().message);
  if (!tasks) return fatal(Errc::ipc, tasks.error().message);
  if (!results) return fatal(Errc::ipc, results.error().message);
  // The memfd holds this worker's block and rings only (the other workers' are in memfds
  // of their own), and the header page is out of reach once the descriptor is gone.
  ::close(kWorkerSegmentFd);
  block_map_ = std::move(*block);
  task_map_ = std::move(*tasks);
  result_map_ = std::move(*results);
  block_ = reinterpret_cast<WorkerBlock*>(block_map_.data());
  tasks_ = RingConsumer(&block_->tasks, task_map_.data(), init_.capacity);
  results_ = RingProducer(&block_->results, result_map_.data(), init_.capacity);
  return true;
}

bool Worker::map_shared_data() {
  // Mapped before the limits (address_space counts them once, as it would any mapping)
  // and before any resource opens: a resource's open may read them too. The descriptors
  // close at once: a plugin gets the data, never a descriptor to fstat or mmap again.
  for (size_t i = 0; i < init_.shared.size(); ++i) {
    const int fd = kWorkerFirstSharedFd + static_cast<int>(i);
    std::string why = shared_.add(init_.shared[i].name, fd, init_.shared[i].size);
    if (!why.empty()) return fatal(Errc::ipc, why);
    ::close(fd);
  }
  return true;
}

bool Worker::apply_limits() {
  // Set by the worker on itself, before any foreign code is loaded: posix_spawn has no
  // rlimit attribute, and the host's own limits must stay untouched.
  auto set = [&](int resource, uint64_t soft, uint64_t hard, const char* key) {
    rlimit rl{static_cast<rlim_t>(soft), static_cast<rlim_t>(hard)};
    if (::setrlimit(resource, &rl) == 0) return true;
    return fatal(Errc::confine, std::string("limits.") + key + ": setrlimit: " + std::strerror(errno));
  };
  const uint64_t as = init_.limit_address_space, cpu = init_.limit_cpu_seconds, nofile = init_.limit_open_files;
  if (as != 0 && !set(RLIMIT_AS, as, as, "address_space")) return false;
  // One second between the soft and the hard limit: SIGXCPU first, then SIGKILL.
  if (cpu != 0 && !set(RLIMIT_CPU, cpu, cpu + 1, "cpu_seconds")) return false;
  if (nofile != 0 && !set(RLIMIT_NOFILE, nofile, nofile, "open_files")) return false;
  if (!init_.core_dumps && !set(RLIMIT_CORE, 0, 0, "core_dumps")) return false;
  // When memory runs out, the kernel's OOM killer should pick a worker (replaceable, its
  // task gets an outcome) rather than the host. Raising one's own score needs no privilege.
  if (int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC); fd >= 0) {
    (void)!::write(fd, "1000", 4);
    ::close(fd);
  }
  if (init_.no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return fatal(Errc::confine, std::string("limits.no_new_privs: prctl: ") + std::strerror(errno));
  return true;
}

// A recover hook has no result that could fail the start: what it reported is logged
// rather than dropped, and the open or init that follows starts with no error.
void Worker::log_recover_error(const shoal_ctx* ctx) {
  if (!failed_) return;
  log(ctx, SHOAL_LOG_ERROR, ("recover reported: " + error_).c_str());
  failed_ = false;
  error_fixed_ = false;
  error_.clear();
}

bool Worker::open_resources() {
  for (size_t i = 0; i < init_.resources.size(); ++i) {
    const auto& spec = init_.resources[i];
    auto api = load_resource_module(spec.module, module_sources_[1 + i]);
    if (!api) return fatal(Errc::plugin, "resource " + spec.name + ": " + api.error().message);
    shoal_ctx& ctx = resource_ctx_.emplace_back(shoal_ctx{this, &spec.params, "resource " + spec.name, nullptr, {}});
    if (!apply_declared_params(api->params, init_.resources[i].params, ctx, ModuleKind::resource_module, spec.module,
                               "resource " + spec.name + ": "))
      return false;
    if (!init_.recover.empty() && api->recover != nullptr) {
      log(&ctx, SHOAL_LOG_INFO, ("recovering after: " + init_.recover).c_str());
      api->recover(&host_, &ctx, spec.name.c_str(), init_.index, init_.recover.c_str());
      log_recover_error(&ctx);
    }
    // Stopping: every recover hook still runs (that is cleanup), nothing more opens.
    if (stopping()) continue;
    void* handle = nullptr;
    failed_ = false;
    error_fixed_ = false;
    error_.clear();
    shoal_status rc = api->open(&host_, &ctx, spec.name.c_str(), &handle);
    if (rc != SHOAL_OK || failed_) {
      std::string why = error_.empty() ? "open returned " + std::to_string(rc) : error_;
      start_may_pass_ = true;
      return fatal(Errc::plugin, "resource " + spec.name + " (" + spec.module + "): open failed: " + why);
    }
    handles_[spec.name] = handle;
    auto close = api->close;
    shoal_ctx* cp = &ctx;
    chain_.add(spec.priority, "close resource " + spec.name, [close, cp, handle] { close(cp, handle); });
  }
  return true;
}

void Worker::choose_module_sources() {
  // A pinned file still at its path is loaded by the path, so that debuggers, sanitizers
  // and core dumps can name and read it (a link map entry "/proc/self/fd/7" means the
  // reader's own descriptor 7). One renamed over since is loaded through the descriptor:
  // its generation's code, under the name /proc/self/fd/N. A rename between this check
  // and the load goes unseen (the new file loads): a window of microseconds once.
  if (init_.builder_role()) {
    module_sources_.push_back(init_.build_builder);
    return;
  }
  auto source = [&](size_t n, const std::string& path) {
    if (!init_.pinned_files) return path;
    const int fd = kWorkerFirstFileFd + static_cast<int>(n);
    struct stat pinned {}, now {};
    if (::fstat(fd, &pinned) == 0 && ::stat(path.c_str(), &now) == 0 && pinned.st_dev == now.st_dev &&
        pinned.st_ino == now.st_ino)
      return path;
    return "/proc/self/fd/" + std::to_string(fd);
  };
  module_sources_.push_back(source(0, init_.plugin));
  for (size_t i = 0; i < init_.resources.size(); ++i) module_sources_.push_back(source(1 + i, init_.resources[i].module));
}

// The check `shoal check` makes, made again here so that a pool built in code gets it:
// the configured params against the module's declaration, before it runs any code that
// reads them. On success the module's params are the canonical values plus defaults.
bool Worker::apply_declared_params(const std::optional<std::string>& text, std::map<std::string, std::string>& params,
                                   shoal_ctx& ctx, ModuleKind kind, const std::string& path,
                                   const std::string& prefix) {
  const char* what = role_name(kind);
  ctx.owner = plugin_error(what, path, "").message;
  ctx.owner.resize(ctx.owner.size() - 2);  // "plugin PATH" without the ": "
  if (!text) return true;
  auto decls = parse_param_decls(*text);
  if (!decls) return fatal(Errc::plugin, prefix + plugin_error(what, path, std::string(params_symbol(kind)) + ": " + decls.error().message).message);
  std::map<std::string, std::string> canonical;
  auto problems = check_params(*decls, params, &canonical);
  // One line: the first problem; `shoal check` lists them all.
  if (!problems.empty()) return fatal(Errc::config, prefix + plugin_error(what, path, problems.front().message).message);
  params = std::move(canonical);
  ctx.declared = &declared_.emplace_back(std::move(*decls));
  return true;
}

bool Worker::load_plugin_and_init() {
  auto api = load_plugin(init_.plugin, module_sources_[0]);
  if (!api) return fatal(Errc::plugin, api.error().message);
  // Every module is mapped now (resources load first): the pinned files are closed before
  // the plugin's init runs, so that nothing it starts inherits them.
  if (init_.pinned_files)
    for (size_t n = 0; n <= init_.resources.size(); ++n) ::close(kWorkerFirstFileFd + static_cast<int>(n));
  api_ = *api;
  if (!apply_declared_params(api_.params, init_.params, plugin_ctx_, ModuleKind::task_plugin, init_.plugin, ""))
    return false;
  if (!init_.recover.empty() && api_.recover != nullptr) {
    log(&plugin_ctx_, SHOAL_LOG_INFO, ("recovering after: " + init_.recover).c_str());
    api_.recover(&host_, &plugin_ctx_, init_.index, init_.recover.c_str());
    log_recover_error(&plugin_ctx_);
  }
  if (stopping()) return true;
  failed_ = false;
  error_fixed_ = false;
  error_.clear();
  shoal_status rc = api_.init(&host_, &plugin_ctx_, &user_);
  if (rc != SHOAL_OK || failed_) {
    std::string why = error_.empty() ? "returned " + std::to_string(rc) : error_;
    start_may_pass_ = true;
    return fatal(Errc::plugin, "plugin " + init_.plugin + ": init failed: " + why);
  }
  chain_.add(init_.fini_priority, "plugin fini", [this] { api_.fini(&plugin_ctx_, user_); });
  std::atexit(shoal_worker_atexit);
  return true;
}

Started Worker::start() {
  Message msg;
  if (!read_message(kWorkerControlFd, msg) || msg.type != MsgType::init) return Started::fatal;
  auto decoded = decode_init(msg.body);
  if (auto* why = std::get_if<std::string>(&decoded)) {
    fatal(Errc::ipc, *why);
    return Started::fatal;
  }
  init_ = std::get<InitMessage>(std::move(decoded));
  choose_module_sources();
  if (init_.recover_only) local_stop_.store(static_cast<uint32_t>(LocalStop::recover_only));
  chain_.set_owner("worker " + std::to_string(init_.index) + " (pid " + std::to_string(::getpid()) + ")");
  if (!(init_.builder_role() ? map_build_segment() : map_segment()) || !map_shared_data() || !apply_limits() ||
      !harden())
    return Started::fatal;

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
  host_.shared = host_shared;
  plugin_ctx_ = shoal_ctx{this, &init_.params, "plugin", nullptr, {}};
  statm_fd_ = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

  // The sandbox comes before anything foreign is loaded, so that static constructors run
  // inside it too, and before the worker's own threads start: a Landlock ruleset binds
  // the thread that applies it and what it starts afterwards, never threads that already
  // run (and a plugin shares their address space).
  if (!apply_sandbox()) return Started::fatal;
  // The builder role needs none of the threads: it has no tasks to stop, and the host
  // kills its process group on any end.
  if (init_.builder_role()) return build();
  start_threads();
  // A failure after some resources opened still closes them, in chain order.
  if (!open_resources() || !load_plugin_and_init()) {
    run_chain();
    return start_may_pass_ ? Started::failed : Started::fatal;
  }
  phase_.store(static_cast<uint32_t>(Phase::idle));
  if (stopping()) return Started::stopped;
  // A host that died meanwhile is EPIPE here, never a reason to skip the chain: serve()
  // sees the stop and runs it.
  send_control(MsgType::ready, {});
  warm_up();
  return Started::ready;
}

}  // namespace shoal::detail

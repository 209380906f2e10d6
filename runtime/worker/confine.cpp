// What confines a worker before any foreign code is loaded: always, the hardening that
// keeps a plugin away from the host and the sibling workers; with `sandbox:`, a seccomp
// filter and a Landlock ruleset. The README's "What a plugin can reach" is the model.
#include "worker.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

// Bookworm's kernel headers stop at Landlock ABI 2; the kernel may know more. These are
// fixed parts of the kernel ABI (include/uapi/linux/landlock.h).
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)  // ABI 3
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)  // ABI 5
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)  // ABI 6
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)                // ABI 6
#endif

namespace shoal::detail {

namespace {

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Removes one capability from every set of this process (and from the bounding set, so
// that no exec gets it back). A process without it (any non-root worker) changes nothing.
// Capabilities belong to a thread: this runs before the worker starts any thread, and
// every later thread inherits the reduced sets.
bool drop_capability(int cap, std::string& error) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return error = errno_text("capget"), false;
  const auto word = static_cast<size_t>(cap / 32);
  const uint32_t bit = 1u << (cap % 32);
  const bool held = ((data[word].effective | data[word].permitted | data[word].inheritable) & bit) != 0;
  if (held) {
    data[word].effective &= ~bit;
    data[word].permitted &= ~bit;
    data[word].inheritable &= ~bit;
    if (::syscall(SYS_capset, &header, data) != 0) return error = errno_text("capset"), false;
  }
  // Needs CAP_SETPCAP: a process that has it is root-like and must lose the capability
  // for good; one that has not cannot regain the capability by exec anyway (the bounding
  // set only matters for file capabilities, and no_new_privs or a non-root uid limits those).
  if (::prctl(PR_CAPBSET_READ, cap) == 1 && ::prctl(PR_CAPBSET_DROP, cap) != 0 && errno != EPERM)
    return error = errno_text("prctl(PR_CAPBSET_DROP)"), false;
  (void)::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, cap, 0, 0);  // EINVAL: not raised, nothing to lower
  return true;
}

constexpr uint64_t kLandlockRead = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
constexpr uint64_t kLandlockWrite = kLandlockRead | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |
                                    LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR |
                                    LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
                                    LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_SYM |
                                    LANDLOCK_ACCESS_FS_REFER | LANDLOCK_ACCESS_FS_TRUNCATE;
// Rights that apply to a file (a rule on a file with a directory right is EINVAL).
constexpr uint64_t kLandlockFileRights = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                                         LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
                                         LANDLOCK_ACCESS_FS_IOCTL_DEV;

// The ruleset attribute as of ABI 6; the size passed tells the kernel which fields exist.
struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

// Every filesystem right this kernel knows (ABI n adds rights; handling one it does not
// know is EINVAL), so that no kind of access stays outside the ruleset.
uint64_t landlock_fs_rights(int abi) {
  uint64_t all = kLandlockWrite | LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
                 LANDLOCK_ACCESS_FS_IOCTL_DEV;
  if (abi < 5) all &= ~LANDLOCK_ACCESS_FS_IOCTL_DEV;
  if (abi < 3) all &= ~LANDLOCK_ACCESS_FS_TRUNCATE;
  if (abi < 2) all &= ~LANDLOCK_ACCESS_FS_REFER;
  return all;
}

// Paths every sandboxed worker may read: the system's libraries (a plugin may dlopen one
// late: NSS, iconv modules) and the loader's cache.
constexpr const char* kSystemReadable[] = {"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib",
                                           "/etc/ld.so.cache"};

}  // namespace

int landlock_abi() noexcept {
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

bool Worker::harden() {
  // Not dumpable: a sibling worker (same uid, no CAP_SYS_PTRACE) can neither ptrace this
  // process nor open /proc/THIS/fd or /proc/THIS/mem. Core dumps need it dumpable, so a
  // pool with limits.core_dumps keeps it (documented: its workers can read each other).
  // main() made the process non-dumpable first thing (its memfd is still open then);
  // only a pool that wants core dumps turns it back on, once the memfd is closed.
  if (init_.core_dumps && ::prctl(PR_SET_DUMPABLE, 1) != 0)
    return fatal(Errc::confine, errno_text("prctl(PR_SET_DUMPABLE)"));
  // CAP_SYS_PTRACE passes every check above: a worker running as root would reach the
  // host and its siblings whatever they set. No plugin gets it.
  std::string error;
  if (!drop_capability(CAP_SYS_PTRACE, error)) return fatal(Errc::confine, "dropping CAP_SYS_PTRACE: " + error);
  return true;
}

bool Worker::apply_sandbox() {
  if (!init_.sandbox) return true;
  // Both the filter and the ruleset need it without CAP_SYS_ADMIN; it also keeps an exec
  // of a setuid program from leaving the sandbox.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return fatal(Errc::confine, errno_text("sandbox: prctl(PR_SET_NO_NEW_PRIVS)"));
  const int abi = landlock_abi();
  if (abi < 1)
    return fatal(Errc::confine, "sandbox: this kernel has no Landlock (" + std::string(std::strerror(errno)) +
                 "); remove pools." + init_.pool + ".sandbox or enable Landlock (lsm=landlock)");
  RulesetAttr attr{landlock_fs_rights(abi), 0, 0};
  // A sandboxed worker cannot signal a process outside its sandbox (the host) or connect
  // to an abstract Unix socket outside it.
  if (abi >= 6) attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
  const size_t attr_size = abi >= 6 ? sizeof attr : abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
  Fd ruleset(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0)));
  if (!ruleset) return fatal(Errc::confine, errno_text("sandbox: landlock_create_ruleset"));
  // A path that does not exist is left out for the built-in ones and an error for the
  // configured ones (a typo would otherwise deny silently what the config allows).
  auto allow = [&](const std::string& path, uint64_t rights, bool required) {
    Fd at(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!at) return !required || fatal(Errc::confine, "sandbox: " + path + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(at.get(), &st) != 0) return fatal(Errc::confine, errno_text(("sandbox: fstat " + path).c_str()));
    landlock_path_beneath_attr rule{};
    rule.parent_fd = at.get();
    rule.allowed_access = (S_ISDIR(st.st_mode) ? rights : rights & kLandlockFileRights) & attr.handled_access_fs;
    if (::syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &rule, 0) != 0)
      return fatal(Errc::confine, "sandbox: landlock_add_rule " + path + ": " + std::strerror(errno));
    return true;
  };
  for (const char* path : kSystemReadable)
    if (!allow(path, kLandlockRead, false)) return false;
  // The files this worker loads: the ones its host pinned when it did (they may no
  // longer be at their paths), else the paths.
  for (const auto& source : module_sources_)
    if (!allow(source, kLandlockRead, true)) return false;
  if (!allow("/dev/null", kLandlockWrite, true)) return false;
  // /proc/self resolves to /proc/PID: the worker's own entries, nobody else's.
  if (!allow("/proc/self/", kLandlockRead, true)) return false;
  for (const auto& [path, write] : init_.sandbox_paths)
    if (!allow(path, write ? kLandlockWrite : kLandlockRead, true)) return false;

  // Calls that reach another process or change the kernel's configuration. Default allow:
  // a plugin's ordinary calls must not break on a kernel or libc that uses a new one.
  scmp_filter_ctx filter = ::seccomp_init(SCMP_ACT_ALLOW);
  if (filter == nullptr) return fatal(Errc::confine, "sandbox: seccomp_init failed");
  static constexpr const char* kDenied[] = {
      "ptrace",       "process_vm_readv", "process_vm_writev", "pidfd_getfd",    "kcmp",
      "process_madvise", "bpf",           "perf_event_open",   "userfaultfd",    "keyctl",
      "add_key",      "request_key",      "mount",             "umount2",        "pivot_root",
      "chroot",       "setns",            "unshare",           "init_module",    "finit_module",
      "delete_module", "kexec_load",      "kexec_file_load",   "reboot",         "swapon",
      "swapoff",      "open_by_handle_at", "name_to_handle_at", "fsopen",        "fsmount",
      "move_mount",   "open_tree"};
  int rc = 0;
  for (const char* name : kDenied) {
    int nr = ::seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not a call on this architecture
    if ((rc = ::seccomp_rule_add(filter, SCMP_ACT_ERRNO(EPERM), nr, 0)) != 0) break;
  }
  // Every thread: the control and watchdog threads must not be a way around it.
  if (rc == 0) rc = ::seccomp_attr_set(filter, SCMP_FLTATR_CTL_TSYNC, 1);
  if (rc == 0) rc = ::seccomp_load(filter);
  ::seccomp_release(filter);
  if (rc != 0) return fatal(Errc::confine, "sandbox: seccomp: " + std::string(std::strerror(-rc)));
  // Last: the ruleset applies to this thread and to the threads and processes it starts
  // afterwards (the control and watchdog threads start after it; see start()).
  if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0)
    return fatal(Errc::confine, errno_text("sandbox: landlock_restrict_self"));
  return true;
}

}  // namespace shoal::detail

/*
 * File: shoal/plugin.h
 *
 * The C ABI between a shoal worker and a task plugin. A task plugin is a shared object
 * that exports the four `shoal_*` functions below with C linkage. The worker (never the
 * host) loads it once with RTLD_NOW, calls `shoal_plugin_abi` first and refuses a plugin
 * whose major version differs, then calls `shoal_init` once, `shoal_run` once per task
 * and `shoal_fini` once when the worker stops. The plugin is never unloaded: process
 * exit is the unload.
 *
 * Everything the plugin may ask of the runtime goes through the host table handed to
 * `shoal_init`. The table starts with its size and only ever grows at its end; test a
 * member newer than 1.0 with SHOAL_HOST_HAS before calling it.
 *
 * C99, fixed-width types only. No exception, C++ type or allocation crosses this line;
 * strings handed to the host are copied by it. The contract in full (every call, its
 * threads, versions): sdk/docs/plugin-abi.md.
 */
#ifndef SHOAL_PLUGIN_H
#define SHOAL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Same major: compatible. A new minor: members appended to the host table. */
#define SHOAL_ABI_MAJOR 1
#define SHOAL_ABI_MINOR 1
#define SHOAL_ABI_VERSION (((uint32_t)SHOAL_ABI_MAJOR << 16) | (uint32_t)SHOAL_ABI_MINOR)

#if defined(_WIN32)
#define SHOAL_EXPORT __declspec(dllexport)
#else
#define SHOAL_EXPORT __attribute__((visibility("default")))
#endif

/** 0 is success; every negative value is an error, including ones not listed here. */
typedef int32_t shoal_status;
#define SHOAL_OK 0
#define SHOAL_E_FAILED -1      /* plugin-defined failure; the message says what */
#define SHOAL_E_INVALID -2     /* an argument was invalid */
#define SHOAL_E_NO_SPACE -3    /* the output would not fit the result ring (queue.capacity) */
#define SHOAL_E_STOPPING -4    /* the task was asked to stop (should_stop) */
#define SHOAL_E_UNSUPPORTED -5 /* a retired host member */

/** Log levels for shoal_host.log. */
#define SHOAL_LOG_DEBUG 0
#define SHOAL_LOG_INFO 1
#define SHOAL_LOG_WARN 2
#define SHOAL_LOG_ERROR 3

/** Opaque worker context. Owned by the worker; valid from the call that hands it over until
 *  the worker's finalizer chain has run. */
typedef struct shoal_ctx shoal_ctx;

/** A read-only byte range. Task input points into shared memory: valid only during shoal_run. */
typedef struct shoal_bytes {
  const void *data;
  size_t size;
} shoal_bytes;

/** Finalizer entry: runs once in the worker's finalizer chain. */
typedef void (*shoal_finalizer_fn)(void *arg);

/**
 * The host table. Owned by the worker, valid until the worker's finalizer chain has run
 * (a close or finalizer may still use it). Every member is called from the worker thread
 * that called the plugin, unless it says otherwise (plugin-abi.md lists each).
 * Append only: never reorder, never remove; mark each addition with its minor version.
 */
typedef struct shoal_host {
  uint32_t struct_size; /* sizeof(shoal_host) as the worker was built */
  uint32_t abi_version; /* SHOAL_ABI_VERSION of the worker */
  /* -- 1.0 -- */
  /** Append `size` bytes to the current task's output and return where to write them, in
   *  shared memory (no copy). Valid until the next reserve/emit or until run returns. NULL
   *  when the output would exceed the result ring (the task then fails, naming the limit). */
  void *(*reserve)(shoal_ctx *ctx, size_t size);
  /** Append a copy of `data` to the current task's output. SHOAL_E_NO_SPACE as for reserve;
   *  SHOAL_E_INVALID for NULL data with a size, or outside shoal_run. */
  shoal_status (*emit)(shoal_ctx *ctx, const void *data, size_t size);
  /** Mark the current task (or init) failed with `msg` (copied). The outcome is `error`
   *  even if run then returns SHOAL_OK. The last message reported wins. */
  void (*report_error)(shoal_ctx *ctx, shoal_status code, const char *msg);
  /** Non-zero once the task should end early (pool terminating, task past its timeout).
   *  Safe to call from any thread of the plugin. */
  int32_t (*should_stop)(shoal_ctx *ctx);
  /** Register `fn(arg)` in the worker's finalizer chain: higher priority runs first, equal
   *  priorities run last-registered first, each entry once, when the worker stops. */
  shoal_status (*add_finalizer)(shoal_ctx *ctx, int32_t priority, shoal_finalizer_fn fn, void *arg);
  /** The handle of the resource named `name` configured for this pool, or NULL. */
  void *(*resource)(shoal_ctx *ctx, const char *name);
  /** The value of pool parameter `key` (from the config's `params`), or NULL. Valid until
   *  shoal_fini returns. Non-string YAML values are given as their YAML text. In a plugin
   *  that declares its params (SHOAL_PARAMS): the checked value in canonical form, or the
   *  declared default; a `key` it does not declare returns NULL and fails the call it is
   *  made in (init or the task) with a message naming it. */
  const char *(*param)(shoal_ctx *ctx, const char *key);
  /** Write a line to the host's log, prefixed with the pool and worker index. */
  void (*log)(shoal_ctx *ctx, int32_t level, const char *msg);
  /** Index of this worker in its pool, 0 .. workers-1; a replacement keeps the index. */
  uint32_t (*worker_index)(shoal_ctx *ctx);
  /* -- 1.1 -- */
  /** The object named `name` in the pool's shared read-only data (`shared:`, built once
   *  by a builder module, shoal/shared.h), searched in the list's order; NULL if no
   *  segment has it. `*size` (if not NULL) gets its size in bytes. The memory is mapped
   *  read-only for the worker's life: a write to it is a SIGSEGV (outcome `crashed`).
   *  Any thread, any time after the worker's start. Test with SHOAL_HOST_HAS(h, shared). */
  const void *(*shared)(shoal_ctx *ctx, const char *name, size_t *size);
  /* -- append only below this line; mark each addition with its minor version -- */
} shoal_host;

/** True when the host table `h` has member `m` (a member appended after the plugin's minor). */
#define SHOAL_HOST_HAS(h, m) ((h)->struct_size >= offsetof(shoal_host, m) + sizeof((h)->m))

/* ---- Exports of a task plugin (declarations for the plugin author) ---- */

/** First call, before any other: return SHOAL_ABI_VERSION as the plugin was built. */
SHOAL_EXPORT uint32_t shoal_plugin_abi(void);
/** Recommended: the same version as data, so `shoal check` and `shoal inspect` can read it
 *  from the file without loading it (loading would run the plugin's static constructors).
 *  Define it exactly so, in one C source file:
 *      SHOAL_EXPORT const uint32_t shoal_plugin_abi_version = SHOAL_ABI_VERSION;
 *  SHOAL_PLUGIN does it for C++ plugins; C++ without the macro writes `extern const`
 *  (without `extern`, GCC warns that it ignores the attribute: -Wattributes). Without
 *  the constant `shoal inspect` shows the ABI as "unknown until loaded"; the worker
 *  calls shoal_plugin_abi either way, and that answer decides. */
SHOAL_EXPORT extern const uint32_t shoal_plugin_abi_version;
/** Optional: the params this plugin takes, as data (see SHOAL_PARAMS below). With it,
 *  `shoal check` and the worker refuse a pool whose `params:` do not match it, the worker
 *  hands the plugin declared defaults and canonical values, and host->param of a name it
 *  does not declare is an error. */
SHOAL_EXPORT extern const char shoal_plugin_params[];
/** Once per worker. Keep `host`; set `*user` to the plugin's state (handed to run and fini).
 *  A negative return (with report_error for the message) fails the worker start. */
SHOAL_EXPORT shoal_status shoal_init(const shoal_host *host, shoal_ctx *ctx, void **user);
/** Once per task. `input` lives in shared memory and is valid until return. Output goes
 *  through host->emit / host->reserve. Negative return or report_error: outcome `error`. */
SHOAL_EXPORT shoal_status shoal_run(shoal_ctx *ctx, void *user, shoal_bytes input);
/** Once, when the worker stops (as a finalizer-chain entry). */
SHOAL_EXPORT void shoal_fini(shoal_ctx *ctx, void *user);
/** Optional: runs in the replacement worker, before its init, after the worker with the
 *  same index died without running its finalizer chain (SIGKILL, OOM kill, crash signal,
 *  a hung finalizer). `cause` says how it died ("signal 9 (SIGKILL)"). Remove stale
 *  lock files, temp files or leases here. `ctx` is valid only during the call. */
SHOAL_EXPORT void shoal_recover(const shoal_host *host, shoal_ctx *ctx, uint32_t dead_worker, const char *cause);

/* ---- Declared params ----
 *
 * A plugin (or resource module) says which `params:` it takes in one char array that
 * `shoal check` reads from the file without loading it (text, no pointers: pointers in
 * data need relocations that only the loader applies). In one C or C++ source file:
 *
 *     SHOAL_PARAMS(
 *       SHOAL_PARAM_ONE_OF("algorithm", "sha256|sha512", SHOAL_DEFAULT("sha256"), "digest to compute")
 *       SHOAL_PARAM_INT("rounds", 1, 1000, SHOAL_REQUIRED, "how often to hash")
 *       SHOAL_PARAM_DURATION("timeout", SHOAL_DEFAULT("5s"), "per-file limit")
 *       SHOAL_PARAM_STRING("label", SHOAL_OPTIONAL, "prefix of each line"))
 *
 * (SHOAL_RESOURCE_PARAMS in a resource module.) Each param is required, optional (no
 * value unless configured) or has a default that the worker hands over when the config
 * omits it. Types and what host->param then returns (always the canonical text):
 *   STRING    any value, as configured
 *   INT       a decimal integer within [MIN, MAX] (integer literals), e.g. "-3"
 *   SIZE      "4MiB", "512KiB", "4096", ... -> the byte count, e.g. "4194304"
 *   DURATION  "250ms", "30s", "2m", "0", ... -> nanoseconds, e.g. "250000000"
 *   BOOL      true or false -> "true" or "false"
 *   ONE_OF    one of the '|'-separated words, e.g. "sha512"
 * Names are [A-Za-z0-9_.-]; no field may hold a tab or a new line. sdk/docs/plugin-params.md
 * describes the format byte for byte. */
#define SHOAL_PARAMS_FORMAT "shoal-params 1\n"
#define SHOAL_PARAM_STR_(x) #x
#define SHOAL_PARAM_XSTR_(x) SHOAL_PARAM_STR_(x)
/** Presence: one of these three. A default is written as text ("5000", "30s", "true"). */
#define SHOAL_REQUIRED "!"
#define SHOAL_OPTIONAL "?"
#define SHOAL_DEFAULT(text) "=" text
#define SHOAL_PARAM_(name, type, spec, presence, doc) name "\t" type "\t" spec "\t" presence "\t" doc "\n"
#define SHOAL_PARAM_STRING(name, presence, doc) SHOAL_PARAM_(name, "string", "", presence, doc)
#define SHOAL_PARAM_INT(name, min, max, presence, doc) \
  SHOAL_PARAM_(name, "int", SHOAL_PARAM_XSTR_(min) ".." SHOAL_PARAM_XSTR_(max), presence, doc)
#define SHOAL_PARAM_SIZE(name, presence, doc) SHOAL_PARAM_(name, "size", "", presence, doc)
#define SHOAL_PARAM_DURATION(name, presence, doc) SHOAL_PARAM_(name, "duration", "", presence, doc)
#define SHOAL_PARAM_BOOL(name, presence, doc) SHOAL_PARAM_(name, "bool", "", presence, doc)
#define SHOAL_PARAM_ONE_OF(name, words, presence, doc) SHOAL_PARAM_(name, "one_of", words, presence, doc)
/** Defines shoal_plugin_params from the SHOAL_PARAM_* entries (none: it takes no params). */
#define SHOAL_PARAMS(...) const char shoal_plugin_params[] = SHOAL_PARAMS_FORMAT __VA_ARGS__;

#ifdef __cplusplus
}
#endif

#endif /* SHOAL_PLUGIN_H */

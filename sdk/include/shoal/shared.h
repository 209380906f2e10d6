/*
 * File: shoal/shared.h
 *
 * The C ABI of a shared-data builder: a shared object that fills a pool's read-only
 * data once, before the workers start. Configured per pool under `shared:` (a builder,
 * its params and a `size`). The host creates a memfd of `size` bytes and starts one
 * shoal-worker in the builder role (vendor code never runs in the host); it maps the
 * memfd, lays a Boost.Interprocess managed segment over it and calls shoal_shared_build
 * once. When the builder process has exited, the host seals the memfd (no write, grow,
 * shrink or new seal) and every worker of the pool maps it read-only before its init:
 * one copy in memory for the whole pool, never rebuilt when a worker is replaced.
 *
 * A plugin finds what was built by name: host->shared(ctx, "name", &size) (ABI 1.1).
 * The segment is mapped at a different address in each process: store offsets, never
 * pointers (a C++ builder uses Boost.Interprocess containers, which hold offset_ptr).
 *
 * The builder receives the same host table as a plugin: host->param returns the entry's
 * own `params`, host->report_error the message a failed build reports, host->log logs.
 */
#ifndef SHOAL_SHARED_H
#define SHOAL_SHARED_H

#include <shoal/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What a builder writes with; valid during shoal_shared_build only. */
typedef struct shoal_shared_builder shoal_shared_builder;
struct shoal_shared_builder {
  uint32_t struct_size; /* sizeof(shoal_shared_builder) as the worker was built */
  uint32_t boost_version; /* BOOST_VERSION of the worker: a C++ builder's must equal it */
  uint64_t size;          /* bytes of the segment (the entry's `size`) */
  /** A block of `size` bytes that readers find under `name` (host->shared), zeroed,
   *  aligned to 8 bytes (Boost.Interprocess 1.74 places named blocks so whatever their
   *  type: what needs more goes in an allocate()d block). NULL when it does not fit the segment (the build then fails
   *  naming the `size` key to raise), when `name` is empty or already taken. */
  void *(*construct)(shoal_shared_builder *b, const char *name, size_t size);
  /** An unnamed block of `size` bytes aligned to `align` (a power of two), for what a
   *  named block refers to by offset. NULL as for construct. */
  void *(*allocate)(shoal_shared_builder *b, size_t size, size_t align);
  /** The Boost.Interprocess segment manager (managed_external_buffer::segment_manager)
   *  for C++ builders: shoal/shared.hpp uses it. C code leaves it alone. */
  void *segment_manager;
};

/** First call: return SHOAL_ABI_VERSION as the module was built. */
SHOAL_EXPORT uint32_t shoal_shared_abi(void);
/** Recommended: the same version as data, read by `shoal check` without loading the file
 *  (see shoal_plugin_abi_version):
 *      SHOAL_EXPORT const uint32_t shoal_shared_abi_version = SHOAL_ABI_VERSION; */
SHOAL_EXPORT extern const uint32_t shoal_shared_abi_version;
/** Optional: the params this builder takes (SHOAL_SHARED_PARAMS, as SHOAL_PARAMS in
 *  shoal/plugin.h); checked against the entry's `params:` before the build. */
SHOAL_EXPORT extern const char shoal_shared_params[];
/** Defines shoal_shared_params from SHOAL_PARAM_* entries. */
#define SHOAL_SHARED_PARAMS(...) const char shoal_shared_params[] = SHOAL_PARAMS_FORMAT __VA_ARGS__;
/** Builds the data through `b`. A negative return (with report_error for the message)
 *  fails the pool's start or reload. At least one object must be named (construct). */
SHOAL_EXPORT shoal_status shoal_shared_build(const shoal_host *host, shoal_ctx *ctx, shoal_shared_builder *b);

#ifdef __cplusplus
}
#endif

#endif /* SHOAL_SHARED_H */

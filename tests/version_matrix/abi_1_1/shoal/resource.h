/*
 * File: shoal/resource.h
 *
 * The C ABI of a resource module: a shared object that opens one per-worker resource
 * (a database connection, a device context, a cache) before the task plugin's init and
 * closes it in the worker's finalizer chain. Configured per pool under `resources:`;
 * opened in the listed order; each close runs at the resource's `priority` (default 0,
 * below the plugin's fini at 100, so fini still sees every resource open). A plugin gets
 * the handle with host->resource(ctx, name).
 *
 * The module receives the same host table as a plugin; during these calls host->param
 * returns the resource's own `params`, and host->report_error sets the message that a
 * failed open reports.
 */
#ifndef SHOAL_RESOURCE_H
#define SHOAL_RESOURCE_H

#include <shoal/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/** First call: return SHOAL_ABI_VERSION as the module was built. */
SHOAL_EXPORT uint32_t shoal_resource_abi(void);
/** Recommended: the same version as data, read by `shoal check` without loading the file
 *  (see shoal_plugin_abi_version):
 *      SHOAL_EXPORT const uint32_t shoal_resource_abi_version = SHOAL_ABI_VERSION; */
SHOAL_EXPORT extern const uint32_t shoal_resource_abi_version;
/** Optional: the params this module takes (SHOAL_RESOURCE_PARAMS, as SHOAL_PARAMS in
 *  shoal/plugin.h); checked against the resource's `params:` before open. */
SHOAL_EXPORT extern const char shoal_resource_params[];
/** Defines shoal_resource_params from SHOAL_PARAM_* entries. */
#define SHOAL_RESOURCE_PARAMS(...) const char shoal_resource_params[] = SHOAL_PARAMS_FORMAT __VA_ARGS__;
/** Opens the resource called `name` (the config's name) and sets `*handle`. A negative
 *  return (with report_error for the message) fails the worker start; resources opened
 *  before it are still closed. `ctx` stays valid until close returns. */
SHOAL_EXPORT shoal_status shoal_resource_open(const shoal_host *host, shoal_ctx *ctx, const char *name,
                                              void **handle);
/** Closes what open returned. Runs once, as an entry of the finalizer chain. */
SHOAL_EXPORT void shoal_resource_close(shoal_ctx *ctx, void *handle);
/** Optional: runs in the replacement worker before open, after a worker with the same
 *  index died without running its chain. `cause` says how it died. */
SHOAL_EXPORT void shoal_resource_recover(const shoal_host *host, shoal_ctx *ctx, const char *name,
                                         uint32_t dead_worker, const char *cause);

#ifdef __cplusplus
}
#endif

#endif /* SHOAL_RESOURCE_H */

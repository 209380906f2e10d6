/* sqlite_resource: one SQLite connection per worker, opened before the plugin's init and
 * closed in the worker's finalizer chain. Params: `path` (the database file; required),
 * `mode` (ro, the default, or rw), `busy_timeout_ms` (default 5000). A plugin gets the
 * sqlite3* with host->resource(ctx, NAME). Written in C against the C ABI only. */
#include <shoal/resource.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

SHOAL_EXPORT uint32_t shoal_resource_abi(void) { return SHOAL_ABI_VERSION; }
/* The same version as data: `shoal check` reads it without loading this file. */
SHOAL_EXPORT const uint32_t shoal_resource_abi_version = SHOAL_ABI_VERSION;
/* Its params, also read from the file: `shoal check` and the worker refuse others, and
 * the worker hands over the defaults. The NULL checks below stay for a runtime of ABI
 * 1.0 that predates declared params. */
SHOAL_RESOURCE_PARAMS(
    SHOAL_PARAM_STRING("path", SHOAL_REQUIRED, "the database file")
    SHOAL_PARAM_ONE_OF("mode", "ro|rw", SHOAL_DEFAULT("ro"), "ro: read only; rw: read and write, created if missing")
    SHOAL_PARAM_INT("busy_timeout_ms", 0, 2147483647, SHOAL_DEFAULT("5000"), "how long a locked database is retried"))

SHOAL_EXPORT shoal_status shoal_resource_open(const shoal_host *host, shoal_ctx *ctx, const char *name,
                                              void **handle) {
  const char *path = host->param(ctx, "path");
  const char *mode = host->param(ctx, "mode");
  const char *busy = host->param(ctx, "busy_timeout_ms");
  char msg[512];
  sqlite3 *db = NULL;
  int flags;
  int rc;
  if (path == NULL || *path == '\0') {
    snprintf(msg, sizeof msg, "resource %s: param 'path' (the database file) is required", name);
    host->report_error(ctx, SHOAL_E_INVALID, msg);
    return SHOAL_E_INVALID;
  }
  /* NOMUTEX: the connection belongs to one worker and is used by its task thread only. */
  flags = SQLITE_OPEN_NOMUTEX;
  flags |= (mode != NULL && strcmp(mode, "rw") == 0) ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                                       : SQLITE_OPEN_READONLY;
  rc = sqlite3_open_v2(path, &db, flags, NULL);
  if (rc != SQLITE_OK) {
    snprintf(msg, sizeof msg, "cannot open database %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    host->report_error(ctx, SHOAL_E_FAILED, msg);
    return SHOAL_E_FAILED;
  }
  sqlite3_busy_timeout(db, busy != NULL ? atoi(busy) : 5000);
  *handle = db;
  return SHOAL_OK;
}

SHOAL_EXPORT void shoal_resource_close(shoal_ctx *ctx, void *handle) {
  (void)ctx;
  /* _v2: a statement the plugin failed to finalize does not keep the file open forever. */
  sqlite3_close_v2((sqlite3 *)handle);
}

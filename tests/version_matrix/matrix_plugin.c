/* One plugin of the version matrix, built against a frozen header (abi_1_0/shoal/plugin.h
 * or abi_1_1/shoal/plugin.h, whichever the row puts first) and claiming the ABI
 * MATRIX_MAJOR.MATRIX_MINOR. It calls every 1.0 host member, so that a run proves each
 * still works for a plugin built against 1.0:
 *   init  param, resource, worker_index, add_finalizer, log
 *   run   should_stop, reserve, emit (and emit(NULL, 1): SHOAL_E_INVALID); report_error
 *         for the input "fail"
 *   fini  runs after the finalizer (priority 200 before fini's 100)
 * Built against the 1.1 header it also tests for host->shared with SHOAL_HOST_HAS and
 * calls it (a pool without `shared:` data answers NULL for any name).
 * init, the finalizer and fini each append "WORD INDEX" to the file the param "trail"
 * names: a plugin the worker refuses leaves no "init" there.
 * Output of a task: "INPUT|built MAJOR.MINOR|host MAJOR.MINOR size N|1.1 member: absent
 * or present|1.2 member: absent or present|RESOURCE|worker I". */
#include <shoal/plugin.h>

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#ifndef MATRIX_MAJOR
#define MATRIX_MAJOR 1
#endif
#ifndef MATRIX_MINOR
#define MATRIX_MINOR 0
#endif
#define MATRIX_VERSION (((uint32_t)MATRIX_MAJOR << 16) | (uint32_t)MATRIX_MINOR)

#if SHOAL_ABI_MINOR >= 1
/* Built against 1.1: the real member, tested the documented way. */
#define MATRIX_HAS_1_1(h) SHOAL_HOST_HAS(h, shared)
typedef shoal_host matrix_host_1_1;
#else
/* Built against 1.0: what the 1.1 header holds, the 1.0 table with one member appended
 * (append only). The plugin cannot name it, only test the table's size for it. */
typedef struct matrix_host_1_1 {
  shoal_host v1_0;
  const void *(*shared)(shoal_ctx *ctx, const char *name, size_t *size);
} matrix_host_1_1;
#define MATRIX_HAS_1_1(h) ((h)->struct_size >= offsetof(matrix_host_1_1, shared) + sizeof(void *))
#endif
/* What a 1.2 header would hold: one more member. No worker has it yet: a 1.2 plugin must
 * test for it and do without. */
typedef struct matrix_host_1_2 {
  matrix_host_1_1 v1_1;
  int32_t (*added_in_1_2)(shoal_ctx *ctx);
} matrix_host_1_2;
#define MATRIX_HAS_1_2(h) ((h)->struct_size >= offsetof(matrix_host_1_2, added_in_1_2) + sizeof(void *))

#ifndef MATRIX_NO_DATA
SHOAL_EXPORT const uint32_t shoal_plugin_abi_version = MATRIX_VERSION;
#endif
SHOAL_EXPORT uint32_t shoal_plugin_abi(void) { return MATRIX_VERSION; }

typedef struct state {
  const shoal_host *host;
  char trail[512];
  char resource[128];
  uint32_t index;
} state;

static state g_state;

static void append_trail(const state *s, const char *word) {
  FILE *f = fopen(s->trail, "a");
  if (f == NULL) return;
  fprintf(f, "%s %u\n", word, (unsigned)s->index);
  fclose(f);
}

static void on_finalizer(void *arg) { append_trail((const state *)arg, "finalizer"); }

SHOAL_EXPORT shoal_status shoal_init(const shoal_host *host, shoal_ctx *ctx, void **user) {
  const char *trail = host->param(ctx, "trail");
  const char *res_name = host->param(ctx, "resource");
  state *s = &g_state;
  s->host = host;
  s->index = host->worker_index(ctx);
  snprintf(s->trail, sizeof s->trail, "%s", trail ? trail : "");
  snprintf(s->resource, sizeof s->resource, "no resource");
  if (res_name != NULL) {
    const char *handle = (const char *)host->resource(ctx, res_name);
    if (handle == NULL) {
      host->report_error(ctx, SHOAL_E_INVALID, "matrix plugin: the configured resource is not open");
      return SHOAL_E_INVALID;
    }
    snprintf(s->resource, sizeof s->resource, "%s", handle);
  }
  if (host->resource(ctx, "no-such-resource") != NULL) {
    host->report_error(ctx, SHOAL_E_FAILED, "matrix plugin: a resource nobody configured has a handle");
    return SHOAL_E_FAILED;
  }
#if SHOAL_ABI_MINOR >= 1
  if (SHOAL_HOST_HAS(host, shared) && host->shared(ctx, "no-such-object", NULL) != NULL) {
    host->report_error(ctx, SHOAL_E_FAILED, "matrix plugin: host->shared found an object nobody built");
    return SHOAL_E_FAILED;
  }
#endif
  if (host->add_finalizer(ctx, 200, on_finalizer, s) != SHOAL_OK) return SHOAL_E_FAILED;
  append_trail(s, "init");
  host->log(ctx, SHOAL_LOG_INFO, "matrix plugin ready");
  *user = s;
  return SHOAL_OK;
}

SHOAL_EXPORT shoal_status shoal_run(shoal_ctx *ctx, void *user, shoal_bytes input) {
  state *s = (state *)user;
  const shoal_host *h = s->host;
  char tail[256];
  int n;
  char *at;
  if (h->should_stop(ctx)) return SHOAL_E_STOPPING;
  if (h->emit(ctx, NULL, 1) != SHOAL_E_INVALID) {
    h->report_error(ctx, SHOAL_E_FAILED, "matrix plugin: emit(NULL, 1) did not return SHOAL_E_INVALID");
    return SHOAL_E_FAILED;
  }
  if (input.size == 4 && memcmp(input.data, "fail", 4) == 0) {
    h->report_error(ctx, SHOAL_E_FAILED, "matrix plugin: asked to fail");
    return SHOAL_E_FAILED;
  }
  n = snprintf(tail, sizeof tail, "|built %u.%u|host %u.%u size %u|1.1 member: %s|1.2 member: %s|%s|worker %u",
               (unsigned)MATRIX_MAJOR, (unsigned)MATRIX_MINOR, (unsigned)(h->abi_version >> 16),
               (unsigned)(h->abi_version & 0xffffu), (unsigned)h->struct_size, MATRIX_HAS_1_1(h) ? "present" : "absent",
               MATRIX_HAS_1_2(h) ? "present" : "absent", s->resource, (unsigned)s->index);
  if (n < 0 || (size_t)n >= sizeof tail) return SHOAL_E_FAILED;
  at = (char *)h->reserve(ctx, input.size);
  if (at == NULL) return SHOAL_E_NO_SPACE;
  if (input.size != 0) memcpy(at, input.data, input.size);
  return h->emit(ctx, tail, (size_t)n);
}

SHOAL_EXPORT void shoal_fini(shoal_ctx *ctx, void *user) {
  (void)ctx;
  append_trail((const state *)user, "fini");
}

/* reverse: each task's input reversed byte by byte; the input "fail" is reported as an
 * error. A task plugin in plain C99, compiled by the install test with `cc` against the
 * installed shoal/plugin.h (found through shoal.pc) and nothing else. */
#include <shoal/plugin.h>

#include <stddef.h>

SHOAL_EXPORT const uint32_t shoal_plugin_abi_version = SHOAL_ABI_VERSION;
/* It takes no params: `shoal check` refuses any that a config gives it. */
SHOAL_PARAMS()

static const shoal_host *host;

SHOAL_EXPORT uint32_t shoal_plugin_abi(void) { return SHOAL_ABI_VERSION; }

SHOAL_EXPORT shoal_status shoal_init(const shoal_host *h, shoal_ctx *ctx, void **user) {
  (void)ctx;
  host = h;
  *user = NULL;
  return SHOAL_OK;
}

SHOAL_EXPORT shoal_status shoal_run(shoal_ctx *ctx, void *user, shoal_bytes input) {
  const char *in = (const char *)input.data;
  char *out;
  size_t i;
  (void)user;
  if (input.size == 4 && in[0] == 'f' && in[1] == 'a' && in[2] == 'i' && in[3] == 'l') {
    host->report_error(ctx, SHOAL_E_INVALID, "refused: fail");
    return SHOAL_E_INVALID;
  }
  if (input.size == 0) return SHOAL_OK;
  out = (char *)host->reserve(ctx, input.size);
  if (out == NULL) return SHOAL_E_NO_SPACE;
  for (i = 0; i < input.size; ++i) out[i] = in[input.size - 1 - i];
  return SHOAL_OK;
}

SHOAL_EXPORT void shoal_fini(shoal_ctx *ctx, void *user) {
  (void)ctx;
  (void)user;
}

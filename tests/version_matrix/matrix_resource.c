/* A resource module built against the frozen 1.0 headers: its handle is a string the
 * matrix plugin copies into each output, with the resource's own param. */
#include <shoal/resource.h>

#include <stdio.h>
#include <string.h>

static char g_text[128];

SHOAL_EXPORT const uint32_t shoal_resource_abi_version = SHOAL_ABI_VERSION;
SHOAL_EXPORT uint32_t shoal_resource_abi(void) { return SHOAL_ABI_VERSION; }

SHOAL_EXPORT shoal_status shoal_resource_open(const shoal_host *host, shoal_ctx *ctx, const char *name,
                                              void **handle) {
  const char *tag = host->param(ctx, "tag");
  if (tag == NULL) {
    host->report_error(ctx, SHOAL_E_INVALID, "matrix resource: param 'tag' missing");
    return SHOAL_E_INVALID;
  }
  snprintf(g_text, sizeof g_text, "%s=%s", name, tag);
  *handle = g_text;
  return SHOAL_OK;
}

SHOAL_EXPORT void shoal_resource_close(shoal_ctx *ctx, void *handle) {
  (void)ctx;
  memset(handle, 0, sizeof g_text);
}

/* Pins the layout of the host table, minor by minor: a reorder or a removal breaks the build. */
#include <shoal/plugin.h>

_Static_assert(offsetof(shoal_host, struct_size) == 0, "ABI 1.0");
_Static_assert(offsetof(shoal_host, abi_version) == 4, "ABI 1.0");
_Static_assert(offsetof(shoal_host, reserve) == 8, "ABI 1.0");
_Static_assert(offsetof(shoal_host, emit) == 16, "ABI 1.0");
_Static_assert(offsetof(shoal_host, report_error) == 24, "ABI 1.0");
_Static_assert(offsetof(shoal_host, should_stop) == 32, "ABI 1.0");
_Static_assert(offsetof(shoal_host, add_finalizer) == 40, "ABI 1.0");
_Static_assert(offsetof(shoal_host, resource) == 48, "ABI 1.0");
_Static_assert(offsetof(shoal_host, param) == 56, "ABI 1.0");
_Static_assert(offsetof(shoal_host, log) == 64, "ABI 1.0");
_Static_assert(offsetof(shoal_host, worker_index) == 72, "ABI 1.0");
_Static_assert(offsetof(shoal_host, shared) == 80, "ABI 1.1");
_Static_assert(sizeof(shoal_host) == 88, "ABI 1.1: append members, then update this line");
_Static_assert(sizeof(shoal_bytes) == 16, "ABI 1.0");
_Static_assert(SHOAL_ABI_VERSION == 0x00010001u, "ABI 1.1");

int shoal_abi_check_anchor(void);
int shoal_abi_check_anchor(void) { return 0; }

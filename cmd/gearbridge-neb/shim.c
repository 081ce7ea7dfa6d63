// Exported NEB symbols. Our own declarations; no core header is used.
#include <stdio.h>

#ifdef GEARBRIDGE_NAGIOS4
int __neb_api_version = 4;
#else
int __neb_api_version = 8;
#endif

int gearbridge_neb_placeholder(void) { return 0; }

int nebmodule_init(int flags, char *args, void *handle) {
	(void)flags;
	(void)args;
	(void)handle;
	fprintf(stderr, "gearbridge_neb: not available yet (issue 5); refusing to load\n");
	return 1;
}

int nebmodule_deinit(int flags, int reason) {
	(void)flags;
	(void)reason;
	return 0;
}

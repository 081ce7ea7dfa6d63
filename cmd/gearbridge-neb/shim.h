/* Functions of the C shim that Go calls (all on the core's main thread,
 * except gb_wake). */
#ifndef GEARBRIDGE_SHIM_H
#define GEARBRIDGE_SHIM_H
#include "layout.h"

/* Every core symbol is a weak reference (see shim.c). */
#define GB_WEAK __attribute__((weak))

void gb_log(int level, const char *msg);
void gb_inject(struct gb_result *r);
const char *gb_custom_var(void *obj, int is_service, const char *name);
int gb_in_hostgroup(void *host, const char *name);
int gb_in_servicegroup(void *svc, const char *name);
void *gb_service_host(void *svc);
int gb_api_version(void);
void gb_give_back(const char *host_name, const char *svc_desc);
const char *gb_giveback_missing(void);
const char *gb_notify_missing(void);
int gb_cb_notification(int cbtype, void *data);
#endif

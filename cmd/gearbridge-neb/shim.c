/*
 * The C half of the broker module: the symbols the core looks up, the
 * callbacks (which filter NEB types in C so that only the events we act on
 * reach Go), the iobroker wake handler, the signal fix-ups and the
 * check_result construction. Core functions are declared here with our own
 * prototypes; no core header is used.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "shim.h"
#include "_cgo_export.h"

int __neb_api_version = GB_NEB_API_VERSION;

/*
 * Core API (identical prototypes in Naemon 1.5 and Nagios 4.4 unless noted).
 * Every core symbol is a weak reference: the package then also links as an
 * ordinary executable (go build ./...), and nebmodule_init refuses to load,
 * with a message, in a core that lacks one, instead of crashing.
 */
typedef int (*gb_callback)(int, void *);
extern int neb_register_callback(int type, void *handle, int priority, gb_callback cb) GB_WEAK;
extern int neb_deregister_callback(int type, gb_callback cb) GB_WEAK;
extern int neb_set_module_info(void *handle, int type, char *data) GB_WEAK;
extern int process_check_result(void *cr) GB_WEAK;
extern int init_check_result(void *cr) GB_WEAK;
extern int free_check_result(void *cr) GB_WEAK;
extern int iobroker_register(void *iobs, int fd, void *arg, int (*handler)(int, int, void *)) GB_WEAK;
extern int iobroker_unregister(void *iobs, int fd) GB_WEAK;
extern void *nagios_iobs GB_WEAK;
/* Optional: when missing, the broker-option check is skipped and perfdata
 * processing counts as enabled. */
extern unsigned long event_broker_options GB_WEAK;
extern int process_performance_data GB_WEAK;
extern void *find_hostgroup(const char *name) GB_WEAK;
extern void *find_servicegroup(const char *name) GB_WEAK;
extern int is_host_member_of_hostgroup(void *group, void *host) GB_WEAK;
extern int is_service_member_of_servicegroup(void *group, void *svc) GB_WEAK;
#ifdef GEARBRIDGE_NAGIOS4
extern int logit(int type, int display, const char *fmt, ...) GB_WEAK;
#define GB_LOG_FN logit
#else
extern void nm_log(int type, const char *fmt, ...) GB_WEAK;
#define GB_LOG_FN nm_log
#endif

/* gb_missing_symbol returns the name of a required core symbol the process
 * does not provide, or NULL. */
static const char *gb_missing_symbol(void) {
	struct {
		const char *name;
		const void *addr;
	} req[] = {
	    {"neb_register_callback", (const void *)neb_register_callback},
	    {"neb_deregister_callback", (const void *)neb_deregister_callback},
	    {"neb_set_module_info", (const void *)neb_set_module_info},
	    {"process_check_result", (const void *)process_check_result},
	    {"init_check_result", (const void *)init_check_result},
	    {"free_check_result", (const void *)free_check_result},
	    {"iobroker_register", (const void *)iobroker_register},
	    {"iobroker_unregister", (const void *)iobroker_unregister},
	    {"nagios_iobs", (const void *)&nagios_iobs},
	    {"find_hostgroup", (const void *)find_hostgroup},
	    {"find_servicegroup", (const void *)find_servicegroup},
	    {"is_host_member_of_hostgroup", (const void *)is_host_member_of_hostgroup},
	    {"is_service_member_of_servicegroup", (const void *)is_service_member_of_servicegroup},
#ifdef GEARBRIDGE_NAGIOS4
	    {"logit", (const void *)logit},
#else
	    {"nm_log", (const void *)nm_log},
#endif
	};
	size_t i;
	for (i = 0; i < sizeof req / sizeof req[0]; i++)
		if (req[i].addr == NULL)
			return req[i].name;
	return gb_giveback_missing();
}

static void *gb_handle;
static int gb_wake_fd = -1;
static int gb_wake_registered;
static int gb_callbacks_registered;
static int gb_perfdata;
static int gb_notifications;
static int gb_inits;
static struct sigaction gb_go_sync[3];
static const int gb_sync_signals[3] = {SIGSEGV, SIGBUS, SIGFPE};

int gb_api_version(void) { return GB_NEB_API_VERSION; }

void gb_log(int level, const char *msg) {
	if (GB_LOG_FN == NULL) {
		fprintf(stderr, "gearbridge: %s\n", msg);
		return;
	}
#ifdef GEARBRIDGE_NAGIOS4
	logit(level, 0, "gearbridge: %s", msg);
#else
	nm_log(level, "gearbridge: %s", msg);
#endif
}

static const char *gb_source_name(void *source) {
	(void)source;
	return "Mod-Gearman Worker";
}
static void gb_clean_result(void *source) { (void)source; }
static struct gb_check_engine gb_engine = {"Mod-Gearman", gb_source_name, gb_clean_result};

void gb_inject(struct gb_result *r) {
	struct gb_check_result *cr = calloc(1, sizeof *cr);
	if (cr == NULL) {
		free(r->host_name);
		free(r->service_description);
		free(r->output);
		return;
	}
	init_check_result(cr);
	cr->object_check_type = r->service_description ? GB_SERVICE_CHECK : GB_HOST_CHECK;
	cr->host_name = r->host_name;
	cr->service_description = r->service_description;
	cr->check_type = r->passive ? 1 : 0;
	cr->check_options = 0;
	cr->scheduled_check = r->passive ? 0 : 1;
#ifdef GEARBRIDGE_NAGIOS4
	/* Nagios schedules the next check only when the result asks for it. */
	cr->reschedule_check = 1;
#endif
	cr->output_file = NULL;
	cr->output_file_fp = NULL;
	cr->latency = r->latency;
	cr->start_time.tv_sec = r->start_sec;
	cr->start_time.tv_usec = r->start_usec;
	cr->finish_time.tv_sec = r->finish_sec;
	cr->finish_time.tv_usec = r->finish_usec;
	cr->early_timeout = r->early_timeout;
	cr->exited_ok = r->exited_ok;
	cr->return_code = r->return_code;
	cr->output = r->output;
	cr->engine = &gb_engine;
	cr->source = NULL;
	process_check_result(cr);
	free_check_result(cr);
	free(cr);
}

const char *gb_custom_var(void *obj, int is_service, const char *name) {
	struct gb_customvar *cv;
	if (obj == NULL)
		return NULL;
	cv = is_service ? ((struct gb_service *)obj)->custom_variables : ((struct gb_host *)obj)->custom_variables;
	for (; cv != NULL; cv = cv->next) {
		if (cv->variable_name && strcasecmp(cv->variable_name, name) == 0)
			return cv->variable_value ? cv->variable_value : "";
	}
	return NULL;
}

int gb_in_hostgroup(void *host, const char *name) {
	void *g;
	if (host == NULL)
		return 0;
	g = find_hostgroup(name);
	return g != NULL && is_host_member_of_hostgroup(g, host);
}

int gb_in_servicegroup(void *svc, const char *name) {
	void *g;
	if (svc == NULL)
		return 0;
	g = find_servicegroup(name);
	return g != NULL && is_service_member_of_servicegroup(g, svc);
}

void *gb_service_host(void *svc) { return svc ? ((struct gb_service *)svc)->host_ptr : NULL; }

static int gb_global_perfdata(void) { return &process_performance_data ? process_performance_data : 1; }

/* Callbacks. Only INITIATE/START and the event loop events reach Go. */
static int gb_cb_service(int cbtype, void *data) {
	struct gb_service_check_data *d = data;
	struct gb_service *svc;
	struct gb_check_result *cr;
	int opts, rc;
	(void)cbtype;
	if (d == NULL)
		return 0;
	if (d->h.type == GB_TYPE_SERVICECHECK_PROCESSED && gb_perfdata && d->perf_data && d->perf_data[0]) {
		struct gb_host *h;
		svc = d->object_ptr;
		h = gb_service_host(svc);
		gbPerfdata(2, d->host_name, d->service_description, d->perf_data, svc ? svc->check_command : NULL,
			   d->h.timestamp.tv_sec, h ? h->current_state : 0, h ? h->state_type : 1, d->state, d->state_type,
			   svc ? svc->process_performance_data : 1, gb_global_perfdata());
		return 0;
	}
	if (d->h.type != GB_TYPE_SERVICECHECK_INITIATE)
		return 0;
	svc = d->object_ptr;
	cr = d->check_result_ptr;
	opts = (cr ? cr->check_options : 0) | (svc ? svc->check_options : 0);
	rc = gbCheck(2, d->host_name, d->service_description, d->command_line, d->timeout, d->latency, opts,
		     gb_service_host(svc), svc);
	if (rc == 1) {
		if (svc) {
			svc->is_executing = 1;
			svc->check_options = 0;
			svc->is_being_freshened = 0;
		}
		return GB_OVERRIDE;
	}
	if (rc == 2)
		return GB_CANCEL;
	return 0;
}

static int gb_cb_host(int cbtype, void *data) {
	struct gb_host_check_data *d = data;
	struct gb_host *host;
	struct gb_check_result *cr;
	int opts, rc;
	(void)cbtype;
	if (d == NULL)
		return 0;
	if (d->h.type == GB_TYPE_HOSTCHECK_PROCESSED && gb_perfdata && d->perf_data && d->perf_data[0]) {
		host = d->object_ptr;
		gbPerfdata(1, d->host_name, NULL, d->perf_data, host ? host->check_command : NULL, d->h.timestamp.tv_sec,
			   d->state, d->state_type, 0, 0, host ? host->process_performance_data : 1, gb_global_perfdata());
		return 0;
	}
	if (d->h.type != GB_TYPE_HOSTCHECK_INITIATE)
		return 0;
	host = d->object_ptr;
	cr = d->check_result_ptr;
	opts = (cr ? cr->check_options : 0) | (host ? host->check_options : 0);
	rc = gbCheck(1, d->host_name, NULL, d->command_line, d->timeout, d->latency, opts, host, NULL);
	if (rc == 1) {
		if (host) {
			host->is_executing = 1;
			host->check_options = 0;
			host->is_being_freshened = 0;
		}
		return GB_OVERRIDE;
	}
	if (rc == 2)
		return GB_CANCEL;
	return 0;
}

static int gb_cb_eventhandler(int cbtype, void *data) {
	struct gb_event_handler_data *d = data;
	int svc, rc;
	(void)cbtype;
	if (d == NULL || d->h.type != GB_TYPE_EVENTHANDLER_START)
		return 0;
	svc = d->eventhandler_type == GB_SERVICE_EVENTHANDLER || d->eventhandler_type == GB_GLOBAL_SERVICE_EVENTHANDLER;
	rc = gbCheck(svc ? 4 : 3, d->host_name, svc ? d->service_description : NULL, d->command_line, d->timeout, 0, 0,
		     svc ? gb_service_host(d->object_ptr) : d->object_ptr, svc ? d->object_ptr : NULL);
	return rc == 0 ? 0 : GB_OVERRIDE;
}

static int gb_cb_process(int cbtype, void *data) {
	struct gb_neb_header *p = data;
	int want;
	(void)cbtype;
	if (p == NULL)
		return 0;
	if (p->type == GB_TYPE_EVENTLOOPSTART) {
		want = gbProcessEvent(p->type);
		if (!gb_callbacks_registered) {
			if (want & 1)
				neb_register_callback(GB_CB_SERVICE_CHECK_DATA, gb_handle, 0, gb_cb_service);
			if (want & 2)
				neb_register_callback(GB_CB_HOST_CHECK_DATA, gb_handle, 0, gb_cb_host);
			if (want & 4)
				neb_register_callback(GB_CB_EVENT_HANDLER_DATA, gb_handle, 0, gb_cb_eventhandler);
			if (gb_notifications)
				neb_register_callback(GB_CB_CONTACT_NOTIFICATION_METHOD_DATA, gb_handle, 0,
						      gb_cb_notification);
			gb_callbacks_registered = 1;
		}
	} else if (p->type == GB_TYPE_EVENTLOOPEND) {
		gbProcessEvent(p->type);
	}
	return 0;
}

static int gb_wake_handler(int fd, int events, void *arg) {
	uint64_t v;
	(void)events;
	(void)arg;
	while (read(fd, &v, sizeof v) == (ssize_t)sizeof v)
		;
	gbDrain();
	return 0;
}

/* gb_wake_fd_for_go returns the eventfd Go writes to. */
int gb_wake_fd_for_go(void) { return gb_wake_fd; }

/* Go needs SA_ONSTACK on every handler; the core reinstalls its handlers
 * without it on every (re)start, and Nagios may take over SIGSEGV. */
static void gb_fix_signals(void) {
	static const int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGXFSZ};
	struct sigaction sa;
	size_t i;
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		if (sigaction(sigs[i], NULL, &sa) != 0)
			continue;
		if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN || (sa.sa_flags & SA_ONSTACK))
			continue;
		sa.sa_flags |= SA_ONSTACK;
		sigaction(sigs[i], &sa, NULL);
	}
	for (i = 0; i < 3; i++) {
		if (gb_inits == 0)
			sigaction(gb_sync_signals[i], NULL, &gb_go_sync[i]);
		else
			sigaction(gb_sync_signals[i], &gb_go_sync[i], NULL);
	}
}

static int gb_fd_valid(int fd) { return fd >= 0 && fcntl(fd, F_GETFD) != -1; }

int nebmodule_init(int flags, char *args, void *handle) {
	unsigned long need = GB_BROKER_PROGRAM_STATE;
	int want;
	const char *missing = gb_missing_symbol();
	(void)flags;
	if (missing != NULL) {
		fprintf(stderr, "gearbridge: this core does not provide %s; is this the module built for it (%s, NEB API %d)?\n",
			missing, GB_NEB_API_VERSION == 4 ? "Nagios 4" : "Naemon", GB_NEB_API_VERSION);
		return 1;
	}
	gb_handle = handle;
	gb_callbacks_registered = 0;
	gb_fix_signals();
	gb_inits++;
	neb_set_module_info(handle, 0, "gearbridge");
	neb_set_module_info(handle, 1, "gearbridge");
	neb_set_module_info(handle, 5, "Distributes checks to Mod-Gearman workers through gearmand");
	/* One eventfd per process; iobroker closes it at shutdown, so a closed
	 * one is replaced. */
	if (!gb_fd_valid(gb_wake_fd))
		gb_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	want = gbInit(args, gb_wake_fd);
	if (want < 0)
		return 1;
	gb_perfdata = (want & 8) != 0;
	gb_notifications = 0;
	if (want & 16) {
		const char *nm = gb_notify_missing();
		char msg[256];
		if (nm != NULL) {
			snprintf(msg, sizeof msg, "notifications=yes, but this core does not provide %s; "
						  "the core sends notifications itself", nm);
			gb_log(GB_LOG_ERROR, msg);
		} else if (&event_broker_options != NULL && !(event_broker_options & GB_BROKER_NOTIFICATIONS))
			gb_log(GB_LOG_ERROR, "notifications=yes, but event_broker_options lacks the notification bit (64); "
					     "the core sends notifications itself (set event_broker_options=-1)");
		else
			gb_notifications = 1;
	}
	if (want & 1)
		need |= GB_BROKER_SERVICE_CHECKS;
	if (want & 2)
		need |= GB_BROKER_HOST_CHECKS;
	if (want & 4)
		need |= GB_BROKER_EVENT_HANDLERS;
	if (&event_broker_options != NULL && (event_broker_options & need) != need) {
		gb_log(GB_LOG_ERROR, "event_broker_options lacks bits the configuration needs (program state, "
				     "service checks, host checks, event handlers); set event_broker_options=-1");
		gbDeinit(0);
		return 1;
	}
	if (nagios_iobs != NULL && gb_wake_fd >= 0) {
		if (iobroker_register(nagios_iobs, gb_wake_fd, NULL, gb_wake_handler) == 0)
			gb_wake_registered = 1;
		else
			gb_log(GB_LOG_ERROR, "cannot register the wake fd with the core's iobroker");
	}
	neb_register_callback(GB_CB_PROCESS_DATA, handle, 0, gb_cb_process);
	return 0;
}

int nebmodule_deinit(int flags, int reason) {
	(void)flags;
	/* Stop Go's writers first, then leave the fd to the next init (the core
	 * closes it itself at shutdown). */
	gbDeinit(reason);
	if (gb_missing_symbol() != NULL)
		return 0;
	if (gb_wake_registered && nagios_iobs != NULL)
		iobroker_unregister(nagios_iobs, gb_wake_fd);
	gb_wake_registered = 0;
	neb_deregister_callback(GB_CB_PROCESS_DATA, gb_cb_process);
	neb_deregister_callback(GB_CB_SERVICE_CHECK_DATA, gb_cb_service);
	neb_deregister_callback(GB_CB_HOST_CHECK_DATA, gb_cb_host);
	neb_deregister_callback(GB_CB_EVENT_HANDLER_DATA, gb_cb_eventhandler);
	neb_deregister_callback(GB_CB_CONTACT_NOTIFICATION_METHOD_DATA, gb_cb_notification);
	gb_callbacks_registered = 0;
	return 0;
}

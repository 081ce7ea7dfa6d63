/*
 * fakecore: a tiny stand-in for Naemon 1.5 (-DAPI=8) or Nagios 4.4 (-DAPI=4)
 * that dlopens a broker module and drives it from commands on stdin. It
 * exports the core functions the module imports (link with -rdynamic). Its
 * field offsets are typed in from the tables of neb-abi.md §1.3/§1.4,
 * independently of the module's layout.h.
 *
 * usage: fakecore MODULE.so "ARGS"
 * commands (one per line):
 *   svc HOST SERVICE OPTIONS COMMANDLINE...   service check INITIATE (700)
 *   host HOST OPTIONS COMMANDLINE...          host check INITIATE (800)
 *   eh HOST SERVICE|- COMMANDLINE...          event handler START (500)
 *   processed HOST SERVICE STATE PERFDATA     service check PROCESSED (701)
 *   hprocessed HOST STATE PERFDATA            host check PROCESSED (801)
 *   svcvar NAME VALUE | hostvar NAME VALUE | clearvars
 *   hg NAME 0|1 | sg NAME 0|1                 group exists, object member or not
 *   wait N MS                                 run the loop until N results or MS
 *   bench N                                   time N service callbacks
 *   rate N PERSEC                             N service checks paced at PERSEC
 *                                             while the loop injects results
 *   notify HOST SERVICE|- CONTACT|- REASON COMMAND ARGS|- AUTHOR|-
 *                                             contact notification method
 *                                             START (604); contact c1 exists
 *   getexec                                   is_executing of both objects
 *   stats | hup | quit
 * Give-backs print "SCHEDULE svc|host IN OPTIONS exec=N" (IN seconds from now).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#ifndef API
#define API 8
#endif
#if API == 4
#define CR_RESCHEDULE 36
#define SVC_STATE 304
#define SVC_LONG 328
#define SVC_NNUM 500
#define SVC_NID 504
#define HOST_NNUM 572
#define HOST_NID 584
#define CR_EARLY 96
#define CR_EXITED 100
#define CR_RC 104
#define SVC_FRESH 492
#define SVC_EXEC 528
#define SVC_HOSTPTR 664
#define HOST_CV 352
#define HOST_EXEC 464
#define HOST_FRESH 564
#else
#define CR_RESCHEDULE -1
#define SVC_STATE 312
#define SVC_LONG 336
#define SVC_NNUM 516
#define SVC_NID 520
#define HOST_NNUM 580
#define HOST_NID 592
#define CR_EARLY 100
#define CR_EXITED 104
#define CR_RC 108
#define SVC_FRESH 508
#define SVC_EXEC 544
#define SVC_HOSTPTR 688
#define HOST_CV 344
#define HOST_EXEC 480
#define HOST_FRESH 572
#endif
#define SVC_CV 280
#define F(p, off, T) (*(T *)((char *)(p) + (off)))

typedef int (*cbfn)(int, void *);
static cbfn callbacks[32][8];
static int ncallbacks[32];
static int module_handle_dummy;
void *nagios_iobs = &module_handle_dummy;
unsigned long event_broker_options = (unsigned long)-1;
int process_performance_data = 1;
static int wake_fd = -1;
static int (*wake_handler)(int, int, void *);
static void *wake_arg;
static int results_seen;
static int quiet; /* do not print results (benchmarks) */

int neb_register_callback(int type, void *handle, int prio, cbfn cb) {
	(void)prio;
	if (handle != &module_handle_dummy || type < 0 || type >= 32 || ncallbacks[type] >= 8)
		return 205;
	callbacks[type][ncallbacks[type]++] = cb;
	return 0;
}
int neb_deregister_callback(int type, cbfn cb) {
	int i;
	for (i = 0; i < ncallbacks[type]; i++)
		if (callbacks[type][i] == cb) {
			memmove(&callbacks[type][i], &callbacks[type][i + 1], (ncallbacks[type] - i - 1) * sizeof(cbfn));
			ncallbacks[type]--;
			return 0;
		}
	return 1;
}
int neb_set_module_info(void *h, int t, char *d) { (void)h; (void)t; (void)d; return 0; }
static int make_callbacks(int type, void *data) {
	int i, rc = 0;
	for (i = 0; i < ncallbacks[type]; i++) {
		rc = callbacks[type][i](type, data);
		if (rc == 206 || rc == 207)
			break;
	}
	return rc;
}
int iobroker_register(void *iobs, int fd, void *arg, int (*h)(int, int, void *)) {
	if (iobs != nagios_iobs)
		return -1;
	wake_fd = fd;
	wake_handler = h;
	wake_arg = arg;
	return 0;
}
int iobroker_unregister(void *iobs, int fd) {
	(void)iobs;
	if (fd == wake_fd)
		wake_handler = NULL;
	return 0;
}
static void vlog(int level, const char *fmt, va_list ap) {
	printf("LOG %d ", level);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
}
void nm_log(int level, const char *fmt, ...) { va_list ap; va_start(ap, fmt); vlog(level, fmt, ap); va_end(ap); }
int logit(int level, int display, const char *fmt, ...) {
	va_list ap;
	(void)display;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
	return 0;
}

/* Objects: one host and one service, with custom variables and groups. */
static _Alignas(16) char host_obj[1024];
static _Alignas(16) char svc_obj[1024];
struct cv { char *name; char *value; int mod; struct cv *next; };
static struct grp { char name[64]; int member; } hgs[16], sgs[16];
static int nhg, nsg;
static void *find_group(struct grp *g, int n, const char *name) {
	int i;
	for (i = 0; i < n; i++)
		if (strcmp(g[i].name, name) == 0)
			return &g[i];
	return NULL;
}
void *find_hostgroup(const char *name) { return find_group(hgs, nhg, name); }
void *find_servicegroup(const char *name) { return find_group(sgs, nsg, name); }
int is_host_member_of_hostgroup(void *g, void *h) { return h == host_obj && ((struct grp *)g)->member; }
int is_service_member_of_servicegroup(void *g, void *s) { return s == svc_obj && ((struct grp *)g)->member; }
static void set_group(struct grp *g, int *n, const char *name, int member) {
	struct grp *x = find_group(g, *n, name);
	if (!x && *n < 16) {
		x = &g[(*n)++];
		snprintf(x->name, sizeof x->name, "%s", name);
	}
	if (x)
		x->member = member;
}
static void add_var(void *obj, int off, const char *name, const char *value) {
	struct cv *v = calloc(1, sizeof *v);
	v->name = strdup(name);
	v->value = strdup(value);
	v->next = F(obj, off, struct cv *);
	F(obj, off, struct cv *) = v;
}

/* Give-backs: the scheduler functions, by the spec's offsets. */
int interval_length = 60;
void *find_host(const char *name) { (void)name; return host_obj; }
void *find_service(const char *host, const char *svc) {
	(void)host;
	return strcmp(svc, "gone") == 0 ? NULL : svc_obj;
}
void schedule_service_check(void *svc, time_t when, int options) {
	printf("SCHEDULE svc %ld %d exec=%d\n", (long)(when - time(NULL)), options, F(svc, SVC_EXEC, int));
	fflush(stdout);
}
void schedule_host_check(void *host, time_t when, int options) {
	printf("SCHEDULE host %ld %d exec=%d\n", (long)(when - time(NULL)), options, F(host, HOST_EXEC, int));
	fflush(stdout);
}

/* Notifications: a small macro engine standing in for the core's, enough to
 * show which x[] entries the module set and that it freed them. */
struct fake_contact { int id; char *name, *alias, *email, *pager, *address[6]; };
static struct fake_contact contact_c1 = {0, "c1", "Contact One", "c1@example.com", "+49-111", {"addr-one"}};
struct fake_command { int id; char *name, *command_line; };
static struct fake_command cmd_svc = {0, "notify-svc",
	"/bin/notify svc $NOTIFICATIONTYPE$ $HOSTNAME$ $SERVICEDESC$ $SERVICESTATE$ '$SERVICEOUTPUT$' $CONTACTNAME$ "
	"$CONTACTEMAIL$ $SERVICENOTIFICATIONNUMBER$ $SERVICENOTIFICATIONID$ $NOTIFICATIONISESCALATED$ "
	"'$NOTIFICATIONAUTHOR$' '$NOTIFICATIONAUTHORNAME$' '$NOTIFICATIONCOMMENT$' '$ARG1$' '$ARG2$'"};
static struct fake_command cmd_host = {0, "notify-host",
	"/bin/notify host $NOTIFICATIONTYPE$ $HOSTNAME$ $HOSTSTATE$ '$HOSTOUTPUT$' $CONTACTNAME$ $HOSTNOTIFICATIONNUMBER$ "
	"$HOSTNOTIFICATIONID$ '$ARG1$'"};
static void *grabbed_host, *grabbed_svc, *grabbed_contact;
static char *mac_argv[33];
static const struct { const char *name; int idx; } xnames[] = {
	{"NOTIFICATIONTYPE", 29}, {"NOTIFICATIONNUMBER", 30}, {"HOSTNOTIFICATIONNUMBER", 102},
	{"SERVICENOTIFICATIONNUMBER", 103}, {"HOSTNOTIFICATIONID", 104}, {"SERVICENOTIFICATIONID", 105},
	{"NOTIFICATIONISESCALATED", 137}, {"NOTIFICATIONAUTHOR", 138}, {"NOTIFICATIONAUTHORNAME", 139},
	{"NOTIFICATIONAUTHORALIAS", 140}, {"NOTIFICATIONCOMMENT", 141}, {"SERVICEACKAUTHOR", 51},
	{"SERVICEACKCOMMENT", 52}, {NULL, 0}};
static char notify_host_name[256], notify_svc_name[256];
int log_notifications = 1;
int log_global_notifications = 1;
int grab_host_macros_r(void *mac, void *h) { (void)mac; grabbed_host = h; return 0; }
int grab_service_macros_r(void *mac, void *s) { (void)mac; grabbed_svc = s; return 0; }
int grab_contact_macros_r(void *mac, void *c) { (void)mac; grabbed_contact = c; return 0; }
void *find_command(const char *name) {
	if (strcmp(name, "notify-svc") == 0)
		return &cmd_svc;
	if (strcmp(name, "notify-host") == 0)
		return &cmd_host;
	return NULL;
}
void *find_contact(const char *name) { return strcmp(name, "c1") == 0 ? &contact_c1 : NULL; }
const char *notification_reason_name(unsigned int r) {
	static const char *n[] = {"NORMAL", "ACKNOWLEDGEMENT", "FLAPPINGSTART", "FLAPPINGSTOP", "FLAPPINGDISABLED",
				  "DOWNTIMESTART", "DOWNTIMEEND", "DOWNTIMECANCELLED", "CUSTOM"};
	return r < 9 ? n[r] : "(unknown)";
}
int get_raw_command_line_r(void *mac, void *cmd, char *cmdline, char **full, int options) {
	char *copy, *p, *tok;
	int i = 0;
	(void)mac;
	(void)options;
	for (i = 0; i < 33; i++) {
		free(mac_argv[i]);
		mac_argv[i] = NULL;
	}
	copy = strdup(cmdline);
	p = strchr(copy, '!');
	for (i = 0; p && i < 32; i++) {
		tok = p + 1;
		p = strchr(tok, '!');
		if (p)
			*p = 0;
		mac_argv[i] = strdup(tok);
	}
	free(copy);
	*full = strdup(((struct fake_command *)cmd)->command_line);
	return 0;
}
static const char *macro_value(char **x, const char *name) {
	int i;
	for (i = 0; xnames[i].name; i++)
		if (strcmp(name, xnames[i].name) == 0)
			return x[xnames[i].idx] ? x[xnames[i].idx] : "";
	if (strncmp(name, "ARG", 3) == 0) {
		i = atoi(name + 3) - 1;
		return i >= 0 && i < 32 && mac_argv[i] ? mac_argv[i] : "";
	}
	if (strcmp(name, "HOSTNAME") == 0)
		return grabbed_host ? notify_host_name : "";
	if (strcmp(name, "SERVICEDESC") == 0)
		return grabbed_svc ? notify_svc_name : "";
	if (strcmp(name, "SERVICESTATE") == 0)
		return grabbed_svc ? "CRITICAL" : "";
	if (strcmp(name, "SERVICEOUTPUT") == 0)
		return grabbed_svc ? "CRIT - disk full" : "";
	if (strcmp(name, "HOSTSTATE") == 0)
		return grabbed_host ? "DOWN" : "";
	if (strcmp(name, "HOSTOUTPUT") == 0)
		return grabbed_host ? "DOWN - no ping" : "";
	if (strcmp(name, "CONTACTNAME") == 0)
		return grabbed_contact ? ((struct fake_contact *)grabbed_contact)->name : "";
	if (strcmp(name, "CONTACTEMAIL") == 0)
		return grabbed_contact ? ((struct fake_contact *)grabbed_contact)->email : "";
	return "";
}
int process_macros_r(void *mac, char *in, char **out, int options) {
	char buf[8192];
	size_t n = 0;
	char *p = in;
	(void)options;
	while (*p && n < sizeof buf - 1) {
		char *end;
		if (*p == '$' && (end = strchr(p + 1, '$')) != NULL) {
			char name[128];
			const char *v;
			snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
			v = macro_value(mac, name);
			n += snprintf(buf + n, sizeof buf - n, "%s", v);
			p = end + 1;
			continue;
		}
		buf[n++] = *p++;
	}
	buf[n] = 0;
	*out = strdup(buf);
	return 0;
}
int clear_volatile_macros_r(void *mac) {
	char **x = mac;
	int i, left = 0;
	for (i = 0; i < 164; i++)
		if (x[i])
			left++;
	if (left)
		printf("MACROLEAK %d\n", left);
	for (i = 0; i < 33; i++) {
		free(mac_argv[i]);
		mac_argv[i] = NULL;
	}
	grabbed_host = grabbed_svc = grabbed_contact = NULL;
	return 0;
}
int write_to_all_logs(char *buf, unsigned long type) {
	printf("LOG %lu %s\n", type, buf);
	fflush(stdout);
	return 0;
}

/* check_result handling, by the spec's offsets. */
int init_check_result(void *cr) {
	memset(cr, 0, 280);
	F(cr, 0, int) = 1; /* HOST_CHECK */
	F(cr, CR_EXITED, int) = 1;
	return 0;
}
int free_check_result(void *cr) {
	free(F(cr, 8, char *));
	free(F(cr, 16, char *));
	free(F(cr, 112, char *));
	return 0;
}
int process_check_result(void *cr) {
	struct timeval *st = (struct timeval *)((char *)cr + 64), *ft = (struct timeval *)((char *)cr + 80);
	char *out = F(cr, 112, char *), *p;
	char **engine = F(cr, 264, char **);
	if (quiet) {
		results_seen++;
		goto done;
	}
	printf("RESULT objtype=%d host=%s svc=%s type=%d sched=%d resched=%d latency=%.6f start=%ld.%06ld finish=%ld.%06ld early=%d exited=%d rc=%d engine=%s output=",
	       F(cr, 0, int), F(cr, 8, char *), F(cr, 16, char *) ? F(cr, 16, char *) : "-", F(cr, 24, int), F(cr, 32, int),
	       CR_RESCHEDULE >= 0 ? F(cr, CR_RESCHEDULE < 0 ? 0 : CR_RESCHEDULE, int) : -1, F(cr, 56, double),
	       (long)st->tv_sec, (long)st->tv_usec, (long)ft->tv_sec, (long)ft->tv_usec, F(cr, CR_EARLY, int),
	       F(cr, CR_EXITED, int), F(cr, CR_RC, int), engine ? engine[0] : "-");
	for (p = out; p && *p; p++) {
		if (*p == '\n')
			fputs("\\n", stdout);
		else
			putchar(*p);
	}
	putchar('\n');
	fflush(stdout);
	results_seen++;
done:
	/* Like the cores, clear is_executing when the result is handled. */
	if (F(cr, 16, char *))
		F(svc_obj, SVC_EXEC, int) = 0;
	else
		F(host_obj, HOST_EXEC, int) = 0;
	return 0;
}

static void run_loop(int want, int ms) {
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (results_seen < want) {
		struct pollfd pfd = {wake_fd, POLLIN, 0};
		long el;
		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (el >= ms)
			break;
		if (wake_fd >= 0 && poll(&pfd, 1, ms - el) > 0 && wake_handler)
			wake_handler(wake_fd, pfd.revents, wake_arg);
	}
}

/* nebstruct builders by the spec's offsets. */
static char svcbuf[200], hostbuf[192], ehbuf[168], crbuf[280];
static int svc_timeout = 60, host_timeout = 30; /* the core's check timeouts */
static int fire_svc(char *h, char *s, int opts, char *cmd) {
	memset(svcbuf, 0, sizeof svcbuf);
	memset(crbuf, 0, sizeof crbuf);
	F(svcbuf, 0, int) = 700;
	F(svcbuf, 32, char *) = h;
	F(svcbuf, 40, char *) = s;
	F(svcbuf, 68, int) = svc_timeout;
	F(svcbuf, 88, char *) = cmd;
	F(svcbuf, 144, double) = 0.5;
	F(crbuf, 28, int) = opts;
	F(svcbuf, 184, void *) = crbuf;
	F(svcbuf, 192, void *) = svc_obj;
	return make_callbacks(6, svcbuf);
}
static int fire_host(char *h, int opts, char *cmd) {
	memset(hostbuf, 0, sizeof hostbuf);
	memset(crbuf, 0, sizeof crbuf);
	F(hostbuf, 0, int) = 800;
	F(hostbuf, 32, char *) = h;
	F(hostbuf, 60, int) = host_timeout;
	F(hostbuf, 80, char *) = cmd;
	F(hostbuf, 136, double) = 0.25;
	F(crbuf, 28, int) = opts;
	F(hostbuf, 176, void *) = crbuf;
	F(hostbuf, 184, void *) = host_obj;
	return make_callbacks(7, hostbuf);
}
static int fire_eh(char *h, char *s, char *cmd) {
	memset(ehbuf, 0, sizeof ehbuf);
	F(ehbuf, 0, int) = 500;
	F(ehbuf, 32, int) = s ? 1 : 0;
	F(ehbuf, 40, char *) = h;
	F(ehbuf, 48, char *) = s;
	F(ehbuf, 64, int) = 60;
	F(ehbuf, 88, char *) = cmd;
	F(ehbuf, 160, void *) = s ? (void *)svc_obj : (void *)host_obj;
	return make_callbacks(4, ehbuf);
}
static char cnmbuf[168];
static int fire_notify(char *h, char *s, char *contact, int reason, char *cmd, char *args, char *author) {
	memset(cnmbuf, 0, sizeof cnmbuf);
	snprintf(notify_host_name, sizeof notify_host_name, "%s", h);
	snprintf(notify_svc_name, sizeof notify_svc_name, "%s", s ? s : "");
	F(cnmbuf, 0, int) = 604;
	F(cnmbuf, 32, int) = s ? 1 : 0;
	F(cnmbuf, 40, long) = 1700000000;
	F(cnmbuf, 48, long) = 123456;
	F(cnmbuf, 72, char *) = h;
	F(cnmbuf, 80, char *) = s;
	F(cnmbuf, 88, char *) = contact;
	F(cnmbuf, 96, char *) = cmd;
	F(cnmbuf, 104, char *) = args;
	F(cnmbuf, 112, int) = reason;
	F(cnmbuf, 120, char *) = s ? "CRIT - disk full" : "DOWN - no ping";
	F(cnmbuf, 128, char *) = author;
	F(cnmbuf, 136, char *) = author ? "ack comment text" : NULL;
	F(cnmbuf, 152, void *) = s ? (void *)svc_obj : (void *)host_obj;
	F(cnmbuf, 160, void *) = contact ? &contact_c1 : NULL;
	return make_callbacks(21, cnmbuf);
}
static int fire_processed(char *h, char *s, int state, char *perf) {
	if (s) {
		memset(svcbuf, 0, sizeof svcbuf);
		F(svcbuf, 0, int) = 701;
		F(svcbuf, 16, long) = 1700000000;
		F(svcbuf, 32, char *) = h;
		F(svcbuf, 40, char *) = s;
		F(svcbuf, 60, int) = 1;
		F(svcbuf, 64, int) = state;
		F(svcbuf, 176, char *) = perf;
		F(svcbuf, 192, void *) = svc_obj;
		return make_callbacks(6, svcbuf);
	}
	memset(hostbuf, 0, sizeof hostbuf);
	F(hostbuf, 0, int) = 801;
	F(hostbuf, 16, long) = 1700000000;
	F(hostbuf, 32, char *) = h;
	F(hostbuf, 52, int) = 1;
	F(hostbuf, 56, int) = state;
	F(hostbuf, 168, char *) = perf;
	F(hostbuf, 184, void *) = host_obj;
	return make_callbacks(7, hostbuf);
}
static void process_event(int type) {
	char p[32] = {0};
	F(p, 0, int) = type;
	make_callbacks(0, p);
}
static void on_signal(int sig) { (void)sig; }
static int cmp_long(const void *a, const void *b) {
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
	void *lib;
	int *api, (*init)(int, char *, void *), (*deinit)(int, int);
	char *(*stats)(void);
	char line[65536], args[4096];
	if (argc < 3) {
		fprintf(stderr, "usage: fakecore MODULE ARGS\n");
		return 2;
	}
	snprintf(args, sizeof args, "%s", argv[2]);
	F(svc_obj, SVC_HOSTPTR, void *) = host_obj;
	F(svc_obj, 48, char *) = "check_svc!a!b";
	F(svc_obj, 188, int) = 1;
	F(host_obj, 64, char *) = "check_host!x";
	F(host_obj, 208, int) = 1;
	F(host_obj, 372, int) = 1; /* DOWN */
	F(host_obj, 408, int) = 1; /* HARD */
	F(svc_obj, 72, double) = 5;  /* check_interval */
	F(host_obj, 80, double) = 2; /* check_interval */
	F(svc_obj, SVC_STATE, int) = 2;
	F(svc_obj, SVC_LONG, char *) = "line2 of long\\nline3 of long";
	F(svc_obj, SVC_NNUM, int) = 3;
	F(host_obj, HOST_NNUM, int) = 1;
#if API == 4
	F(svc_obj, SVC_NID, unsigned long) = 42;
	F(host_obj, HOST_NID, unsigned long) = 7;
#else
	F(svc_obj, SVC_NID, char *) = "3fa2cc66-6149-4bc8-8c6d-9e8beec57de8";
	F(host_obj, HOST_NID, char *) = "f3112f74-80dc-401c-a51f-3552dc0f3d46";
#endif
	lib = dlopen(argv[1], RTLD_NOW | (API == 4 ? RTLD_GLOBAL : 0));
	if (!lib) {
		printf("DLOPEN %s\n", dlerror());
		return 3;
	}
	api = dlsym(lib, "__neb_api_version");
	init = dlsym(lib, "nebmodule_init");
	deinit = dlsym(lib, "nebmodule_deinit");
	stats = dlsym(lib, "gearbridge_stats");
	if (!api || *api != API) {
		printf("APIVERSION %d want %d\n", api ? *api : -1, API);
		return 4;
	}
	if (init(0, args, &module_handle_dummy) != 0) {
		printf("INIT failed\n");
		return 5;
	}
	process_event(105);
	printf("READY api=%d\n", *api);
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
		char *cmd = strtok(line, " \n");
		if (!cmd)
			continue;
		if (strcmp(cmd, "svc") == 0) {
			char *h = strtok(NULL, " "), *s = strtok(NULL, " "), *o = strtok(NULL, " "), *c = strtok(NULL, "\n");
			int rc = fire_svc(h, s, atoi(o), c);
			printf("RC %d exec=%d opts=%d fresh=%d\n", rc, F(svc_obj, SVC_EXEC, int), F(svc_obj, SVC_EXEC + 4, int),
			       F(svc_obj, SVC_FRESH, int));
		} else if (strcmp(cmd, "host") == 0) {
			char *h = strtok(NULL, " "), *o = strtok(NULL, " "), *c = strtok(NULL, "\n");
			int rc = fire_host(h, atoi(o), c);
			printf("RC %d exec=%d opts=%d fresh=%d\n", rc, F(host_obj, HOST_EXEC, int), F(host_obj, HOST_EXEC + 4, int),
			       F(host_obj, HOST_FRESH, int));
		} else if (strcmp(cmd, "eh") == 0) {
			char *h = strtok(NULL, " "), *s = strtok(NULL, " "), *c = strtok(NULL, "\n");
			printf("RC %d\n", fire_eh(h, strcmp(s, "-") ? s : NULL, c));
		} else if (strcmp(cmd, "processed") == 0) {
			char *h = strtok(NULL, " "), *sv = strtok(NULL, " "), *st = strtok(NULL, " "), *pd = strtok(NULL, "\n");
			printf("RC %d\n", fire_processed(h, sv, atoi(st), pd));
		} else if (strcmp(cmd, "hprocessed") == 0) {
			char *h = strtok(NULL, " "), *st = strtok(NULL, " "), *pd = strtok(NULL, "\n");
			printf("RC %d\n", fire_processed(h, NULL, atoi(st), pd));
		} else if (strcmp(cmd, "svcvar") == 0 || strcmp(cmd, "hostvar") == 0) {
			char *n = strtok(NULL, " "), *v = strtok(NULL, " \n");
			if (cmd[0] == 's')
				add_var(svc_obj, SVC_CV, n, v);
			else
				add_var(host_obj, HOST_CV, n, v);
			printf("OK\n");
		} else if (strcmp(cmd, "clearvars") == 0) {
			F(svc_obj, SVC_CV, void *) = NULL;
			F(host_obj, HOST_CV, void *) = NULL;
			printf("OK\n");
		} else if (strcmp(cmd, "hg") == 0 || strcmp(cmd, "sg") == 0) {
			char *n = strtok(NULL, " "), *m = strtok(NULL, " \n");
			if (cmd[0] == 'h')
				set_group(hgs, &nhg, n, atoi(m));
			else
				set_group(sgs, &nsg, n, atoi(m));
			printf("OK\n");
		} else if (strcmp(cmd, "wait") == 0) {
			int n = atoi(strtok(NULL, " ")), ms = atoi(strtok(NULL, " \n"));
			int start = results_seen;
			run_loop(start + n, ms);
			printf("WAITED %d\n", results_seen - start);
		} else if (strcmp(cmd, "bench") == 0) {
			int n = atoi(strtok(NULL, " \n")), i, over = 0;
			long *ns = malloc(sizeof(long) * n);
			char svc[64];
			struct timespec a, b, t0, t1;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			for (i = 0; i < n; i++) {
				snprintf(svc, sizeof svc, "bench%d", i);
				F(svc_obj, SVC_EXEC, int) = 0;
				clock_gettime(CLOCK_MONOTONIC, &a);
				over += fire_svc("benchhost", svc, 0, "/usr/lib/nagios/plugins/check_ok -w 1") == 206;
				clock_gettime(CLOCK_MONOTONIC, &b);
				ns[i] = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
			}
			clock_gettime(CLOCK_MONOTONIC, &t1);
			qsort(ns, n, sizeof(long), cmp_long);
			printf("BENCH n=%d override=%d median_ns=%ld p99_ns=%ld total_ms=%ld\n", n, over, ns[n / 2], ns[n * 99 / 100],
			       ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec)) / 1000000);
			free(ns);
		} else if (strcmp(cmd, "rate") == 0) {
			int n = atoi(strtok(NULL, " ")), per = atoi(strtok(NULL, " \n")), i, over = 0;
			long *ns = malloc(sizeof(long) * n), maxlag = 0;
			double lagsum = 0;
			char svc[64];
			struct timespec a, b, t0, now;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			for (i = 0; i < n; i++) {
				long target = (long)i * 1000000000L / per, el, lag;
				for (;;) {
					struct pollfd pfd = {wake_fd, POLLIN, 0};
					long wait_ms;
					clock_gettime(CLOCK_MONOTONIC, &now);
					el = (now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec);
					if (el >= target)
						break;
					wait_ms = (target - el) / 1000000;
					if (poll(&pfd, 1, (int)wait_ms) > 0 && wake_handler)
						wake_handler(wake_fd, pfd.revents, wake_arg);
				}
				lag = el - target;
				lagsum += lag;
				if (lag > maxlag)
					maxlag = lag;
				snprintf(svc, sizeof svc, "rate%d", i);
				F(svc_obj, SVC_EXEC, int) = 0;
				clock_gettime(CLOCK_MONOTONIC, &a);
				over += fire_svc("ratehost", svc, 0, "/usr/lib/nagios/plugins/check_ok") == 206;
				clock_gettime(CLOCK_MONOTONIC, &b);
				ns[i] = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
			}
			clock_gettime(CLOCK_MONOTONIC, &now);
			qsort(ns, n, sizeof(long), cmp_long);
			printf("RATE n=%d override=%d per_s=%.0f median_ns=%ld p99_ns=%ld max_lag_us=%ld mean_lag_us=%.0f\n", n, over,
			       n / ((now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9), ns[n / 2], ns[n * 99 / 100],
			       maxlag / 1000, lagsum / n / 1000);
			free(ns);
		} else if (strcmp(cmd, "notify") == 0) {
			char *h = strtok(NULL, " "), *sv = strtok(NULL, " "), *ct = strtok(NULL, " "), *rs = strtok(NULL, " ");
			char *cm = strtok(NULL, " "), *ar = strtok(NULL, " "), *au = strtok(NULL, " \n");
			int rc = fire_notify(h, strcmp(sv, "-") ? sv : NULL, strcmp(ct, "-") ? ct : NULL, atoi(rs), cm,
					     strcmp(ar, "-") ? ar : NULL, strcmp(au, "-") ? au : NULL);
			printf("RC %d\n", rc);
		} else if (strcmp(cmd, "getexec") == 0) {
			printf("EXEC svc=%d host=%d\n", F(svc_obj, SVC_EXEC, int), F(host_obj, HOST_EXEC, int));
		} else if (strcmp(cmd, "stats") == 0) {
			char *s = stats();
			printf("STATS %s\n", s);
			free(s);
		} else if (strcmp(cmd, "hup") == 0) {
			int rc;
			struct sigaction sa;
			process_event(106);
			deinit(1, 2);
			memset(ncallbacks, 0, sizeof ncallbacks);
			/* Like the cores' setup_sighandler: handlers without SA_ONSTACK. */
			memset(&sa, 0, sizeof sa);
			sa.sa_handler = on_signal;
			sigaction(SIGHUP, &sa, NULL);
			rc = init(0, args, &module_handle_dummy);
			process_event(105);
			sigaction(SIGHUP, NULL, &sa);
			printf("HUP %d onstack=%d\n", rc, (sa.sa_flags & SA_ONSTACK) != 0);
		} else if (strcmp(cmd, "timeout") == 0) {
			svc_timeout = atoi(strtok(NULL, " "));
			host_timeout = atoi(strtok(NULL, " \n"));
			printf("OK\n");
		} else if (strcmp(cmd, "quiet") == 0) {
			quiet = atoi(strtok(NULL, " \n"));
			printf("OK\n");
		} else if (strcmp(cmd, "quit") == 0) {
			break;
		} else {
			printf("UNKNOWN %s\n", cmd);
		}
		fflush(stdout);
	}
	process_event(106);
	deinit(1, 1);
	printf("BYE\n");
	fflush(stdout);
	return 0;
}

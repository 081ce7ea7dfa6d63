/*
 * Notifications and give-backs: the parts of the broker module that call
 * the core's macro and scheduler functions. Written from neb-abi.md §8 (the
 * classic module's sequence, with the core-fidelity fixes of §8.6); every
 * core symbol is a weak reference, checked before use.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "shim.h"
#include "_cgo_export.h"

extern void *find_host(const char *name) GB_WEAK;
extern void *find_service(const char *host, const char *svc) GB_WEAK;
extern void schedule_service_check(void *svc, time_t when, int options) GB_WEAK;
extern void schedule_host_check(void *host, time_t when, int options) GB_WEAK;
extern int interval_length GB_WEAK;
extern int process_macros_r(void *mac, char *input, char **output, int options) GB_WEAK;
extern int get_raw_command_line_r(void *mac, void *cmd, char *cmdline, char **full, int options) GB_WEAK;
extern int grab_host_macros_r(void *mac, void *host) GB_WEAK;
extern int grab_service_macros_r(void *mac, void *svc) GB_WEAK;
extern int grab_contact_macros_r(void *mac, void *contact) GB_WEAK;
extern int clear_volatile_macros_r(void *mac) GB_WEAK;
extern void *find_command(const char *name) GB_WEAK;
extern void *find_contact(const char *name) GB_WEAK;
extern const char *notification_reason_name(unsigned int reason) GB_WEAK;
extern int log_notifications GB_WEAK;
#ifdef GEARBRIDGE_NAGIOS4
extern int write_to_all_logs(char *buf, unsigned long type) GB_WEAK;
#else
extern int log_global_notifications GB_WEAK;
extern void nm_log(int type, const char *fmt, ...) GB_WEAK;
#endif

const char *gb_giveback_missing(void) {
	if (find_host == NULL)
		return "find_host";
	if (find_service == NULL)
		return "find_service";
	if (schedule_service_check == NULL)
		return "schedule_service_check";
	if (schedule_host_check == NULL)
		return "schedule_host_check";
	return NULL;
}

const char *gb_notify_missing(void) {
	if (process_macros_r == NULL)
		return "process_macros_r";
	if (get_raw_command_line_r == NULL)
		return "get_raw_command_line_r";
	if (grab_host_macros_r == NULL || grab_service_macros_r == NULL || grab_contact_macros_r == NULL)
		return "grab_*_macros_r";
	if (clear_volatile_macros_r == NULL)
		return "clear_volatile_macros_r";
	if (find_command == NULL || find_contact == NULL)
		return "find_command/find_contact";
	if (notification_reason_name == NULL)
		return "notification_reason_name";
	return NULL;
}

/* gb_give_back hands a check the module took back to the core's scheduler
 * without a result: it clears is_executing (what the module set) and makes
 * sure a next check is planned one check interval from now. An earlier
 * planned check is kept (both cores keep the sooner of two non-forced
 * events). Main thread only. */
void gb_give_back(const char *host_name, const char *svc_desc) {
	int ilen = (&interval_length != NULL && interval_length > 0) ? interval_length : 60;
	double iv;
	if (svc_desc != NULL) {
		void *svc = find_service(host_name, svc_desc);
		if (svc == NULL)
			return;
		GB_FIELD(svc, GB_SVC_IS_EXECUTING, int) = 0;
		iv = GB_FIELD(svc, GB_SVC_CHECK_INTERVAL, double);
		if (iv > 0)
			schedule_service_check(svc, time(NULL) + (time_t)(iv * ilen), 0);
		return;
	}
	{
		void *host = find_host(host_name);
		if (host == NULL)
			return;
		GB_FIELD(host, GB_HOST_IS_EXECUTING, int) = 0;
		iv = GB_FIELD(host, GB_HOST_CHECK_INTERVAL, double);
		if (iv > 0)
			schedule_host_check(host, time(NULL) + (time_t)(iv * ilen), 0);
	}
}

/* One zeroed nagios_macros, used only during a callback on the main thread. */
static _Alignas(16) char gb_mac[GB_MACROS_SIZE];

/* The x[] entries this module set (malloc'd), freed after each use. */
static int gb_own[32];
static int gb_nown;

static void gb_set(int idx, const char *v) {
	char **x = (char **)gb_mac;
	if (v == NULL || gb_nown >= (int)(sizeof gb_own / sizeof gb_own[0]))
		return;
	free(x[idx]);
	x[idx] = strdup(v);
	if (x[idx] != NULL)
		gb_own[gb_nown++] = idx;
}

static void gb_release(void) {
	char **x = (char **)gb_mac;
	int i;
	for (i = 0; i < gb_nown; i++) {
		free(x[gb_own[i]]);
		x[gb_own[i]] = NULL;
	}
	gb_nown = 0;
	clear_volatile_macros_r(gb_mac);
}

static char *gb_expand(const char *tmpl) {
	char *in = strdup(tmpl), *out = NULL;
	if (in == NULL)
		return NULL;
	process_macros_r(gb_mac, in, &out, GB_MACRO_OPTIONS);
	free(in);
	return out;
}

/* gb_log_notification writes the line the core would have written for the
 * notification, if the core logs notifications. */
static void gb_log_notification(struct gb_contact_notification_method_data *d, const char *contact, int is_svc,
				const char *reason) {
	char tmpl[2048], state[256];
	char *line;
	int global = d->contact_name == NULL;
	int want = &log_notifications != NULL ? log_notifications : 1;
#ifndef GEARBRIDGE_NAGIOS4
	if (global)
		want = &log_global_notifications != NULL ? log_global_notifications : want;
#else
	(void)global;
#endif
	if (!want)
		return;
	if (reason == NULL)
		snprintf(state, sizeof state, "%s", is_svc ? "$SERVICESTATE$" : "$HOSTSTATE$");
	else
		snprintf(state, sizeof state, "%s (%s)", reason, is_svc ? "$SERVICESTATE$" : "$HOSTSTATE$");
	if (is_svc)
		snprintf(tmpl, sizeof tmpl, "SERVICE NOTIFICATION: %s;%s;%s;%s;%s;$SERVICEOUTPUT$", contact, d->host_name,
			 d->service_description, state, d->command_name);
	else
		snprintf(tmpl, sizeof tmpl, "HOST NOTIFICATION: %s;%s;%s;%s;$HOSTOUTPUT$", contact, d->host_name, state,
			 d->command_name);
	if (d->reason_type == GB_REASON_ACKNOWLEDGEMENT || d->reason_type == GB_REASON_CUSTOM)
		strncat(tmpl, ";$NOTIFICATIONAUTHOR$;$NOTIFICATIONCOMMENT$", sizeof tmpl - strlen(tmpl) - 1);
	line = gb_expand(tmpl);
	if (line == NULL)
		return;
#ifdef GEARBRIDGE_NAGIOS4
	if (write_to_all_logs != NULL)
		write_to_all_logs(line, is_svc ? GB_NSLOG_SERVICE_NOTIFICATION : GB_NSLOG_HOST_NOTIFICATION);
#else
	if (nm_log != NULL)
		nm_log(is_svc ? GB_NSLOG_SERVICE_NOTIFICATION : GB_NSLOG_HOST_NOTIFICATION, "%s", line);
#endif
	free(line);
}

/* gb_cb_notification distributes one contact notification command
 * (NEBTYPE_CONTACTNOTIFICATIONMETHOD_START): it expands the command line
 * with the core's own macro functions, hands a copy to Go and tells the core
 * not to run it (OVERRIDE skips only this command). Whatever cannot be
 * distributed is left to the core (return 0), so nothing is lost. */
int gb_cb_notification(int cbtype, void *data) {
	struct gb_contact_notification_method_data *d = data;
	struct timeval core_time;
	void *svc = NULL, *host = NULL, *cmd;
	const char *contact, *reason = NULL;
	char num[32], id[64], *full = NULL, *raw = NULL, *line = NULL, *long_out;
	int is_svc, state, rc = 0;
	size_t n;
	(void)cbtype;
	if (d == NULL || d->h.type != GB_TYPE_CONTACTNOTIFICATIONMETHOD_START || d->host_name == NULL ||
	    d->command_name == NULL || d->object_ptr == NULL)
		return 0;
	gettimeofday(&core_time, NULL);
	is_svc = d->service_description != NULL;
	if (is_svc) {
		svc = d->object_ptr;
		host = ((struct gb_service *)svc)->host_ptr;
	} else {
		host = d->object_ptr;
	}
	if (host == NULL || !gbNotifyRouted(is_svc, host, svc))
		return 0;
	cmd = find_command(d->command_name);
	if (cmd == NULL)
		return 0;
	contact = d->contact_name ? d->contact_name : "GLOBAL";

	memset(gb_mac, 0, sizeof gb_mac);
	gb_nown = 0;
	grab_host_macros_r(gb_mac, host);
	if (is_svc)
		grab_service_macros_r(gb_mac, svc);
	if (d->contact_ptr != NULL)
		grab_contact_macros_r(gb_mac, d->contact_ptr);
	if (d->ack_author != NULL) {
		struct gb_contact *c = find_contact(d->ack_author);
		gb_set(GB_MAC_NOTIFICATIONAUTHOR, d->ack_author);
		if (c != NULL) {
			gb_set(GB_MAC_NOTIFICATIONAUTHORNAME, c->name);
			gb_set(GB_MAC_NOTIFICATIONAUTHORALIAS, c->alias);
		}
		if (d->reason_type == GB_REASON_ACKNOWLEDGEMENT) {
			gb_set(is_svc ? GB_MAC_SERVICEACKAUTHOR : GB_MAC_HOSTACKAUTHOR, d->ack_author);
			gb_set(is_svc ? GB_MAC_SERVICEACKCOMMENT : GB_MAC_HOSTACKCOMMENT, d->ack_data);
			if (c != NULL) {
				gb_set(is_svc ? GB_MAC_SERVICEACKAUTHORNAME : GB_MAC_HOSTACKAUTHORNAME, c->name);
				gb_set(is_svc ? GB_MAC_SERVICEACKAUTHORALIAS : GB_MAC_HOSTACKAUTHORALIAS, c->alias);
			}
		}
	}
	if (d->ack_data != NULL)
		gb_set(GB_MAC_NOTIFICATIONCOMMENT, d->ack_data);
	state = is_svc ? GB_FIELD(svc, GB_SVC_CURRENT_STATE, int) : GB_FIELD(host, GB_HOST_CURRENT_STATE, int);
	if (d->reason_type != GB_REASON_NORMAL)
		reason = notification_reason_name((unsigned int)d->reason_type);
	gb_set(GB_MAC_NOTIFICATIONTYPE, reason ? reason : (state == 0 ? "RECOVERY" : "PROBLEM"));
	snprintf(num, sizeof num, "%d",
		 is_svc ? GB_FIELD(svc, GB_SVC_NOTIFICATION_NUMBER, int) : GB_FIELD(host, GB_HOST_NOTIFICATION_NUMBER, int));
	gb_set(is_svc ? GB_MAC_SERVICENOTIFICATIONNUMBER : GB_MAC_HOSTNOTIFICATIONNUMBER, num);
	gb_set(GB_MAC_NOTIFICATIONNUMBER, num);
#ifdef GEARBRIDGE_NAGIOS4
	snprintf(id, sizeof id, "%lu",
		 is_svc ? GB_FIELD(svc, GB_SVC_NOTIFICATION_ID, unsigned long) : GB_FIELD(host, GB_HOST_NOTIFICATION_ID, unsigned long));
#else
	{
		const char *s = is_svc ? GB_FIELD(svc, GB_SVC_NOTIFICATION_ID, char *) : GB_FIELD(host, GB_HOST_NOTIFICATION_ID, char *);
		snprintf(id, sizeof id, "%s", s ? s : "");
	}
#endif
	gb_set(is_svc ? GB_MAC_SERVICENOTIFICATIONID : GB_MAC_HOSTNOTIFICATIONID, id);
	gb_set(GB_MAC_NOTIFICATIONISESCALATED, d->escalated ? "1" : "0");

	/* The command with its arguments, so that $ARGn$ expand as the core
	 * expands them (the classic module passes the bare name). */
	n = strlen(d->command_name) + (d->command_args ? strlen(d->command_args) + 1 : 0) + 1;
	full = malloc(n);
	if (full != NULL) {
		if (d->command_args)
			snprintf(full, n, "%s!%s", d->command_name, d->command_args);
		else
			snprintf(full, n, "%s", d->command_name);
		get_raw_command_line_r(gb_mac, cmd, full, &raw, GB_MACRO_OPTIONS);
	}
	if (raw != NULL)
		process_macros_r(gb_mac, raw, &line, GB_MACRO_OPTIONS);
	if (line != NULL && line[0] != '\0') {
		long_out = is_svc ? GB_FIELD(svc, GB_SVC_LONG_OUTPUT, char *) : GB_FIELD(host, GB_HOST_LONG_OUTPUT, char *);
		rc = gbNotify(d->host_name, d->service_description, (char *)contact, line, d->output ? d->output : "(null)",
			      long_out ? long_out : "(null)", d->start_time.tv_sec, d->start_time.tv_usec, core_time.tv_sec,
			      core_time.tv_usec);
		if (rc)
			gb_log_notification(d, contact, is_svc, reason);
	}
	gb_release();
	free(full);
	free(raw);
	free(line);
	return rc ? GB_OVERRIDE : 0;
}

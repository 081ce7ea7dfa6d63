/*
 * gearbridge's own declarations of the few core structures the broker module
 * touches. They are written from the measured offsets in
 * shared/spec/neb-abi.md (§1.3, §1.4), not from the (GPL) core headers, and
 * every offset is pinned with a static assertion. GEARBRIDGE_NAGIOS4 selects
 * the Nagios 4.4 layout, otherwise Naemon 1.5.
 */
#ifndef GEARBRIDGE_LAYOUT_H
#define GEARBRIDGE_LAYOUT_H

#include <stddef.h>
#include <stdio.h>
#include <sys/time.h>
#include <sys/resource.h>

#ifdef GEARBRIDGE_NAGIOS4
#define GB_NEB_API_VERSION 4
#else
#define GB_NEB_API_VERSION 8
#endif

/* Callback types and NEB types: identical in both cores. */
#define GB_CB_PROCESS_DATA 0
#define GB_CB_EVENT_HANDLER_DATA 4
#define GB_CB_SERVICE_CHECK_DATA 6
#define GB_CB_HOST_CHECK_DATA 7
#define GB_TYPE_EVENTLOOPSTART 105
#define GB_TYPE_EVENTLOOPEND 106
#define GB_TYPE_EVENTHANDLER_START 500
#define GB_TYPE_SERVICECHECK_INITIATE 700
#define GB_TYPE_SERVICECHECK_PROCESSED 701
#define GB_TYPE_HOSTCHECK_INITIATE 800
#define GB_TYPE_HOSTCHECK_PROCESSED 801
#define GB_OVERRIDE 206
#define GB_CANCEL 207
#define GB_SERVICE_CHECK 0
#define GB_HOST_CHECK 1
#define GB_HOST_EVENTHANDLER 0
#define GB_SERVICE_EVENTHANDLER 1
#define GB_GLOBAL_HOST_EVENTHANDLER 2
#define GB_GLOBAL_SERVICE_EVENTHANDLER 3
#define GB_LOG_ERROR 1
#define GB_LOG_WARNING 2
#define GB_LOG_INFO 262144
#define GB_IOBROKER_POLLIN 1
#define GB_BROKER_PROGRAM_STATE 1
#define GB_BROKER_SERVICE_CHECKS 4
#define GB_BROKER_HOST_CHECKS 8
#define GB_BROKER_EVENT_HANDLERS 16

/* Notifications (neb-abi.md §8.1, §8.2): identical in both cores. */
#define GB_CB_CONTACT_NOTIFICATION_METHOD_DATA 21
#define GB_TYPE_CONTACTNOTIFICATIONMETHOD_START 604
#define GB_BROKER_NOTIFICATIONS 64
#define GB_NSLOG_HOST_NOTIFICATION 524288
#define GB_NSLOG_SERVICE_NOTIFICATION 1048576
#define GB_MACRO_OPTIONS 3 /* STRIP_ILLEGAL_MACRO_CHARS | ESCAPE_MACRO_CHARS */
#define GB_REASON_NORMAL 0
#define GB_REASON_ACKNOWLEDGEMENT 1
#define GB_REASON_CUSTOM 8
/* nagios_macros x[] indices. */
#define GB_MAC_NOTIFICATIONTYPE 29
#define GB_MAC_NOTIFICATIONNUMBER 30
#define GB_MAC_HOSTACKAUTHOR 49
#define GB_MAC_HOSTACKCOMMENT 50
#define GB_MAC_SERVICEACKAUTHOR 51
#define GB_MAC_SERVICEACKCOMMENT 52
#define GB_MAC_HOSTNOTIFICATIONNUMBER 102
#define GB_MAC_SERVICENOTIFICATIONNUMBER 103
#define GB_MAC_HOSTNOTIFICATIONID 104
#define GB_MAC_SERVICENOTIFICATIONID 105
#define GB_MAC_HOSTACKAUTHORNAME 112
#define GB_MAC_HOSTACKAUTHORALIAS 113
#define GB_MAC_SERVICEACKAUTHORNAME 114
#define GB_MAC_SERVICEACKAUTHORALIAS 115
#define GB_MAC_NOTIFICATIONISESCALATED 137
#define GB_MAC_NOTIFICATIONAUTHOR 138
#define GB_MAC_NOTIFICATIONAUTHORNAME 139
#define GB_MAC_NOTIFICATIONAUTHORALIAS 140
#define GB_MAC_NOTIFICATIONCOMMENT 141
/* nagios_macros is 1696 bytes in Naemon, 1688 in Nagios; only x[] (at 0)
 * is written, in a zeroed buffer at least this large. */
#define GB_MACROS_SIZE 2048

#define GB_ASSERT_OFF(T, f, off) _Static_assert(offsetof(T, f) == (off), #T "." #f " must be at " #off)
#define GB_ASSERT_SIZE(T, n) _Static_assert(sizeof(T) == (n), "sizeof " #T " must be " #n)

struct gb_neb_header {
	int type;
	int flags;
	int attr;
	struct timeval timestamp;
};
GB_ASSERT_OFF(struct gb_neb_header, timestamp, 16);
GB_ASSERT_SIZE(struct gb_neb_header, 32); /* nebstruct_process_data */

struct gb_service_check_data {
	struct gb_neb_header h;
	char *host_name;
	char *service_description;
	int check_type;
	int current_attempt;
	int max_attempts;
	int state_type;
	int state;
	int timeout;
	char *command_name;
	char *command_args;
	char *command_line;
	struct timeval start_time;
	struct timeval end_time;
	int early_timeout;
	double execution_time;
	double latency;
	int return_code;
	char *output;
	char *long_output;
	char *perf_data;
	void *check_result_ptr;
	void *object_ptr;
};
GB_ASSERT_OFF(struct gb_service_check_data, host_name, 32);
GB_ASSERT_OFF(struct gb_service_check_data, service_description, 40);
GB_ASSERT_OFF(struct gb_service_check_data, check_type, 48);
GB_ASSERT_OFF(struct gb_service_check_data, timeout, 68);
GB_ASSERT_OFF(struct gb_service_check_data, command_line, 88);
GB_ASSERT_OFF(struct gb_service_check_data, start_time, 96);
GB_ASSERT_OFF(struct gb_service_check_data, early_timeout, 128);
GB_ASSERT_OFF(struct gb_service_check_data, latency, 144);
GB_ASSERT_OFF(struct gb_service_check_data, return_code, 152);
GB_ASSERT_OFF(struct gb_service_check_data, perf_data, 176);
GB_ASSERT_OFF(struct gb_service_check_data, check_result_ptr, 184);
GB_ASSERT_OFF(struct gb_service_check_data, object_ptr, 192);
GB_ASSERT_SIZE(struct gb_service_check_data, 200);

struct gb_host_check_data {
	struct gb_neb_header h;
	char *host_name;
	int current_attempt;
	int check_type;
	int max_attempts;
	int state_type;
	int state;
	int timeout;
	char *command_name;
	char *command_args;
	char *command_line;
	struct timeval start_time;
	struct timeval end_time;
	int early_timeout;
	double execution_time;
	double latency;
	int return_code;
	char *output;
	char *long_output;
	char *perf_data;
	void *check_result_ptr;
	void *object_ptr;
};
GB_ASSERT_OFF(struct gb_host_check_data, host_name, 32);
GB_ASSERT_OFF(struct gb_host_check_data, current_attempt, 40);
GB_ASSERT_OFF(struct gb_host_check_data, check_type, 44);
GB_ASSERT_OFF(struct gb_host_check_data, timeout, 60);
GB_ASSERT_OFF(struct gb_host_check_data, command_line, 80);
GB_ASSERT_OFF(struct gb_host_check_data, start_time, 88);
GB_ASSERT_OFF(struct gb_host_check_data, early_timeout, 120);
GB_ASSERT_OFF(struct gb_host_check_data, latency, 136);
GB_ASSERT_OFF(struct gb_host_check_data, check_result_ptr, 176);
GB_ASSERT_OFF(struct gb_host_check_data, object_ptr, 184);
GB_ASSERT_SIZE(struct gb_host_check_data, 192);

struct gb_event_handler_data {
	struct gb_neb_header h;
	int eventhandler_type;
	char *host_name;
	char *service_description;
	int state_type;
	int state;
	int timeout;
	char *command_name;
	char *command_args;
	char *command_line;
	struct timeval start_time;
	struct timeval end_time;
	int early_timeout;
	double execution_time;
	int return_code;
	char *output;
	void *object_ptr;
};
GB_ASSERT_OFF(struct gb_event_handler_data, eventhandler_type, 32);
GB_ASSERT_OFF(struct gb_event_handler_data, host_name, 40);
GB_ASSERT_OFF(struct gb_event_handler_data, service_description, 48);
GB_ASSERT_OFF(struct gb_event_handler_data, timeout, 64);
GB_ASSERT_OFF(struct gb_event_handler_data, command_line, 88);
GB_ASSERT_OFF(struct gb_event_handler_data, start_time, 96);
GB_ASSERT_OFF(struct gb_event_handler_data, return_code, 144);
GB_ASSERT_OFF(struct gb_event_handler_data, object_ptr, 160);
GB_ASSERT_SIZE(struct gb_event_handler_data, 168);

struct gb_contact_notification_method_data {
	struct gb_neb_header h;
	int notification_type;
	struct timeval start_time;
	struct timeval end_time;
	char *host_name;
	char *service_description;
	char *contact_name;
	char *command_name;
	char *command_args;
	int reason_type;
	int state;
	char *output;
	char *ack_author;
	char *ack_data;
	int escalated;
	void *object_ptr;
	void *contact_ptr;
};
GB_ASSERT_OFF(struct gb_contact_notification_method_data, notification_type, 32);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, start_time, 40);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, host_name, 72);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, service_description, 80);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, contact_name, 88);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, command_name, 96);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, command_args, 104);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, reason_type, 112);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, output, 120);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, ack_author, 128);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, ack_data, 136);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, escalated, 144);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, object_ptr, 152);
GB_ASSERT_OFF(struct gb_contact_notification_method_data, contact_ptr, 160);
GB_ASSERT_SIZE(struct gb_contact_notification_method_data, 168);

/* struct contact (identical in both cores): only the names. */
struct gb_contact {
	char pad0[8];
	char *name;
	char *alias;
};
GB_ASSERT_OFF(struct gb_contact, name, 8);
GB_ASSERT_OFF(struct gb_contact, alias, 16);

struct gb_check_engine {
	char *name;
	const char *(*source_name)(void *);
	void (*clean_result)(void *);
};

struct gb_check_result {
	int object_check_type;
	char *host_name;
	char *service_description;
	int check_type;
	int check_options;
	int scheduled_check;
#ifdef GEARBRIDGE_NAGIOS4
	int reschedule_check;
#endif
	char *output_file;
	FILE *output_file_fp;
	double latency;
	struct timeval start_time;
	struct timeval finish_time;
#ifndef GEARBRIDGE_NAGIOS4
	int timeout;
#endif
	int early_timeout;
	int exited_ok;
	int return_code;
	char *output;
	struct rusage rusage;
	struct gb_check_engine *engine;
	void *source;
};
GB_ASSERT_OFF(struct gb_check_result, host_name, 8);
GB_ASSERT_OFF(struct gb_check_result, service_description, 16);
GB_ASSERT_OFF(struct gb_check_result, check_type, 24);
GB_ASSERT_OFF(struct gb_check_result, check_options, 28);
GB_ASSERT_OFF(struct gb_check_result, scheduled_check, 32);
GB_ASSERT_OFF(struct gb_check_result, output_file, 40);
GB_ASSERT_OFF(struct gb_check_result, latency, 56);
GB_ASSERT_OFF(struct gb_check_result, start_time, 64);
GB_ASSERT_OFF(struct gb_check_result, finish_time, 80);
#ifdef GEARBRIDGE_NAGIOS4
GB_ASSERT_OFF(struct gb_check_result, reschedule_check, 36);
GB_ASSERT_OFF(struct gb_check_result, early_timeout, 96);
GB_ASSERT_OFF(struct gb_check_result, exited_ok, 100);
GB_ASSERT_OFF(struct gb_check_result, return_code, 104);
#else
GB_ASSERT_OFF(struct gb_check_result, timeout, 96);
GB_ASSERT_OFF(struct gb_check_result, early_timeout, 100);
GB_ASSERT_OFF(struct gb_check_result, exited_ok, 104);
GB_ASSERT_OFF(struct gb_check_result, return_code, 108);
#endif
GB_ASSERT_OFF(struct gb_check_result, output, 112);
GB_ASSERT_OFF(struct gb_check_result, rusage, 120);
GB_ASSERT_OFF(struct gb_check_result, engine, 264);
GB_ASSERT_OFF(struct gb_check_result, source, 272);
GB_ASSERT_SIZE(struct gb_check_result, 280);

struct gb_customvar {
	char *variable_name;
	char *variable_value;
	int has_been_modified;
	struct gb_customvar *next;
};
GB_ASSERT_OFF(struct gb_customvar, next, 24);
GB_ASSERT_SIZE(struct gb_customvar, 32);

/* struct service / struct host: only the fields we use, at the measured
 * offsets, with explicit padding. */
#ifdef GEARBRIDGE_NAGIOS4
#define GB_SVC_IS_BEING_FRESHENED 492
#define GB_SVC_IS_EXECUTING 528
#define GB_SVC_HOST_PTR 664
#define GB_HOST_CUSTOMVARS 352
#define GB_HOST_IS_EXECUTING 464
#define GB_HOST_IS_BEING_FRESHENED 564
#else
#define GB_SVC_IS_BEING_FRESHENED 508
#define GB_SVC_IS_EXECUTING 544
#define GB_SVC_HOST_PTR 688
#define GB_HOST_CUSTOMVARS 344
#define GB_HOST_IS_EXECUTING 480
#define GB_HOST_IS_BEING_FRESHENED 572
#endif
#define GB_SVC_CUSTOMVARS 280

/* Further object fields, read and written by offset (neb-abi.md §1.4,
 * §8.2). */
#define GB_SVC_CHECK_INTERVAL 72
#define GB_HOST_CHECK_INTERVAL 80
#define GB_HOST_CURRENT_STATE 372
#define GB_HOST_LONG_OUTPUT 392
#ifdef GEARBRIDGE_NAGIOS4
#define GB_SVC_CURRENT_STATE 304
#define GB_SVC_LONG_OUTPUT 328
#define GB_SVC_NOTIFICATION_NUMBER 500
#define GB_SVC_NOTIFICATION_ID 504
#define GB_HOST_NOTIFICATION_NUMBER 572
#define GB_HOST_NOTIFICATION_ID 584
#else
#define GB_SVC_CURRENT_STATE 312
#define GB_SVC_LONG_OUTPUT 336
#define GB_SVC_NOTIFICATION_NUMBER 516
#define GB_SVC_NOTIFICATION_ID 520
#define GB_HOST_NOTIFICATION_NUMBER 580
#define GB_HOST_NOTIFICATION_ID 592
#endif
#define GB_FIELD(p, off, T) (*(T *)((char *)(p) + (off)))

struct gb_service {
	char pad0[48];
	char *check_command; /* 48 */
	char pad1[188 - 56];
	int process_performance_data; /* 188 */
	char pad2[GB_SVC_CUSTOMVARS - 192];
	struct gb_customvar *custom_variables;
	char pad3[GB_SVC_IS_BEING_FRESHENED - GB_SVC_CUSTOMVARS - 8];
	int is_being_freshened;
	char pad4[GB_SVC_IS_EXECUTING - GB_SVC_IS_BEING_FRESHENED - 4];
	int is_executing;
	int check_options;
	char pad5[GB_SVC_HOST_PTR - GB_SVC_IS_EXECUTING - 8];
	void *host_ptr;
};
GB_ASSERT_OFF(struct gb_service, check_command, 48);
GB_ASSERT_OFF(struct gb_service, process_performance_data, 188);
GB_ASSERT_OFF(struct gb_service, custom_variables, 280);
GB_ASSERT_OFF(struct gb_service, is_being_freshened, GB_SVC_IS_BEING_FRESHENED);
GB_ASSERT_OFF(struct gb_service, is_executing, GB_SVC_IS_EXECUTING);
GB_ASSERT_OFF(struct gb_service, check_options, GB_SVC_IS_EXECUTING + 4);
GB_ASSERT_OFF(struct gb_service, host_ptr, GB_SVC_HOST_PTR);

struct gb_host {
	char pad0[64];
	char *check_command; /* 64 */
	char pad1[208 - 72];
	int process_performance_data; /* 208 */
	char pad2[GB_HOST_CUSTOMVARS - 212];
	struct gb_customvar *custom_variables;
	char pad3[372 - GB_HOST_CUSTOMVARS - 8];
	int current_state; /* 372 */
	char pad4[408 - 376];
	int state_type; /* 408 */
	char pad5[GB_HOST_IS_EXECUTING - 412];
	int is_executing;
	int check_options;
	char pad6[GB_HOST_IS_BEING_FRESHENED - GB_HOST_IS_EXECUTING - 8];
	int is_being_freshened;
};
GB_ASSERT_OFF(struct gb_host, check_command, 64);
GB_ASSERT_OFF(struct gb_host, process_performance_data, 208);
GB_ASSERT_OFF(struct gb_host, custom_variables, GB_HOST_CUSTOMVARS);
GB_ASSERT_OFF(struct gb_host, current_state, 372);
GB_ASSERT_OFF(struct gb_host, state_type, 408);
GB_ASSERT_OFF(struct gb_host, is_executing, GB_HOST_IS_EXECUTING);
GB_ASSERT_OFF(struct gb_host, check_options, GB_HOST_IS_EXECUTING + 4);
GB_ASSERT_OFF(struct gb_host, is_being_freshened, GB_HOST_IS_BEING_FRESHENED);

#ifdef GEARBRIDGE_NAGIOS4
/* Nagios 4.4.6: struct service is 768 bytes, struct host 832. */
GB_ASSERT_OFF(struct gb_service, check_options, 532);
GB_ASSERT_OFF(struct gb_host, check_options, 468);
#else
/* Naemon 1.5.2: struct service is 800 bytes, struct host 856. */
GB_ASSERT_OFF(struct gb_service, check_options, 548);
GB_ASSERT_OFF(struct gb_host, check_options, 484);
#endif

/* What Go hands the shim for one result. Strings are malloc'd; the core
 * frees them with free_check_result. */
struct gb_result {
	char *host_name;
	char *service_description; /* NULL for host results */
	char *output;
	int return_code;
	int exited_ok;
	int early_timeout;
	int passive;
	long start_sec, start_usec, finish_sec, finish_usec;
	double latency;
};

#endif

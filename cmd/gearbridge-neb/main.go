// Command gearbridge-neb is the gearbridge broker module, a drop-in for the
// classic mod_gearman NEB module. It is built with -buildmode=c-shared
// (scripts/build-neb.sh, make build) into two files from one source:
//
//	bin/gearbridge_neb.so          Naemon 1.5 layout, NEB API 8
//	bin/gearbridge_neb_nagios4.so  Nagios 4.4 layout, NEB API 4 (build tag nagios4)
//
// and loaded with the classic broker line and configuration file:
//
//	# naemon.cfg
//	event_broker_options=-1
//	broker_module=/usr/lib/gearbridge/gearbridge_neb.so config=/etc/mod_gearman/mod_gearman_neb.conf
//	# nagios.cfg (Nagios 4.4)
//	event_broker_options=-1
//	broker_module=/usr/lib/gearbridge/gearbridge_neb_nagios4.so config=/etc/mod_gearman/mod_gearman_neb.conf
//
// Further key=value arguments on the broker line override the file, as in
// the classic module (for example server=gearmand:4730). gearbridge adds
// gomaxprocs=N, gogc=N|off and gomemlimit=SIZE (e.g. 256MiB) to bound the
// Go runtime that runs inside the core.
//
// # Classic options (modgearman-wire.md §5.2, scope N)
//
// Supported: config, debug, logmode/logfile (a log file, or else the core
// log; syslog and stdout fall back to the core log, and so does a logfile
// that cannot be opened, with a warning: the core is never stopped by it), server (all servers are
// used: the client fails over, the result workers serve every server),
// encryption, key, keyfile, use_uniq_jobs, gearman_connection_timeout (the
// submit and dial timeout), hosts, services, eventhandler, hostgroups,
// servicegroups, localhostgroups, localservicegroups, queue_custom_variable,
// do_hostchecks, route_eventhandler_like_checks, result_queue,
// result_workers, orphan_host_checks, orphan_service_checks, orphan_return,
// orphan_grace (gearbridge's own: how long after a submitted check's timeout
// its orphan result is made), gearmand_down_hold (gearbridge's own: how
// long checks wait for an unreachable gearmand before they are given back
// to the core's scheduler), notifications (expanded with the core's macro
// functions in notify.c and sent to the notification queue),
// accept_clear_results, internal_check_dummy, log_stats_interval (a
// statistics line every N seconds). dupserver is parsed and, as in the
// classic module, not used by the NEB.
//
// Accepted but not acted on, with a warning in the core log:
// export (no export jobs are sent) and
// latency_flatten_window (no rescheduling; warned whenever it is above 0,
// which includes the classic default of 30).
//
// Perfdata (perfdata, perfdata_send_all, perfdata_mode, the two templates)
// is supported: after each processed check with performance data the
// template is expanded with the macros of the default templates ($TIMET$,
// $HOSTNAME$, $SERVICEDESC$, $HOSTPERFDATA$/$SERVICEPERFDATA$,
// $HOSTCHECKCOMMAND$/$SERVICECHECKCOMMAND$, $HOSTSTATE$, $HOSTSTATETYPE$,
// $SERVICESTATE$, $SERVICESTATETYPE$); other macros are left unexpanded.
//
// # How it works
//
// This is the only cgo package. The C shim (shim.c) holds the symbols the
// core looks up, filters NEB types in C, and builds check_results with our
// own declarations of the core layouts (layout.h, pinned by static asserts
// to the offsets measured in neb-abi.md). The Go side copies what it needs
// out of the core's structures during the callback and hands it to package
// neb, which does the network work in goroutines; the callback itself only
// routes and appends to a bounded queue (about 1-5 µs). Results come back
// through an eventfd registered with the core's iobroker, so they are
// injected with process_check_result on the core's main thread within
// milliseconds instead of after a 1 s timer.
//
// While gearmand is unreachable checks wait in the module for up to
// gearmand_down_hold; after that, or when the queue is full, a check is
// given back without a result (gb_give_back clears is_executing and asks
// the scheduler for the next check), so an outage of ours never changes an
// object's state. Naemon gets CANCEL for a full queue at once.
//
// Process-model rules (neb-abi.md §2.5): goroutines start at EVENTLOOPSTART
// and stop at EVENTLOOPEND, init and deinit are idempotent across SIGHUP
// (the Go runtime survives dlclose; core pointers are never kept), SA_ONSTACK
// is restored on every init and Go's SIGSEGV/SIGBUS/SIGFPE handlers are
// put back, every callback and goroutine recovers from panics, and the module
// never calls signal.Notify, never runs children and never calls the core
// from a goroutine.
package main

/*
#include <stdlib.h>
#include "shim.h"
int gb_wake_fd_for_go(void);
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/gearbridge/gearbridge/neb"
)

func main() {}

// version is reported in the "check" ping reply.
const version = "gearbridge-neb 0.1"

// module is the NEB's single handle: the state that must survive SIGHUP
// (the library is never unloaded). Only the core's main thread touches the
// fields without a lock; goroutines use wakeMu/logMu.
type module struct {
	mod *neb.Module
	out *neb.Outbox
	// watch keeps the submitted checks across a reload, so the next module
	// answers the orphans of the previous one, each once.
	watch *neb.Watchdog
	// health is what the module knows about gearmand; it survives a
	// reload, so a reload during an outage does not start out healthy.
	health *neb.Health
	batch  []neb.CheckResult
	names  map[string]*C.char // C copies of variable and group names
	inits  int
	want   int // callbacks wanted by the current configuration

	wakeMu sync.Mutex
	wakeFD int // -1 while goroutines must not write

	logMu   sync.Mutex
	logs    []logLine
	logDrop int

	logFile *os.File

	delayMu sync.Mutex
	delays  []time.Duration // injection delays, ring of the last 100000
	delayN  int
	drained uint64
}

type logLine struct {
	level int
	msg   string
}

var handle = newModule()

func newModule() *module {
	m := &module{wakeFD: -1, names: map[string]*C.char{}, watch: neb.NewWatchdog(), health: neb.NewHealth()}
	m.out = neb.NewOutbox(200000, m.wake)
	return m
}

// wake tells the main loop that results are waiting. Called by goroutines.
func (m *module) wake() {
	m.wakeMu.Lock()
	defer m.wakeMu.Unlock()
	if m.wakeFD < 0 {
		return
	}
	var one = [8]byte{1}
	_, _ = syscall.Write(m.wakeFD, one[:])
}

func (m *module) cname(s string) *C.char {
	if p, ok := m.names[s]; ok {
		return p
	}
	p := C.CString(s)
	m.names[s] = p
	return p
}

// logf queues a log line for the core log (written on the main thread).
func (m *module) queueLog(level int, msg string) {
	m.logMu.Lock()
	if len(m.logs) < 1000 {
		m.logs = append(m.logs, logLine{level, msg})
	} else {
		m.logDrop++
	}
	first := len(m.logs) == 1
	m.logMu.Unlock()
	if first {
		m.wake()
	}
}

// flushLogs writes queued log lines; main thread only.
func (m *module) flushLogs() {
	m.logMu.Lock()
	logs, drop := m.logs, m.logDrop
	m.logs, m.logDrop = nil, 0
	m.logMu.Unlock()
	for _, l := range logs {
		coreLog(l.level, l.msg)
	}
	if drop > 0 {
		coreLog(2, fmt.Sprintf("%d log lines dropped", drop))
	}
}

func coreLog(level int, msg string) {
	cs := C.CString(msg)
	C.gb_log(C.int(level), cs)
	C.free(unsafe.Pointer(cs))
}

// coreHandler is a slog.Handler feeding the core log through the queue.
type coreHandler struct {
	m     *module
	level slog.Level
	attrs []slog.Attr
}

func (h *coreHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *coreHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	for _, a := range h.attrs {
		msg += " " + a.String()
	}
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	lvl := 262144
	switch {
	case r.Level >= slog.LevelError:
		lvl = 1
	case r.Level >= slog.LevelWarn:
		lvl = 2
	}
	h.m.queueLog(lvl, msg)
	return nil
}
func (h *coreHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &coreHandler{m: h.m, level: h.level, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}
func (h *coreHandler) WithGroup(string) slog.Handler { return h }

func recovered(where string) {
	if r := recover(); r != nil {
		handle.queueLog(1, fmt.Sprintf("panic in %s: %v %s", where, r, debug.Stack()))
	}
}

// gbInit parses the broker arguments and prepares a module. It returns the
// callbacks wanted (1 services, 2 hosts, 4 event handlers, 8 perfdata, 16
// notifications) or -1.
//
//export gbInit
func gbInit(args *C.char, wakeFD C.int) (rc C.int) {
	rc = -1
	defer recovered("init")
	m := handle
	m.inits++
	if m.mod != nil { // deinit was not called: be idempotent
		m.stop()
	}
	line, rt, err := neb.SplitRuntimeArgs(C.GoString(args))
	if err != nil {
		coreLog(1, "cannot load: "+err.Error())
		return -1
	}
	applyRuntime(rt)
	cfg, err := neb.ParseBrokerArgs(line, "")
	if err != nil {
		coreLog(1, "cannot load: "+err.Error())
		return -1
	}
	for _, w := range cfg.Warnings {
		coreLog(2, w)
	}
	level := slog.LevelInfo
	if cfg.Debug > 0 {
		level = slog.LevelDebug
	}
	logger := slog.New(&coreHandler{m: m, level: level})
	if m.logFile != nil {
		_ = m.logFile.Close()
		m.logFile = nil
	}
	if cfg.LogFile != "" && (cfg.LogMode == "automatic" || cfg.LogMode == "file") {
		// A module log file may be written from any goroutine. One that
		// cannot be opened must not stop the core from starting: say so in
		// the core log and log there instead.
		f, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			coreLog(2, fmt.Sprintf("cannot open logfile %s, logging to the core log instead: %v", cfg.LogFile, err))
		} else {
			m.logFile = f
			logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level}))
		}
	}
	for _, w := range cfg.IgnoredOptions() {
		coreLog(2, w)
	}
	host, _ := os.Hostname()
	mod, err := neb.New(cfg, neb.Options{
		Logger: logger, Sink: m.out.Push, Watchdog: m.watch,
		CancelHonoured: cancelHonoured, Version: version, Hostname: host, Health: m.health,
	})
	if err != nil {
		coreLog(1, "cannot load: "+err.Error())
		return -1
	}
	m.mod = mod
	m.wakeMu.Lock()
	m.wakeFD = int(wakeFD)
	m.wakeMu.Unlock()
	want := 0
	if cfg.Services || len(cfg.ServiceGroups) > 0 || cfg.QueueCustomVariable != "" || len(cfg.HostGroups) > 0 {
		want |= 1
	}
	if cfg.DoHostChecks && (cfg.Hosts || len(cfg.HostGroups) > 0 || cfg.QueueCustomVariable != "") {
		want |= 2
	}
	if cfg.EventHandler {
		want |= 4
	}
	if len(neb.PerfdataQueues(&cfg)) > 0 {
		want |= 1 | 2 | 8
	}
	if cfg.Notifications {
		want |= 16
	}
	m.want = want
	coreLog(262144, fmt.Sprintf("%s initialized for %s (init #%d), servers %v, result queue %s",
		version, coreName, m.inits, cfg.Servers, cfg.ResultQueue))
	return C.int(want)
}

// stop closes the current module, bounded, on the main thread.
func (m *module) stop() {
	if m.mod == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = m.mod.Close(ctx)
}

//export gbProcessEvent
func gbProcessEvent(typ C.int) (want C.int) {
	defer recovered("process event")
	m := handle
	if m.mod == nil {
		return 0
	}
	switch typ {
	case 105:
		m.mod.Start()
		want = C.int(m.want)
	case 106:
		m.stop()
		m.flushLogs()
	}
	return want
}

//export gbDeinit
func gbDeinit(reason C.int) {
	defer recovered("deinit")
	m := handle
	m.wakeMu.Lock()
	m.wakeFD = -1
	m.wakeMu.Unlock()
	m.stop()
	m.flushLogs()
	m.mod = nil
}

// coreObjects answers routing questions with core lookups; it is only used
// during the gbCheck call that made it.
type coreObjects struct {
	m         *module
	host, svc unsafe.Pointer
}

func (o *coreObjects) ServiceVar(name string) (string, bool) { return o.customVar(o.svc, 1, name) }
func (o *coreObjects) HostVar(name string) (string, bool)    { return o.customVar(o.host, 0, name) }
func (o *coreObjects) customVar(obj unsafe.Pointer, isSvc C.int, name string) (string, bool) {
	if obj == nil {
		return "", false
	}
	p := C.gb_custom_var(obj, isSvc, o.m.cname(name))
	if p == nil {
		return "", false
	}
	return C.GoString(p), true
}
func (o *coreObjects) InHostGroup(name string) bool {
	return C.gb_in_hostgroup(o.host, o.m.cname(name)) != 0
}
func (o *coreObjects) InServiceGroup(name string) bool {
	return C.gb_in_servicegroup(o.svc, o.m.cname(name)) != 0
}

// gbCheck decides about one check or event handler: 0 local, 1 override,
// 2 cancel.
//
//export gbCheck
func gbCheck(kind C.int, host, svc, cmd *C.char, timeout C.int, latency C.double, opts C.int,
	hostObj, svcObj unsafe.Pointer) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			handle.queueLog(1, fmt.Sprintf("panic in check callback: %v", r))
			rc = 0
		}
	}()
	m := handle
	if m.mod == nil || host == nil || cmd == nil {
		return 0
	}
	c := neb.Check{Kind: neb.Kind(kind), HostName: C.GoString(host), CommandLine: C.GoString(cmd),
		Timeout: time.Duration(timeout) * time.Second, Latency: time.Duration(float64(latency) * float64(time.Second)),
		CheckOptions: int(opts)}
	if svc != nil {
		c.ServiceDescription = C.GoString(svc)
	}
	d := m.mod.Check(&c, &coreObjects{m: m, host: hostObj, svc: svcObj})
	switch d.Action {
	case neb.ActionOverride:
		return 1
	case neb.ActionCancel:
		return 2
	}
	return 0
}

// gbNotifyRouted reports whether the notifications of an object are
// distributed (1) or left to the core (0).
//
//export gbNotifyRouted
func gbNotifyRouted(isService C.int, hostObj, svcObj unsafe.Pointer) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			handle.queueLog(1, fmt.Sprintf("panic in notification callback: %v", r))
			rc = 0
		}
	}()
	m := handle
	if m.mod == nil {
		return 0
	}
	k := neb.KindHost
	if isService != 0 {
		k = neb.KindService
	}
	if m.mod.NotificationRouted(k, &coreObjects{m: m, host: hostObj, svc: svcObj}) {
		return 1
	}
	return 0
}

// gbNotify takes one expanded notification: 1 when its job is queued (the
// core must not run it), 0 when the core must run it itself.
//
//export gbNotify
func gbNotify(host, svc, contact, cmdline, output, longOutput *C.char, startSec, startUsec, coreSec, coreUsec C.long) (rc C.int) {
	defer func() {
		if r := recover(); r != nil {
			handle.queueLog(1, fmt.Sprintf("panic in notification callback: %v", r))
			rc = 0
		}
	}()
	m := handle
	if m.mod == nil || host == nil || cmdline == nil {
		return 0
	}
	n := neb.Notification{HostName: C.GoString(host), Contact: C.GoString(contact), CommandLine: C.GoString(cmdline),
		PluginOutput: C.GoString(output), LongPluginOutput: C.GoString(longOutput),
		StartTime: time.Unix(int64(startSec), int64(startUsec)*1000), CoreTime: time.Unix(int64(coreSec), int64(coreUsec)*1000)}
	if svc != nil {
		n.ServiceDescription = C.GoString(svc)
	}
	if m.mod.Notify(&n) {
		return 1
	}
	return 0
}

// gbPerfdata sends the perfdata jobs of one processed check (701/801).
//
//export gbPerfdata
func gbPerfdata(kind C.int, host, svc, perf, cmd *C.char, sec C.long, hostState, hostStateType, svcState, svcStateType,
	objPerf, globalPerf C.int) {
	defer recovered("perfdata")
	m := handle
	if m.mod == nil || host == nil || perf == nil {
		return
	}
	p := neb.Perfdata{Kind: neb.Kind(kind), HostName: C.GoString(host), PerfData: C.GoString(perf),
		Time: time.Unix(int64(sec), 0), HostState: int(hostState), HostStateType: int(hostStateType),
		ServiceState: int(svcState), ServiceStateType: int(svcStateType),
		ObjectProcessPerfdata: objPerf != 0, GlobalProcessPerfdata: globalPerf != 0}
	if svc != nil {
		p.ServiceDescription = C.GoString(svc)
	}
	if cmd != nil {
		p.CheckCommand = C.GoString(cmd)
	}
	m.mod.Perfdata(&p)
}

// maxPerDrain bounds the results injected per wake-up so that one burst
// cannot hold the core's loop for long; the rest follow on the next turn.
const maxPerDrain = 5000

// gbDrain runs on the main thread when the wake fd fires: it injects the
// queued results and writes the queued log lines.
//
//export gbDrain
func gbDrain() {
	defer recovered("drain")
	m := handle
	m.flushLogs()
	if len(m.batch) == 0 {
		m.batch = m.out.Take(m.batch[:0])
	}
	n := 0
	now := time.Now()
	var delays []time.Duration
	for len(m.batch) > 0 && n < maxPerDrain {
		r := m.batch[0]
		m.batch[0] = neb.CheckResult{}
		m.batch = m.batch[1:]
		inject(&r)
		delays = append(delays, now.Sub(r.Received))
		n++
	}
	m.recordDelays(delays)
	if len(m.batch) > 0 || m.out.Len() > 0 {
		m.wake()
	}
}

func inject(r *neb.CheckResult) {
	if r.GiveBack {
		host := C.CString(r.HostName)
		var svc *C.char
		if r.ServiceDescription != "" {
			svc = C.CString(r.ServiceDescription)
		}
		C.gb_give_back(host, svc)
		C.free(unsafe.Pointer(host))
		C.free(unsafe.Pointer(svc))
		return
	}
	var cr C.struct_gb_result
	cr.host_name = C.CString(r.HostName)
	if r.ServiceDescription != "" {
		cr.service_description = C.CString(r.ServiceDescription)
	}
	cr.output = C.CString(r.Output)
	cr.return_code = C.int(r.ReturnCode)
	cr.exited_ok = b2i(r.ExitedOK)
	cr.early_timeout = b2i(r.EarlyTimeout)
	cr.passive = b2i(r.Passive)
	cr.start_sec, cr.start_usec = C.long(r.StartTime.Unix()), C.long(r.StartTime.Nanosecond()/1000)
	cr.finish_sec, cr.finish_usec = C.long(r.FinishTime.Unix()), C.long(r.FinishTime.Nanosecond()/1000)
	cr.latency = C.double(r.Latency.Seconds())
	C.gb_inject(&cr)
}

func b2i(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func (m *module) recordDelays(ds []time.Duration) {
	m.delayMu.Lock()
	defer m.delayMu.Unlock()
	for _, d := range ds {
		if len(m.delays) < 100000 {
			m.delays = append(m.delays, d)
		} else {
			m.delays[m.delayN%len(m.delays)] = d
		}
		m.delayN++
		m.drained++
	}
}

// applyRuntime applies the Go runtime settings of the broker line.
func applyRuntime(rt neb.RuntimeArgs) {
	if rt.GOMAXPROCS > 0 {
		runtime.GOMAXPROCS(rt.GOMAXPROCS)
	}
	if rt.GOGC != 0 {
		debug.SetGCPercent(rt.GOGC)
	}
	if rt.MemLimit > 0 {
		debug.SetMemoryLimit(rt.MemLimit)
	}
	if rt.Raw != "" {
		coreLog(262144, "Go runtime: "+rt.Raw)
	}
}

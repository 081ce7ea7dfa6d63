package neb

import (
	"strconv"
	"strings"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
)

// Perfdata is what the cgo side copies out of a host or service check
// PROCESSED event (701/801) for the perfdata queues (spec §2.8).
type Perfdata struct {
	Kind               Kind // KindHost or KindService
	HostName           string
	ServiceDescription string
	PerfData           string
	// CheckCommand is the object's check command as configured
	// ("name!arg1!arg2"), the value of $HOSTCHECKCOMMAND$ /
	// $SERVICECHECKCOMMAND$.
	CheckCommand string
	Time         time.Time
	// HostState/HostStateType are the host's; ServiceState and
	// ServiceStateType are only used for services. State types: 0 soft,
	// 1 hard.
	HostState, HostStateType       int
	ServiceState, ServiceStateType int
	// ObjectProcessPerfdata is the object's process_performance_data;
	// GlobalProcessPerfdata the core's.
	ObjectProcessPerfdata, GlobalProcessPerfdata bool
}

// Perfdata modes (perfdata_mode).
const (
	PerfdataOverwrite = 1 // one job per object and queue (unique id)
	PerfdataAppend    = 2 // every result is a job
)

var (
	hostStates    = []string{"UP", "DOWN", "UNREACHABLE"}
	serviceStates = []string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}
)

func stateName(names []string, s int) string {
	if s >= 0 && s < len(names) {
		return names[s]
	}
	return strconv.Itoa(s)
}

func stateTypeName(t int) string {
	if t == 1 {
		return "HARD"
	}
	return "SOFT"
}

// ExpandPerfdataTemplate fills in the macros the classic perfdata templates
// use. Unknown macros are left as they are.
func ExpandPerfdataTemplate(tmpl string, p *Perfdata) string {
	r := strings.NewReplacer(
		"$TIMET$", strconv.FormatInt(p.Time.Unix(), 10),
		"$HOSTNAME$", p.HostName,
		"$SERVICEDESC$", p.ServiceDescription,
		"$HOSTPERFDATA$", p.PerfData,
		"$SERVICEPERFDATA$", p.PerfData,
		"$HOSTCHECKCOMMAND$", p.CheckCommand,
		"$SERVICECHECKCOMMAND$", p.CheckCommand,
		"$HOSTSTATE$", stateName(hostStates, p.HostState),
		"$HOSTSTATETYPE$", stateTypeName(p.HostStateType),
		"$SERVICESTATE$", stateName(serviceStates, p.ServiceState),
		"$SERVICESTATETYPE$", stateTypeName(p.ServiceStateType),
	)
	return r.Replace(tmpl)
}

// PerfdataQueues returns the perfdata queues configured (perfdata=yes is
// the queue "perfdata").
func PerfdataQueues(c *Config) []string {
	if !c.Perfdata {
		return nil
	}
	if len(c.PerfdataQueues) == 0 {
		return []string{"perfdata"}
	}
	return c.PerfdataQueues
}

// Perfdata enqueues the perfdata jobs for one processed check, if it has
// performance data and processing is enabled (or perfdata_send_all). It
// never blocks; jobs that do not fit are counted as not submitted.
func (m *Module) Perfdata(p *Perfdata) {
	qs := PerfdataQueues(&m.cfg)
	if len(qs) == 0 || strings.TrimSpace(p.PerfData) == "" || !m.running.Load() {
		return
	}
	if !m.cfg.PerfdataSendAll && (!p.ObjectProcessPerfdata || !p.GlobalProcessPerfdata) {
		return
	}
	tmpl := m.cfg.HostPerfdataTemplate
	if p.Kind == KindService {
		tmpl = m.cfg.ServicePerfdataTemplate
	}
	payload := ExpandPerfdataTemplate(tmpl, p) + "\n"
	for _, q := range qs {
		// check only names the object in log lines; no result is expected.
		s := submission{queue: q, raw: payload, prio: gearman.PriorityNormal,
			check: Check{Kind: p.Kind, HostName: p.HostName, ServiceDescription: p.ServiceDescription}}
		if m.cfg.PerfdataMode == PerfdataOverwrite {
			if p.Kind == KindService {
				s.uniq = modgearman.Uniq(q, p.HostName, p.ServiceDescription)
			} else {
				s.uniq = modgearman.Uniq(q, p.HostName)
			}
		}
		if !m.health.Healthy() {
			// Waits for gearmand like a check, up to gearmand_down_hold.
			s.since = m.now()
			m.c.held.Add(1)
		}
		if !m.enqueue(s) {
			m.c.notSubmitted.Add(1)
			m.warnLimited("perfdata not submitted", "queue", q, "host", p.HostName, "service", p.ServiceDescription,
				"err", ErrQueueFull)
			continue
		}
		m.c.perfdata.Add(1)
	}
}

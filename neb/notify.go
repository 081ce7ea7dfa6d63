package neb

import (
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
)

// QueueNotification is the queue every distributed notification goes to
// (neb-abi.md §8.5).
const QueueNotification = "notification"

// Notification is what the cgo side copies out of one contact notification
// method (NEBTYPE_CONTACTNOTIFICATIONMETHOD_START) after expanding its
// command line with the core's own macro functions.
type Notification struct {
	HostName           string
	ServiceDescription string // empty for host notifications
	// Contact is the contact's name, or "GLOBAL" for a global handler.
	Contact string
	// CommandLine is the fully expanded command line, with real LFs.
	CommandLine string
	// PluginOutput and LongPluginOutput are the object's outputs as the core
	// stores them ("(null)" where the core has none, as the classic module
	// prints it).
	PluginOutput     string
	LongPluginOutput string
	// StartTime is the method's start in the nebstruct; CoreTime is when
	// the callback ran.
	StartTime, CoreTime time.Time
}

// NotificationRouted reports whether the notifications of an object are
// distributed: notifications=yes and the object's check would go to a queue
// (classic semantics: a notification is distributed where its object is).
// kind is KindHost or KindService. o is only used during the call.
func (m *Module) NotificationRouted(kind Kind, o Objects) bool {
	if !m.cfg.Notifications {
		return false
	}
	_, ok := routeObject(&m.cfg, kind, o)
	return ok
}

// NotificationJob returns the job of a notification (spec §8.7).
func NotificationJob(n *Notification) modgearman.Job {
	return modgearman.Job{Type: modgearman.JobNotification, StartTime: n.StartTime, CoreTime: n.CoreTime,
		Contact: n.Contact, CommandLine: n.CommandLine, PluginOutput: n.PluginOutput, LongPluginOutput: n.LongPluginOutput}
}

// Notify enqueues a notification job for the notification queue at high
// priority. It returns false, and counts it, when the job cannot be taken
// now (module stopping, gearmand unreachable, queue full): the core then
// sends the notification itself, so it is never lost at this point.
func (m *Module) Notify(n *Notification) bool {
	if !m.running.Load() || !m.health.Healthy() {
		m.c.notificationsLocal.Add(1)
		m.warnLimited("notification left to the core", "host", n.HostName, "service", n.ServiceDescription,
			"contact", n.Contact, "gearmand_up", m.health.Healthy())
		return false
	}
	j := NotificationJob(n)
	s := submission{queue: QueueNotification, raw: string(j.Marshal()), prio: gearman.PriorityHigh, notify: true,
		check: Check{Kind: KindHost, HostName: n.HostName, ServiceDescription: n.ServiceDescription}}
	if n.ServiceDescription != "" {
		s.check.Kind = KindService
	}
	if !m.enqueue(s) {
		m.c.notificationsLocal.Add(1)
		m.warnLimited("notification left to the core", "host", n.HostName, "service", n.ServiceDescription,
			"contact", n.Contact, "err", ErrQueueFull)
		return false
	}
	return true
}

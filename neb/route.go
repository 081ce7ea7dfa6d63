package neb

import "strings"

// Kind is what the core asks the module to run.
type Kind int

// The kinds of work the module intercepts.
const (
	KindHost Kind = iota + 1
	KindService
	KindHostEventHandler
	KindServiceEventHandler
)

// String returns a short name of the kind.
func (k Kind) String() string {
	switch k {
	case KindHost:
		return "host"
	case KindService:
		return "service"
	case KindHostEventHandler:
		return "host eventhandler"
	case KindServiceEventHandler:
		return "service eventhandler"
	}
	return "unknown"
}

func (k Kind) hasService() bool { return k == KindService || k == KindServiceEventHandler }

func (k Kind) isEventHandler() bool {
	return k == KindHostEventHandler || k == KindServiceEventHandler
}

// Objects answers routing questions about the object a check belongs to.
// The cgo side implements it with core lookups; an implementation is only
// used during the Module.Check call that received it.
type Objects interface {
	// ServiceVar returns the service's custom variable name (upper-case,
	// without the leading '_').
	ServiceVar(name string) (string, bool)
	// HostVar returns the host's custom variable.
	HostVar(name string) (string, bool)
	// InHostGroup reports whether the host is a member of the hostgroup.
	InHostGroup(name string) bool
	// InServiceGroup reports whether the service is a member of the
	// servicegroup.
	InServiceGroup(name string) bool
}

// Queue names the NEB sends to (spec §1.1).
const (
	QueueHost         = "host"
	QueueService      = "service"
	QueueEventHandler = "eventhandler"
	// LocalValue is the custom-variable value that keeps a check local.
	LocalValue = "local"
)

// Route decides the target queue per spec §1.2; ok is false when the core
// must run the check itself.
func Route(c *Config, k Kind, o Objects) (queue string, ok bool) {
	switch k {
	case KindHost:
		if !c.DoHostChecks {
			return "", false
		}
	case KindHostEventHandler, KindServiceEventHandler:
		if !c.EventHandler {
			return "", false
		}
	}
	q, ok := routeObject(c, k, o)
	if !ok {
		return "", false
	}
	if k.isEventHandler() && (!c.RouteEventHandlerLikeChecks || q == QueueHost || q == QueueService) {
		q = QueueEventHandler
	}
	return q, true
}

func routeObject(c *Config, k Kind, o Objects) (string, bool) {
	// 1. custom variable, service first, then (inherited) host.
	if name := c.QueueCustomVariable; name != "" {
		if k.hasService() {
			if v, found := o.ServiceVar(name); found && strings.TrimSpace(v) != "" {
				return customQueue(v)
			}
		}
		if v, found := o.HostVar(name); found && strings.TrimSpace(v) != "" {
			return customQueue(v)
		}
	}
	// 2./3. local groups.
	if k.hasService() {
		for _, g := range c.LocalServiceGroups {
			if o.InServiceGroup(g) {
				return "", false
			}
		}
	}
	for _, g := range c.LocalHostGroups {
		if o.InHostGroup(g) {
			return "", false
		}
	}
	// 4./5. group queues, first match in configuration order.
	if k.hasService() {
		for _, g := range c.ServiceGroups {
			if o.InServiceGroup(g) {
				return "servicegroup_" + g, true
			}
		}
	}
	for _, g := range c.HostGroups {
		if o.InHostGroup(g) {
			return "hostgroup_" + g, true
		}
	}
	// 6. generic queues. Event handlers go to "eventhandler" whenever
	// event handlers are distributed (Route rewrites the name).
	switch {
	case k.isEventHandler():
		return QueueEventHandler, true
	case k == KindService && c.Services:
		return QueueService, true
	case k == KindHost && c.Hosts:
		return QueueHost, true
	}
	return "", false
}

func customQueue(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, LocalValue) {
		return "", false
	}
	return v, true
}

package neb

import (
	"strings"
	"testing"

	"github.com/gearbridge/gearbridge/modgearman/classicconf"
)

// fakeObjects answers routing questions from fixed data.
type fakeObjects struct {
	svcVars, hostVars map[string]string
	hostGroups        []string
	svcGroups         []string
}

func (f fakeObjects) ServiceVar(n string) (string, bool) { v, ok := f.svcVars[n]; return v, ok }
func (f fakeObjects) HostVar(n string) (string, bool)    { v, ok := f.hostVars[n]; return v, ok }
func (f fakeObjects) InHostGroup(n string) bool          { return contains(f.hostGroups, n) }
func (f fakeObjects) InServiceGroup(n string) bool       { return contains(f.svcGroups, n) }

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func mustConfig(t *testing.T, args string) Config {
	t.Helper()
	c, err := ParseBrokerArgs("server=127.0.0.1:4730 encryption=no "+args, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoute(t *testing.T) {
	all := "hosts=yes services=yes eventhandler=yes"
	tests := []struct {
		name  string
		args  string
		kind  Kind
		obj   fakeObjects
		queue string // "" = local
	}{
		{"defaults distribute services", "", KindService, fakeObjects{}, "service"},
		{"defaults distribute hosts", "", KindHost, fakeObjects{}, "host"},
		{"defaults distribute event handlers", "", KindServiceEventHandler, fakeObjects{}, "eventhandler"},
		{"services=no keeps service local", "hosts=yes", KindService, fakeObjects{}, ""},
		{"hosts=no keeps host local", "services=yes", KindHost, fakeObjects{}, ""},
		{"do_hostchecks=no keeps host local even in a hostgroup", all + " hostgroups=hg do_hostchecks=no", KindHost,
			fakeObjects{hostGroups: []string{"hg"}}, ""},
		{"1 service custom variable", all + " queue_custom_variable=worker", KindService,
			fakeObjects{svcVars: map[string]string{"WORKER": "hostgroup_dmz"}, hostVars: map[string]string{"WORKER": "other"}}, "hostgroup_dmz"},
		{"1 service custom variable local", all + " queue_custom_variable=WORKER", KindService,
			fakeObjects{svcVars: map[string]string{"WORKER": "local"}}, ""},
		{"1 host custom variable inherited by service", all + " queue_custom_variable=WORKER", KindService,
			fakeObjects{hostVars: map[string]string{"WORKER": "q1"}}, "q1"},
		{"1 host custom variable for host check", all + " queue_custom_variable=WORKER", KindHost,
			fakeObjects{svcVars: map[string]string{"WORKER": "ignored"}, hostVars: map[string]string{"WORKER": "q2"}}, "q2"},
		{"1 host custom variable local", all + " queue_custom_variable=WORKER", KindHost,
			fakeObjects{hostVars: map[string]string{"WORKER": "LOCAL"}}, ""},
		{"1 custom variable beats local groups", all + " queue_custom_variable=WORKER localhostgroups=lh", KindService,
			fakeObjects{svcVars: map[string]string{"WORKER": "q3"}, hostGroups: []string{"lh"}}, "q3"},
		{"1 variable unset when option unset", all, KindService,
			fakeObjects{svcVars: map[string]string{"WORKER": "q3"}}, "service"},
		{"2 localservicegroups", all + " localservicegroups=ls servicegroups=ls", KindService,
			fakeObjects{svcGroups: []string{"ls"}}, ""},
		{"2 localservicegroups ignored for host checks", all + " localservicegroups=ls", KindHost,
			fakeObjects{svcGroups: []string{"ls"}}, "host"},
		{"3 localhostgroups for services", all + " localhostgroups=lh servicegroups=sg", KindService,
			fakeObjects{hostGroups: []string{"lh"}, svcGroups: []string{"sg"}}, ""},
		{"3 localhostgroups for hosts", all + " localhostgroups=lh", KindHost,
			fakeObjects{hostGroups: []string{"lh"}}, ""},
		{"4 servicegroup first match in config order", all + " servicegroups=b,a", KindService,
			fakeObjects{svcGroups: []string{"a", "b"}}, "servicegroup_b"},
		{"4 servicegroup beats hostgroup", all + " servicegroups=sg hostgroups=hg", KindService,
			fakeObjects{svcGroups: []string{"sg"}, hostGroups: []string{"hg"}}, "servicegroup_sg"},
		{"5 hostgroup for service", all + " hostgroups=x,hg", KindService,
			fakeObjects{hostGroups: []string{"hg"}}, "hostgroup_hg"},
		{"5 hostgroup for host", all + " hostgroups=hg", KindHost,
			fakeObjects{hostGroups: []string{"hg"}}, "hostgroup_hg"},
		{"5 hostgroup distributes with hosts=no", "services=yes hostgroups=hg", KindHost,
			fakeObjects{hostGroups: []string{"hg"}}, "hostgroup_hg"},
		{"5 servicegroup distributes with services=no", "hosts=yes servicegroups=sg", KindService,
			fakeObjects{svcGroups: []string{"sg"}}, "servicegroup_sg"},
		{"6 not member falls back to generic", all + " hostgroups=hg servicegroups=sg", KindService,
			fakeObjects{}, "service"},
		{"7 nothing matches and nothing distributed", "hostgroups=hg", KindService, fakeObjects{}, ""},
		{"eventhandler rewritten", all + " hostgroups=hg", KindHostEventHandler,
			fakeObjects{hostGroups: []string{"hg"}}, "eventhandler"},
		{"eventhandler routed like checks", all + " hostgroups=hg route_eventhandler_like_checks=yes", KindHostEventHandler,
			fakeObjects{hostGroups: []string{"hg"}}, "hostgroup_hg"},
		{"eventhandler like checks but generic", all + " route_eventhandler_like_checks=yes", KindServiceEventHandler,
			fakeObjects{}, "eventhandler"},
		{"eventhandler custom variable like checks", all + " queue_custom_variable=WORKER route_eventhandler_like_checks=yes", KindServiceEventHandler,
			fakeObjects{svcVars: map[string]string{"WORKER": "q9"}}, "q9"},
		{"eventhandler local group", all + " localhostgroups=lh", KindServiceEventHandler,
			fakeObjects{hostGroups: []string{"lh"}}, ""},
		{"eventhandler=no", "hosts=yes services=yes", KindServiceEventHandler, fakeObjects{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustConfig(t, strings.TrimSpace(tt.args))
			q, ok := Route(&c, tt.kind, tt.obj)
			if !ok {
				q = ""
			}
			if q != tt.queue {
				t.Errorf("Route(%s) = %q, want %q", tt.kind, q, tt.queue)
			}
		})
	}
}

func TestParseBrokerArgsReadsClassicFile(t *testing.T) {
	c, err := ParseBrokerArgs("config=testdata/mod_gearman_neb.conf", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Secret != "should_be_changed" || c.ResultQueue != "check_results" || !c.Services || !c.Hosts || !c.EventHandler {
		t.Errorf("config = %+v", c.Config)
	}
	if _, err := ParseBrokerArgs("server=localhost bogus=1", ""); err == nil {
		t.Error("unknown option accepted")
	}
	_ = classicconf.RoleNEB
}

package nebe2e

import (
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// TestFakeCoreNotifications: with notifications=yes a contact notification
// command is expanded with the core's macro functions (the module's own
// notification macros at the indices the core reads), taken from the core
// (OVERRIDE) and submitted to the notification queue in the classic payload;
// what cannot be distributed is left to the core.
func TestFakeCoreNotifications(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			srv := gearmantest.Start(t)
			codec, err := modgearman.NewCodec(key, true)
			if err != nil {
				t.Fatal(err)
			}
			fc := startFakeCore(t, l.name, "server="+srv.Addr()+" key="+key+" hosts=yes services=yes notifications=yes")
			id, hostID := "3fa2cc66-6149-4bc8-8c6d-9e8beec57de8", "f3112f74-80dc-401c-a51f-3552dc0f3d46"
			if l.api == 4 {
				id, hostID = "42", "7"
			}
			var raw *gearman.Job
			notification := func(cmd string) modgearman.Job {
				t.Helper()
				if got := fc.do("RC", "notify %s", cmd); got != "RC 206" {
					t.Fatalf("notify %s: %s", cmd, got)
				}
				raw = grabJob(t, srv.Addr(), "notification")
				j := decodeJob(t, codec, raw)
				if j.Type != modgearman.JobNotification || j.HostName != "" || j.ResultQueue != "" ||
					!j.StartTime.Equal(time.Unix(1700000000, 123456000)) || j.CoreTime.Before(time.Now().Add(-time.Minute)) {
					t.Errorf("notification job %+v", j)
				}
				return j
			}

			j := notification("h1 s1 c1 0 notify-svc ARG-A!ARG-B -")
			want := "/bin/notify svc PROBLEM h1 s1 CRITICAL 'CRIT - disk full' c1 c1@example.com 3 " + id + " 0 '' '' '' 'ARG-A' 'ARG-B'"
			if j.Contact != "c1" || j.CommandLine != want || j.PluginOutput != "CRIT - disk full" {
				t.Errorf("service notification %+v\nwant command %s", j, want)
			}
			// The payload in the classic order, the long output as the core
			// stores it (backslash-n), ending in two empty lines.
			plain, err := codec.Decode(raw.Data)
			if err != nil {
				t.Fatal(err)
			}
			if p := string(plain); !strings.HasPrefix(p, "type=notification\nstart_time=1700000000.123456\ncore_time=") ||
				!strings.HasSuffix(p, "\ncontact=c1\ncommand_line="+want+"\nplugin_output=CRIT - disk full\nlong_plugin_output=line2 of long\\nline3 of long\n\n\n") {
				t.Errorf("payload %q", p)
			}
			fc.seen("LOG 1048576 SERVICE NOTIFICATION: c1;h1;s1;CRITICAL;notify-svc;CRIT - disk full")

			j = notification("h1 s1 c1 1 notify-svc - c1")
			want = "/bin/notify svc ACKNOWLEDGEMENT h1 s1 CRITICAL 'CRIT - disk full' c1 c1@example.com 3 " + id +
				" 0 'c1' 'c1' 'ack comment text' '' ''"
			if j.CommandLine != want {
				t.Errorf("acknowledgement command\n%s\nwant\n%s", j.CommandLine, want)
			}
			fc.seen("LOG 1048576 SERVICE NOTIFICATION: c1;h1;s1;ACKNOWLEDGEMENT (CRITICAL);notify-svc;CRIT - disk full;c1;ack comment text")

			j = notification("h1 - c1 0 notify-host HA1 -")
			want = "/bin/notify host PROBLEM h1 DOWN 'DOWN - no ping' c1 1 " + hostID + " 'HA1'"
			if j.CommandLine != want || j.PluginOutput != "DOWN - no ping" || j.LongPluginOutput != "(null)" {
				t.Errorf("host notification %+v\nwant command %s", j, want)
			}
			fc.seen("LOG 524288 HOST NOTIFICATION: c1;h1;DOWN;notify-host;DOWN - no ping")

			// A global handler has no contact.
			if j = notification("h1 s1 - 0 notify-svc G1 -"); j.Contact != "GLOBAL" || !strings.Contains(j.CommandLine, " '' ") {
				t.Errorf("global notification %+v", j)
			}

			// What cannot be distributed stays with the core.
			if got := fc.do("RC", "notify h1 s1 c1 0 notify-unknown - -"); got != "RC 0" {
				t.Errorf("unknown command: %s", got)
			}
			srv.Stop()
			deadline := time.Now().Add(10 * time.Second)
			for fc.do("RC", "notify h1 s1 c1 0 notify-svc - -") != "RC 0" {
				if time.Now().After(deadline) {
					t.Fatal("notifications still taken 10s after gearmand stopped")
				}
				time.Sleep(100 * time.Millisecond)
			}
			fc.do("STATS", "stats")
			st := stats(t, fc)
			if n, _ := st.Module["NotificationsLocal"].(float64); n < 1 {
				t.Errorf("NotificationsLocal = %v", st.Module["NotificationsLocal"])
			}
			fc.mu.Lock()
			for _, line := range fc.log {
				if strings.HasPrefix(line, "MACROLEAK") {
					t.Errorf("the module left macros set: %s", line)
				}
			}
			fc.mu.Unlock()
			fc.do("BYE", "quit")

			// notifications=yes alone distributes nothing (classic): the
			// objects are not routed.
			srv.Restart(t)
			fc = startFakeCore(t, l.name, "server="+srv.Addr()+" key="+key+" notifications=yes")
			if got := fc.do("RC", "notify h1 s1 c1 0 notify-svc - -"); got != "RC 0" {
				t.Errorf("notification of an object that is not distributed: %s", got)
			}
			fc.do("BYE", "quit")
		})
	}
}

// seen fails unless the fake core printed line.
func (fc *fakeCore) seen(line string) {
	fc.t.Helper()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for _, l := range fc.log {
		if l == line {
			return
		}
	}
	fc.t.Errorf("the fake core did not print %q", line)
}

// TestFakeCoreOutageHold: while gearmand is down, checks wait in the module
// and, after gearmand_down_hold, go back to the core's scheduler: the
// module clears is_executing and asks for a check one interval later; no
// result is invented. A reload gives back what is still waiting.
func TestFakeCoreOutageHold(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			srv := gearmantest.Start(t)
			fc := startFakeCore(t, l.name, "server="+srv.Addr()+" key="+key+" hosts=yes services=yes gearmand_down_hold=1s")
			srv.Stop()
			start := time.Now()
			if got := fc.do("RC", "svc h1 s1 0 /bin/x"); !strings.HasPrefix(got, "RC 206 exec=1") {
				t.Fatalf("check while down: %s", got)
			}
			if got := fc.do("RC", "host h1 0 /bin/x"); !strings.HasPrefix(got, "RC 206 exec=1") {
				t.Fatalf("host check while down: %s", got)
			}
			fc.send("wait 1 3000")
			got := []string{fc.expect("SCHEDULE"), fc.expect("SCHEDULE")}
			if el := time.Since(start); el < 900*time.Millisecond {
				t.Errorf("given back after %v, before the hold", el)
			}
			fc.expect("WAITED 0")
			joined := strings.Join(got, "|")
			// check_interval 5 and 2 (× interval_length 60).
			if !strings.Contains(joined, "SCHEDULE svc 300 0 exec=0") || !strings.Contains(joined, "SCHEDULE host 120 0 exec=0") {
				t.Errorf("give-backs %q", joined)
			}
			if rs := fc.results(); len(rs) != 0 {
				t.Errorf("results invented during the outage: %v", rs)
			}

			// A reload while a check waits: given back, no result.
			fc.do("RC 206", "svc h1 s1 0 /bin/x")
			if got := fc.do("HUP", "hup"); got != "HUP 0 onstack=1" {
				t.Fatalf("reload: %s", got)
			}
			fc.send("wait 1 2000")
			fc.expect("SCHEDULE svc 300 0 exec=0")
			fc.expect("WAITED 0")
			st := stats(t, fc)
			t.Logf("stats after the outage: %v", st.Module)
			if rs := fc.results(); len(rs) != 0 {
				t.Errorf("results invented by the reload: %v", rs)
			}

			// gearmand back: checks go out again.
			srv.Restart(t)
			deadline := time.Now().Add(15 * time.Second)
			for {
				fc.do("RC 206", "svc h1 s1 0 /bin/x")
				fc.send("wait 1 500")
				if l := fc.expect("WAITED"); l == "WAITED 0" {
					if j := grabJobWithin(t, srv.Addr(), "service", 2*time.Second); j != nil {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("checks did not resume after gearmand came back")
				}
			}
			fc.do("BYE", "quit")
		})
	}
}

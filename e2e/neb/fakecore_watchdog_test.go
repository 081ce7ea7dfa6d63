package nebe2e

import (
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

// TestFakeCoreOrphanWatchdog: a check sent to a queue no worker serves is
// answered with the classic orphan result soon after its timeout plus
// orphan_grace, on the core's thread; orphan_service_checks=no leaves it to
// the core; a reload in between neither loses nor repeats the answer.
func TestFakeCoreOrphanWatchdog(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			srv := gearmantest.Start(t)
			fc := startFakeCore(t, l.name, "server="+srv.Addr()+" key="+key+" hosts=yes services=yes orphan_grace=1s orphan_return=3")
			fc.do("OK", "timeout 1 1")

			start := time.Now()
			fc.do("RC 206", "svc h1 lost 0 /bin/check_nothing")
			if got := fc.do("WAITED", "wait 1 10000"); got != "WAITED 1" {
				t.Fatalf("no orphan result: %s", got)
			}
			if d := time.Since(start); d < 2*time.Second || d > 5*time.Second {
				t.Errorf("orphan result after %v, want timeout 1s + grace 1s + at most a sweep", d)
			}
			rs := fc.results()
			if len(rs) != 1 || rs[0]["svc"] != "lost" || rs[0]["rc"] != "3" || rs[0]["type"] != "0" ||
				rs[0]["output"] != `(service check orphaned, is the mod-gearman worker on queue 'service' running?)\n` {
				t.Errorf("orphan result %v", rs)
			}
			fc.do("RC 206", "host h1 0 /bin/check_host")
			fc.do("WAITED 1", "wait 1 10000")
			if rs := fc.results(); len(rs) != 1 || rs[0]["svc"] != "-" ||
				rs[0]["output"] != `(host check orphaned, is the mod-gearman worker on queue 'host' running?)\n` {
				t.Errorf("host orphan result %v", rs)
			}

			// Reload while a check is in flight: answered once, after it.
			fc.do("RC 206", "svc h1 reload 0 /bin/check_nothing")
			if got := fc.do("HUP", "hup"); got != "HUP 0 onstack=1" {
				t.Fatalf("reload: %s", got)
			}
			fc.do("WAITED 1", "wait 1 10000")
			if got := fc.do("WAITED", "wait 1 3500"); got != "WAITED 0" {
				t.Errorf("a second result after the reload: %s", got)
			}
			if rs := fc.results(); len(rs) != 1 || rs[0]["svc"] != "reload" || !strings.Contains(rs[0]["output"], "orphaned") {
				t.Errorf("orphan result across the reload %v", rs)
			}
			st := stats(t, fc)
			if n, _ := st.Module["WatchdogOrphans"].(float64); n != 1 {
				t.Errorf("WatchdogOrphans after the reload = %v, want 1 (counted by the new module)", st.Module["WatchdogOrphans"])
			}
			fc.do("BYE", "quit")
		})
	}
}

func TestFakeCoreOrphanResultsOff(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			srv := gearmantest.Start(t)
			fc := startFakeCore(t, l.name, "server="+srv.Addr()+" key="+key+" services=yes orphan_grace=1s orphan_service_checks=no")
			fc.do("OK", "timeout 1 1")
			fc.do("RC 206", "svc h1 lost 0 /bin/check_nothing")
			if got := fc.do("WAITED", "wait 1 4000"); got != "WAITED 0" {
				t.Errorf("orphan_service_checks=no still made a result: %s %v", got, fc.results())
			}
			st := stats(t, fc)
			if n, _ := st.Module["WatchdogOrphans"].(float64); n != 1 {
				t.Errorf("WatchdogOrphans = %v, want 1", st.Module["WatchdogOrphans"])
			}
			fc.do("BYE", "quit")
		})
	}
}

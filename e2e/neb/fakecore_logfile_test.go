package nebe2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

// TestFakeCoreLogfileFallback: a logfile that cannot be opened does not
// fail init; it is reported in the core log, which then gets the module's
// lines; a reload with a usable logfile writes there again.
func TestFakeCoreLogfileFallback(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			srv := gearmantest.Start(t)
			fc := startFakeCore(t, l.name, "server="+srv.Addr()+" key="+key+" services=yes logfile=/nonexistent/dir/x.log")
			fc.do("RC 206", "svc h1 s1 0 /bin/check_x")
			grabJob(t, srv.Addr(), "service")
			fc.do("STATS", "stats")
			fc.do("WAITED", "wait 1 300") // lets queued log lines reach the core log
			fc.mu.Lock()
			log := strings.Join(fc.log, "\n")
			fc.mu.Unlock()
			if !strings.Contains(log, "LOG 2 gearbridge: cannot open logfile /nonexistent/dir/x.log, logging to the core log instead") {
				t.Errorf("no warning about the logfile in the core log")
			}
			if !strings.Contains(log, "gearbridge: gearbridge neb started") {
				t.Errorf("the module's lines do not reach the core log")
			}
			fc.do("BYE", "quit")
		})
	}
}

func TestFakeCoreLogfile(t *testing.T) {
	srv := gearmantest.Start(t)
	path := filepath.Join(t.TempDir(), "neb.log")
	fc := startFakeCore(t, "naemon", "server="+srv.Addr()+" key="+key+" services=yes logfile="+path)
	fc.do("RC 206", "svc h1 s1 0 /bin/check_x")
	grabJob(t, srv.Addr(), "service")
	fc.do("BYE", "quit")
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "gearbridge neb started") {
		t.Errorf("logfile %q %v", b, err)
	}
}

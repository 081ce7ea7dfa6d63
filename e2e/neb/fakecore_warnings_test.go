package nebe2e

import (
	"strings"
	"testing"

	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

// TestFakeCoreIgnoredOptionWarnings: latency_flatten_window and export are
// accepted, and each one that is set gets a warning in the core log at init.
func TestFakeCoreIgnoredOptionWarnings(t *testing.T) {
	srv := gearmantest.Start(t)
	fc := startFakeCore(t, "naemon", "server="+srv.Addr()+" key="+key+
		" services=yes latency_flatten_window=15 export=log_queue:0:NEBCALLBACK_LOG_DATA")
	fc.do("BYE", "quit")
	fc.mu.Lock()
	log := strings.Join(fc.log, "\n")
	fc.mu.Unlock()
	for _, want := range []string{
		"LOG 2 gearbridge: latency_flatten_window=15 is not supported: checks are not rescheduled",
		"LOG 2 gearbridge: export=log_queue:0:NEBCALLBACK_LOG_DATA is not supported: no export jobs are sent",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("core log lacks %q", want)
		}
	}

	fc = startFakeCore(t, "nagios4", "server="+srv.Addr()+" key="+key+" services=yes latency_flatten_window=0")
	fc.do("BYE", "quit")
	fc.mu.Lock()
	log = strings.Join(fc.log, "\n")
	fc.mu.Unlock()
	if strings.Contains(log, "latency_flatten_window") || strings.Contains(log, "export") {
		t.Errorf("warnings for options that are off:\n%s", log)
	}
}

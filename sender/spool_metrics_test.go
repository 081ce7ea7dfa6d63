package sender

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSpoolCollector: the spool's gauges follow what is waiting: zero
// when empty, the entries, bytes and oldest age while the receiver is
// down, zero again once the spool is drained.
func TestSpoolCollector(t *testing.T) {
	ctx := context.Background()
	tr := &fakeTransport{down: true}
	now := time.Now()
	clock := func() time.Time { return now }
	s, sp, _ := newTestSender(t, tr, SpoolConfig{Dir: t.TempDir(), MaxBytes: 1 << 20, Now: clock})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(sp.Collector())
	check := func(what, want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	const head = `# HELP gearbridge_sender_spool_bytes Bytes of the entries waiting in the spool.
# TYPE gearbridge_sender_spool_bytes gauge
gearbridge_sender_spool_bytes %d
# HELP gearbridge_sender_spool_entries Entries (one per spooled batch of results) waiting in the spool.
# TYPE gearbridge_sender_spool_entries gauge
gearbridge_sender_spool_entries %d
# HELP gearbridge_sender_spool_max_bytes Spool size limit; beyond it results are refused.
# TYPE gearbridge_sender_spool_max_bytes gauge
gearbridge_sender_spool_max_bytes 1.048576e+06
# HELP gearbridge_sender_spool_oldest_age_seconds Age of the oldest entry waiting in the spool (0 when empty); at spool-max-age it moves to dead/.
# TYPE gearbridge_sender_spool_oldest_age_seconds gauge
gearbridge_sender_spool_oldest_age_seconds %s
`
	check("empty", fmt.Sprintf(head, 0, 0, "0"))

	for range 2 {
		if rep, err := s.Submit(ctx, latin1()); err != nil || rep.Spooled == 0 {
			t.Fatalf("submit while down: %+v, %v", rep, err)
		}
	}
	n, size, oldest := sp.backlog()
	if n != 2 || size <= 0 {
		t.Fatalf("backlog %d entries, %d bytes", n, size)
	}
	now = oldest.Add(90 * time.Second)
	check("two entries", fmt.Sprintf(head, size, 2, "90"))

	tr.mu.Lock()
	tr.down = false
	tr.mu.Unlock()
	if _, err := s.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	check("drained", fmt.Sprintf(head, 0, 0, "0"))
}

package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleSessionsDoNotAllWake: gearmand wakes every worker asleep on a
// queue for each job. With twelve idle remote workers on "service", the
// bridge lets only a few of their sessions sleep there, so a trickle of
// jobs wakes a few sessions per job instead of twelve; a burst afterwards
// still reaches every worker, and every check runs exactly once.
func TestIdleSessionsDoNotAllWake(t *testing.T) {
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := lis.Addr().String()
	_ = lis.Close()
	_, baddr := c.startBridge("bridge", "127.0.0.1:0", "--metrics-listen", metricsAddr)
	const workers = 12
	for i := range workers {
		w := c.startWorker(fmt.Sprintf("w%02d", i), baddr, "--services", "--max-workers", "2")
		c.waitLog(w, `session started`, 20*time.Second)
	}
	time.Sleep(time.Second) // every session has grabbed once and gone idle

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	core := time.Unix(1700000000, 0)
	id := 0
	submit := func() {
		_, j := checkJob(2*id, check, 0, "", core) // even ids are service checks
		c.submit(ctx, "service", j)
		id++
	}
	before := metricValue(t, metricsAddr, "gearbridge_bridge_gearmand_wakeups_total")
	const trickle = 30
	for range trickle {
		submit()
		time.Sleep(100 * time.Millisecond)
	}
	c.collect("check_results", trickle, time.Minute)
	wakeups := metricValue(t, metricsAddr, "gearbridge_bridge_gearmand_wakeups_total") - before
	t.Logf("%d idle sessions: %.0f wake-ups for %d jobs submitted one at a time", workers, wakeups, trickle)
	if wakeups > 4*trickle {
		t.Errorf("%.0f wake-ups for %d jobs: idle sessions are all woken for each job", wakeups, trickle)
	}

	const burst = 300
	for range burst {
		submit()
	}
	c.collect("check_results", burst, 2*time.Minute)
	waitRunsOnce(t, filepath.Join(c.dir, "runs.log"), trickle+burst, 30*time.Second)
}

// metricValue scrapes one unlabelled series from a /metrics endpoint.
func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	body := scrape(t, "http://"+addr+"/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the metrics of %s", name, addr)
	return 0
}

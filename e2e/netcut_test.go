package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/linkproxy"
)

// newBlackHole starts a link proxy to target, closed with the test.
func newBlackHole(t *testing.T, target string) *linkproxy.Proxy {
	t.Helper()
	p, err := linkproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// cutCluster starts a bridge (a long resume grace) and n workers named
// prefix0.. with slots each, reaching it through a black hole, and waits
// until every worker has a session.
func cutCluster(t *testing.T, prefix string, n, slots int) (c *cluster, bridge *proc, proxy *linkproxy.Proxy, workers []*proc) {
	t.Helper()
	c = newCluster(t)
	bridge, baddr := c.startBridge("bridge", "127.0.0.1:0", "--resume-grace", "5m")
	proxy = newBlackHole(t, baddr)
	for i := range n {
		workers = append(workers, c.startWorker(fmt.Sprintf("%s%d", prefix, i), proxy.Addr(), "--services", "--hosts", "--max-workers", strconv.Itoa(slots)))
	}
	for _, w := range workers {
		c.waitLog(w, `session started`, 30*time.Second)
	}
	return c, bridge, proxy, workers
}

// countIn is how often re matches in p's log now.
func countIn(p *proc, re *regexp.Regexp) int {
	b, _ := os.ReadFile(p.log)
	return len(re.FindAll(b, -1))
}

// TestBlackHoleCutReattaches cuts the network between eight worker
// processes and the bridge as a black hole (nothing moves, connections
// stay open, new ones hang) long enough for every worker to notice (its
// keepalive) and to have its reconnect attempts time out waiting for the
// welcome, then restores it. Every worker must attach again within 30 s,
// every check must be answered exactly once, and the bridge must refuse
// no result of a job it still holds.
func TestBlackHoleCutReattaches(t *testing.T) {
	const nw = 8
	c, bp, proxy, ws := cutCluster(t, "wcut", nw, 4)
	check, _ := writePlugins(t, c.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Some checks end while the link is cut: their results wait in the
	// cut link and on the workers, and come again on the resumed session.
	const n = 48
	for i := range n {
		sleep := "0"
		if i >= 16 {
			sleep = "4"
		}
		queue, j := checkJob(i, check, 0, sleep, time.Now())
		j.Timeout = 5 * time.Minute // no timeout result during the cut
		c.submit(ctx, queue, j)
	}
	first := c.collect("check_results", 16, time.Minute)

	attachedRx := regexp.MustCompile(`msg="session (resumed|started)"`)
	lostRx := regexp.MustCompile(`msg="lost the bridge; reconnecting"`)
	before := make([]int, nw)
	for i, w := range ws {
		before[i] = countIn(w, attachedRx)
	}
	proxy.Pause()
	t.Log("network cut")
	cutEnd := time.Now().Add(90 * time.Second)
	for i, w := range ws {
		// The keepalive (20 s ping, 10 s wait) notices the cut.
		c.countLog(w, lostRx.String(), 1, 45*time.Second)
		t.Logf("wcut%d noticed the cut", i)
	}
	// Long enough for a reconnect attempt of every worker to run into
	// the handshake timeout (10 s) while the link is still cut.
	time.Sleep(min(15*time.Second, time.Until(cutEnd)))
	proxy.Resume()
	resumed := time.Now()
	t.Log("network back")

	deadline := resumed.Add(30 * time.Second)
	for {
		var missing []string
		for i, w := range ws {
			if countIn(w, attachedRx) <= before[i] {
				missing = append(missing, w.name)
			}
		}
		if len(missing) == 0 {
			t.Logf("all workers attached again %v after the network came back", time.Since(resumed).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			for _, w := range ws {
				b, _ := os.ReadFile(w.log)
				t.Logf("%s:\n%s", w.name, b)
			}
			t.Fatalf("workers %v did not attach again within 30 s after the network came back", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}

	rest := c.collect("check_results", n-len(first), 2*time.Minute)
	got := map[int]int{}
	for _, r := range append(first, rest...) {
		got[idOf(t, r.HostName)]++
	}
	for i := range n {
		if got[i] != 1 {
			t.Errorf("check %d: %d results", i, got[i])
		}
	}
	// Wait a little for late duplicates, then look at the bridge's log.
	time.Sleep(2 * time.Second)
	b, _ := os.ReadFile(bp.log)
	if m := regexp.MustCompile(`.*refused result.*`).FindAll(b, -1); len(m) > 0 {
		t.Errorf("the bridge refused results:\n%s", m)
	}
}

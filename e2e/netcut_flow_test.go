package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
)

// TestBlackHoleCutUnderLoadLosesNothing submits checks continuously (about
// 30 a second, each with an id of its own) to worker processes that reach
// the bridge through a black-hole link, cuts the link until every worker's
// keepalive has noticed, restores it right then (the workers' reconnects
// are under way, the bridge has not noticed the old streams are dead) and
// keeps submitting across that moment. Every check must get exactly one
// result within 90 s of the link coming back (the backlog of the cut
// drains in 15-45 s on a loaded two-core machine); the test names the ones that did not,
// with what the bridge and the workers logged of them. GB_E2E_KEEP names a
// directory to copy the processes' logs to when it fails.
func TestBlackHoleCutUnderLoadLosesNothing(t *testing.T) {
	cutFor := 30 * time.Second
	if v := os.Getenv("GB_E2E_CUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		cutFor = d
	}
	const nw = 8
	c, bp, proxy, ws := cutCluster(t, "wflow", nw, 8)
	check, _ := writePlugins(t, c.dir)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// The results, by check id.
	var mu sync.Mutex
	got := map[int]int{}
	gotAt := map[int]time.Time{}
	var bg sync.WaitGroup
	collectCtx, stopCollect := context.WithCancel(ctx)
	defer stopCollect()
	wc, err := gearman.DialWorker(ctx, c.gm.Addr(), gearman.WorkerOptions{ClientID: "e2e-flow-results"})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo("check_results"); err != nil {
		t.Fatal(err)
	}
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			job, err := wc.Grab(collectCtx)
			if err != nil {
				if collectCtx.Err() == nil {
					t.Errorf("collect results: %v", err)
				}
				return
			}
			plain, err := c.codec.Decode(job.Data)
			if err != nil {
				t.Errorf("decode result: %v", err)
				return
			}
			r, err := modgearman.ParseResult(plain)
			if err != nil {
				t.Errorf("parse result: %v", err)
				return
			}
			_ = wc.Complete(job.Handle, nil)
			var id int
			if _, err := fmt.Sscanf(r.HostName, "host%d", &id); err != nil {
				t.Errorf("result for host %q", r.HostName)
				continue
			}
			mu.Lock()
			got[id]++
			gotAt[id] = time.Now()
			mu.Unlock()
		}
	}()

	// The submitter: one check every 33 ms until stopSubmit.
	var submitted []time.Time // by id
	stopSubmit := make(chan struct{})
	bg.Add(1)
	go func() {
		defer bg.Done()
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for id := 0; ; id++ {
			select {
			case <-stopSubmit:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			queue, j := checkJob(id, check, 0, "", time.Now())
			j.Timeout = 3 * time.Minute // no timeout result within the test's bound
			prio := gearman.PriorityNormal
			if j.Type == modgearman.JobService {
				prio = gearman.PriorityLow
			}
			mu.Lock()
			submitted = append(submitted, time.Now())
			mu.Unlock()
			if _, err := c.client.Submit(ctx, queue, "", c.codec.Encode(j.Marshal()), prio, true); err != nil {
				t.Errorf("submit check %d: %v", id, err)
				return
			}
		}
	}()

	time.Sleep(3 * time.Second)
	proxy.Pause()
	cut := time.Now()
	t.Log("network cut")
	// The workers' keepalive (20 s ping, 10 s wait) notices a cut about
	// 30 s after the last bytes came: the link comes back right then,
	// just before some notice, just after others (whose old stream then
	// carries what it held back, until their keepalive gives up on it).
	time.Sleep(cutFor)
	proxy.Resume()
	resumed := time.Now()
	t.Logf("network back after %v", resumed.Sub(cut).Round(time.Millisecond))
	time.Sleep(5 * time.Second)
	close(stopSubmit)
	mu.Lock()
	n := len(submitted)
	mu.Unlock()
	// Wait for everything (bounded), plus a little for duplicates.
	deadline := resumed.Add(90 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := len(got)
		mu.Unlock()
		if done >= n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	stopCollect()
	bg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var missing []int
	for id := range n {
		switch got[id] {
		case 1:
		case 0:
			missing = append(missing, id)
		default:
			t.Errorf("check %d: %d results", id, got[id])
		}
	}
	var last time.Time
	for _, at := range gotAt {
		if at.After(last) {
			last = at
		}
	}
	t.Logf("%d checks submitted, %d answered, the last %v after the link came back; %d submitted during the cut",
		n, len(got), last.Sub(resumed).Round(time.Millisecond), countBetween(submitted, cut, resumed))
	if len(missing) == 0 {
		return
	}
	if dir := os.Getenv("GB_E2E_KEEP"); dir != "" {
		if err := os.CopyFS(dir, os.DirFS(c.dir)); err != nil {
			t.Logf("keep logs: %v", err)
		} else {
			t.Logf("logs kept in %s", dir)
		}
	}
	bridgeLog := readLines(bp.log)
	for _, id := range missing {
		host := fmt.Sprintf("host%04d", id)
		t.Errorf("check %d (%s) submitted at %s (%+v from the link coming back) has no result",
			id, host, submitted[id].Format("15:04:05.000"), submitted[id].Sub(resumed).Round(time.Millisecond))
		for _, l := range grepLinesOf(bridgeLog, host) {
			t.Logf("  bridge: %s", l)
		}
		for _, w := range ws {
			for _, l := range grepLinesOf(readLines(w.log), host) {
				t.Logf("  %s: %s", w.name, l)
			}
		}
	}
	// What the bridge says of the sessions at the end.
	for _, l := range bridgeLog {
		if strings.Contains(l, "session") && !strings.Contains(l, "job done") {
			t.Logf("bridge: %s", l)
		}
	}
	for _, w := range ws {
		for _, l := range readLines(w.log) {
			if !strings.Contains(l, "job done") && !strings.Contains(l, "level=DEBUG") {
				t.Logf("%s: %s", w.name, l)
			}
		}
	}
}

func countBetween(ts []time.Time, from, to time.Time) int {
	i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(from) })
	j := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(to) })
	return j - i
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func grepLinesOf(lines []string, sub string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

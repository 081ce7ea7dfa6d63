package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// durableArgs makes gearmand keep its background jobs in the SQLite file db
// (the libsqlite3 queue built into Debian's gearmand 1.1.x): every job is
// written before gearmand answers JOB_CREATED and deleted when a worker
// completes it, and a start replays what the file holds.
func durableArgs(db string) gearmantest.Option {
	return gearmantest.WithArgs("--queue-type=libsqlite3", "--libsqlite3-db="+db)
}

// TestDurableQueueSurvivesKill9: with gearmand's persistent queue, checks
// waiting on the check queues, a check a worker has grabbed but not
// finished, and results waiting on check_results all survive gearmand being
// killed with SIGKILL. After a restart on the same database a gearbridge
// worker (--transport=gearman) runs every check exactly once and the result
// queue holds every result exactly once, the old ones included.
func TestDurableQueueSurvivesKill9(t *testing.T) {
	if out, err := exec.Command("gearmand", "--help").CombinedOutput(); err == nil && !strings.Contains(string(out), "--libsqlite3-db") {
		t.Skip("SKIP: this gearmand has no libsqlite3 queue")
	}
	db := filepath.Join(t.TempDir(), "gearmand.sqlite")
	c := newClusterWith(t, durableArgs(db))
	check, _ := writePlugins(t, c.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const checks, results = 200, 100
	core := time.Unix(1700000000, 0)
	for i := range checks {
		queue, j := checkJob(i, check, i%4, "", core)
		c.submit(ctx, queue, j)
	}
	// Results a worker delivered before the crash, not yet read by the core.
	for i := range results {
		r := modgearman.Result{Type: modgearman.ResultActive, HostName: fmt.Sprintf("old%04d", i),
			ReturnCode: i % 4, ExitedOK: true, StartTime: core, FinishTime: core, Output: fmt.Sprintf("OLD %d", i)}
		if _, err := c.client.Submit(ctx, "check_results", "", c.codec.Encode(r.Marshal()), gearman.PriorityNormal, true); err != nil {
			t.Fatalf("submit result %d: %v", i, err)
		}
	}
	// A worker grabs one check and dies with gearmand before completing it.
	wc, err := gearman.DialWorker(ctx, c.gm.Addr(), gearman.WorkerOptions{ClientID: "e2e-crashing-worker"})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo("host"); err != nil {
		t.Fatal(err)
	}
	grabbed, err := wc.Grab(ctx)
	if err != nil {
		t.Fatalf("grab: %v", err)
	}
	if grabbed.Function != "host" {
		t.Fatalf("grabbed a job of %q", grabbed.Function)
	}
	if got := queued(t, c.gm.Addr()); got["service"] != checks/2 || got["host"] != checks/2 || got["check_results"] != results {
		t.Fatalf("queues before the crash: %v", got)
	}

	c.gm.Kill()
	c.gm.Restart(t)
	if got := queued(t, c.gm.Addr()); got["service"] != checks/2 || got["host"] != checks/2 || got["check_results"] != results {
		t.Fatalf("queues after SIGKILL and restart on the same database: %v (want service=%d host=%d check_results=%d)",
			got, checks/2, checks/2, results)
	}

	c.start("gmworker", "worker", "--transport=gearman", "--server", c.gm.Addr(), "--key", testKey,
		"--identifier", "durable", "--services", "--hosts", "--max-workers", "8")
	seen := map[string]int{}
	for _, r := range c.collect("check_results", checks+results, 2*time.Minute) {
		seen[r.HostName]++
		if strings.HasPrefix(r.HostName, "old") {
			i, _ := strconv.Atoi(strings.TrimPrefix(r.HostName, "old"))
			if r.Output != fmt.Sprintf("OLD %d", i) || r.ReturnCode != i%4 {
				t.Errorf("old result %s changed: %+v", r.HostName, r.Result)
			}
			continue
		}
		id := idOf(t, r.HostName)
		if want := fmt.Sprintf("STATE %d id=%d\nsecond line for %d|id=%d;1;2", id%4, id, id, id); r.Output != want || r.ReturnCode != id%4 {
			t.Errorf("result for check %d: %+v", id, r.Result)
		}
	}
	for i := range checks {
		if n := seen[fmt.Sprintf("host%04d", i)]; n != 1 {
			t.Errorf("check %d: %d results, want 1", i, n)
		}
	}
	for i := range results {
		if n := seen[fmt.Sprintf("old%04d", i)]; n != 1 {
			t.Errorf("old result %d: read %d times, want 1", i, n)
		}
	}
	// Every check ran exactly once: nothing was left behind or replayed.
	waitRunsOnce(t, filepath.Join(c.dir, "runs.log"), checks, 10*time.Second)
	if got := queued(t, c.gm.Addr()); got["service"]+got["host"]+got["check_results"] != 0 {
		t.Errorf("queues not empty at the end: %v", got)
	}
}

// queued returns the jobs queued per function (gearmand's status command).
func queued(t *testing.T, addr string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := gearman.NewAdmin(addr, gearman.AdminOptions{})
	defer a.Close()
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", addr, err)
	}
	out := map[string]int{}
	for _, f := range st {
		out[f.Name] = f.Total
	}
	return out
}

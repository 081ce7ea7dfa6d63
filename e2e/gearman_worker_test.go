package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/modgearman"
)

// TestGearmanTransportWorker: `gearbridge worker --transport=gearman`
// started with an unchanged classic mod_gearman_worker.conf is a drop-in
// classic worker: it takes checks and event handlers in the classic format
// straight from gearmand, answers every check on the result queue, runs
// every event handler once, answers check_gearman's ping, and on SIGTERM
// finishes the check it is running and delivers its result.
func TestGearmanTransportWorker(t *testing.T) {
	c := newCluster(t)
	check, handler := writePlugins(t, c.dir)
	conf := filepath.Join(c.dir, "mod_gearman_worker.conf")
	writeFile(t, conf, fmt.Sprintf(`# classic worker configuration
server=%s
key=%s
encryption=yes
identifier=dropin
hosts=yes
services=yes
eventhandler=yes
max-worker=8
job_timeout=30
`, c.gm.Addr(), testKey), 0o644)
	w := c.start("dropin", "worker", "--transport=gearman", "--config", conf, "--log-level", "debug")
	c.waitLog(w, "connected to gearmand", 20*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const checks, handlers = 100, 20
	core := time.Unix(1700000000, 250000000)
	jobs := map[int]modgearman.Job{}
	for i := range checks {
		queue, j := checkJob(i, check, i%4, "", core)
		jobs[i] = j
		c.submit(ctx, queue, j)
	}
	for i := range handlers {
		c.submit(ctx, "eventhandler", modgearman.Job{Type: modgearman.JobEventHandler, StartTime: core, CoreTime: core,
			CommandLine: fmt.Sprintf("%s eh%d", handler, i)})
	}
	seen := map[int]bool{}
	for _, r := range c.collect("check_results", checks, time.Minute) {
		id := idOf(t, r.HostName)
		j := jobs[id]
		want := fmt.Sprintf("STATE %d id=%d\nsecond line for %d|id=%d;1;2", id%4, id, id, id)
		if seen[id] || r.ServiceDescription != j.ServiceDescription || r.ReturnCode != id%4 || r.Output != want ||
			!r.CoreStartTime.Equal(core) || r.Source != "Mod-Gearman Worker @ dropin" {
			t.Fatalf("result for %d: %+v", id, r.Result)
		}
		seen[id] = true
	}
	waitRunsOnce(t, filepath.Join(c.dir, "handlers.log"), handlers, 10*time.Second)
	// One debug line per job, as the classic worker's debug=1.
	c.waitLog(w, `msg="job done".* queue=service host=host0002 service=svc0002 rc=2`, 5*time.Second)

	out := c.gb("check", "-H", c.gm.Addr(), "-q", "worker_dropin", "-s", "check")
	if !strings.HasPrefix(out, "check_gearman OK - dropin has 8 worker and is working on 0 jobs.") {
		t.Fatalf("check -q worker_dropin:\n%s", out)
	}

	// SIGTERM while a 2 s check runs: the check finishes, its result is
	// delivered, and the worker exits.
	queue, slow := checkJob(1000, check, 1, "2", core)
	c.submit(ctx, queue, slow)
	deadline := time.Now().Add(10 * time.Second)
	for runs(t, filepath.Join(c.dir, "runs.log"))["1000"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow check did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(w.cmd.Process.Pid, syscall.SIGTERM)
	r := c.collect("check_results", 1, 20*time.Second)[0]
	if r.HostName != slow.HostName || r.ReturnCode != 1 {
		t.Fatalf("result after SIGTERM: %+v", r.Result)
	}
	select {
	case <-w.done:
	case <-time.After(15 * time.Second):
		t.Fatal("worker did not exit after draining")
	}
	if code := w.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("worker exit code %d", code)
	}
	c.waitLog(w, "worker stopped", time.Second)
}

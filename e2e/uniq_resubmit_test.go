package e2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/modgearman"
)

// TestUniqResubmitRightAfterResult submits checks with the module's unique
// keys (use_uniq_jobs: one key per host and service) and submits each one
// again shortly after its result is read (GB_E2E_RESUBMIT_AFTER, e.g.
// 2ms), as the core does with a check that became overdue while it ran
// (after a network cut, for one). gearmand merges a background job into
// one of the same key that it still holds: a run submitted before gearmand
// has the previous run's WORK_COMPLETE is merged into it and never
// happens, and the check gets no result. The bridge completes a check as
// soon as its result is submitted, which keeps that window to a scheduling
// delay; it cannot close it (the result is on the result queue before the
// completion, so that a job whose result could not be submitted is run
// again), so the test only runs when GB_E2E_RESUBMIT_AFTER is set: it
// measures how many checks a core that reacts that fast would lose.
func TestUniqResubmitRightAfterResult(t *testing.T) {
	v := os.Getenv("GB_E2E_RESUBMIT_AFTER")
	if v == "" {
		t.Skip("set GB_E2E_RESUBMIT_AFTER (e.g. 2ms) to measure")
	}
	resubmitAfter, err := time.ParseDuration(v)
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t)
	check, _ := writePlugins(t, c.dir)
	_, baddr := c.startBridge("bridge", "127.0.0.1:0")
	const nw = 4
	var ws []*proc
	for i := range nw {
		ws = append(ws, c.startWorker(fmt.Sprintf("wuniq%d", i), baddr, "--services", "--hosts", "--max-workers", "8"))
	}
	for _, w := range ws {
		c.waitLog(w, `session started`, 30*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const objects = 64
	const run = 20 * time.Second
	uniq := func(obj int) string { return modgearman.Uniq(fmt.Sprintf("h%03d", obj), "svc") }
	submit := func(obj, gen int) error {
		queue, j := checkJob(gen*1000+obj, check, 0, "", time.Now())
		prio := gearman.PriorityNormal
		if j.Type == modgearman.JobService {
			prio = gearman.PriorityLow
		}
		_, err := c.client.Submit(ctx, queue, uniq(obj), c.codec.Encode(j.Marshal()), prio, true)
		return err
	}
	var mu sync.Mutex
	gen := make([]int, objects)      // generation submitted last
	answered := make([]int, objects) // results read
	lastAt := make([]time.Time, objects)
	for obj := range objects {
		lastAt[obj] = time.Now()
		if err := submit(obj, 0); err != nil {
			t.Fatal(err)
		}
	}
	wc, err := gearman.DialWorker(ctx, c.gm.Addr(), gearman.WorkerOptions{ClientID: "e2e-uniq-results"})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo("check_results"); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(run)
	gctx, gcancel := context.WithDeadline(ctx, end.Add(15*time.Second))
	defer gcancel()
	for {
		job, err := wc.Grab(gctx)
		if err != nil {
			break
		}
		plain, err := c.codec.Decode(job.Data)
		if err != nil {
			t.Fatal(err)
		}
		r, err := modgearman.ParseResult(plain)
		if err != nil {
			t.Fatal(err)
		}
		_ = wc.Complete(job.Handle, nil)
		var id int
		if _, err := fmt.Sscanf(r.HostName, "host%d", &id); err != nil {
			t.Fatalf("result for %q", r.HostName)
		}
		obj, g := id%1000, id/1000
		mu.Lock()
		if g != gen[obj] {
			t.Errorf("object %d: result of generation %d, expected %d", obj, g, gen[obj])
		}
		answered[obj]++
		lastAt[obj] = time.Now()
		again := time.Now().Before(end)
		if again {
			gen[obj]++
		}
		next := gen[obj]
		mu.Unlock()
		if again {
			// Soon, like an overdue check rescheduled by its result.
			time.Sleep(resubmitAfter)
			if err := submit(obj, next); err != nil {
				t.Fatal(err)
			}
		}
		done := true
		mu.Lock()
		for o := range objects {
			if answered[o] <= gen[o] {
				done = false
			}
		}
		mu.Unlock()
		if done && !again {
			break
		}
	}
	total := 0
	for obj := range objects {
		total += answered[obj]
		if answered[obj] <= gen[obj] {
			t.Errorf("object %d: generation %d submitted but never answered (last result %v before the end)", obj, gen[obj], time.Since(lastAt[obj]).Round(time.Millisecond))
		}
	}
	t.Logf("%d results for %d objects", total, objects)
}

package worker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// TestGearmanStatusPingWhileBusy: with both slots running long checks, the
// worker still answers check_gearman's ping on worker_<identifier> at
// once, as the classic C and Go workers do, and says it is busy.
func TestGearmanStatusPingWhileBusy(t *testing.T) {
	srv := gearmantest.Start(t)
	cfg := gearmanConfig("service")
	cfg.DrainTimeout = time.Second // the sleeps are killed at the end
	startGearmanWorker(t, srv, cfg)
	codec, _ := modgearman.NewCodec(gearmanKey, true)
	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range cfg.Slots {
		j := modgearman.Job{Type: modgearman.JobService, ResultQueue: "check_results", HostName: "h", ServiceDescription: fmt.Sprint("slow", i),
			Timeout: 10 * time.Second, CommandLine: "/bin/sleep 5"}
		if _, err := client.Submit(ctx, "service", "", codec.Encode(j.Marshal()), gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
	}
	admin := gearman.NewAdmin(srv.Addr(), gearman.AdminOptions{})
	defer admin.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := admin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if running(st, "service") == cfg.Slots {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v: want %d running", st, cfg.Slots)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Every slot is taken. The ping must not wait for one. Both plugins may
	// take a moment to start after the grab: ask until the text says so.
	want := fmt.Sprintf("wg1 has %d worker and is working on %d jobs", cfg.Slots, cfg.Slots)
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		reply, err := client.Do(pctx, "worker_wg1", "", []byte("check"), gearman.PriorityHigh)
		pcancel()
		if err != nil {
			t.Fatalf("status ping while every slot is busy: %v after %v", err, time.Since(start).Round(time.Millisecond))
		}
		if strings.HasPrefix(string(reply), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status reply %q, want it to start with %q", reply, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

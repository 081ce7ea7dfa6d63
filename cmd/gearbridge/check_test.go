package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

func TestCheckAndTopAgainstGearmand(t *testing.T) {
	gm := gearmantest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := gearman.NewClient([]string{gm.Addr()}, gearman.ClientOptions{})
	defer c.Close()
	for range 3 {
		if _, err := c.Submit(ctx, "service", "", []byte("x"), gearman.PriorityLow, true); err != nil {
			t.Fatal(err)
		}
	}
	wc, err := gearman.DialWorker(ctx, gm.Addr(), gearman.WorkerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if err := wc.CanDo("host"); err != nil {
		t.Fatal(err)
	}
	// A status responder like a classic worker's worker_<id> queue.
	w := gearman.NewWorker([]string{gm.Addr()}, []string{"worker_w1"}, func(_ context.Context, j *gearman.Job) ([]byte, error) {
		return []byte("0:OK - w1 has 4 worker and is working on 0 jobs|worker=4"), nil
	}, gearman.WorkerOptions{})
	defer w.Close()
	waitFor(t, func() bool {
		adm := gearman.NewAdmin(gm.Addr(), gearman.AdminOptions{})
		defer adm.Close()
		st, err := adm.Status(ctx)
		if err != nil {
			return false
		}
		n := 0
		for _, q := range st {
			if (q.Name == "host" || q.Name == "worker_w1") && q.Workers == 1 {
				n++
			}
		}
		return n == 2
	})

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"queue without worker", []string{"check", "-H", gm.Addr()}, 2,
			[]string{"check_gearman CRITICAL - Queue service has 3 jobs without any worker. |", "'service_waiting'=3;10;100;0", "'host_worker'=1;25;50;0"}},
		{"one queue ok", []string{"check", "-H", gm.Addr(), "-q", "host"}, 0,
			[]string{"check_gearman OK - 0 jobs running and 0 jobs waiting. Version: "}},
		{"no worker beats the thresholds", []string{"check", "-H", gm.Addr(), "-q", "service", "-w", "2", "-c", "0", "-x=false"}, 2,
			[]string{"without any worker"}},
		{"queue not found", []string{"check", "-H", gm.Addr(), "-q", "nope"}, 1,
			[]string{"check_gearman WARNING - Queue nope not found"}},
		{"no worker critical", []string{"check", "-H", gm.Addr(), "-q", "host", "-x", "-W", "1"}, 1,
			[]string{"Queue host has 1 worker."}},
		{"worker answers with its state", []string{"check", "-H", gm.Addr(), "-q", "worker_w1", "-s", "check"}, 0,
			[]string{"OK - w1 has 4 worker"}},
		{"expected text", []string{"check", "-H", gm.Addr(), "-q", "worker_w1", "-s", "check", "-e", "working on"}, 0,
			[]string{"check_gearman OK - send worker 'check' response: '0:OK - w1 has 4 worker"}},
		{"unexpected text", []string{"check", "-H", gm.Addr(), "-q", "worker_w1", "-s", "check", "-e", "missing"}, 2,
			[]string{"check_gearman CRITICAL - send worker: 'check' response: '0:OK - w1 has 4 worker", "', expected 'missing'"}},
		{"background", []string{"check", "-H", gm.Addr(), "-q", "worker_w1", "-s", "check", "-a"}, 0,
			[]string{"check_gearman OK - sending background job succeded"}},
		{"timeout", []string{"check", "-H", gm.Addr(), "-q", "nobody_listens", "-s", "check", "-t", "1"}, 2,
			[]string{"timeout while waiting for " + gm.Addr()}},
		{"unreachable", []string{"check", "-H", "127.0.0.1:1"}, 2,
			[]string{"check_gearman CRITICAL - failed to connect to address 127.0.0.1 and port 1: Connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "gearbridge", tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout %q\nstderr %q", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout %q does not contain %q", out, w)
				}
			}
		})
	}

	code, out, _ := runCmd(t, "gearbridge", "top", "-b", "-H", gm.Addr())
	if code != 0 {
		t.Fatalf("top exit %d: %s", code, out)
	}
	// The layout gearman_top users parse: header and "name | n | n | n" rows.
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  -  ` + regexp.QuoteMeta(gm.Addr()) + `  -  v\S+$`).MatchString(out) {
		t.Errorf("no header in %q", out)
	}
	if !regexp.MustCompile(`(?m)^ service\s+\|\s+0\s+\|\s+3\s+\|\s+0$`).MatchString(out) {
		t.Errorf("no service row in %q", out)
	}
	if !regexp.MustCompile(`(?m)^ host\s+\|\s+1\s+\|\s+0\s+\|\s+0$`).MatchString(out) {
		t.Errorf("no host row in %q", out)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

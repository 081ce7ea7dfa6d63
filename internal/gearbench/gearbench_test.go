package gearbench_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/gearbridge/gearbridge/internal/gearbench"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
)

// TestRun runs every phase with a small job count, so the code path is
// tested; it asserts no timings.
func TestRun(t *testing.T) {
	srv := gearmantest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := gearbench.Run(ctx, gearbench.Options{Server: srv.Addr(), Jobs: 500, Compare: true}, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	sum, err := gearbench.ParseSummary(out.String())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"submit_bg_jobs_per_s", "drain1_jobs_per_s", "drain4_jobs_per_s", "fg_rtt_per_s", "fg_rtt4_per_s"}
	if _, err := exec.LookPath("gearman"); err == nil {
		want = append(want, "cli_submit_jobs_per_s", "ratio_vs_cli")
	}
	for _, k := range want {
		if sum[k] <= 0 {
			t.Errorf("summary %s = %v, want > 0", k, sum[k])
		}
	}
}

func TestValidate(t *testing.T) {
	for _, o := range []gearbench.Options{{}, {Server: "no-port"}} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", o)
		}
	}
	if err := (gearbench.Options{Server: "127.0.0.1:4730"}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseSummary(t *testing.T) {
	m, err := gearbench.ParseSummary("x\nsummary a=1 b=2.5\n")
	if err != nil || m["a"] != 1 || m["b"] != 2.5 {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := gearbench.ParseSummary("summary a\n"); err == nil {
		t.Fatal("bad field accepted")
	}
	if _, err := gearbench.ParseSummary("no summary"); err == nil {
		t.Fatal("missing summary accepted")
	}
}

// TestBenchmarkFull runs the full benchmark when GEARBENCH_JOBS is set,
// e.g. GEARBENCH_JOBS=100000 go test -run TestBenchmarkFull -v
// ./internal/gearbench/ (without -race, which slows everything ~10x).
// GEARBENCH_SERVER points it at an existing gearmand instead of a fresh one.
func TestBenchmarkFull(t *testing.T) {
	jobs, _ := strconv.Atoi(os.Getenv("GEARBENCH_JOBS"))
	if jobs <= 0 {
		t.Skip("set GEARBENCH_JOBS to run the full benchmark")
	}
	addr := os.Getenv("GEARBENCH_SERVER")
	if addr == "" {
		addr = gearmantest.Start(t).Addr()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := gearbench.Run(ctx, gearbench.Options{Server: addr, Jobs: jobs, Compare: true}, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
}

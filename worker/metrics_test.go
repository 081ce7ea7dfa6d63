package worker

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// TestGearmanWorkerOperatorSeries: the central worker counts results by
// return code (every code at zero from the start), times its plugins, and
// reports gearmand up and ready while it is connected, down and not ready
// once gearmand is gone.
func TestGearmanWorkerOperatorSeries(t *testing.T) {
	srv := gearmantest.Start(t)
	w := startGearmanWorker(t, srv, gearmanConfig("service"))
	for _, rc := range []string{"0", "1", "2", "3"} {
		if n := testutil.CollectAndCount(w.m.pluginResults); n != 4 {
			t.Fatalf("%d result series, want 4 (0..3)", n)
		}
		if v := testutil.ToFloat64(w.m.pluginResults.WithLabelValues(rc)); v != 0 {
			t.Fatalf("results{return_code=%s} = %v before any job", rc, v)
		}
	}
	up := func() float64 { return testutil.ToFloat64(w.m.gearmandUp.WithLabelValues(srv.Addr())) }
	waitFor(t, "connected", func() bool { return up() == 1 && w.Ready() == nil })

	codec, _ := modgearman.NewCodec(gearmanKey, true)
	client := gearman.NewClient([]string{srv.Addr()}, gearman.ClientOptions{})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, cmd := range []string{"/bin/sh -c 'exit 2'", "/bin/sh -c 'sleep 0.2; exit 2'", "/bin/true"} {
		j := modgearman.Job{Type: modgearman.JobService, ResultQueue: "check_results", HostName: "h", ServiceDescription: string(rune('a' + i)),
			Timeout: 10 * time.Second, CommandLine: cmd}
		if _, err := client.Submit(ctx, "service", "", codec.Encode(j.Marshal()), gearman.PriorityNormal, true); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three results", func() bool {
		return testutil.ToFloat64(w.m.pluginResults.WithLabelValues("2")) == 2 &&
			testutil.ToFloat64(w.m.pluginResults.WithLabelValues("0")) == 1
	})
	if n := histogramCount(t, w); n != 3 {
		t.Fatalf("%d plugin durations observed, want 3", n)
	}

	srv.Stop()
	waitFor(t, "gearmand down", func() bool { return up() == 0 && w.Ready() != nil })
}

func histogramCount(t *testing.T, w *GearmanWorker) uint64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(w.m.pluginDuration)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather: %v, %d families", err, len(mfs))
	}
	return mfs[0].GetMetric()[0].GetHistogram().GetSampleCount()
}

// TestRemoteWorkerOperatorSeries: the remote worker is ready and
// connected while it has a session, counts results by return code, and
// is neither once the bridge hangs up.
func TestRemoteWorkerOperatorSeries(t *testing.T) {
	b := newBridges(t, "a")
	p := newTestPlugins(t)
	rw := startWorker(t, testConfig("a"), b.deps())
	m := rw.w.m
	if rw.w.Ready() == nil || testutil.ToFloat64(m.connected) != 0 {
		t.Fatal("ready before a session")
	}
	fs := b.accept("a")
	fs.welcome("s1", false)
	waitFor(t, "session", func() bool { return rw.w.Ready() == nil && testutil.ToFloat64(m.connected) == 1 })
	fs.job(serviceJob("1", p.cmd("crit.sh")))
	if r := fs.expectResult(); r.GetReturnCode() != 2 {
		t.Fatalf("result %v", r)
	}
	if got := testutil.ToFloat64(m.pluginResults.WithLabelValues("2")); got != 1 {
		t.Fatalf("results{return_code=2} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.pluginResults.WithLabelValues("0")); got != 0 {
		t.Fatalf("results{return_code=0} = %v, want 0", got)
	}
	fs.hangUp()
	waitFor(t, "session lost", func() bool { return rw.w.Ready() != nil && testutil.ToFloat64(m.connected) == 0 })
}

package sender

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearbridge/gearbridge/internal/gearmantest"
	"github.com/gearbridge/gearbridge/modgearman"
)

// TestGearmanProbe: a sender in Gearman mode exports gearbridge_gearmand_up
// for each server: 1 for a real gearmand, 0 for one that is not there, and
// 0 once the real one stops.
func TestGearmanProbe(t *testing.T) {
	srv := gearmantest.Start(t)
	codec, _ := modgearman.NewCodec("probe_key_0123456789", true)
	dead := "127.0.0.1:1"
	tr, err := NewGearmanTransport(GearmanConfig{Servers: []string{srv.Addr(), dead}, ResultQueue: "check_results", Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	reg := prometheus.NewPedanticRegistry()
	stop, err := tr.StartProbe(context.Background(), reg, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	up := func(s string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == s {
					return m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no series for %s", s)
		return -1
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("up", func() bool { return up(srv.Addr()) == 1 })
	if up(dead) != 0 {
		t.Fatalf("%s is up", dead)
	}
	srv.Stop()
	wait("down", func() bool { return up(srv.Addr()) == 0 })
	stop()
	stop() // twice is fine
}

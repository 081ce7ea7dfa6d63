package sender

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearbridge/gearbridge/gearman"
)

// DefaultProbeInterval is how often a send daemon in Gearman mode asks
// each gearmand for its version: as often as the bridge does, so that one
// alert on gearbridge_gearmand_up covers both.
const DefaultProbeInterval = 5 * time.Second

// StartProbe exports gearbridge_gearmand_up{server} for the transport's
// servers on reg, asking each gearmand for its version (admin protocol) at
// once and then every interval (0: DefaultProbeInterval) until ctx ends or
// the returned stop is called; stop waits and may be called more than
// once. A long-running sender calls it; a one-shot send does not need it.
func (t *GearmanTransport) StartProbe(ctx context.Context, reg prometheus.Registerer, interval time.Duration) (stop func(), err error) {
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gearbridge_gearmand_up",
		Help: "1 while the gearmand server answers, 0 while it cannot be reached (probed every few seconds).",
	}, []string{"server"})
	for _, s := range t.cfg.Servers {
		up.WithLabelValues(s) // 0 until the first probe answers
	}
	if reg != nil {
		if err := reg.Register(up); err != nil {
			return nil, err
		}
	}
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			for _, s := range t.cfg.Servers {
				pctx, pcancel := context.WithTimeout(ctx, max(interval/2, time.Second))
				a := gearman.NewAdmin(s, gearman.AdminOptions{})
				_, err := a.Version(pctx)
				_ = a.Close()
				pcancel()
				if ctx.Err() != nil {
					return
				}
				v := 1.0
				if err != nil {
					v = 0
				}
				up.WithLabelValues(s).Set(v)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

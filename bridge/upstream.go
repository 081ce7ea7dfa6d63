package bridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// Pinger is implemented by a Gearman that can tell whether one gearmand
// answers. The bridge probes with it, so that an outage shows in the log
// and in health even while no session is trying to connect.
type Pinger interface {
	Ping(ctx context.Context, server string) error
}

// DefaultProbeInterval is how often each gearmand is probed: a few seconds
// is soon enough for a load balancer to follow the bridge's health, and an
// admin "version" costs gearmand nothing.
const DefaultProbeInterval = 5 * time.Second

// upstream tracks which gearmands are unreachable, so that an outage is
// logged once when it starts and once when it ends — not once per session
// per retry — and so that health is NOT_SERVING while no gearmand can be
// reached.
type upstream struct {
	log     *slog.Logger
	servers int
	setUp   func(bool)           // called when "some gearmand reachable" changes
	gauge   *prometheus.GaugeVec // gearbridge_gearmand_up by server; nil: none

	mu   sync.Mutex
	down map[string]time.Time // server → since
}

func newUpstream(log *slog.Logger, servers int, setUp func(bool)) *upstream {
	return &upstream{log: log, servers: servers, setUp: setUp, down: map[string]time.Time{}}
}

// failed records that server could not be reached.
func (u *upstream) failed(server string, err error) {
	u.set(server, 0)
	u.mu.Lock()
	if _, already := u.down[server]; already {
		u.mu.Unlock()
		return
	}
	u.down[server] = time.Now()
	allDown := len(u.down) == u.servers
	u.mu.Unlock()
	u.log.Error("cannot reach gearmand; sessions and results wait for it", "server", server, "err", err)
	if allDown {
		u.setUp(false)
	}
}

// ok records that server answered.
func (u *upstream) ok(server string) {
	u.set(server, 1)
	u.mu.Lock()
	since, was := u.down[server]
	if !was {
		u.mu.Unlock()
		return
	}
	wasAllDown := len(u.down) == u.servers
	delete(u.down, server)
	u.mu.Unlock()
	u.log.Info("gearmand reachable again", "server", server, "outage", time.Since(since).Round(time.Millisecond))
	if wasAllDown {
		u.setUp(true)
	}
}

func (u *upstream) set(server string, v float64) {
	if u.gauge != nil {
		u.gauge.WithLabelValues(server).Set(v)
	}
}

// allDown reports whether no gearmand could be reached at the last try.
func (u *upstream) allDown() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.servers > 0 && len(u.down) == u.servers
}

// probe pings every gearmand each probeInterval until ctx ends, when the
// Gearman implementation can ping.
func (b *Bridge) probe(ctx context.Context) {
	p, ok := b.gm.(Pinger)
	if !ok {
		return
	}
	every := b.cfg.ProbeInterval
	if every <= 0 {
		every = DefaultProbeInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, srv := range b.gm.Servers() {
			pctx, cancel := context.WithTimeout(ctx, max(every/2, time.Second))
			err := p.Ping(pctx, srv)
			cancel()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				b.up.failed(srv, err)
			default:
				b.up.ok(srv)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// setServing flips the health of the services that need gearmand.
func (b *Bridge) setServing(up bool) {
	st := healthpb.HealthCheckResponse_SERVING
	if !up {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	b.mu.Lock()
	closing := b.closing
	b.mu.Unlock()
	if closing {
		return // Shutdown has set NOT_SERVING for good
	}
	for _, svc := range []string{"", pb.WorkerService_ServiceDesc.ServiceName, pb.ResultService_ServiceDesc.ServiceName} {
		b.health.SetServingStatus(svc, st)
	}
}

// Ready reports whether the bridge takes work: it serves, is not shutting
// down, and reaches at least one gearmand. It backs /readyz.
func (b *Bridge) Ready() error {
	b.srvMu.Lock()
	serving := b.srv != nil
	b.srvMu.Unlock()
	b.mu.Lock()
	closing := b.closing
	b.mu.Unlock()
	switch {
	case closing:
		return errors.New("shutting down")
	case !serving:
		return errors.New("not serving yet")
	case b.up.allDown():
		return errors.New("no gearmand reachable")
	}
	return nil
}

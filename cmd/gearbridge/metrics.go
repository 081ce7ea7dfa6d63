package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gearbridge/gearbridge/internal/buildinfo"
)

// processRegistry is the Prometheus registry of a long-running command,
// with the Go runtime and process collectors and gearbridge_build_info.
func processRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Get().Collector())
	return reg
}

// readiness is what /readyz asks. Until the daemon sets its check the
// answer is "starting".
type readiness struct {
	check atomic.Pointer[func() error]
}

// set makes fn the readiness check.
func (r *readiness) set(fn func() error) { r.check.Store(&fn) }

// ready reports nil when the daemon takes work.
func (r *readiness) ready() error {
	if r == nil {
		return nil
	}
	fn := r.check.Load()
	if fn == nil {
		return errors.New("starting")
	}
	return (*fn)()
}

// metricsMux serves reg on /metrics, liveness on /healthz (200 while the
// process answers) and readiness on /readyz (200 when ready says so, 503
// with the reason otherwise).
func metricsMux(reg *prometheus.Registry, ready *readiness) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready.ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// serveMetrics serves metricsMux on addr until the returned stop is
// called.
func serveMetrics(addr string, reg *prometheus.Registry, ready *readiness) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen: %w", err)
	}
	srv := &http.Server{Handler: metricsMux(reg, ready), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

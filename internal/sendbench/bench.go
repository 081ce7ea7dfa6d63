// Package sendbench measures passive results per second for
// `gearbridge bench send`: over gRPC batches through a real bridge (the
// gearbridge binary as a child process, as internal/bridgebench does) and
// straight to gearmand over Gearman, both onto the same gearmand.
//
// A result counts when its receiver acknowledged it: the bridge answers a
// batch only after gearmand accepted every result in it, and a direct
// submit returns when gearmand queued the job. Each phase then drains its
// result queue and checks that exactly the sent number arrived.
package sendbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/gearbridge/gearbridge/certs"
	"github.com/gearbridge/gearbridge/gearman"
	"github.com/gearbridge/gearbridge/internal/bridgeproc"
	"github.com/gearbridge/gearbridge/modgearman"
	"github.com/gearbridge/gearbridge/sender"
)

const benchKey = "bench_send_key_0123"

// Options configure a run.
type Options struct {
	Server    string // gearmand host:port
	Bin       string // gearbridge binary that runs the bridge; empty: this one
	Results   int    // results per phase
	BatchSize int    // results per SubmitResults call
	Parallel  int    // gRPC batches in flight, and direct submits in flight
	Logger    *slog.Logger
}

// Validate checks the options.
func (o Options) Validate() error {
	switch {
	case o.Server == "":
		return errors.New("bench send: --server (gearmand) is required")
	case o.Results <= 0:
		return fmt.Errorf("bench send: --results must be positive, got %d", o.Results)
	case o.BatchSize <= 0 || o.BatchSize > 10000:
		return fmt.Errorf("bench send: --batch-size must be 1..10000, got %d", o.BatchSize)
	case o.Parallel <= 0:
		return fmt.Errorf("bench send: --parallel must be positive, got %d", o.Parallel)
	}
	return nil
}

// Run performs the benchmark and prints its figures to out; the last line
// is a summary of name=value pairs.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := os.MkdirTemp("", "gearbridge-sendbench-")
	if err != nil {
		return fmt.Errorf("bench send: %w", err)
	}
	defer os.RemoveAll(dir)
	nonce := randHex(4)
	codec, err := modgearman.NewCodec(benchKey, true)
	if err != nil {
		return err
	}
	grpcQueue := "bench_send_grpc_" + nonce
	br, err := bridgeproc.Start(ctx, dir, bridgeproc.Options{
		Bin: o.Bin, Server: o.Server, Key: benchKey,
		ClientRole: certs.RoleSender, ClientName: "bench-sender",
		AuthzYAML: "rules:\n  - {identity: \"bench-sender\", role: sender, hosts: [\"bench-host-*\"]}\n",
		ExtraArgs: []string{"--result-queue", grpcQueue},
	})
	if err != nil {
		return fmt.Errorf("bench send: start bridge: %w", err)
	}
	defer br.Stop()
	fmt.Fprintf(out, "bridge pid %d on %s, gearmand %s, %d results per phase, batches of %d, %d in flight\n",
		br.Cmd.Process.Pid, br.Addr, o.Server, o.Results, o.BatchSize, o.Parallel)

	results := make([]sender.Result, o.Results)
	now := time.Now()
	for i := range results {
		results[i] = sender.Result{
			Host: fmt.Sprintf("bench-host-%06d", i), Service: "bench", ReturnCode: i % 4,
			Output: fmt.Sprintf("OK - bench result %d|value=%d;10;20;0;100", i, i), Start: now, Finish: now,
		}
	}

	conn, err := grpc.NewClient(br.Addr, grpc.WithTransportCredentials(credentials.NewTLS(br.ClientTLS)))
	if err != nil {
		return fmt.Errorf("bench send: %w", err)
	}
	grpcT := sender.NewGRPCTransport(conn, sender.GRPCConfig{BatchSize: o.BatchSize, Parallel: o.Parallel})
	defer grpcT.Close()
	// Warm up the TLS connection and the bridge's Gearman client.
	if oc := grpcT.Send(ctx, results[:1]); !oc[0].Accepted {
		return fmt.Errorf("bench send: warm-up result refused: %s", oc[0].Reason)
	}
	grpcRate, err := phase(ctx, grpcT, results)
	if err != nil {
		return fmt.Errorf("grpc phase: %w", err)
	}
	fmt.Fprintf(out, "gRPC batches:     %d results in %v: %.0f results/s\n", o.Results, grpcRate.elapsed.Round(time.Millisecond), grpcRate.rate())
	if err := drain(ctx, o.Server, grpcQueue, o.Results+1); err != nil {
		return fmt.Errorf("grpc phase: %w", err)
	}

	direct := func(parallel int, queue string) (measured, error) {
		t, err := sender.NewGearmanTransport(sender.GearmanConfig{
			Servers: []string{o.Server}, ResultQueue: queue, Codec: codec, Parallel: parallel, Logger: o.Logger,
		})
		if err != nil {
			return measured{}, err
		}
		defer t.Close()
		m, err := phase(ctx, t, results)
		if err != nil {
			return m, err
		}
		return m, drain(ctx, o.Server, queue, o.Results)
	}
	directRate, err := direct(o.Parallel*16, "bench_send_direct_"+nonce)
	if err != nil {
		return fmt.Errorf("direct phase: %w", err)
	}
	fmt.Fprintf(out, "direct Gearman:   %d results in %v: %.0f results/s (%d submits in flight)\n", o.Results, directRate.elapsed.Round(time.Millisecond), directRate.rate(), o.Parallel*16)
	orderedRate, err := direct(1, "bench_send_ordered_"+nonce)
	if err != nil {
		return fmt.Errorf("ordered phase: %w", err)
	}
	fmt.Fprintf(out, "direct, in order: %d results in %v: %.0f results/s (one at a time, the send_gearman default)\n", o.Results, orderedRate.elapsed.Round(time.Millisecond), orderedRate.rate())
	fmt.Fprintf(out, "summary grpc_results_per_s=%.0f gearman_results_per_s=%.0f gearman_ordered_results_per_s=%.0f results=%d batch_size=%d parallel=%d\n",
		grpcRate.rate(), directRate.rate(), orderedRate.rate(), o.Results, o.BatchSize, o.Parallel)
	return nil
}

type measured struct {
	n       int
	elapsed time.Duration
}

func (m measured) rate() float64 { return float64(m.n) / m.elapsed.Seconds() }

// phase sends every result and fails unless all were accepted.
func phase(ctx context.Context, t sender.Transport, results []sender.Result) (measured, error) {
	start := time.Now()
	outcomes := t.Send(ctx, results)
	elapsed := time.Since(start)
	for i, o := range outcomes {
		if !o.Accepted {
			return measured{}, fmt.Errorf("result %d not accepted: %s", i, o.Reason)
		}
	}
	return measured{n: len(results), elapsed: elapsed}, nil
}

// drain takes n jobs off queue and fails if they do not all arrive.
func drain(ctx context.Context, server, queue string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	wc, err := gearman.DialWorker(ctx, server, gearman.WorkerOptions{ClientID: "bench-send-drain"})
	if err != nil {
		return err
	}
	defer wc.Close()
	if err := wc.CanDo(queue); err != nil {
		return err
	}
	for i := range n {
		j, err := wc.Grab(ctx)
		if err != nil {
			return fmt.Errorf("%d of %d results arrived on %s: %w", i, n, queue, err)
		}
		if err := wc.Complete(j.Handle, nil); err != nil {
			return err
		}
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

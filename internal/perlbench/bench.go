// Package perlbench measures Perl plugins per second for `gearbridge bench
// perl`: the same Monitoring::Plugin plugin run N times as a process of
// its own and N times in the embedded Perl server, each with the same
// number of slots (plugins at once), through plugin.Run as a worker runs
// them.
//
// Every result is checked: each run must return the plugin's state and
// output, and the embedded output must equal the executed one.
package perlbench

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/gearbridge/gearbridge/plugin"
)

//go:embed check_bench.pl
var benchPlugin []byte

// Options configure a run.
type Options struct {
	Checks int    // runs per phase
	Slots  int    // plugins at once
	Perl   string // interpreter; empty: perl from PATH
	Logger *slog.Logger
}

// Validate checks the options.
func (o Options) Validate() error {
	switch {
	case o.Checks <= 0:
		return fmt.Errorf("bench perl: --checks must be positive, got %d", o.Checks)
	case o.Slots <= 0:
		return fmt.Errorf("bench perl: --slots must be positive, got %d", o.Slots)
	}
	return nil
}

// Run performs the benchmark and prints its figures to out; the last line
// is a summary of name=value pairs.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gearbridge-perlbench-")
	if err != nil {
		return fmt.Errorf("bench perl: %w", err)
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "check_bench.pl")
	if err := os.WriteFile(script, benchPlugin, 0o755); err != nil {
		return fmt.Errorf("bench perl: %w", err)
	}
	cmd := script + " --state 1 --text 'bench run' --lines 2"

	opt := plugin.DefaultOptions()
	opt.Identifier = "bench"
	opt.Timeout = 60 * time.Second
	want := plugin.Run(ctx, cmd, opt)
	if want.ReturnCode != 1 {
		return fmt.Errorf("bench perl: the plugin does not run (is Monitoring::Plugin installed? apt-get install libmonitoring-plugin-perl): rc %d %q", want.ReturnCode, want.Output)
	}

	cpu0 := cpuTime()
	execRate, err := phase(ctx, "exec", cmd, opt, o, want, out)
	if err != nil {
		return err
	}
	cpu1 := cpuTime()
	perl := plugin.NewPerl(plugin.PerlConfig{Perl: o.Perl, Logger: o.Logger})
	defer perl.Close()
	opt.Perl = perl
	// The first run starts the server and compiles the plugin: that cost
	// is paid once per worker, not per check (its CPU time is counted
	// below all the same).
	if res := plugin.Run(ctx, cmd, opt); res.ReturnCode != want.ReturnCode || res.Output != want.Output {
		return fmt.Errorf("bench perl: embedded run differs: rc %d %q, executed rc %d %q", res.ReturnCode, res.Output, want.ReturnCode, want.Output)
	}
	epnRate, err := phase(ctx, "epn", cmd, opt, o, want, out)
	if err != nil {
		return err
	}
	if s := perl.Stats(); s.Checks != uint64(o.Checks)+1 || s.ServerStarts != 1 {
		return fmt.Errorf("bench perl: embedded phase ran %d checks on %d servers, want %d on 1", s.Checks, s.ServerStarts, o.Checks+1)
	}
	// The server's children are accounted to it, and it to us once it
	// has been reaped.
	if err := perl.Close(); err != nil {
		return fmt.Errorf("bench perl: stop the Perl server: %w", err)
	}
	cpu2 := cpuTime()
	execCPU := float64(cpu1-cpu0) / float64(time.Millisecond) / float64(o.Checks)
	epnCPU := float64(cpu2-cpu1) / float64(time.Millisecond) / float64(o.Checks)
	fmt.Fprintf(out, "cpu  exec %.2f ms per check, epn %.2f ms per check (user+system, worker and its children)\n", execCPU, epnCPU)
	fmt.Fprintf(out, "summary exec_checks_per_s=%.1f epn_checks_per_s=%.1f speedup=%.1f exec_cpu_ms=%.2f epn_cpu_ms=%.2f cpu_speedup=%.1f checks=%d slots=%d\n",
		execRate, epnRate, epnRate/execRate, execCPU, epnCPU, execCPU/epnCPU, o.Checks, o.Slots)
	return nil
}

// cpuTime is the user and system time of this process and its reaped
// children.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// phase runs the command o.Checks times on o.Slots slots and returns the
// checks per second.
func phase(ctx context.Context, name, cmd string, opt plugin.Options, o Options, want plugin.Result, out io.Writer) (float64, error) {
	jobs := make(chan struct{})
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range o.Slots {
		wg.Go(func() {
			for range jobs {
				res := plugin.Run(ctx, cmd, opt)
				if res.ReturnCode != want.ReturnCode || res.Output != want.Output {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("bench perl: %s run: rc %d %q, want rc %d %q", name, res.ReturnCode, res.Output, want.ReturnCode, want.Output)
					}
					mu.Unlock()
				}
			}
		})
	}
	for range o.Checks {
		select {
		case jobs <- struct{}{}:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	if err := ctx.Err(); err != nil {
		return 0, errors.Join(errors.New("bench perl: interrupted"), err)
	}
	rate := float64(o.Checks) / elapsed.Seconds()
	fmt.Fprintf(out, "%-4s %d checks on %d slots in %v: %.1f checks/s, %.2f ms per check\n",
		name, o.Checks, o.Slots, elapsed.Round(time.Millisecond), rate, elapsed.Seconds()*1000/float64(o.Checks))
	return rate, nil
}

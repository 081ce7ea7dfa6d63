package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/gearbridge/gearbridge/internal/bridgebench"
	"github.com/gearbridge/gearbridge/internal/gearbench"
	"github.com/gearbridge/gearbridge/internal/perlbench"
)

func newBenchCmd(s streams, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput and latency",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError(errors.New("bench: name a benchmark (gearman, bridge, send or perl)"))
		},
	}
	cmd.AddCommand(
		newBenchGearmanCmd(s, g),
		newBenchBridgeCmd(s, g),
		newBenchSendCmd(s, g),
		newBenchPerlCmd(s, g),
	)
	return cmd
}

// benchTarget returns the one gearmand a benchmark runs against and the
// logger the flags ask for.
func benchTarget(s streams, g *globals) (string, *slog.Logger, error) {
	servers, err := normalizeServers(g.servers)
	if err != nil {
		return "", nil, usageError(err)
	}
	if len(servers) != 1 {
		return "", nil, usageError(errors.New("bench: give exactly one --server HOST:PORT (a gearmand the benchmark may fill)"))
	}
	log, err := g.logger(s.err)
	if err != nil {
		return "", nil, err
	}
	return servers[0], log, nil
}

func newBenchBridgeCmd(s streams, g *globals) *cobra.Command {
	var o bridgebench.Options
	var x bridgebench.ExecOptions
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Checks/s through the bridge against a direct Gearman worker",
		Long: `Checks/s through the bridge against a direct Gearman worker on the same gearmand.

With --exec CMD every part is a process of its own: a bridge, a remote worker
and a direct (--transport=gearman) worker, each running CMD as a real plugin
for every check with --slots slots. A pre-queued phase queues --checks checks
while the path's processes are stopped and times the drain; a steady phase
submits at a fixed rate and measures the latency. Both report the CPU each
process used per check, read from /proc/PID/stat (gearmand must run on this
machine for its figures).

Without --exec the older in-process benchmark runs: workers and the direct
worker in this process, check_dummy answered without starting a process.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, log, err := benchTarget(s, g)
			if err != nil {
				return err
			}
			if x.Exec != "" {
				x.Server, x.Logger, x.Bin, x.Slots = server, log, o.Bin, o.Slots
				x.Checks = o.Checks
				if !cmd.Flags().Changed("checks") {
					x.Checks = 4000
				}
				if cpuProfile != "" {
					x.BridgeArgs = append(x.BridgeArgs, "--cpuprofile", cpuProfile)
				}
				if err := x.Validate(); err != nil {
					return usageError(err)
				}
				return bridgebench.RunExec(cmd.Context(), x, s.out)
			}
			o.Server, o.Logger = server, log
			return bridgebench.Run(cmd.Context(), o, s.out)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Checks, "checks", 20000, "checks per throughput phase (with --exec: checks queued per path, default 4000)")
	f.StringVar(&x.Exec, "exec", "", "run real processes, each check running this plugin `COMMAND` line")
	f.Float64Var(&x.Rate, "rate", 0, "with --exec: checks/s of the steady phase (0: half the lower pre-queued rate)")
	f.DurationVar(&x.Steady, "steady", 5*time.Second, "with --exec: length of the steady phase (0 skips it)")
	f.IntVar(&x.GearmandPID, "gearmand-pid", 0, "with --exec: pid of gearmand for its CPU figures (default: ask gearmand)")
	f.StringVar(&cpuProfile, "bridge-cpuprofile", "", "with --exec: the bridge writes a CPU profile to `FILE`")
	f.StringArrayVar(&x.BridgeArgs, "bridge-arg", nil, "with --exec: an extra flag for the bridge, e.g. --bridge-arg=--metrics-listen=127.0.0.1:9400 (repeatable)")
	f.StringArrayVar(&x.RemoteWorkerArgs, "remote-worker-arg", nil, "with --exec: an extra flag for the remote worker, e.g. --remote-worker-arg=--result-batch-wait=0 (repeatable)")
	f.IntVar(&o.Sessions, "sessions", 4, "bridge sessions (remote workers); also direct worker connections")
	f.IntVar(&o.Slots, "slots", 32, "slots per session")
	f.IntVar(&o.IdleSessions, "idle-sessions", 1000, "idle sessions for the memory figure (0 skips it)")
	f.StringVar(&o.Bin, "bin", "", "gearbridge binary that runs the bridge (default: this one)")
	return cmd
}

func newBenchGearmanCmd(s streams, g *globals) *cobra.Command {
	var o gearbench.Options
	cmd := &cobra.Command{
		Use:   "gearman",
		Short: "Gearman protocol throughput: pipelined submits, drains, round trips, against the gearman CLI",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, log, err := benchTarget(s, g)
			if err != nil {
				return err
			}
			o.Server, o.Logger = server, log
			if err := o.Validate(); err != nil {
				return usageError(err)
			}
			return gearbench.Run(cmd.Context(), o, s.out)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Jobs, "jobs", 100000, "jobs for the submit and drain phases")
	f.IntVar(&o.PayloadSize, "payload-size", 64, "bytes per job")
	f.BoolVar(&o.Compare, "compare", true, "also time Debian's gearman -b CLI on the same gearmand")
	return cmd
}

func newBenchPerlCmd(s streams, g *globals) *cobra.Command {
	o := perlbench.Options{Checks: 500, Slots: 4}
	cmd := &cobra.Command{
		Use:   "perl",
		Short: "Perl plugins/s: a Monitoring::Plugin check executed against the embedded Perl server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(s.err)
			if err != nil {
				return err
			}
			o.Logger = log
			if err := o.Validate(); err != nil {
				return usageError(err)
			}
			return perlbench.Run(cmd.Context(), o, s.out)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Checks, "checks", o.Checks, "runs per phase (executed, then embedded)")
	f.IntVar(&o.Slots, "slots", o.Slots, "plugins at once in both phases")
	f.StringVar(&o.Perl, "perl", "", "Perl interpreter of the embedded server (default: perl from PATH)")
	return cmd
}

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newBenchCmd(s streams, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput and latency",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError(errors.New("bench: name a benchmark (gearman, bridge or send)"))
		},
	}
	cmd.AddCommand(
		notYetCmd("bridge", "Checks/s through the bridge against a direct Gearman worker", 4),
		notYetCmd("send", "Passive results/s over gRPC and over Gearman", 6),
	)
	_, _ = s, g
	return cmd
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// notYetCmd is a command whose issue is still open. It says so and exits 2;
// it never pretends to work.
func notYetCmd(name, short string, issue int) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              short + " (not available yet)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return usageError(fmt.Errorf("%s: not available yet (tracked in issue %d)", name, issue))
		},
	}
}

package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// notYetCmd is a command that is not built yet. It says so and exits 2; it
// never pretends to work. issue names the open issue that tracks it, if any.
func notYetCmd(name, short string, issue int) *cobra.Command {
	msg := fmt.Sprintf("%s: not available yet", name)
	if issue > 0 {
		msg += fmt.Sprintf(" (tracked in issue %d)", issue)
	}
	return &cobra.Command{
		Use:                name,
		Short:              short + " (not available yet)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return usageError(errors.New(msg))
		},
	}
}
